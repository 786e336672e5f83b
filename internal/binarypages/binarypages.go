// Package binarypages hands back the pages of pdguard's own binary that start-up mapped.
//
// Start-up runs the init of every Kubernetes API group the client scheme registers, OPA's
// builtins and the policy compiler, and each first touch maps the 64 KB around it (the
// kernel's fault-around). After that the binary's mapped pages are most of the resident
// set, though serving touches a fraction of them. Dropping the mappings once the caches
// have synced leaves mapped what serving maps again; the rest is page cache no process
// maps, which the kernel reclaims first.
//
// Only segments the binary maps read-only are dropped: their pages are the file's and
// stay in the page cache, so a later touch is a minor fault. A writable segment, or one
// the dynamic linker writes before making it read-only (RELRO), would lose its contents.
package binarypages

import (
	"bufio"
	"debug/elf"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// fileRange is a span of file offsets, end exclusive.
type fileRange struct{ start, end uint64 }

// addrRange is a span of addresses, end exclusive.
type addrRange struct{ start, end uint64 }

// mapping is one line of /proc/PID/maps.
type mapping struct {
	addr     addrRange
	writable bool
	offset   uint64
	path     string
}

// readOnlySegments lists the file ranges a binary loads read-only and nobody writes:
// PT_LOAD segments without PF_W, minus any PT_GNU_RELRO range.
func readOnlySegments(progs []elf.ProgHeader) []fileRange {
	var relro []fileRange
	for _, p := range progs {
		if p.Type == elf.PT_GNU_RELRO {
			relro = append(relro, fileRange{p.Off, p.Off + p.Filesz})
		}
	}
	var out []fileRange
	for _, p := range progs {
		if p.Type != elf.PT_LOAD || p.Flags&elf.PF_W != 0 || p.Filesz == 0 {
			continue
		}
		// Past Filesz a segment is zero-filled anonymous memory, not the file's pages.
		out = append(out, subtract(fileRange{p.Off, p.Off + p.Filesz}, relro)...)
	}
	return out
}

// subtract removes every range of cut from r.
func subtract(r fileRange, cut []fileRange) []fileRange {
	rest := []fileRange{r}
	for _, c := range cut {
		var next []fileRange
		for _, x := range rest {
			if c.end <= x.start || c.start >= x.end {
				next = append(next, x)
				continue
			}
			if x.start < c.start {
				next = append(next, fileRange{x.start, c.start})
			}
			if c.end < x.end {
				next = append(next, fileRange{c.end, x.end})
			}
		}
		rest = next
	}
	return rest
}

// parseMaps reads /proc/PID/maps.
func parseMaps(r io.Reader) ([]mapping, error) {
	var out []mapping
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for n := 1; sc.Scan(); n++ {
		// address perms offset dev inode [path], the path padded and possibly with spaces.
		rest := sc.Text()
		var f [5]string
		for i := range f {
			rest = strings.TrimLeft(rest, " ")
			var ok bool
			if f[i], rest, ok = strings.Cut(rest, " "); !ok && i < 4 {
				return nil, fmt.Errorf("maps line %d: want at least 5 fields, got %q", n, sc.Text())
			}
		}
		lo, hi, ok := strings.Cut(f[0], "-")
		if !ok {
			return nil, fmt.Errorf("maps line %d: address range %q has no '-'", n, f[0])
		}
		m := mapping{path: strings.TrimLeft(rest, " ")}
		var err error
		if m.addr.start, err = strconv.ParseUint(lo, 16, 64); err != nil {
			return nil, fmt.Errorf("maps line %d: start address: %w", n, err)
		}
		if m.addr.end, err = strconv.ParseUint(hi, 16, 64); err != nil {
			return nil, fmt.Errorf("maps line %d: end address: %w", n, err)
		}
		if m.addr.end < m.addr.start {
			return nil, fmt.Errorf("maps line %d: address range %q ends before it starts", n, f[0])
		}
		if len(f[1]) != 4 {
			return nil, fmt.Errorf("maps line %d: permissions %q are not four letters", n, f[1])
		}
		m.writable = f[1][1] == 'w'
		if m.offset, err = strconv.ParseUint(f[2], 16, 64); err != nil {
			return nil, fmt.Errorf("maps line %d: offset: %w", n, err)
		}
		if _, err = strconv.ParseUint(f[4], 10, 64); err != nil {
			return nil, fmt.Errorf("maps line %d: inode: %w", n, err)
		}
		out = append(out, m)
	}
	return out, sc.Err()
}

// releasable lists the address ranges of the binary at path that map its read-only
// segments, shrunk to whole pages so that no page shared with a neighbour is dropped.
// The binary is known by its path, as /proc/self/exe names it: on an overlay root file
// system maps shows the device and inode of the layer below, which stat does not.
func releasable(maps []mapping, path string, segments []fileRange, pageSize uint64) []addrRange {
	var out []addrRange
	for _, m := range maps {
		if m.writable || path == "" || m.path != path {
			continue
		}
		for _, s := range segments {
			// The file offsets this mapping shows, and their overlap with the segment.
			lo := max(m.offset, s.start)
			hi := min(m.offset+(m.addr.end-m.addr.start), s.end)
			if lo >= hi {
				continue
			}
			start := roundUp(m.addr.start+(lo-m.offset), pageSize)
			end := (m.addr.start + (hi - m.offset)) / pageSize * pageSize
			if start < end {
				out = append(out, addrRange{start, end})
			}
		}
	}
	return out
}

func roundUp(x, page uint64) uint64 { return (x + page - 1) / page * page }
