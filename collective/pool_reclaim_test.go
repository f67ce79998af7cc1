package collective

import (
	"runtime"
	"runtime/debug"
	"testing"
)

// gcOwned hands b to the collector as views' bulk path does with a
// received array: b goes back to p when the returned holder is collected.
func gcOwned(p *RecvPool, b []byte) *[]byte {
	h := &b
	runtime.AddCleanup(h, func(b []byte) { p.Free(b) }, b)
	return h
}

// TestRecvPoolReclaimsDroppedBuffers: buffers that only a collection gives
// back are reused from the second receive on: when no idle buffer fits and
// a handed-out one would, the pool collects and waits for the cleanups
// before mapping fresh memory.
func TestRecvPoolReclaimsDroppedBuffers(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	p := NewRecvPool(1 << 30)
	defer p.Close()
	const n = 4 << 20
	for i := range 10 {
		var h *[]byte
		if i%2 == 0 {
			h = gcOwned(p, p.Alloc(n))
		} else { // a frame's buffer: grown from its first step
			h = gcOwned(p, p.AllocUpTo(MinPooled, n))
		}
		(*h)[len(*h)-1] = byte(i)
		h = nil
		if m := p.Mapped(); m != 1 {
			t.Fatalf("receive %d, each buffer dropped after use: %d fresh mappings, want 1", i, m)
		}
	}
}

// TestRecvPoolReclaimBacksOff: a program that keeps what it receives does
// not pay a futile collection per receive: after one that gave nothing
// back, the next 1, 3, 7, ... misses map without one.
func TestRecvPoolReclaimBacksOff(t *testing.T) {
	p := NewRecvPool(1 << 30)
	defer p.Close()
	collections := 0
	p.collect = func() { collections++; runtime.GC() }
	const n = 2 << 20
	var kept [][]byte
	for range 200 {
		kept = append(kept, p.Alloc(n))
	}
	// misses 2..200 could reclaim; attempts at 2, 4, 8, 16, 32, 64, 128
	// and then every 64th
	if collections > 8 {
		t.Fatalf("200 receives kept alive: %d collections, want at most 8", collections)
	}
	if collections == 0 {
		t.Fatalf("no collection tried while a handed-out buffer would fit")
	}
	for _, b := range kept {
		p.Free(b)
	}
}
