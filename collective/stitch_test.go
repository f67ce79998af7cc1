package collective

import (
	"context"
	"errors"
	"math/rand"
	"testing"
	"time"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// TestStitchedReductions checks that large reductions on one node, whose
// results are mapped from the ranks' blocks without copying, equal the
// sequential reduction bit for bit, are really stitched, and leak no arena
// range once released.
func TestStitchedReductions(t *testing.T) {
	rng := rand.New(rand.NewSource(7))
	for _, tc := range []struct {
		p     int
		dt    arrow.DataType
		n     int
		nulls bool
	}{
		{2, arrow.PrimitiveTypes.Float64, 1 << 17, false},
		{2, arrow.PrimitiveTypes.Float32, 1<<17 + 3, false},
		{3, arrow.PrimitiveTypes.Float64, 100_003, false},
		{4, arrow.PrimitiveTypes.Int16, 1<<18 + 1, false},
		{4, arrow.PrimitiveTypes.Float64, 1 << 17, true}, // nulls: copied
		{8, arrow.PrimitiveTypes.Float64, 1<<18 + 77, false},
		{5, arrow.PrimitiveTypes.Uint8, 300_001, false},
		{4, arrow.PrimitiveTypes.Float64, 1000, false}, // small: binomial tree, copied
	} {
		xs := inputs(rng, tc.p, tc.dt, tc.n, tc.nulls)
		want := refReduce(xs, Sum, memory.DefaultAllocator)
		w := newTestWorld(t, tc.p, worldOpts{shm: true, arenaMem: true})
		stitchable := !tc.nulls && tc.n*int(width(tc.dt)) >= 256<<10 // large: one round, blocks page aligned
		mustRun(t, w, func(ctx context.Context, c *Comm) error {
			for _, root := range []int{0, tc.p - 1} {
				red, err := c.Reduce(ctx, root, xs[c.Rank()], Sum)
				if err != nil {
					return err
				}
				if red == nil {
					continue
				}
				if err := sameValues(red, want); err != nil {
					t.Errorf("P=%d %s n=%d reduce to %d: %v", tc.p, tc.dt, tc.n, root, err)
				}
				if s := isStitched(c, red); s != stitchable {
					t.Errorf("P=%d %s n=%d reduce to %d: stitched %v, want %v", tc.p, tc.dt, tc.n, root, s, stitchable)
				}
				red.Release()
			}
			all, err := c.Allreduce(ctx, xs[c.Rank()], Sum)
			if err != nil {
				return err
			}
			defer all.Release()
			if err := sameValues(all, want); err != nil {
				t.Errorf("P=%d %s n=%d allreduce rank %d: %v", tc.p, tc.dt, tc.n, c.Rank(), err)
			}
			if s := isStitched(c, all); s != stitchable {
				t.Errorf("P=%d %s n=%d allreduce rank %d: stitched %v, want %v", tc.p, tc.dt, tc.n, c.Rank(), s, stitchable)
			}
			return nil
		})
		w.close(t)
		want.Release()
		release(xs)
	}
}

// isStitched reports whether arr's data lies outside every arena this rank
// knows: a stitched mapping.
func isStitched(c *Comm, arr arrow.Array) bool {
	b := arr.Data().Buffers()[1].Bytes()
	if path, _ := c.w.locate(b); path != "" {
		return false
	}
	p := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	return p%uintptr(pageSize) == 0
}

// TestSegmentedReductions checks large reductions between ranks on
// different nodes, whose transfers are cut in pieces that are combined
// while the next arrives: equal to the sequential reduction, with and
// without nulls.
func TestSegmentedReductions(t *testing.T) {
	rng := rand.New(rand.NewSource(9))
	for _, tc := range []struct {
		p     int
		dt    arrow.DataType
		n     int
		nulls bool
	}{
		{2, arrow.PrimitiveTypes.Float64, 3*segBytes/8 + 5, false},
		{4, arrow.PrimitiveTypes.Float32, 5*segBytes/4 + 1, false},
		{3, arrow.PrimitiveTypes.Int64, 3*segBytes/8 + 9, true},
	} {
		xs := inputs(rng, tc.p, tc.dt, tc.n, tc.nulls)
		want := refReduce(xs, Sum, memory.DefaultAllocator)
		w := newTestWorld(t, tc.p, worldOpts{large: 1})
		mustRun(t, w, func(ctx context.Context, c *Comm) error {
			red, err := c.Reduce(ctx, tc.p-1, xs[c.Rank()], Sum)
			if err != nil {
				return err
			}
			if red != nil {
				if err := sameValues(red, want); err != nil {
					t.Errorf("P=%d %s n=%d reduce: %v", tc.p, tc.dt, tc.n, err)
				}
				red.Release()
			}
			all, err := c.Allreduce(ctx, xs[c.Rank()], Sum)
			if err != nil {
				return err
			}
			defer all.Release()
			if err := sameValues(all, want); err != nil {
				t.Errorf("P=%d %s n=%d allreduce rank %d: %v", tc.p, tc.dt, tc.n, c.Rank(), err)
			}
			part, err := c.ReduceScatter(ctx, xs[c.Rank()], Sum, nil)
			if err != nil {
				return err
			}
			defer part.Release()
			lo := displs(evenCounts(int64(tc.n), tc.p))[c.Rank()]
			exp := array.NewSlice(want, lo, lo+int64(part.Len()))
			defer exp.Release()
			if err := sameValues(part, exp); err != nil {
				t.Errorf("P=%d %s n=%d reducescatter rank %d: %v", tc.p, tc.dt, tc.n, c.Rank(), err)
			}
			return nil
		})
		w.close(t)
		want.Release()
		release(xs)
	}
}

// TestOneRoundMismatchAborts: a rank passing another type to a one-round
// reduction makes every rank fail, none hangs, nothing leaks.
func TestOneRoundMismatchAborts(t *testing.T) {
	const p, n = 3, 1 << 16
	w := newTestWorld(t, p, worldOpts{shm: true, arenaMem: true, large: 1})
	rng := rand.New(rand.NewSource(3))
	xs := inputs(rng, p, arrow.PrimitiveTypes.Float64, n, false)
	odd := randArray(rng, memory.DefaultAllocator, arrow.PrimitiveTypes.Int64, n, 0, 0)
	for r, err := range w.run(10*time.Second, func(ctx context.Context, c *Comm) error {
		in := xs[c.Rank()]
		if c.Rank() == p-1 {
			in = odd
		}
		res, err := c.Allreduce(ctx, in, Sum)
		if err == nil {
			res.Release()
		}
		return err
	}) {
		if err == nil || errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("rank %d: %v, want a fast type error", r, err)
		}
	}
	w.close(t)
	odd.Release()
	release(xs)
}
