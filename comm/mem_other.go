//go:build !linux

package comm

// physicalMemory is unknown here: the default frame limit falls back to a
// fixed size.
func physicalMemory() int64 { return 0 }
