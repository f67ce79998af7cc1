package collective

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// TestReduceTreeIsTheDocumentedOrder: evaluating reduceTree symbolically
// gives plan.go's documented expressions.
func TestReduceTreeIsTheDocumentedOrder(t *testing.T) {
	expr := func(p int) string {
		var at func(r int) string
		at = func(r int) string {
			e := fmt.Sprintf("x%d", r)
			_, children := reduceTree(p, r)
			for _, ch := range children {
				e = "(" + e + " op " + at(ch) + ")"
			}
			return e
		}
		return at(0)
	}
	for p, want := range map[int]string{
		1: "x0",
		3: "((x0 op x1) op x2)",
		5: "(((x0 op x1) op x2) op (x3 op x4))",
		6: "(((x0 op x1) op (x2 op x3)) op (x4 op x5))",
		8: "(((x0 op x1) op (x2 op x3)) op ((x4 op x5) op (x6 op x7)))",
	} {
		if got := expr(p); got != want {
			t.Errorf("P=%d: tree computes %s, want %s", p, got, want)
		}
	}
	for p := 1; p <= 33; p++ { // every rank but 0 has one parent that lists it
		for r := 1; r < p; r++ {
			parent, _ := reduceTree(p, r)
			_, ch := reduceTree(p, parent)
			found := 0
			for _, q := range ch {
				if q == r {
					found++
				}
			}
			if found != 1 {
				t.Errorf("P=%d: rank %d's parent %d lists it %d times", p, r, parent, found)
			}
		}
	}
}

// TestReduceTreeBitIdenticalEverySegment: the pipelined tree gives the
// documented order's bits on every layout, for segment sizes that divide
// the array, do not, and exceed it, for arrays shorter than one segment,
// to root 0 and to another root, and with nulls.
func TestReduceTreeBitIdenticalEverySegment(t *testing.T) {
	rng := rand.New(rand.NewSource(5))
	defer func(old int64) { treeSegmentBytes = old }(treeSegmentBytes)
	for _, p := range []int{3, 6} {
		for _, n := range []int{1, 63, 1000, 40000} {
			xs := make([]arrow.Array, p)
			nulls := 0.0
			if n == 1000 {
				nulls = 0.05
			}
			for r := range xs {
				if nulls > 0 {
					xs[r] = randArray(rng, memory.DefaultAllocator, arrow.PrimitiveTypes.Float64, n, 0, nulls)
					continue
				}
				xs[r] = wideFloats(rng, n)
			}
			want := refReduce(xs, Sum, memory.DefaultAllocator)
			for _, seg := range []int64{512, 8 * 1000, 8 * 4096, 1 << 20} {
				treeSegmentBytes = seg
				for _, nodes := range layouts {
					nodes = nodes[:p]
					w := newTestWorld(t, p, worldOpts{nodes: nodes, alg: "reduce:tree,allreduce:tree", arenaMem: true})
					mustRun(t, w, func(ctx context.Context, c *Comm) error {
						check := func(what string, a arrow.Array) {
							if err := sameFloats(a, want); err != nil {
								t.Errorf("P=%d n=%d seg %d nodes %v: %s on rank %d: %v", p, n, seg, nodes, what, c.Rank(), err)
							}
						}
						all, err := c.Allreduce(ctx, xs[c.Rank()], Sum)
						if err != nil {
							return err
						}
						check("allreduce", all)
						all.Release()
						for _, root := range []int{0, p - 1} {
							red, err := c.Reduce(ctx, root, xs[c.Rank()], Sum)
							if err != nil {
								return err
							}
							if (red != nil) != (c.Rank() == root) {
								t.Errorf("reduce to %d: rank %d got a result: %v", root, c.Rank(), red != nil)
							}
							if red != nil {
								check(fmt.Sprintf("reduce to %d", root), red)
								red.Release()
							}
						}
						return nil
					})
					w.close(t)
				}
			}
			want.Release()
			release(xs)
		}
	}
}

// TestReduceTreeBoundsSegmentsInFlight: with a parent slower than its
// children, a child sends at most treeWindow segments beyond what the
// parent combined: the parent's receive queue never holds the message.
func TestReduceTreeBoundsSegmentsInFlight(t *testing.T) {
	defer func(old int64) { treeSegmentBytes = old }(treeSegmentBytes)
	defer func() { treeHook = nil }()
	treeSegmentBytes = 4096
	const n = 64 * 512 // 64 segments
	var mu sync.Mutex
	sent, used := map[[2]int]int{}, map[[2]int]int{}
	worst := 0
	treeHook = func(rank, peer, k int, isSent bool) {
		if !isSent {
			time.Sleep(200 * time.Microsecond) // a slow adder
		}
		mu.Lock()
		defer mu.Unlock()
		if isSent {
			key := [2]int{rank, peer}
			sent[key] = k + 1
			worst = max(worst, sent[key]-used[key])
			return
		}
		used[[2]int{peer, rank}] = k + 1
	}
	xs := make([]arrow.Array, 3)
	rng := rand.New(rand.NewSource(3))
	for r := range xs {
		xs[r] = randArray(rng, memory.DefaultAllocator, arrow.PrimitiveTypes.Float64, n, 0, 0)
	}
	defer release(xs)
	w := newTestWorld(t, 3, worldOpts{nodes: []int{0, 1, 2}, alg: "reduce:tree"})
	mustRun(t, w, func(ctx context.Context, c *Comm) error {
		red, err := c.Reduce(ctx, 0, xs[c.Rank()], Sum)
		if red != nil {
			red.Release()
		}
		return err
	})
	w.close(t)
	if len(sent) != 2 || sent[[2]int{1, 0}] != 64 || sent[[2]int{2, 0}] != 64 {
		t.Fatalf("segments sent per link: %v, want 64 from each of ranks 1 and 2 to rank 0", sent)
	}
	if worst > treeWindow || worst > 8 {
		t.Errorf("a child ran %d segments ahead of its slow parent, want at most %d (of 64)", worst, treeWindow)
	}
	t.Logf("at most %d segments in flight per link", worst)
}

// staleSegment repeats one partial segment of the tree (a duplicate, a
// stale or hostile sender), or cuts one short.
type staleSegment struct {
	*LocalTransport
	short bool
}

func (t staleSegment) Send(ctx context.Context, to int, tag uint64, hdr []byte, bufs [][]byte) error {
	h, err := parseHeader(hdr)
	if err != nil || !isCollTag(tag) || tag&0xff != stepTreeUp || h.kind != kindArray || len(bufs) != 1 || segmentAt(h.fields) != 512 {
		return t.LocalTransport.Send(ctx, to, tag, hdr, bufs)
	}
	if t.short {
		h.cols[0].n--
		h.refs[0].n -= 8
		return t.LocalTransport.Send(ctx, to, tag, h.marshal(), [][]byte{bufs[0][8:]})
	}
	if err := t.LocalTransport.Send(ctx, to, tag, hdr, bufs); err != nil {
		return err
	}
	return t.LocalTransport.Send(ctx, to, tag, hdr, bufs)
}

// TestReduceTreeRefusesBadSegment: a duplicated or short partial segment
// fails the reduce on every rank with an error naming the sender, never a
// wrong result.
func TestReduceTreeRefusesBadSegment(t *testing.T) {
	defer func(old int64) { treeSegmentBytes = old }(treeSegmentBytes)
	treeSegmentBytes = 4096
	for _, short := range []bool{false, true} {
		ts := NewLocalNetwork(2, LocalOptions{Nodes: []int{0, 1}})
		c0, err := New(ts[0], WithAlgorithm("reduce:tree"))
		if err != nil {
			t.Fatal(err)
		}
		c1, err := New(staleSegment{ts[1], short}, WithAlgorithm("reduce:tree"))
		if err != nil {
			t.Fatal(err)
		}
		src := randArray(rand.New(rand.NewSource(9)), memory.DefaultAllocator, arrow.PrimitiveTypes.Float64, 4096, 0, 0)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		done := make(chan error, 1)
		go func() { _, err := c1.Reduce(ctx, 0, src, Sum); done <- err }()
		got, err := c0.Reduce(ctx, 0, src, Sum)
		<-done
		cancel()
		if got != nil {
			got.Release()
		}
		var pe *PeerError
		if err == nil || !errors.As(err, &pe) || pe.Peer != 1 || !strings.Contains(err.Error(), "segment") {
			t.Errorf("short %v: root's error %v, want one naming rank 1 and the segment", short, err)
		}
		src.Release()
		c0.Close()
		c1.Close()
	}
}

// TestAllgatherEveryAlgorithmEveryLayout: ring, direct and node give every
// rank every part, in rank order, on every layout, with nulls, uneven
// lengths, parts of one element and empty parts.
func TestAllgatherEveryAlgorithmEveryLayout(t *testing.T) {
	rng := rand.New(rand.NewSource(13))
	for _, nodes := range layouts {
		for _, alg := range []string{"", "allgather:ring", "allgather:direct", "allgather:shm", "allgather:node"} {
			parts := make([]arrow.Array, len(nodes))
			for r := range parts {
				n := []int{0, 1, 500, 1000}[rng.Intn(4)]
				parts[r] = randArray(rng, memory.DefaultAllocator, arrow.PrimitiveTypes.Float64, n, rng.Intn(9), 0.1)
			}
			w := newTestWorld(t, len(nodes), worldOpts{nodes: nodes, alg: alg})
			mustRun(t, w, func(ctx context.Context, c *Comm) error {
				all, err := c.Allgather(ctx, parts[c.Rank()])
				if err != nil {
					return err
				}
				defer all.Release()
				if len(all.Chunks()) != len(parts) {
					t.Errorf("nodes %v %q: rank %d got %d chunks, want %d", nodes, alg, c.Rank(), len(all.Chunks()), len(parts))
					return nil
				}
				for q, ch := range all.Chunks() {
					if err := sameValues(ch, parts[q]); err != nil {
						t.Errorf("nodes %v %q: rank %d, part of rank %d: %v", nodes, alg, c.Rank(), q, err)
					}
				}
				return nil
			})
			w.close(t)
			release(parts)
		}
	}
}

// TestReduceTreeLengthMismatch: a rank with a longer array fails the
// pipelined allreduce on every rank and the reduce on its root (no rank
// hangs; the others fail or return no result), the receiving rank naming
// it.
func TestReduceTreeLengthMismatch(t *testing.T) {
	defer func(old int64) { treeSegmentBytes = old }(treeSegmentBytes)
	treeSegmentBytes = 4096
	rng := rand.New(rand.NewSource(2))
	for _, op := range []string{"reduce:1", "allreduce"} {
		xs := make([]arrow.Array, 3)
		for r := range xs {
			xs[r] = randArray(rng, memory.DefaultAllocator, arrow.PrimitiveTypes.Float64, 3000+r/2*700, 0, 0)
		}
		w := newTestWorld(t, 3, worldOpts{nodes: []int{0, 1, 2}, alg: "reduce:tree,allreduce:tree"})
		errs := w.run(10*time.Second, func(ctx context.Context, c *Comm) error {
			return reduceOp(ctx, c, op, xs[c.Rank()])
		})
		wantMismatch(t, op, op, errs)
		var pe *PeerError
		if !errors.As(errs[0], &pe) || pe.Peer != 2 || !strings.Contains(errs[0].Error(), "3700") {
			t.Errorf("%s: rank 0: %v, want an error naming rank 2 and its 3700 elements", op, errs[0])
		}
		w.close(t)
		release(xs)
	}
}

// TestReduceTreeZeroLengthMismatch: an empty array on one rank, the
// others' not, fails the pipelined allreduce on every rank and the reduce
// on its root (none hangs, wantMismatch): with no elements a rank still sends and
// receives one empty segment on every link, and its length is checked.
func TestReduceTreeZeroLengthMismatch(t *testing.T) {
	defer func(old int64) { treeSegmentBytes = old }(treeSegmentBytes)
	treeSegmentBytes = 4096
	for _, empty := range []int{0, 1, 2} {
		for _, op := range []string{"reduce:0", "reduce:2", "allreduce"} {
			rng := rand.New(rand.NewSource(2))
			xs := make([]arrow.Array, 3)
			for r := range xs {
				n := 3000
				if r == empty {
					n = 0
				}
				xs[r] = randArray(rng, memory.DefaultAllocator, arrow.PrimitiveTypes.Float64, n, 0, 0)
			}
			w := newTestWorld(t, 3, worldOpts{nodes: []int{0, 1, 2}, alg: "reduce:tree,allreduce:tree"})
			errs := w.run(10*time.Second, func(ctx context.Context, c *Comm) error {
				return reduceOp(ctx, c, op, xs[c.Rank()])
			})
			wantMismatch(t, fmt.Sprintf("empty on rank %d, %s", empty, op), op, errs)
			w.close(t)
			release(xs)
		}
	}
}

// reduceOp runs "allreduce" or "reduce:ROOT" and drops the result; a
// result on a rank other than Reduce's root is an error.
func reduceOp(ctx context.Context, c *Comm, op string, x arrow.Array) error {
	var a arrow.Array
	var err error
	root, isReduce := opRoot(op)
	if isReduce {
		a, err = c.Reduce(ctx, root, x, Sum)
	} else {
		a, err = c.Allreduce(ctx, x, Sum)
	}
	if a != nil {
		a.Release()
		if isReduce && c.Rank() != root {
			return fmt.Errorf("rank %d returned a result of a reduce to %d", c.Rank(), root)
		}
	}
	return err
}

// opRoot returns the root of "reduce:ROOT" and true, or false.
func opRoot(op string) (int, bool) {
	root, ok := strings.CutPrefix(op, "reduce:")
	if !ok {
		return -1, false
	}
	return int(root[0] - '0'), true
}

// wantMismatch checks what a mismatch promises for op ("allreduce" or
// "reduce:ROOT"): Allreduce fails on every rank with the mismatch; Reduce
// on its root, and any other rank either fails with it or returns no
// result (it may return before the rank that finds the mismatch looks).
// No rank hangs or fails otherwise, and some rank names ErrType.
func wantMismatch(t *testing.T, what, op string, errs []error) {
	t.Helper()
	root, isReduce := opRoot(op)
	named := false
	for r, err := range errs {
		if err == nil && isReduce && r != root {
			continue
		}
		if err == nil || errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "mismatched") {
			t.Errorf("%s: rank %d: %v, want the mismatch", what, r, err)
		}
		named = named || errors.Is(err, ErrType)
	}
	if !named {
		t.Errorf("%s: no rank returned ErrType: %v", what, errs)
	}
}

// TestReduceMismatchAcrossThreshold: with the default decisions each rank
// picks its algorithm from its own length, so a rank whose array is below
// the large threshold (or empty) runs binomial or doubling while the
// others run the tree, halving, direct or one round. The algorithms meet on their first
// message of every link (linkStep), whose header names the whole length:
// Allreduce fails on every rank, Reduce on its root, none hangs
// (wantMismatch). The 512 elements are
// exactly the tree's first segment (treeSegmentBytes), so only the
// length in the header tells them apart.
func TestReduceMismatchAcrossThreshold(t *testing.T) {
	defer func(old int64) { treeSegmentBytes = old }(treeSegmentBytes)
	treeSegmentBytes = 4096
	// tree, halving (5 nodes; 2 ranks a node), direct (2 ranks on 2
	// nodes), one round (one node) against binomial and doubling
	for _, nodes := range [][]int{{0, 1, 2}, {0, 1, 2, 3}, {0, 0, 1, 1}, {0, 1, 2, 3, 4}, {0, 1}, {0, 0, 0}} {
		p := len(nodes)
		for _, short := range []int{0, 1, p - 1} {
			if short == p-1 && p == 2 {
				continue
			}
			for _, n := range []int{0, 10, 512} {
				for _, op := range []string{"reduce:0", fmt.Sprintf("reduce:%d", p-1), "allreduce"} {
					rng := rand.New(rand.NewSource(2))
					xs := make([]arrow.Array, p)
					for r := range xs {
						m := 3000
						if r == short {
							m = n
						}
						xs[r] = randArray(rng, memory.DefaultAllocator, arrow.PrimitiveTypes.Float64, m, 0, 0)
					}
					w := newTestWorld(t, p, worldOpts{nodes: nodes, large: 8192})
					errs := w.run(10*time.Second, func(ctx context.Context, c *Comm) error {
						return reduceOp(ctx, c, op, xs[c.Rank()])
					})
					wantMismatch(t, fmt.Sprintf("nodes %v, %d elements on rank %d, %s", nodes, n, short, op), op, errs)
					w.close(t)
					release(xs)
				}
			}
		}
	}
}

// TestReduceTreeSenderReturnsBeforeRoot: a rank of the pipelined Reduce
// that only sends returns once its last segment is sent, without waiting
// a round trip for its parent's end: here root 0 holds its last
// combination until rank 2 has returned (no later than 5 s), and the
// result is still the documented order's.
func TestReduceTreeSenderReturnsBeforeRoot(t *testing.T) {
	defer func(old int64) { treeSegmentBytes = old }(treeSegmentBytes)
	defer func() { treeHook = nil }()
	treeSegmentBytes = 4096
	const n = 8 * 512 // 8 segments, beyond the credit window
	leafDone := make(chan struct{})
	var waited time.Duration
	treeHook = func(rank, peer, k int, isSent bool) {
		if rank == 0 && peer == 2 && k == n/512-1 && !isSent {
			start := time.Now()
			select {
			case <-leafDone:
			case <-time.After(5 * time.Second):
			}
			waited = time.Since(start)
		}
	}
	xs := make([]arrow.Array, 3)
	rng := rand.New(rand.NewSource(4))
	for r := range xs {
		xs[r] = randArray(rng, memory.DefaultAllocator, arrow.PrimitiveTypes.Float64, n, 0, 0)
	}
	defer release(xs)
	want := refReduce(xs, Sum, memory.DefaultAllocator)
	defer want.Release()
	w := newTestWorld(t, 3, worldOpts{nodes: []int{0, 1, 2}, alg: "reduce:tree"})
	mustRun(t, w, func(ctx context.Context, c *Comm) error {
		red, err := c.Reduce(ctx, 0, xs[c.Rank()], Sum)
		if c.Rank() == 2 {
			close(leafDone)
		}
		if red != nil {
			if err := sameFloats(red, want); err != nil {
				t.Errorf("root's result: %v", err)
			}
			red.Release()
		}
		return err
	})
	w.close(t)
	if waited >= 5*time.Second {
		t.Errorf("rank 2 returned only after root finished: it waited for its parent's end")
	}
}

// wideFloats returns n float64 values of wide exponents (1e-15 to 1e14):
// any change of the reduction order changes the bits of their sum.
func wideFloats(rng *rand.Rand, n int) arrow.Array {
	b := array.NewFloat64Builder(memory.DefaultAllocator)
	defer b.Release()
	for i := 0; i < n; i++ {
		b.Append(rng.NormFloat64() * math.Pow(10, float64(rng.Intn(30)-15)))
	}
	return b.NewArray()
}
