package logscan

import "github.com/pdguard/pdguard/internal/rollout/imageref"

// version is the numeric four-part prefix of a PingDirectory product version.
// Build suffixes are ignored because the server prints them inconsistently.
type version [4]int64

// CheckVersion reports whether s is a product version the scanner can compare:
// four dot-separated numbers such as 9.1.0.0, optionally followed by a build
// suffix (9.1.0.0-GA, 9.1.0.0.20240930).
func CheckVersion(s string) error {
	_, err := parseVersion(s)
	return err
}

func parseVersion(s string) (version, error) {
	v, err := imageref.ParsePrintedVersion(s)
	return v.Parts, err
}

// sameVersion compares the numeric prefixes of two printed versions; an
// unparsable one never matches.
func sameVersion(a string, b version) bool {
	v, err := parseVersion(a)
	return err == nil && v == b
}
