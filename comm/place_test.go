package comm

import (
	"bytes"
	"testing"
)

// TestRecvIntoPlacesBuffers: frames whose buffers Place accepts are read
// straight into the memory it names (nothing from the Allocator), others
// as usual; each placement's release runs once: when its frame is
// released, or at once when the placement is refused.
func TestRecvIntoPlacesBuffers(t *testing.T) {
	server, client, _ := pair(t, "unix", Options{})
	payload := [][]byte{bytes.Repeat([]byte{7}, 3000), bytes.Repeat([]byte{9}, 100)}
	for id := uint64(1); id <= 3; id++ {
		if err := client.Send(&Frame{Type: TypeUser, ID: id, Control: []byte("c"), Buffers: payload}); err != nil {
			t.Fatal(err)
		}
	}
	dst := [][]byte{make([]byte, 3000), make([]byte, 100)}
	released := 0
	place := func(f *Frame, lens []uint64) ([][]byte, func()) {
		if string(f.Control) != "c" || len(lens) != 2 {
			t.Errorf("place saw control %q and %d lengths", f.Control, len(lens))
		}
		switch f.ID {
		case 1:
			return dst, func() { released++ }
		case 2:
			return [][]byte{make([]byte, 10), nil}, func() { released++ } // wrong lengths: refused
		}
		return nil, nil
	}
	for id := uint64(1); id <= 3; id++ {
		f, err := server.RecvInto(place)
		if err != nil {
			t.Fatal(err)
		}
		if f.ID != id || !bytes.Equal(f.Buffers[0], payload[0]) || !bytes.Equal(f.Buffers[1], payload[1]) {
			t.Fatalf("frame %d: id %d, buffers differ", id, f.ID)
		}
		if in := &f.Buffers[0][0] == &dst[0][0]; in != (id == 1) {
			t.Errorf("frame %d: read into the placed memory = %v", id, in)
		}
		if id == 2 && released != 2 { // frame 1's, and this refused one's
			t.Errorf("a refused placement was not released at once (%d releases)", released)
		}
		f.Release()
		f.Release()
	}
	if released != 2 {
		t.Errorf("%d releases, want 2 (the placed frame once, the refused placement once)", released)
	}
}
