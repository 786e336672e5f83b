package imageref

import (
	"fmt"
	"strconv"
	"strings"
)

// Version is the PingDirectory product version read from an image tag.
type Version struct {
	// Known is false for tags with no readable version (latest, edge, 2602, 2111.1...).
	Known bool
	// Parts are the four numbers of the version, e.g. [9 1 0 0]; zero when not Known.
	Parts [4]int64
	// Text is the version as "9.1.0.0" when Known, else the tag itself.
	Text string
}

// ParseVersion reads the product version from a tag. PingDirectory tags put it in one
// dash-separated token of exactly four dot-separated numbers: 9.1.0.0-latest,
// 2602-10.3.0.3 (sprint 2602), 11.0.0.1-alpine_3.23.3-al17-latest. Requiring four numbers
// is what keeps the base image's alpine_3.23.3 and the sprint number from counting.
func ParseVersion(tag string) Version {
	for token := range strings.SplitSeq(tag, "-") {
		if parts, ok := fourNumbers(token); ok {
			return Version{
				Known: true,
				Parts: parts,
				Text:  strconv.FormatInt(parts[0], 10) + "." + strconv.FormatInt(parts[1], 10) + "." + strconv.FormatInt(parts[2], 10) + "." + strconv.FormatInt(parts[3], 10),
			}
		}
	}
	return Version{Text: tag}
}

// ParsePrintedVersion reads a product version as the server prints it in its logs: four
// dot-separated numbers such as 9.1.0.0, optionally followed by a build suffix
// (9.1.0.0-GA, 9.1.0.0.20240930), which is ignored because the server prints it
// inconsistently.
func ParsePrintedVersion(s string) (Version, error) {
	var parts [4]int64
	rest := s
	for i := range parts {
		n := 0
		for n < len(rest) && rest[n] >= '0' && rest[n] <= '9' {
			n++
		}
		if n == 0 {
			return Version{Text: s}, badPrintedVersion(s)
		}
		x, err := strconv.ParseUint(rest[:n], 10, 32)
		if err != nil {
			return Version{Text: s}, badPrintedVersion(s)
		}
		parts[i] = int64(x)
		rest = rest[n:]
		if i < len(parts)-1 {
			if !strings.HasPrefix(rest, ".") {
				return Version{Text: s}, badPrintedVersion(s)
			}
			rest = rest[1:]
		}
	}
	return Version{Known: true, Parts: parts, Text: strconv.FormatInt(parts[0], 10) + "." + strconv.FormatInt(parts[1], 10) + "." + strconv.FormatInt(parts[2], 10) + "." + strconv.FormatInt(parts[3], 10)}, nil
}

func badPrintedVersion(s string) error {
	if s == "" {
		return fmt.Errorf("empty product version: want four dot-separated numbers like 9.1.0.0")
	}
	return fmt.Errorf("%q is not a product version: want four dot-separated numbers like 9.1.0.0", s)
}

func fourNumbers(token string) ([4]int64, bool) {
	var parts [4]int64
	n := 0
	for field := range strings.SplitSeq(token, ".") {
		if n == len(parts) || field == "" {
			return parts, false
		}
		for i := 0; i < len(field); i++ {
			if field[i] < '0' || field[i] > '9' {
				return parts, false
			}
		}
		v, err := strconv.ParseInt(field, 10, 64)
		if err != nil {
			return parts, false // too large to be a version number
		}
		parts[n] = v
		n++
	}
	return parts, n == len(parts)
}

// Compare orders a against b: -1 when a is lower, 0 when equal, 1 when higher. ok is false
// when either version is not Known, since a tag like latest says nothing about order.
func Compare(a, b Version) (order int, ok bool) {
	if !a.Known || !b.Known {
		return 0, false
	}
	for i := range a.Parts {
		switch {
		case a.Parts[i] < b.Parts[i]:
			return -1, true
		case a.Parts[i] > b.Parts[i]:
			return 1, true
		}
	}
	return 0, true
}
