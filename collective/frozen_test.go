package collective

import (
	"bytes"
	"testing"
	"unsafe"

	"github.com/rankhub/rankhub/internal/faulttest"
)

func writeFaults(b []byte) bool { return faulttest.Faults(func() { b[0]++ }) }

// TestReadOnlyCopy: copies equal their parts, aligned, and fault on write;
// a freed region is reused, already mapped; a large copy has its own.
func TestReadOnlyCopy(t *testing.T) {
	small := bytes.Repeat([]byte{7}, 5000)
	big := bytes.Repeat([]byte{9}, frozenChunk)
	for _, parts := range [][][]byte{{small}, {nil, small[:3], small}, {big, small}} {
		copies, free, err := ReadOnlyCopy(parts...)
		if err != nil {
			t.Fatal(err)
		}
		for i, c := range copies {
			if !bytes.Equal(c, parts[i]) || len(c) != len(parts[i]) {
				t.Fatalf("copy %d differs", i)
			}
			if len(c) > 0 && uintptr(unsafe.Pointer(&c[0]))%64 != 0 {
				t.Fatalf("copy %d is not 64-byte aligned", i)
			}
			if len(c) > 0 && !writeFaults(c) {
				t.Fatalf("copy %d of %d bytes is writable", i, len(c))
			}
		}
		free()
	}
	c1, free1, _ := ReadOnlyCopy(big)
	p1 := &c1[0][0]
	free1()
	c2, free2, _ := ReadOnlyCopy(big)
	defer free2()
	if &c2[0][0] != p1 {
		t.Error("a freed region of 8 MiB was not reused")
	}
}
