package imageref

import (
	"strconv"
	"strings"
	"testing"
)

const digest = "sha256:3f1c2d7e8a915b0c6a0e3f0d4a8e9b536f1c2d7e8a915b0c6a0e3f0d4a8e9b53"

func TestParse(t *testing.T) {
	tests := map[string]struct {
		ref  string
		want Ref
	}{
		"a Docker Hub tag is parsed": {
			ref:  "pingidentity/pingdirectory:9.1.0.0-latest",
			want: Ref{Repository: "pingidentity/pingdirectory", Tag: "9.1.0.0-latest"},
		},
		"a tag with a registry port is parsed": {
			ref:  "registry.local:5000/ping/pingdirectory:9.1.0.0-latest",
			want: Ref{Repository: "registry.local:5000/ping/pingdirectory", Tag: "9.1.0.0-latest"},
		},
		"a registry port without a tag means latest": {
			ref:  "registry.local:5000/ping/pingdirectory",
			want: Ref{Repository: "registry.local:5000/ping/pingdirectory", Tag: "latest"},
		},
		"no tag and no digest means latest": {
			ref:  "pingidentity/pingdirectory",
			want: Ref{Repository: "pingidentity/pingdirectory", Tag: "latest"},
		},
		"a digest without a tag leaves the tag empty": {
			ref:  "pingidentity/pingdirectory@" + digest,
			want: Ref{Repository: "pingidentity/pingdirectory", Digest: digest},
		},
		"a tag and a digest are both kept": {
			ref:  "pingidentity/pingdirectory:2602-10.3.0.3@" + digest,
			want: Ref{Repository: "pingidentity/pingdirectory", Tag: "2602-10.3.0.3", Digest: digest},
		},
		"a digest after a registry port is parsed": {
			ref:  "registry.local:5000/pingdirectory@" + digest,
			want: Ref{Repository: "registry.local:5000/pingdirectory", Digest: digest},
		},
		"a single-name image is parsed": {
			ref:  "busybox:1.36",
			want: Ref{Repository: "busybox", Tag: "1.36"},
		},
		"localhost is a registry": {
			ref:  "localhost:5000/pingdirectory:edge",
			want: Ref{Repository: "localhost:5000/pingdirectory", Tag: "edge"},
		},
		"an IPv6 registry is parsed": {
			ref:  "[fd00::1]:5000/ping/pingdirectory:10.3.0.0",
			want: Ref{Repository: "[fd00::1]:5000/ping/pingdirectory", Tag: "10.3.0.0"},
		},
		"a registry host may be upper-case": {
			ref:  "Registry.Local/ping/pingdirectory:edge",
			want: Ref{Repository: "Registry.Local/ping/pingdirectory", Tag: "edge"},
		},
		"a tag may be upper-case and contain underscores": {
			ref:  "pingidentity/pingdirectory:11.0.0.1-alpine_3.23.3-AL17",
			want: Ref{Repository: "pingidentity/pingdirectory", Tag: "11.0.0.1-alpine_3.23.3-AL17"},
		},
		"path separators '.', '_', '__' and dashes are allowed": {
			ref:  "reg.example.com/a.b/c_d/e__f/g---h:v1",
			want: Ref{Repository: "reg.example.com/a.b/c_d/e__f/g---h", Tag: "v1"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := Parse(tc.ref)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tc.ref, err)
			}
			if got != tc.want {
				t.Fatalf("Parse(%q) = %+v, want %+v", tc.ref, got, tc.want)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := map[string]struct {
		ref  string
		want string // a part of the error message
	}{
		"an empty reference is rejected":                  {ref: "", want: "image reference is empty"},
		"a leading space is rejected":                     {ref: " pingidentity/pingdirectory", want: "contains whitespace"},
		"an inner newline is rejected":                    {ref: "pingidentity/ping\ndirectory", want: "contains whitespace"},
		"a trailing tab is rejected":                      {ref: "pingidentity/pingdirectory:9.1.0.0\t", want: "contains whitespace"},
		"a digest with too few hex digits is rejected":    {ref: "pingdirectory@sha256:abc", want: "has 3 hex digits, want 64"},
		"an upper-case digest algorithm is rejected":      {ref: "pingdirectory@SHA256:" + digest[7:], want: `algorithm "SHA256" is not supported`},
		"a digest with upper-case hex digits is rejected": {ref: "pingdirectory@sha256:" + strings.ToUpper(digest[7:]), want: "lower-case hex digits only"},
		"a digest without an algorithm is rejected":       {ref: "pingdirectory@" + digest[7:], want: "must be sha256:"},
		"a sha512 digest is rejected":                     {ref: "pingdirectory@sha512:" + digest[7:], want: `algorithm "sha512" is not supported`},
		"an empty digest is rejected":                     {ref: "pingdirectory@", want: "must be sha256:"},
		"a second '@' is rejected":                        {ref: "ping@directory@" + digest, want: "has more than one '@'"},
		"an empty tag is rejected":                        {ref: "pingdirectory:", want: "tag after ':' is empty"},
		"a tag with a '+' is rejected":                    {ref: "pingdirectory:9.1.0.0+build", want: `tag "9.1.0.0+build" may only contain`},
		"a tag starting with a dash is rejected":          {ref: "pingdirectory:-edge", want: "must not start with"},
		"a tag starting with a dot is rejected":           {ref: "pingdirectory:.edge", want: "must not start with"},
		"a tag longer than 128 characters is rejected":    {ref: "pingdirectory:" + strings.Repeat("a", 129), want: "the limit is 128"},
		"an upper-case repository is rejected":            {ref: "PingIdentity/pingdirectory:9.1.0.0", want: "must be lower-case"},
		"an upper-case path after a registry is rejected": {ref: "registry.local/Ping/pingdirectory", want: "must be lower-case"},
		"an empty repository is rejected":                 {ref: ":9.1.0.0", want: "repository is empty"},
		"a digest alone is rejected":                      {ref: "@" + digest, want: "repository is empty"},
		"an empty path component is rejected":             {ref: "ping//pingdirectory", want: "empty path component"},
		"a trailing slash is rejected":                    {ref: "ping/pingdirectory/", want: "empty path component"},
		"a registry without a path is rejected":           {ref: "registry.local:5000/", want: "no path after the registry"},
		"a non-numeric registry port is rejected":         {ref: "registry.local:http/pingdirectory", want: `port "http" is not a number`},
		"a bad registry host is rejected":                 {ref: "-registry.local/pingdirectory", want: "not a valid host name"},
		"an unclosed IPv6 registry is rejected":           {ref: "[fd00::1/pingdirectory", want: "unclosed '['"},
		"a path component with a leading dot is rejected": {ref: "ping/.pingdirectory", want: `path component ".pingdirectory"`},
		"a path component with '...' is rejected":         {ref: "ping/ping...directory", want: "may only contain lower-case letters"},
		"a repository longer than 255 characters is rejected": {
			ref: strings.Repeat("a", 256), want: "the limit is 255",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := Parse(tc.ref)
			if err == nil {
				t.Fatalf("Parse(%q) = %+v, want an error", tc.ref, got)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Parse(%q) error %q does not say %q", tc.ref, err, tc.want)
			}
			if tc.ref != "" && !strings.Contains(err.Error(), strconv.Quote(tc.ref)) {
				t.Fatalf("Parse(%q) error %q does not name the reference", tc.ref, err)
			}
		})
	}
}

func TestString(t *testing.T) {
	tests := map[string]struct {
		ref  Ref
		want string
	}{
		"a tag is written after a colon":           {ref: Ref{Repository: "pingidentity/pingdirectory", Tag: "10.3.0.0"}, want: "pingidentity/pingdirectory:10.3.0.0"},
		"a digest alone is written after an '@'":   {ref: Ref{Repository: "pingdirectory", Digest: digest}, want: "pingdirectory@" + digest},
		"a tag and a digest are both written":      {ref: Ref{Repository: "r:5000/p", Tag: "edge", Digest: digest}, want: "r:5000/p:edge@" + digest},
		"a repository alone is written as it is":   {ref: Ref{Repository: "pingdirectory"}, want: "pingdirectory"},
		"an implicit latest is written explicitly": {ref: mustParse(t, "pingdirectory"), want: "pingdirectory:latest"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := tc.ref.String(); got != tc.want {
				t.Fatalf("String() = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestFullRepository(t *testing.T) {
	tests := map[string]struct {
		ref  string
		want string
	}{
		"a Docker Hub user repository gets docker.io":        {ref: "pingidentity/pingdirectory:9.1.0.0", want: "docker.io/pingidentity/pingdirectory"},
		"a Docker Hub official image gets library":           {ref: "busybox", want: "docker.io/library/busybox"},
		"docker.io written out stays the same":               {ref: "docker.io/pingidentity/pingdirectory", want: "docker.io/pingidentity/pingdirectory"},
		"index.docker.io is docker.io":                       {ref: "index.docker.io/library/busybox", want: "docker.io/library/busybox"},
		"docker.io with a single name gets library":          {ref: "docker.io/busybox", want: "docker.io/library/busybox"},
		"a private registry is kept":                         {ref: "registry.local:5000/ping/pingdirectory", want: "registry.local:5000/ping/pingdirectory"},
		"a private registry host is compared in lower case":  {ref: "Registry.Local/pingdirectory", want: "registry.local/pingdirectory"},
		"a single name on a private registry has no library": {ref: "localhost/pingdirectory", want: "localhost/pingdirectory"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := mustParse(t, tc.ref).FullRepository(); got != tc.want {
				t.Fatalf("FullRepository(%q) = %q, want %q", tc.ref, got, tc.want)
			}
		})
	}
}

func mustParse(t *testing.T, ref string) Ref {
	t.Helper()
	r, err := Parse(ref)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		"pingidentity/pingdirectory:9.1.0.0-latest",
		"registry.local:5000/ping/pingdirectory:9.1.0.0-latest",
		"registry.local:5000/ping/pingdirectory",
		"pingidentity/pingdirectory@" + digest,
		"pingidentity/pingdirectory:2602-10.3.0.3@" + digest,
		"[fd00::1]:5000/p:11.0.0.1-alpine_3.23.3-al17-latest",
		"registry.local:5000",
		"localhost",
		"a__b.c---d/e:F_g.h-i",
		"PingIdentity/pingdirectory",
		"ping//directory",
		"p@sha256:",
		":",
		"@",
		"",
		" ",
		"\xff",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := Parse(s)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "image reference") {
				t.Fatalf("Parse(%q) error %q does not name the reference", s, err)
			}
			return
		}
		if r.Repository == "" || (r.Tag == "" && r.Digest == "") {
			t.Fatalf("Parse(%q) = %+v: a parsed reference has a repository and a tag or digest", s, r)
		}
		back, err := Parse(r.String())
		if err != nil {
			t.Fatalf("Parse(%q).String() = %q does not parse: %v", s, r.String(), err)
		}
		if back != r {
			t.Fatalf("Parse(%q) = %+v, but its String() %q parses to %+v", s, r, r.String(), back)
		}
		if full := r.FullRepository(); full == "" {
			t.Fatalf("FullRepository of %+v is empty", r)
		} else if again := (Ref{Repository: full, Tag: "x"}).FullRepository(); again != full {
			t.Fatalf("FullRepository(%q) = %q is not stable", full, again)
		}
		// The version is read from the tag alone: a digest pins bytes, not a version.
		if v := r.Version(); v != ParseVersion(r.Tag) {
			t.Fatalf("Parse(%q).Version() = %+v, but its tag %q reads as %+v", s, v, r.Tag, ParseVersion(r.Tag))
		} else if r.Tag == "" && v.Known {
			t.Fatalf("Parse(%q) is pinned by digest alone but reads as version %s", s, v.Text)
		}
		if back := ParseVersion(r.Tag); back.Known {
			if order, ok := Compare(back, r.Version()); !ok || order != 0 {
				t.Fatalf("the version of %q does not equal itself", s)
			}
		}
	})
}
