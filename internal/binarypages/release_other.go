//go:build !linux

package binarypages

// Release does nothing where the pages of a binary cannot be handed back this way.
func Release() (uint64, error) { return 0, nil }
