// Package imageref parses container image references and reads the PingDirectory product
// version from their tags. It runs on the admission path for every container of every
// update, so Parse is hand-written rather than regexp-based and allocates nothing: the
// parts it returns are slices of the reference.
package imageref

import (
	"fmt"
	"strings"
	"unicode"
)

// Ref is a parsed image reference: Repository[:Tag][@Digest].
type Ref struct {
	// Repository is the name as written, registry included (registry.local:5000/ping/pingdirectory).
	Repository string
	// Tag is "latest" when the reference has neither tag nor digest, and empty when it is
	// pinned by digest alone.
	Tag string
	// Digest is "sha256:" followed by 64 lower-case hex digits, or empty.
	Digest string
}

const (
	maxNameLength = 255
	maxTagLength  = 128
	digestPrefix  = "sha256:"
	digestHexLen  = 64
)

// Parse reads repo[:tag][@sha256:<64 hex>]. The error names the reference and what is wrong.
func Parse(ref string) (Ref, error) {
	if ref == "" {
		return Ref{}, fmt.Errorf("image reference is empty")
	}
	if i := strings.IndexFunc(ref, unicode.IsSpace); i >= 0 {
		return Ref{}, refError(ref, "contains whitespace")
	}

	name, digest, hasDigest := strings.Cut(ref, "@")
	if strings.Contains(digest, "@") {
		return Ref{}, refError(ref, "has more than one '@'")
	}
	if hasDigest {
		if problem := checkDigest(digest); problem != "" {
			return Ref{}, refError(ref, problem)
		}
	}

	// A colon after the last slash starts the tag; one before it belongs to a registry port.
	var tag string
	hasTag := false
	if i := strings.LastIndexByte(name, ':'); i > strings.LastIndexByte(name, '/') {
		name, tag, hasTag = name[:i], name[i+1:], true
		if problem := checkTag(tag); problem != "" {
			return Ref{}, refError(ref, problem)
		}
	}

	if problem := checkName(name); problem != "" {
		return Ref{}, refError(ref, problem)
	}
	if !hasTag && !hasDigest {
		tag = "latest"
	}
	return Ref{Repository: name, Tag: tag, Digest: digest}, nil
}

// String writes the reference back in the form Parse reads.
func (r Ref) String() string {
	s := r.Repository
	if r.Tag != "" {
		s += ":" + r.Tag
	}
	if r.Digest != "" {
		s += "@" + r.Digest
	}
	return s
}

// Version is the product version read from the tag.
func (r Ref) Version() Version {
	return ParseVersion(r.Tag)
}

// FullRepository is the repository with Docker Hub's implicit parts written out
// (pingidentity/pingdirectory is docker.io/pingidentity/pingdirectory, busybox is
// docker.io/library/busybox), so two spellings of the same repository compare equal. The
// kubelet reports images in this form in a pod's containerStatuses.
func (r Ref) FullRepository() string {
	domain, path := splitDomain(r.Repository)
	switch strings.ToLower(domain) {
	case "", "docker.io", "index.docker.io", "registry-1.docker.io":
		if !strings.Contains(path, "/") {
			path = "library/" + path
		}
		return "docker.io/" + path
	}
	return strings.ToLower(domain) + "/" + path
}

func refError(ref, problem string) error {
	return fmt.Errorf("image reference %q: %s", ref, problem)
}

func checkDigest(d string) string {
	algorithm, hex, ok := strings.Cut(d, ":")
	if !ok || algorithm == "" {
		return fmt.Sprintf("digest %q must be %s followed by %d lower-case hex digits", d, digestPrefix, digestHexLen)
	}
	if algorithm+":" != digestPrefix {
		return fmt.Sprintf("digest algorithm %q is not supported, only sha256", algorithm)
	}
	if len(hex) != digestHexLen {
		return fmt.Sprintf("digest %q has %d hex digits, want %d", d, len(hex), digestHexLen)
	}
	for i := 0; i < len(hex); i++ {
		if c := hex[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return fmt.Sprintf("digest %q must use lower-case hex digits only", d)
		}
	}
	return ""
}

func checkTag(tag string) string {
	if tag == "" {
		return "tag after ':' is empty"
	}
	if len(tag) > maxTagLength {
		return fmt.Sprintf("tag is %d characters long, the limit is %d", len(tag), maxTagLength)
	}
	if tag[0] == '.' || tag[0] == '-' {
		return fmt.Sprintf("tag %q must not start with '.' or '-'", tag)
	}
	for i := 0; i < len(tag); i++ {
		if !isWordChar(tag[i]) && tag[i] != '.' && tag[i] != '-' {
			return fmt.Sprintf("tag %q may only contain letters, digits, '_', '.' and '-'", tag)
		}
	}
	return ""
}

func checkName(name string) string {
	if name == "" {
		return "repository is empty"
	}
	if len(name) > maxNameLength {
		return fmt.Sprintf("repository is %d characters long, the limit is %d", len(name), maxNameLength)
	}
	domain, path := splitDomain(name)
	if domain != "" {
		if problem := checkDomain(domain); problem != "" {
			return problem
		}
	}
	if path == "" {
		return fmt.Sprintf("repository %q has no path after the registry", name)
	}
	if strings.ToLower(path) != path {
		return fmt.Sprintf("repository %q must be lower-case", name)
	}
	for component := range strings.SplitSeq(path, "/") {
		if component == "" {
			return fmt.Sprintf("repository %q has an empty path component", name)
		}
		if !validComponent(component) {
			return fmt.Sprintf("repository %q: path component %q may only contain lower-case letters and digits, separated by '.', '_', '__' or dashes", name, component)
		}
	}
	return ""
}

// splitDomain follows Docker's rule: the first component names a registry only when it
// contains '.' or ':' or is localhost; otherwise the whole name is a Docker Hub path.
func splitDomain(name string) (domain, path string) {
	first, rest, ok := strings.Cut(name, "/")
	if !ok || !(strings.ContainsAny(first, ".:") || first == "localhost") {
		return "", name
	}
	return first, rest
}

func checkDomain(domain string) string {
	host, port := domain, ""
	if strings.HasPrefix(host, "[") {
		end := strings.IndexByte(host, ']')
		if end < 0 {
			return fmt.Sprintf("registry %q has an unclosed '['", domain)
		}
		host, port = host[:end+1], host[end+1:]
		if !validIPv6(host[1:end]) {
			return fmt.Sprintf("registry %q is not a valid IPv6 address", domain)
		}
		if port != "" {
			if port[0] != ':' {
				return fmt.Sprintf("registry %q has text after ']' that is not a port", domain)
			}
			port = port[1:]
			if !validPort(port) {
				return fmt.Sprintf("registry port %q is not a number", port)
			}
		}
		return ""
	}
	if i := strings.IndexByte(host, ':'); i >= 0 {
		host, port = host[:i], host[i+1:]
		if !validPort(port) {
			return fmt.Sprintf("registry port %q is not a number", port)
		}
	}
	for label := range strings.SplitSeq(host, ".") {
		if !validDomainLabel(label) {
			return fmt.Sprintf("registry %q is not a valid host name", domain)
		}
	}
	return ""
}

func validPort(p string) bool {
	if p == "" || len(p) > 5 {
		return false
	}
	for i := 0; i < len(p); i++ {
		if p[i] < '0' || p[i] > '9' {
			return false
		}
	}
	return true
}

func validIPv6(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' || c == ':' || c == '.') {
			return false
		}
	}
	return true
}

// validDomainLabel: letters, digits and inner dashes.
func validDomainLabel(l string) bool {
	if l == "" || l[0] == '-' || l[len(l)-1] == '-' {
		return false
	}
	for i := 0; i < len(l); i++ {
		c := l[i]
		if !(isAlnum(c) || c >= 'A' && c <= 'Z' || c == '-') {
			return false
		}
	}
	return true
}

// validComponent: lower-case alphanumeric runs joined by one '.', one or two '_', or any
// number of '-'.
func validComponent(c string) bool {
	if !isAlnum(c[0]) || !isAlnum(c[len(c)-1]) {
		return false
	}
	for i := 0; i < len(c); {
		if isAlnum(c[i]) {
			i++
			continue
		}
		j := i
		for j < len(c) && !isAlnum(c[j]) {
			j++
		}
		switch sep := c[i:j]; {
		case sep == "." || sep == "_" || sep == "__":
		case strings.Trim(sep, "-") == "":
		default:
			return false
		}
		i = j
	}
	return true
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= '0' && c <= '9'
}

func isWordChar(c byte) bool {
	return isAlnum(c) || c >= 'A' && c <= 'Z' || c == '_'
}
