package collective

import (
	"context"
	"testing"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/rankhub/rankhub/comm"
)

// TestProtectInPlace: an array received over a socket into the receive
// pool is made read-only where it lies (no copy); once released, its
// mapping is writable again and the next frame is received into it. A
// small array (Go heap) is not protected.
func TestProtectInPlace(t *testing.T) {
	key, _ := comm.NewKey()
	ms := twoMeshes(t, key, nil)
	ctx := context.Background()
	send := func(n int, nulls bool) {
		t.Helper()
		b := array.NewFloat64Builder(memory.DefaultAllocator)
		defer b.Release()
		for i := 0; i < n; i++ {
			if nulls && i%3 == 0 {
				b.AppendNull()
			} else {
				b.Append(float64(i))
			}
		}
		a := b.NewArray()
		defer a.Release()
		if _, err := ms[0].World().Send(ctx, 1, 7, a); err != nil {
			t.Fatal(err)
		}
	}
	recv := func() *array.Float64 {
		t.Helper()
		a, err := ms[1].World().Recv(ctx, 0, 7)
		if err != nil {
			t.Fatal(err)
		}
		return a.(*array.Float64)
	}
	const n = 512 << 10 // 4 MiB
	var first uintptr
	for round, nulls := range []bool{false, true, false} {
		send(n, nulls)
		a := recv()
		vals := a.Float64Values()
		if !ms[1].World().Protect(a) {
			t.Fatalf("round %d: a received array of 4 MiB was not protected in place", round)
		}
		if !writeFaults(unsafe.Slice((*byte)(unsafe.Pointer(&vals[1])), 8)) {
			t.Fatalf("round %d: a protected array is writable", round)
		}
		if nulls && !writeFaults(a.Data().Buffers()[0].Bytes()) {
			t.Fatalf("round %d: a protected array's validity is writable", round)
		}
		for i := 1; i < n; i += 4099 {
			if a.IsValid(i) && vals[i] != float64(i) {
				t.Fatalf("round %d: element %d is %v", round, i, vals[i])
			}
		}
		p := uintptr(unsafe.Pointer(&vals[0]))
		if round == 0 {
			first = p
		} else if round == 2 && p != first {
			t.Logf("round 2 received into another mapping (%x, first %x)", p, first)
		}
		if !ms[1].World().Protect(a) {
			t.Fatalf("round %d: protecting twice failed", round)
		}
		a.Release() // the mapping goes back to the pool, writable
	}
	if ms[1].Pool().Idle() == 0 {
		t.Fatal("no receive mapping was kept for reuse")
	}
	// The pool's idle mappings take writes (the next frame is read into one).
	for _, b := range ms[1].Pool().idle {
		if writeFaults(b.mem) {
			t.Fatal("an idle receive mapping is still read-only")
		}
	}
	send(100, false)
	small := recv()
	defer small.Release()
	if ms[1].World().Protect(small) {
		t.Error("a small array on the Go heap was reported protected")
	}
}
