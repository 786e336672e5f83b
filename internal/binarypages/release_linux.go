package binarypages

import (
	"debug/elf"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// Release drops this process's mappings of its binary's read-only segments and returns
// how many bytes of address range it advised. Nothing is lost: the next touch of a page
// maps it again from the page cache.
func Release() (uint64, error) {
	exe, err := elf.Open("/proc/self/exe")
	if err != nil {
		return 0, fmt.Errorf("reading the binary's program headers: %w", err)
	}
	progs := make([]elf.ProgHeader, 0, len(exe.Progs))
	for _, p := range exe.Progs {
		progs = append(progs, p.ProgHeader)
	}
	exe.Close()
	path, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return 0, fmt.Errorf("the binary's path: %w", err)
	}
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return 0, err
	}
	maps, err := parseMaps(f)
	f.Close()
	if err != nil {
		return 0, err
	}
	ranges := releasable(maps, path, readOnlySegments(progs), uint64(os.Getpagesize()))
	if len(ranges) == 0 {
		return 0, fmt.Errorf("/proc/self/maps shows no read-only mapping of %s", path)
	}
	var advised uint64
	for _, r := range ranges {
		// By address, without a []byte over memory Go does not own.
		if _, _, errno := unix.Syscall(unix.SYS_MADVISE, uintptr(r.start), uintptr(r.end-r.start), unix.MADV_DONTNEED); errno != 0 {
			return advised, fmt.Errorf("madvise(DONTNEED) of %#x-%#x: %w", r.start, r.end, errno)
		}
		advised += r.end - r.start
	}
	return advised, nil
}
