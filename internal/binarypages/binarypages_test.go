package binarypages

import (
	"debug/elf"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func TestReadOnlySegments(t *testing.T) {
	load := func(off, filesz, memsz uint64, flags elf.ProgFlag) elf.ProgHeader {
		return elf.ProgHeader{Type: elf.PT_LOAD, Off: off, Filesz: filesz, Memsz: memsz, Flags: flags}
	}
	cases := map[string]struct {
		progs []elf.ProgHeader
		want  []fileRange
	}{
		"a Go binary: text and rodata, not data": {
			progs: []elf.ProgHeader{
				{Type: elf.PT_PHDR, Off: 0x40, Filesz: 0x1f8, Flags: elf.PF_R},
				load(0, 0x1e3a470, 0x1e3a470, elf.PF_R|elf.PF_X),
				load(0x1e3b000, 0x2634098, 0x2634098, elf.PF_R),
				load(0x4470000, 0x180d80, 0x21d4040, elf.PF_R|elf.PF_W),
			},
			want: []fileRange{{0, 0x1e3a470}, {0x1e3b000, 0x1e3b000 + 0x2634098}},
		},
		"RELRO is cut out of a read-only segment": {
			progs: []elf.ProgHeader{
				load(0x1000, 0x9000, 0x9000, elf.PF_R),
				{Type: elf.PT_GNU_RELRO, Off: 0x4000, Filesz: 0x2000},
			},
			want: []fileRange{{0x1000, 0x4000}, {0x6000, 0xa000}},
		},
		"RELRO covering a whole segment leaves nothing of it": {
			progs: []elf.ProgHeader{
				load(0x1000, 0x1000, 0x1000, elf.PF_R),
				{Type: elf.PT_GNU_RELRO, Off: 0, Filesz: 0x3000},
			},
		},
		"a segment only in memory has no file pages": {
			progs: []elf.ProgHeader{load(0x1000, 0, 0x5000, elf.PF_R)},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if got := readOnlySegments(tc.progs); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %x, want %x", got, tc.want)
			}
		})
	}
}

const exe = "/usr/local/bin/webhook"

// maps of a Go binary at exe, a library, the heap and a stack.
const sampleMaps = `00400000-0223b000 r-xp 00000000 00:2b 1234                               /usr/local/bin/webhook
0223b000-04870000 r--p 01e3b000 00:2b 1234                               /usr/local/bin/webhook
04870000-049f1000 rw-p 04470000 00:2b 1234                               /usr/local/bin/webhook
049f1000-06a44000 rw-p 00000000 00:00 0
c000000000-c004000000 rw-p 00000000 00:00 0
7f0000000000-7f0000028000 r--p 00000000 08:01 99                         /usr/lib/x86_64-linux-gnu/libc.so.6
7ffd1000-7ffd2000 rw-p 00000000 00:00 0                                  [stack]
`

func TestParseMaps(t *testing.T) {
	got, err := parseMaps(strings.NewReader(sampleMaps + "7f1-7f2 r--p 00000000 08:01 7 /tmp/a dir/with spaces (deleted)\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := []mapping{
		{addr: addrRange{0x400000, 0x223b000}, offset: 0, path: exe},
		{addr: addrRange{0x223b000, 0x4870000}, offset: 0x1e3b000, path: exe},
		{addr: addrRange{0x4870000, 0x49f1000}, writable: true, offset: 0x4470000, path: exe},
		{addr: addrRange{0x49f1000, 0x6a44000}, writable: true},
		{addr: addrRange{0xc000000000, 0xc004000000}, writable: true},
		{addr: addrRange{0x7f0000000000, 0x7f0000028000}, path: "/usr/lib/x86_64-linux-gnu/libc.so.6"},
		{addr: addrRange{0x7ffd1000, 0x7ffd2000}, writable: true, path: "[stack]"},
		{addr: addrRange{0x7f1, 0x7f2}, path: "/tmp/a dir/with spaces (deleted)"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got\n%+v\nwant\n%+v", got, want)
	}
}

func TestParseMapsNamesWhatIsWrong(t *testing.T) {
	for line, want := range map[string]string{
		"00400000-0223b000 r-xp 00000000 00:2b":        "line 1: want at least 5 fields",
		"004000000223b000 r-xp 00000000 00:2b 1 /x":    `address range "004000000223b000" has no '-'`,
		"zz-0223b000 r-xp 00000000 00:2b 1 /x":         "line 1: start address",
		"00400000-zz r-xp 00000000 00:2b 1 /x":         "line 1: end address",
		"0223b000-00400000 r-xp 00000000 00:2b 1 /x":   "ends before it starts",
		"00400000-0223b000 r-x 00000000 00:2b 1 /x":    `permissions "r-x" are not four letters`,
		"00400000-0223b000 r-xp 0000000g 00:2b 1 /x":   "line 1: offset",
		"00400000-0223b000 r-xp 00000000 00:2b one /x": "line 1: inode",
	} {
		_, err := parseMaps(strings.NewReader(line + "\n"))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: want an error containing %q, got %v", line, want, err)
		}
	}
}

func TestReleasable(t *testing.T) {
	maps, err := parseMaps(strings.NewReader(sampleMaps))
	if err != nil {
		t.Fatal(err)
	}
	segments := []fileRange{{0, 0x1e3a470}, {0x1e3b000, 0x1e3b000 + 0x2634098}}
	cases := map[string]struct {
		maps     []mapping
		path     string
		segments []fileRange
		want     []addrRange
	}{
		"text and rodata of the binary, each ending at its last whole page": {
			maps: maps, path: exe, segments: segments,
			want: []addrRange{{0x400000, 0x223a000}, {0x223b000, 0x486f000}},
		},
		"another path releases nothing": {
			maps: maps, path: "/usr/local/bin/other", segments: segments,
		},
		"no path releases nothing, not the anonymous mappings": {
			maps: maps, path: "", segments: segments,
		},
		"a writable mapping of a read-only segment is kept": {
			maps:     []mapping{{addr: addrRange{0x400000, 0x500000}, writable: true, path: exe}},
			path:     exe,
			segments: []fileRange{{0, 0x100000}},
		},
		"a mapping starting inside a segment, a segment starting inside a mapping": {
			maps: []mapping{
				{addr: addrRange{0x10000, 0x20000}, offset: 0x3000, path: exe},
			},
			path:     exe,
			segments: []fileRange{{0, 0x5800}, {0x8200, 0x20000}},
			// File 0x3000-0x5800 is at 0x10000-0x12800; file 0x8200-0x13000 at 0x15200-0x20000.
			want: []addrRange{{0x10000, 0x12000}, {0x16000, 0x20000}},
		},
		"less than a page of a segment is kept": {
			maps:     []mapping{{addr: addrRange{0x10000, 0x20000}, path: exe}},
			path:     exe,
			segments: []fileRange{{0x100, 0xf00}},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if got := releasable(tc.maps, tc.path, tc.segments, 0x1000); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %x, want %x", got, tc.want)
			}
		})
	}
}

// Whatever maps says, parsing never panics, and every range released is page-aligned,
// non-empty, inside a read-only mapping of the binary and inside a read-only segment
// at the file offsets that mapping shows.
func FuzzReleasable(f *testing.F) {
	f.Add(sampleMaps, uint64(0), uint64(0x1e3a470), uint64(0x1e3b000), uint64(0x1e3b000+0x2634098))
	f.Add("10000-20000 r--p 00003000 00:01 5 /usr/local/bin/webhook\n", uint64(0), uint64(0x5800), uint64(0x8200), uint64(0x20000))
	f.Add("10000-20000 r--p ffffffffffffffff 00:01 5 /usr/local/bin/webhook\n", uint64(0), uint64(1<<63), uint64(0), uint64(0))
	f.Add("0-ffffffffffffffff r-xp 00000000 00:01 5 /usr/local/bin/webhook\n", uint64(0), uint64(1<<63), uint64(1<<63), uint64(1<<64-1))
	f.Fuzz(func(t *testing.T, text string, s1, e1, s2, e2 uint64) {
		maps, err := parseMaps(strings.NewReader(text))
		if err != nil {
			return
		}
		const page = 0x1000
		segments := []fileRange{{min(s1, e1), max(s1, e1)}, {min(s2, e2), max(s2, e2)}}
		for _, r := range releasable(maps, exe, segments, page) {
			if r.start%page != 0 || r.end%page != 0 || r.start >= r.end {
				t.Fatalf("range %x is not whole pages", r)
			}
			if !slices.ContainsFunc(maps, func(m mapping) bool {
				if m.writable || m.path != exe || r.start < m.addr.start || r.end > m.addr.end {
					return false
				}
				lo, hi := m.offset+(r.start-m.addr.start), m.offset+(r.end-m.addr.start)
				return lo >= m.offset && slices.ContainsFunc(segments, func(s fileRange) bool { return lo >= s.start && hi <= s.end })
			}) {
				t.Fatalf("range %x is not inside one read-only mapping of the binary and one segment: %+v", r, maps)
			}
		}
	})
}
