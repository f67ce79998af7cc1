package collective

import (
	"context"
	"fmt"
	"math/rand"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// world is a test world: n goroutine ranks over a local network.
type testWorld struct {
	ts     []*LocalTransport
	comms  []*Comm
	arenas []*Arena
	net    *memory.CheckedAllocator
	mem    *memory.CheckedAllocator
}

type worldOpts struct {
	shm   bool
	large int64
	// arenaMem allocates results in each rank's arena (as a Mesh does), so
	// large reductions stitch their blocks instead of copying them.
	arenaMem bool
	// nodes emulates several nodes (node number per rank; every rank has
	// an arena); alg overrides the decision table (WithAlgorithm).
	nodes []int
	alg   string
}

func newTestWorld(t *testing.T, n int, wo worldOpts) *testWorld {
	t.Helper()
	w := &testWorld{net: memory.NewCheckedAllocator(memory.DefaultAllocator), mem: memory.NewCheckedAllocator(memory.DefaultAllocator)}
	w.ts = NewLocalNetwork(n, LocalOptions{Alloc: w.net, SameNode: wo.shm, Nodes: wo.nodes})
	dir := t.TempDir()
	for r := 0; r < n; r++ {
		opts := []Option{WithAllocator(w.mem)}
		if wo.large > 0 {
			opts = append(opts, WithLargeThreshold(wo.large))
		}
		if wo.alg != "" {
			opts = append(opts, WithAlgorithm(wo.alg))
		}
		if wo.shm || wo.nodes != nil {
			a, err := NewArena(dir, fmt.Sprintf("t%d", r), 64<<20)
			if err != nil {
				t.Fatal(err)
			}
			w.arenas = append(w.arenas, a)
			opts = append(opts, WithArena(a))
			if wo.arenaMem {
				opts = append(opts, WithAllocator(a.Allocator()))
			}
		}
		c, err := New(w.ts[r], opts...)
		if err != nil {
			t.Fatal(err)
		}
		w.comms = append(w.comms, c)
	}
	return w
}

// close checks that nothing leaked: transport messages, results and arena
// ranges (release messages are asynchronous: wait for them).
func (w *testWorld) close(t *testing.T) {
	t.Helper()
	arenasFree(t, w.arenas)
	for _, c := range w.comms {
		c.Close()
	}
	for _, a := range w.arenas {
		a.Close()
	}
	for _, tr := range w.ts {
		tr.Close()
	}
	w.net.AssertSize(t, 0)
	w.mem.AssertSize(t, 0)
}

// arenasFree fails t for every arena that still has bytes in use after a
// few seconds (releases are asynchronous).
func arenasFree(t *testing.T, arenas []*Arena) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for _, a := range arenas {
		for a.InUse() != 0 && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		if u := a.InUse(); u != 0 {
			t.Errorf("arena %s: %d bytes still in use", a.Path(), u)
		}
	}
}

// run runs fn on every rank concurrently and returns the per-rank errors.
func (w *testWorld) run(timeout time.Duration, fn func(ctx context.Context, c *Comm) error) []error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	errs := make([]error, len(w.comms))
	var wg sync.WaitGroup
	for r, c := range w.comms {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[r] = fn(ctx, c)
		}()
	}
	wg.Wait()
	return errs
}

func mustRun(t *testing.T, w *testWorld, fn func(ctx context.Context, c *Comm) error) {
	t.Helper()
	for r, err := range w.run(20*time.Second, fn) {
		if err != nil {
			t.Fatalf("rank %d: %v", r, err)
		}
	}
}

var testTypes = []arrow.DataType{
	arrow.PrimitiveTypes.Int8, arrow.PrimitiveTypes.Int16, arrow.PrimitiveTypes.Int32, arrow.PrimitiveTypes.Int64,
	arrow.PrimitiveTypes.Uint8, arrow.PrimitiveTypes.Uint16, arrow.PrimitiveTypes.Uint32, arrow.PrimitiveTypes.Uint64,
	arrow.PrimitiveTypes.Float32, arrow.PrimitiveTypes.Float64,
}

// randArray builds n random elements of dt (with nulls when nullFrac > 0),
// then slices off `skip` leading elements so offsets are exercised.
func randArray(rng *rand.Rand, mem memory.Allocator, dt arrow.DataType, n, skip int, nullFrac float64) arrow.Array {
	w := int(width(dt))
	total := n + skip
	data := memory.NewResizableBuffer(mem)
	data.Resize(total * w)
	b := data.Bytes()
	for i := range b {
		b[i] = byte(rng.Intn(256))
	}
	if dt.ID() == arrow.FLOAT32 || dt.ID() == arrow.FLOAT64 {
		// finite, moderate values: random bytes could be NaN.
		for i := 0; i < total; i++ {
			v := rng.NormFloat64() * 1e3
			if dt.ID() == arrow.FLOAT32 {
				view[float32](b[i*4:], 1)[0] = float32(v)
			} else {
				view[float64](b[i*8:], 1)[0] = v
			}
		}
	}
	var valid *memory.Buffer
	if nullFrac > 0 {
		valid = memory.NewResizableBuffer(mem)
		valid.Resize((total + 7) / 8)
		vb := valid.Bytes()
		for i := 0; i < total; i++ {
			if rng.Float64() >= nullFrac {
				vb[i/8] |= 1 << (i % 8)
			}
		}
	}
	nullCount := 0
	if valid != nil {
		nullCount = array.UnknownNullCount
	}
	d := array.NewData(dt, total, []*memory.Buffer{valid, data}, nil, nullCount, 0)
	data.Release()
	if valid != nil {
		valid.Release()
	}
	full := array.MakeFromData(d)
	d.Release()
	if skip == 0 {
		return full
	}
	s := array.NewSlice(full, int64(skip), int64(total))
	full.Release()
	return s
}

// sameValues reports whether a and b hold equal values and validity
// (values compared bytewise, only where valid).
func sameValues(a, b arrow.Array) error {
	if !arrow.TypeEqual(a.DataType(), b.DataType()) || a.Len() != b.Len() {
		return fmt.Errorf("type/len %s/%d vs %s/%d", a.DataType(), a.Len(), b.DataType(), b.Len())
	}
	ca, _ := columnOf(a)
	cb, _ := columnOf(b)
	w := width(a.DataType())
	for i := 0; i < a.Len(); i++ {
		if a.IsNull(i) != b.IsNull(i) {
			return fmt.Errorf("element %d: null %v vs %v", i, a.IsNull(i), b.IsNull(i))
		}
		if a.IsNull(i) {
			continue
		}
		ia, ib := (ca.off+int64(i))*w, (cb.off+int64(i))*w
		if string(ca.data[ia:ia+w]) != string(cb.data[ib:ib+w]) {
			return fmt.Errorf("element %d differs: %x vs %x", i, ca.data[ia:ia+w], cb.data[ib:ib+w])
		}
	}
	return nil
}

// refReduce is the documented order, computed sequentially: fold pairs
// beyond the power of two, then a tree with distance 1 first.
func refReduce(xs []arrow.Array, o Op, mem memory.Allocator) arrow.Array {
	cols := make([]column, len(xs))
	for i, x := range xs {
		cols[i], _ = columnOf(x)
	}
	k, _ := lookupKernel(o, cols[0].dt)
	p := len(xs)
	f := makeFold(p, 0)
	accs := make([]*assembler, f.p2)
	for nr := 0; nr < f.p2; nr++ {
		old := f.oldRank(nr)
		a := newAssembler(cols[0].dt, cols[0].n, mem)
		a.put(0, cols[old])
		if old < 2*f.rem {
			combine(a, 0, cols[old+1], true, k)
		}
		accs[nr] = a
	}
	for mask := 1; mask < f.p2; mask <<= 1 {
		for nr := 0; nr < f.p2; nr += 2 * mask {
			combine(accs[nr], 0, accs[nr+mask].column(), true, k)
			accs[nr+mask].release()
		}
	}
	return accs[0].finish()
}
