package imageref

import (
	"strings"
	"testing"
)

func TestParseVersion(t *testing.T) {
	tests := map[string]struct {
		tag  string
		want Version
	}{
		"a version with a latest suffix is read": {
			tag:  "9.1.0.0-latest",
			want: Version{Known: true, Parts: [4]int64{9, 1, 0, 0}, Text: "9.1.0.0"},
		},
		"a sprint prefix is skipped": {
			tag:  "2602-10.3.0.3",
			want: Version{Known: true, Parts: [4]int64{10, 3, 0, 3}, Text: "10.3.0.3"},
		},
		"the base image's three-part version never counts": {
			tag:  "11.0.0.1-alpine_3.23.3-al17",
			want: Version{Known: true, Parts: [4]int64{11, 0, 0, 1}, Text: "11.0.0.1"},
		},
		"a base image and a latest suffix are both skipped": {
			tag:  "11.0.0.1-alpine_3.23.3-al17-latest",
			want: Version{Known: true, Parts: [4]int64{11, 0, 0, 1}, Text: "11.0.0.1"},
		},
		"an edge suffix is skipped": {
			tag:  "10.3.0.0-edge",
			want: Version{Known: true, Parts: [4]int64{10, 3, 0, 0}, Text: "10.3.0.0"},
		},
		"a bare version is read": {
			tag:  "10.3.0.0",
			want: Version{Known: true, Parts: [4]int64{10, 3, 0, 0}, Text: "10.3.0.0"},
		},
		"leading zeros are read as numbers": {
			tag:  "09.01.0.0",
			want: Version{Known: true, Parts: [4]int64{9, 1, 0, 0}, Text: "9.1.0.0"},
		},
		"latest has no version":                {tag: "latest", want: Version{Text: "latest"}},
		"edge has no version":                  {tag: "edge", want: Version{Text: "edge"}},
		"a sprint alone has no version":        {tag: "2602", want: Version{Text: "2602"}},
		"a sprint with a build has no version": {tag: "2111.1", want: Version{Text: "2111.1"}},
		"three numbers are not a version":      {tag: "10.3.0-latest", want: Version{Text: "10.3.0-latest"}},
		"five numbers are not a version":       {tag: "10.3.0.0.1", want: Version{Text: "10.3.0.0.1"}},
		"an empty number is not a version":     {tag: "10..0.0", want: Version{Text: "10..0.0"}},
		"a trailing dot is not a version":      {tag: "10.3.0.0.", want: Version{Text: "10.3.0.0."}},
		"a letter in a number is not a version": {
			tag: "10.3.0.0a-latest", want: Version{Text: "10.3.0.0a-latest"},
		},
		"a number too large for int64 is not a version": {
			tag: "99999999999999999999.0.0.0", want: Version{Text: "99999999999999999999.0.0.0"},
		},
		"a digest-only reference has an empty tag and no version": {tag: "", want: Version{Text: ""}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := ParseVersion(tc.tag); got != tc.want {
				t.Fatalf("ParseVersion(%q) = %+v, want %+v", tc.tag, got, tc.want)
			}
		})
	}
}

func TestRefVersion(t *testing.T) {
	r := mustParse(t, "registry.local:5000/ping/pingdirectory:2602-10.3.0.3@"+digest)
	if got := r.Version(); got.Text != "10.3.0.3" || !got.Known {
		t.Fatalf("Version() = %+v, want 10.3.0.3", got)
	}
}

func TestCompare(t *testing.T) {
	tests := map[string]struct {
		a, b      string
		wantOrder int
		wantOK    bool
	}{
		"a lower major version is lower":            {a: "9.1.0.0-latest", b: "10.3.0.0", wantOrder: -1, wantOK: true},
		"a higher last part is higher":              {a: "2602-10.3.0.3", b: "10.3.0.0-edge", wantOrder: 1, wantOK: true},
		"the same version with other suffixes ties": {a: "11.0.0.1-alpine_3.23.3-al17", b: "11.0.0.1-latest", wantOrder: 0, wantOK: true},
		"numbers compare as numbers, not text":      {a: "9.1.0.0", b: "10.0.0.0", wantOrder: -1, wantOK: true},
		"latest cannot be ordered":                  {a: "latest", b: "10.3.0.0", wantOK: false},
		"a sprint alone cannot be ordered":          {a: "10.3.0.0", b: "2602", wantOK: false},
		"two unknown versions cannot be ordered":    {a: "edge", b: "edge", wantOK: false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			order, ok := Compare(ParseVersion(tc.a), ParseVersion(tc.b))
			if order != tc.wantOrder || ok != tc.wantOK {
				t.Fatalf("Compare(%q, %q) = %d, %v, want %d, %v", tc.a, tc.b, order, ok, tc.wantOrder, tc.wantOK)
			}
			back, backOK := Compare(ParseVersion(tc.b), ParseVersion(tc.a))
			if back != -order || backOK != ok {
				t.Fatalf("Compare(%q, %q) = %d, %v is not the reverse of %d, %v", tc.b, tc.a, back, backOK, order, ok)
			}
		})
	}
}

func FuzzParseVersion(f *testing.F) {
	for _, seed := range []string{
		"9.1.0.0-latest", "2602-10.3.0.3", "11.0.0.1-alpine_3.23.3-al17-latest", "edge", "2111.1",
		"", "-", ".", "1.2.3.4.", "1..2.3", "99999999999999999999.0.0.0",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, tag string) {
		v := ParseVersion(tag)
		if !v.Known {
			if v.Text != tag || v.Parts != ([4]int64{}) {
				t.Fatalf("ParseVersion(%q) = %+v: an unknown version keeps the tag as its text", tag, v)
			}
			return
		}
		if strings.Count(v.Text, ".") != 3 {
			t.Fatalf("ParseVersion(%q).Text = %q is not four numbers", tag, v.Text)
		}
		if again := ParseVersion(v.Text); again != v {
			t.Fatalf("ParseVersion(%q) = %+v, but its text reads as %+v", tag, v, again)
		}
		if order, ok := Compare(v, v); !ok || order != 0 {
			t.Fatalf("Compare(%+v, itself) = %d, %v", v, order, ok)
		}
	})
}
