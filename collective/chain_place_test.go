package collective

import (
	"context"
	"math/rand"
	"strconv"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// extraSegment sends, after the last segment of a chain, one more that
// names element 0: a duplicate, a stale or hostile sender.
type extraSegment struct{ *LocalTransport }

func (t extraSegment) Send(ctx context.Context, to int, tag uint64, hdr []byte, bufs [][]byte) error {
	if err := t.LocalTransport.Send(ctx, to, tag, hdr, bufs); err != nil {
		return err
	}
	h, err := parseHeader(hdr)
	if err != nil || h.kind != kindArray || len(h.fields) != 1 || len(bufs) != 1 {
		return nil
	}
	at, _ := strconv.ParseInt(h.fields[0].name, 10, 64)
	if at == 0 || at+h.cols[0].n != h.aux {
		return nil // only after the last segment
	}
	h.fields = []fieldMeta{{name: "0"}}
	return t.LocalTransport.Send(ctx, to, tag, h.marshal(), [][]byte{make([]byte, len(bufs[0]))})
}

// TestChainPlaceRefusesEarlierSegment: a segment naming a place before
// what was already placed is never written into the assembly (it rewrote
// the finished result: 12 of 20 bcasts returned zeros with no error).
func TestChainPlaceRefusesEarlierSegment(t *testing.T) {
	for iter := 0; iter < 20; iter++ {
		ts := NewLocalNetwork(2, LocalOptions{Nodes: []int{0, 1}})
		c0, err := New(extraSegment{ts[0]}, WithAlgorithm("bcast:chain"))
		if err != nil {
			t.Fatal(err)
		}
		c1, err := New(ts[1], WithAlgorithm("bcast:chain"))
		if err != nil {
			t.Fatal(err)
		}
		src := randArray(rand.New(rand.NewSource(9)), memory.DefaultAllocator, arrow.PrimitiveTypes.Float64, 1<<18, 0, 0)
		done := make(chan error, 1)
		go func() { _, err := c0.Bcast(context.Background(), 0, src); done <- err }()
		got, err := c1.Bcast(context.Background(), 0, nil)
		if serr := <-done; serr != nil {
			t.Fatalf("root: %v", serr)
		}
		if err != nil {
			t.Fatalf("relay: %v", err)
		}
		if d := sameFloats(got, src); d != nil {
			t.Fatalf("run %d: the relay's result was rewritten after its last segment: %v", iter, d)
		}
		got.Release()
		src.Release()
		c0.Close()
		c1.Close()
	}
}

// TestChainPlaceDeclinesHugeDeclaredArray: a segment header declaring more
// elements than fit in memory (or overflowing the byte count) is left to
// the relay, never placed (it panicked the transport's reader goroutine).
func TestChainPlaceDeclinesHugeDeclaredArray(t *testing.T) {
	for _, aux := range []int64{1<<62 - 1 + 1, 1 << 40} {
		d := &chainDest{mem: memory.DefaultAllocator}
		col := column{dt: arrow.PrimitiveTypes.Float64, n: 1, data: make([]byte, 8)}
		v := segmentValue(col, aux-1, aux)
		h := header{kind: v.kind, aux: v.aux, fields: v.fields, cols: []colMeta{{typ: arrow.FLOAT64, n: 1}}, refs: []bufRef{{n: 8}}}
		func() {
			defer func() {
				if p := recover(); p != nil {
					t.Errorf("aux %d: place panicked: %v", aux, p)
				}
			}()
			if bufs, rel := d.place(h.marshal(), []uint64{8}); bufs != nil || rel != nil {
				rel()
				t.Errorf("aux %d: placed a segment of an array larger than memory", aux)
			}
		}()
	}
}
