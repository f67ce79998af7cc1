package collective

import (
	"context"
	"errors"
	"math/rand"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// trials runs f n times under each variant, drawing from one generator
// seeded with seed.
func trials(t *testing.T, seed int64, n int, f func(t *testing.T, rng *rand.Rand, wo worldOpts)) {
	rng := rand.New(rand.NewSource(seed))
	for _, v := range variants() {
		t.Run(v.name, func(t *testing.T) {
			for range n {
				f(t, rng, v.wo)
			}
		})
	}
}

func variants() []struct {
	name string
	wo   worldOpts
} {
	return []struct {
		name string
		wo   worldOpts
	}{
		{"small", worldOpts{large: 1 << 40}},
		{"large", worldOpts{large: 1}},
		{"shm", worldOpts{shm: true, large: 1 << 40}},
		{"shm-large", worldOpts{shm: true, large: 1}},
		{"shm-arena", worldOpts{shm: true, large: 1, arenaMem: true}},
	}
}

// inputs builds per-rank random arrays of one type and length.
func inputs(rng *rand.Rand, p int, dt arrow.DataType, n int, nulls bool) []arrow.Array {
	xs := make([]arrow.Array, p)
	frac := 0.0
	if nulls {
		frac = 0.1
	}
	for r := range xs {
		xs[r] = randArray(rng, memory.DefaultAllocator, dt, n, rng.Intn(9), frac)
	}
	return xs
}

func release(xs []arrow.Array) {
	for _, x := range xs {
		x.Release()
	}
}

func TestAllreduceReduceEqualSequential(t *testing.T) {
	ops := []Op{Sum, Prod, Min, Max}
	trials(t, 1, 12, func(t *testing.T, rng *rand.Rand, wo worldOpts) {
		p := 1 + rng.Intn(8)
		dt := testTypes[rng.Intn(len(testTypes))]
		n := rng.Intn(700)
		o := ops[rng.Intn(len(ops))]
		root := rng.Intn(p)
		xs := inputs(rng, p, dt, n, rng.Intn(2) == 0)
		want := refReduce(xs, o, memory.DefaultAllocator)
		w := newTestWorld(t, p, wo)
		mustRun(t, w, func(ctx context.Context, c *Comm) error {
			got, err := c.Allreduce(ctx, xs[c.Rank()], o)
			if err != nil {
				return err
			}
			defer got.Release()
			if err := sameValues(got, want); err != nil {
				t.Errorf("P=%d %s %s n=%d allreduce rank %d: %v", p, dt, o, n, c.Rank(), err)
			}
			red, err := c.Reduce(ctx, root, xs[c.Rank()], o)
			if err != nil {
				return err
			}
			if (red != nil) != (c.Rank() == root) {
				t.Errorf("reduce rank %d root %d: result %v", c.Rank(), root, red != nil)
			}
			if red != nil {
				defer red.Release()
				if err := sameValues(red, want); err != nil {
					t.Errorf("P=%d %s %s n=%d reduce: %v", p, dt, o, n, err)
				}
			}
			return nil
		})
		w.close(t)
		want.Release()
		release(xs)
	})
}

func TestIntSumExact(t *testing.T) {
	w := newTestWorld(t, 5, worldOpts{large: 64})
	const n = 1000
	mustRun(t, w, func(ctx context.Context, c *Comm) error {
		b := array.NewInt64Builder(memory.DefaultAllocator)
		defer b.Release()
		for i := 0; i < n; i++ {
			b.Append(int64(i*(c.Rank()+1)) - 7)
		}
		a := b.NewArray()
		defer a.Release()
		s, err := c.Allreduce(ctx, a, Sum)
		if err != nil {
			return err
		}
		defer s.Release()
		vals := s.(*array.Int64).Int64Values()
		for i := 0; i < n; i++ {
			if want := int64(i*15) - 35; vals[i] != want {
				t.Errorf("rank %d element %d: %d, want %d", c.Rank(), i, vals[i], want)
				break
			}
		}
		return nil
	})
	w.close(t)
}

func TestScatterGatherIdentity(t *testing.T) {
	trials(t, 2, 10, func(t *testing.T, rng *rand.Rand, wo worldOpts) {
		p := 1 + rng.Intn(8)
		dt := testTypes[rng.Intn(len(testTypes))]
		n := rng.Intn(500)
		root := rng.Intn(p)
		src := randArray(rng, memory.DefaultAllocator, dt, n, rng.Intn(13), 0.2*float64(rng.Intn(2)))
		counts := make([]int64, p)
		left := int64(n)
		for i := 0; i < p-1; i++ {
			counts[i] = rng.Int63n(left + 1)
			left -= counts[i]
		}
		counts[p-1] = left
		w := newTestWorld(t, p, wo)
		mustRun(t, w, func(ctx context.Context, c *Comm) error {
			var in arrow.Array
			if c.Rank() == root {
				in = src
			}
			part, err := c.Scatterv(ctx, root, in, counts)
			if err != nil {
				return err
			}
			defer part.Release()
			if int64(part.Len()) != counts[c.Rank()] {
				t.Errorf("rank %d got %d elements, want %d", c.Rank(), part.Len(), counts[c.Rank()])
			}
			for _, contiguous := range []bool{false, true} {
				var opts []GatherOption
				if contiguous {
					opts = append(opts, Contiguous())
				}
				ch, err := c.Gatherv(ctx, root, part, counts, opts...)
				if err != nil {
					return err
				}
				if c.Rank() != root {
					if ch != nil {
						t.Errorf("non-root got a gather result")
					}
					continue
				}
				if contiguous && len(ch.Chunks()) != 1 {
					t.Errorf("contiguous gather has %d chunks", len(ch.Chunks()))
				}
				err = sameChunked(ch, []arrow.Array{src})
				ch.Release()
				if err != nil {
					t.Errorf("P=%d %s n=%d scatter+gather: %v", p, dt, n, err)
				}
			}
			all, err := c.Allgather(ctx, part)
			if err != nil {
				return err
			}
			defer all.Release()
			if err := sameChunked(all, []arrow.Array{src}); err != nil {
				t.Errorf("P=%d %s n=%d allgather rank %d: %v", p, dt, n, c.Rank(), err)
			}
			return nil
		})
		w.close(t)
		src.Release()
	})
}

func TestBcastIdentical(t *testing.T) {
	trials(t, 3, 10, func(t *testing.T, rng *rand.Rand, wo worldOpts) {
		p := 1 + rng.Intn(8)
		dt := testTypes[rng.Intn(len(testTypes))]
		n := rng.Intn(3000)
		root := rng.Intn(p)
		src := randArray(rng, memory.DefaultAllocator, dt, n, rng.Intn(11), 0.3*float64(rng.Intn(2)))
		w := newTestWorld(t, p, wo)
		mustRun(t, w, func(ctx context.Context, c *Comm) error {
			var in arrow.Array
			if c.Rank() == root {
				in = src
			}
			got, err := c.Bcast(ctx, root, in)
			if err != nil {
				return err
			}
			defer got.Release()
			if err := sameValues(got, src); err != nil {
				t.Errorf("P=%d %s n=%d bcast rank %d: %v", p, dt, n, c.Rank(), err)
			}
			return nil
		})
		w.close(t)
		src.Release()
	})
}

func TestSplitSubBarrier(t *testing.T) {
	w := newTestWorld(t, 7, worldOpts{})
	mustRun(t, w, func(ctx context.Context, c *Comm) error {
		if err := c.Barrier(ctx); err != nil {
			return err
		}
		sub, err := c.Split(ctx, c.Rank()%2, -c.Rank())
		if err != nil {
			return err
		}
		wantSize := 4 - c.Rank()%2
		if sub.Size() != wantSize {
			t.Errorf("rank %d: split size %d, want %d", c.Rank(), sub.Size(), wantSize)
		}
		one := arrayFromInt64([]int64{int64(c.Rank())})
		defer one.Release()
		s, err := sub.Allreduce(ctx, one, Sum)
		if err != nil {
			return err
		}
		defer s.Release()
		want := int64(0 + 2 + 4 + 6)
		if c.Rank()%2 == 1 {
			want = 1 + 3 + 5
		}
		if got := s.(*array.Int64).Value(0); got != want {
			t.Errorf("rank %d: split sum %d, want %d", c.Rank(), got, want)
		}
		if c.Rank() < 3 {
			sc, err := c.Sub([]int{2, 0, 1})
			if err != nil {
				return err
			}
			mx, err := sc.Allreduce(ctx, one, Max)
			if err != nil {
				return err
			}
			defer mx.Release()
			if got := mx.(*array.Int64).Value(0); got != 2 {
				t.Errorf("sub max %d, want 2", got)
			}
		}
		return c.Barrier(ctx)
	})
	w.close(t)
}

func TestFailedPeerNamed(t *testing.T) {
	w := newTestWorld(t, 4, worldOpts{})
	errs := w.run(5*time.Second, func(ctx context.Context, c *Comm) error {
		if c.Rank() == 2 {
			return w.ts[2].Close()
		}
		a := arrayFromInt64([]int64{1, 2, 3})
		defer a.Release()
		r, err := c.Allreduce(ctx, a, Sum)
		if err == nil {
			r.Release()
		}
		return err
	})
	for r, err := range errs {
		if r == 2 {
			continue
		}
		var pe *PeerError
		if !errors.As(err, &pe) {
			t.Errorf("rank %d: err %v, want a PeerError", r, err)
			continue
		}
		if errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("rank %d hung until the deadline: %v", r, err)
		}
	}
	w.close(t)
}

func TestZeroCopyArena(t *testing.T) {
	w := newTestWorld(t, 2, worldOpts{shm: true})
	const n = 1 << 16
	var sent arrow.Array
	mustRun(t, w, func(ctx context.Context, c *Comm) error {
		if c.Rank() == 0 {
			b := array.NewFloat64Builder(w.arenas[0].Allocator())
			defer b.Release()
			for i := 0; i < n; i++ {
				b.Append(float64(i))
			}
			sent = b.NewArray()
			tr, err := c.Send(ctx, 1, 7, sent)
			if err != nil {
				return err
			}
			if err := tr.Wait(ctx); err != nil {
				return err
			}
			sent.Release()
			return nil
		}
		got, err := c.Recv(ctx, 0, 7)
		if err != nil {
			return err
		}
		data := got.Data().Buffers()[1].Bytes()
		m, err := c.w.mapping(w.arenas[0].Path())
		if err != nil {
			return err
		}
		if !m.Contains(data) {
			t.Errorf("received data is not inside the sender's arena mapping")
		}
		if v := got.(*array.Float64).Value(n - 1); v != n-1 {
			t.Errorf("last value %v", v)
		}
		got.Release()
		return nil
	})
	w.close(t)
}

func TestCleanStale(t *testing.T) {
	dir := t.TempDir()
	a, err := NewArena(dir, "live", 4096)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	dead := dir + "/rankhub-old-2147483646.arena"
	if err := writeFile(dead); err != nil {
		t.Fatal(err)
	}
	removed, err := CleanStale(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) != 1 || removed[0] != dead {
		t.Fatalf("removed %v, want [%s]", removed, dead)
	}
}
