package faulttest

import (
	"testing"

	"golang.org/x/sys/unix"
)

// TestRewriteFaults: a read-only page faults and a writable one does not,
// with and without the race detector (a plain `b[0] = b[0]` in a test is
// compiled away, and read-only memory then looked writable).
func TestRewriteFaults(t *testing.T) {
	ro, err := unix.Mmap(-1, 0, 4096, unix.PROT_READ, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(ro)
	if !RewriteFaults(ro) {
		t.Error("a write into a read-only page did not fault")
	}
	rw := make([]byte, 8)
	rw[0] = 7
	if RewriteFaults(rw) || rw[0] != 7 {
		t.Errorf("a write into the heap faulted or changed it (%d)", rw[0])
	}
}
