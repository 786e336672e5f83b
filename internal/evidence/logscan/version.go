package logscan

import (
	"fmt"
	"strconv"
	"strings"
)

// version is the numeric four-part prefix of a PingDirectory product version.
// Build suffixes are ignored because the server prints them inconsistently.
type version [4]uint32

// CheckVersion reports whether s is a product version the scanner can compare:
// four dot-separated numbers such as 9.1.0.0, optionally followed by a build
// suffix (9.1.0.0-GA, 9.1.0.0.20240930).
func CheckVersion(s string) error {
	_, err := parseVersion(s)
	return err
}

func parseVersion(s string) (version, error) {
	var v version
	rest := s
	for i := range v {
		n := 0
		for n < len(rest) && rest[n] >= '0' && rest[n] <= '9' {
			n++
		}
		if n == 0 {
			return version{}, badVersion(s)
		}
		x, err := strconv.ParseUint(rest[:n], 10, 32)
		if err != nil {
			return version{}, badVersion(s)
		}
		v[i] = uint32(x)
		rest = rest[n:]
		if i < len(v)-1 {
			if !strings.HasPrefix(rest, ".") {
				return version{}, badVersion(s)
			}
			rest = rest[1:]
		}
	}
	// Whatever follows the fourth number is a build suffix.
	return v, nil
}

func badVersion(s string) error {
	if s == "" {
		return fmt.Errorf("empty product version: want four dot-separated numbers like 9.1.0.0")
	}
	return fmt.Errorf("%q is not a product version: want four dot-separated numbers like 9.1.0.0", s)
}

// sameVersion compares the numeric prefixes of two printed versions; an
// unparsable one never matches.
func sameVersion(a string, b version) bool {
	v, err := parseVersion(a)
	return err == nil && v == b
}
