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

// lay builds a layout for the table tests: ranks, nodes, most per node.
func lay(ranks, nodes, perNode int) layout {
	l := layout{ranks: ranks, nodes: nodes, perNode: perNode, shm: true, sizeKnown: true,
		crossPair: ranks == 2 && nodes == 2, largeBytes: 256 << 10, others: nodes - 1}
	if nodes > 1 {
		l.perOther = perNode
	}
	return l
}

func TestDecideTable(t *testing.T) {
	const MiB = 1 << 20
	blind := lay(3, 3, 1)
	blind.sizeKnown = false
	blind4 := lay(4, 4, 1)
	blind4.sizeKnown = false
	noArena := lay(4, 1, 4)
	noArena.shm = false
	cases := []struct {
		op    string
		bytes int64
		l     layout
		over  string
		want  Alg
		seg   int64
	}{
		{opBcast, 8 * MiB, lay(6, 1, 6), "", AlgShm, 0},
		{opBcast, 100, lay(6, 3, 2), "", AlgChain, minChainSegment},
		{opBcast, 64 * MiB, lay(6, 3, 2), "", AlgChain, maxSegment},
		{opBcast, 8 * MiB, lay(3, 3, 1), "", AlgDirect, 0},
		{opBcast, 64 * MiB, lay(3, 3, 1), "", AlgDirect, 0},
		{opBcast, 256 * MiB, lay(3, 3, 1), "", AlgChain, maxSegment},
		{opBcast, 512 * MiB, lay(3, 3, 1), "bcast:direct", AlgDirect, 0},
		{opBcast, 100, lay(3, 3, 1), "", AlgDirect, 0},
		{opBcast, 64 * MiB, blind, "", AlgDirect, 0},
		{opBcast, 16 * MiB, lay(4, 4, 1), "", AlgChain, 1 * MiB},
		{opBcast, 100, lay(4, 4, 1), "", AlgBinomial, 0},
		{opBcast, 64 * MiB, blind4, "", AlgBinomial, 0},
		{opBcast, 64 * MiB, lay(3, 3, 1), "bcast:chain", AlgChain, maxSegment},
		{opBcast, 64 * MiB, lay(2, 2, 1), "", AlgBinomial, 0},
		{opBcast, 64 * MiB, noArena, "", AlgChain, maxSegment}, // announced through the tree
		{opBcast, 64 * MiB, lay(6, 3, 2), "bcast:vandegeijn", AlgVanDeGeijn, 0},
		{opBcast, 64 * MiB, lay(6, 3, 2), "bcast:shm", AlgChain, maxSegment}, // not on 3 nodes
		{opBcast, 64 * MiB, lay(2, 2, 1), "bcast:vandegeijn", AlgBinomial, 0},
		{opReduce, 100, lay(6, 3, 2), "", AlgBinomial, 0},
		{opReduce, 64 * MiB, lay(6, 1, 6), "", AlgOneRound, 0},
		{opReduce, 64 * MiB, lay(2, 2, 1), "", AlgDirect, 0},
		{opReduce, 64 * MiB, lay(6, 3, 2), "", AlgTree, maxSegment},
		{opReduce, 8 * MiB, lay(6, 3, 2), "", AlgHalving, 0},
		{opReduce, 8 * MiB, lay(3, 3, 1), "", AlgTree, 4 * MiB},
		{opReduce, 2 * MiB, lay(3, 3, 1), "", AlgTree, 1 * MiB},
		{opReduce, 16 * MiB, lay(3, 3, 1), "", AlgTree, maxSegment},
		{opReduce, MiB / 2, lay(3, 3, 1), "", AlgTree, minSegment},
		{opAllreduce, 8 * MiB, lay(3, 3, 1), "", AlgTree, 4 * MiB},
		{opReduce, 512 * MiB, lay(3, 3, 1), "", AlgTree, maxSegment},
		{opReduce, 64 * MiB, lay(8, 8, 1), "", AlgHalving, 0},
		{opReduce, 64 * MiB, lay(3, 3, 1), "reduce:halving", AlgHalving, 0},
		{opReduce, 8 * MiB, lay(6, 3, 2), "reduce:direct", AlgHalving, 0},
		{opReduce, 64 * MiB, lay(6, 1, 6), "reduce:binomial", AlgBinomial, 0},
		{opAllreduce, 100, lay(6, 1, 6), "", AlgDoubling, 0},
		{opAllreduce, 64 * MiB, lay(6, 1, 6), "", AlgOneRound, 0},
		{opAllreduce, 64 * MiB, lay(6, 3, 2), "", AlgHalving, 0},
		{opAllreduce, 64 * MiB, lay(3, 3, 1), "", AlgTree, maxSegment},
		{opAllreduce, 100, lay(3, 3, 1), "", AlgDoubling, 0},
		{opAllreduce, 64 * MiB, lay(6, 3, 2), "allreduce:tree", AlgTree, maxSegment},
		{opAllreduce, 64 * MiB, lay(6, 3, 2), "allreduce:oneround", AlgHalving, 0},
		{opAllgather, 64 * MiB, lay(6, 1, 6), "", AlgShm, 0},
		{opAllgather, 64 * MiB, lay(6, 3, 2), "", AlgNode, 0},
		{opAllgather, 8 * MiB, lay(6, 3, 2), "", AlgNode, 0},
		{opAllgather, 8 * MiB, lay(6, 3, 2), "allgather:ring", AlgRing, 0},
		{opAllgather, 8 * MiB, lay(3, 3, 1), "", AlgDirect, 0},
		{opAllgather, 8 * MiB, lay(4, 4, 1), "", AlgRing, 0},
		{opAllgather, 8 * MiB, lay(3, 3, 1), "allgather:ring", AlgRing, 0},
		{opMulticast, 64 * MiB, lay(6, 3, 2), "", AlgChain, maxSegment},
		{opMulticast, 64 * MiB, lay(3, 3, 1), "", AlgDirect, 0},
		{opMulticast, 64 * MiB, lay(4, 4, 1), "", AlgChain, maxSegment},
		{opMulticast, 4 * MiB, lay(6, 3, 2), "", AlgDirect, 0},
		{opMulticast, 8 * MiB, lay(6, 3, 2), "", AlgChain, minChainSegment},
		{opMulticast, 64 * MiB, lay(2, 2, 1), "", AlgDirect, 0},
		{opMulticast, 64 * MiB, lay(6, 1, 6), "", AlgDirect, 0},
		{opMulticast, 64 * MiB, layout{ranks: 3, nodes: 2, perNode: 2, others: 1, perOther: 1, shm: true, largeBytes: 256 << 10}, "", AlgDirect, 0},
		{opMulticast, 100, lay(6, 3, 2), "", AlgDirect, 0},
		{opMulticast, 100, lay(6, 3, 2), "multicast:chain", AlgChain, minChainSegment},
		{opScatter, 64 * MiB, lay(6, 3, 2), "", AlgDirect, 0},
		{opGather, 64 * MiB, lay(6, 3, 2), "", AlgDirect, 0},
	}
	for _, tc := range cases {
		over, err := parseAlgorithms(tc.over)
		if err != nil {
			t.Fatal(err)
		}
		d := decide(tc.op, tc.bytes, tc.l, over)
		if d.alg != tc.want || d.segment != tc.seg {
			t.Errorf("decide(%s, %d bytes, %+v, %q) = %s segment %d, want %s segment %d", tc.op, tc.bytes, tc.l, tc.over, d.alg, d.segment, tc.want, tc.seg)
		}
	}
}

func TestParseAlgorithmsErrors(t *testing.T) {
	for spec, want := range map[string]string{
		"bcast":            "want op:alg",
		"frobnicate:ring":  "want op:alg",
		"bcast:ring":       "bcast has shm, binomial, vandegeijn, chain, direct",
		"reduce:halving,x": "want op:alg",
	} {
		_, err := parseAlgorithms(spec)
		if err == nil || !errors.Is(err, ErrArgument) || !strings.Contains(err.Error(), want) {
			t.Errorf("parseAlgorithms(%q) = %v, want %q", spec, err, want)
		}
	}
	ts := NewLocalNetwork(1, LocalOptions{})
	if _, err := New(ts[0], WithAlgorithm("bcast:nope")); err == nil || !strings.Contains(err.Error(), `"bcast:nope"`) {
		t.Errorf("New with a bad algorithm: %v", err)
	}
}

func TestPlanChain(t *testing.T) {
	// 3 nodes x 2 ranks, ranks interleaved
	tp := &topo{node: []int{0, 1, 2, 0, 1, 2}, members: [][]int{{0, 3}, {1, 4}, {2, 5}}}
	pl := planChain(tp, 3, []int{0, 1, 2, 4, 5})
	if fmt.Sprint(pl.leaders) != "[3 1 2]" || fmt.Sprint(pl.local) != "map[1:[4] 2:[5] 3:[0]]" {
		t.Errorf("plan from 3: leaders %v local %v", pl.leaders, pl.local)
	}
	for q, l := range map[int]int{0: 3, 1: 1, 4: 1, 5: 2, 3: 3} {
		if pl.leader[q] != l {
			t.Errorf("leader of %d = %d, want %d", q, pl.leader[q], l)
		}
	}
	// a subset: node 1 not a target, node 2 only through rank 5
	pl = planChain(tp, 0, []int{5, 3, 5})
	if fmt.Sprint(pl.leaders) != "[0 5]" || fmt.Sprint(pl.local) != "map[0:[3]]" {
		t.Errorf("plan of a subset: leaders %v local %v", pl.leaders, pl.local)
	}
}

// layouts are the node layouts of 6 ranks the tests emulate.
var layouts = [][]int{
	{0, 0, 0, 0, 0, 0}, // one node
	{0, 1, 2, 3, 4, 5}, // one rank per node
	{0, 0, 1, 1, 2, 2}, // 3 x 2, by block (srun)
	{0, 1, 2, 0, 1, 2}, // 3 x 2, cyclic
	{0, 1, 1, 2, 2, 2}, // uneven
}

// countingTransport counts the bytes sent between nodes.
type countingTransport struct {
	*LocalTransport
	nodes []int
	cross *int64
	mu    *sync.Mutex
}

func (t countingTransport) Send(ctx context.Context, to int, tag uint64, header []byte, bufs [][]byte) error {
	if t.nodes[to] != t.nodes[t.Rank()] && tag>>62 == classCollective {
		n := int64(0)
		for _, b := range bufs {
			n += int64(len(b))
		}
		t.mu.Lock()
		*t.cross += n
		t.mu.Unlock()
	}
	return t.LocalTransport.Send(ctx, to, tag, header, bufs)
}

// TestBcastChainOneTransferPerNode: a large bcast over 3 nodes x 2 ranks
// moves the payload across the wire once per other node (what the chain
// does); van de Geijn, node-unaware, moves more.
func TestBcastChainOneTransferPerNode(t *testing.T) {
	for _, alg := range []string{""} {
		nodes := []int{0, 0, 1, 1, 2, 2}
		ts := NewLocalNetwork(6, LocalOptions{Nodes: nodes})
		var cross int64
		var mu sync.Mutex
		dir := t.TempDir()
		comms := make([]*Comm, 6)
		for r := range comms {
			a, err := NewArena(dir, fmt.Sprint("c", r), 64<<20)
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			c, err := New(countingTransport{ts[r], nodes, &cross, &mu}, WithArena(a), WithAlgorithm(alg))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			comms[r] = c
		}
		const n = 1 << 18 // 2 MiB of float64
		src := randArray(rand.New(rand.NewSource(1)), memory.DefaultAllocator, arrow.PrimitiveTypes.Float64, n, 0, 0)
		bcastAll(t, comms, src)
		src.Release()
		if want := int64(2 * n * 8); cross > want {
			t.Errorf("bcast %q of %d bytes over 3 nodes x 2: %d bytes crossed nodes, want at most %d (one transfer per other node)", alg, n*8, cross, want)
		}
	}
}

// TestBcastEveryAlgorithmEveryLayout runs every bcast algorithm on every
// emulated layout, from a leader and from a non-leader, small and in
// several chain segments, nulls and slices included.
func TestBcastEveryAlgorithmEveryLayout(t *testing.T) {
	rng := rand.New(rand.NewSource(7))
	for li, nodes := range layouts {
		for _, alg := range []string{"", "bcast:binomial", "bcast:vandegeijn", "bcast:chain", "bcast:shm", "bcast:direct"} {
			for _, n := range []int{0, 1000, 70000} { // 70000: 2 chain segments
				root := (li + n) % 6
				nulls := 0.1
				if n > 1000 {
					nulls = 0 // compared bytewise below: sameValues is slow under -race
				}
				src := randArray(rng, memory.DefaultAllocator, arrow.PrimitiveTypes.Float64, n, rng.Intn(9), nulls)
				w := newTestWorld(t, 6, worldOpts{nodes: nodes, alg: alg})
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
					if err := sameFloats(got, src); err != nil {
						t.Errorf("nodes %v %q n=%d root %d: rank %d: %v", nodes, alg, n, root, c.Rank(), err)
					}
					return nil
				})
				w.close(t)
				src.Release()
			}
		}
	}
}

// TestReduceBitIdenticalEveryLayout: the same float64 inputs over 6 ranks
// give the same bits with every reduce and allreduce algorithm on every
// layout: the documented order holds whatever runs.
func TestReduceBitIdenticalEveryLayout(t *testing.T) {
	rng := rand.New(rand.NewSource(11))
	const n = 40000
	xs := make([]arrow.Array, 6)
	for r := range xs {
		xs[r] = wideFloats(rng, n)
	}
	defer release(xs)
	want := refReduce(xs, Sum, memory.DefaultAllocator).(*array.Float64).Float64Values()
	algs := []string{"", "reduce:binomial,allreduce:doubling", "reduce:halving,allreduce:halving", "reduce:oneround,allreduce:oneround", "reduce:tree,allreduce:tree"}
	for _, nodes := range layouts {
		for _, alg := range algs {
			for _, large := range []int64{1, 1 << 40} {
				w := newTestWorld(t, 6, worldOpts{nodes: nodes, alg: alg, large: large, arenaMem: true})
				mustRun(t, w, func(ctx context.Context, c *Comm) error {
					check := func(what string, a arrow.Array) {
						got := a.(*array.Float64).Float64Values()
						for i := range got {
							if math.Float64bits(got[i]) != math.Float64bits(want[i]) {
								t.Errorf("nodes %v %q large %d: %s on rank %d: element %d is %x, want %x", nodes, alg, large, what, c.Rank(), i, math.Float64bits(got[i]), math.Float64bits(want[i]))
								return
							}
						}
					}
					all, err := c.Allreduce(ctx, xs[c.Rank()], Sum)
					if err != nil {
						return err
					}
					check("allreduce", all)
					all.Release()
					red, err := c.Reduce(ctx, 4, xs[c.Rank()], Sum)
					if err != nil {
						return err
					}
					if red != nil {
						check("reduce", red)
						red.Release()
					}
					return nil
				})
				w.close(t)
			}
		}
	}
}

// sameFloats is sameValues for float64 arrays, bytewise when neither has
// nulls.
func sameFloats(a, b arrow.Array) error {
	if a.NullN() > 0 || b.NullN() > 0 || a.Len() != b.Len() {
		return sameValues(a, b)
	}
	x, y := a.(*array.Float64).Float64Values(), b.(*array.Float64).Float64Values()
	for i := range x {
		if math.Float64bits(x[i]) != math.Float64bits(y[i]) {
			return fmt.Errorf("element %d differs: %x vs %x", i, math.Float64bits(x[i]), math.Float64bits(y[i]))
		}
	}
	return nil
}

// TestDecideAllreduceDown: the pipelined tree's Allreduce sends its result
// straight from rank 0 to each rank on up to maxDirectBcast ranks, one per
// node, below minChainDirect bytes, and down the chain otherwise
// (node-mates, more nodes, or larger).
func TestDecideAllreduceDown(t *testing.T) {
	const MiB = 1 << 20
	for _, tc := range []struct {
		bytes int64
		l     layout
		over  string
		want  Alg
	}{
		{8 * MiB, lay(3, 3, 1), "", AlgDirect},
		{64 * MiB, lay(3, 3, 1), "", AlgDirect},
		{minChainDirect - 1, lay(3, 3, 1), "", AlgDirect},
		{minChainDirect, lay(3, 3, 1), "", AlgChain},
		{512 * MiB, lay(3, 3, 1), "", AlgChain},
		{8 * MiB, lay(4, 4, 1), "", AlgChain},
		{8 * MiB, lay(6, 3, 2), "allreduce:tree", AlgChain},
		{8 * MiB, lay(3, 3, 1), "allreduce:halving", ""},
		{8 * MiB, lay(3, 3, 1), "reduce:tree", AlgDirect},
	} {
		over, err := parseAlgorithms(tc.over)
		if err != nil {
			t.Fatal(err)
		}
		if d := decide(opAllreduce, tc.bytes, tc.l, over); d.down != tc.want {
			t.Errorf("decide(allreduce, %d bytes, %+v, %q) = %s down %q, want down %q", tc.bytes, tc.l, tc.over, d.alg, d.down, tc.want)
		}
	}
	if d := decide(opReduce, 8*MiB, lay(3, 3, 1), nil); d.down != "" {
		t.Errorf("reduce's tree has a down algorithm: %q", d.down)
	}
}

// pairTransport counts the collective bytes each rank sends to each other.
type pairTransport struct {
	*LocalTransport
	sent [][]int64 // [from][to]
	mu   *sync.Mutex
}

func (t pairTransport) Send(ctx context.Context, to int, tag uint64, header []byte, bufs [][]byte) error {
	if tag>>62 == classCollective {
		n := int64(0)
		for _, b := range bufs {
			n += int64(len(b))
		}
		t.mu.Lock()
		t.sent[t.Rank()][to] += n
		t.mu.Unlock()
	}
	return t.LocalTransport.Send(ctx, to, tag, header, bufs)
}

// TestAllreduceTreeDirectDown: on 3 ranks on 3 nodes the pipelined tree's
// Allreduce sends the result from rank 0 to ranks 1 and 2 itself, in
// several segments (no relay between 1 and 2: nothing moves between them),
// and every rank gets the documented order's bits.
func TestAllreduceTreeDirectDown(t *testing.T) {
	defer func(old int64) { treeSegmentBytes = old }(treeSegmentBytes)
	treeSegmentBytes = 64 << 10
	const p, n = 3, 70000 // 9 segments of float64
	nodes := []int{0, 1, 2}
	ts := NewLocalNetwork(p, LocalOptions{Nodes: nodes})
	var mu sync.Mutex
	sent := make([][]int64, p)
	comms := make([]*Comm, p)
	dir := t.TempDir()
	for r := range comms {
		sent[r] = make([]int64, p)
		a, err := NewArena(dir, fmt.Sprint("c", r), 16<<20)
		if err != nil {
			t.Fatal(err)
		}
		defer a.Close()
		c, err := New(pairTransport{ts[r], sent, &mu}, WithArena(a), WithLargeThreshold(1))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		comms[r] = c
	}
	if d := comms[0].decide(opAllreduce, n*8, true); d.alg != AlgTree || d.down != AlgDirect {
		t.Fatalf("3 ranks on 3 nodes: allreduce runs %s down %q, want tree down direct", d.alg, d.down)
	}
	rng := rand.New(rand.NewSource(5))
	xs := make([]arrow.Array, p)
	for r := range xs {
		xs[r] = wideFloats(rng, n)
	}
	defer release(xs)
	want := refReduce(xs, Sum, memory.DefaultAllocator)
	defer want.Release()
	var wg sync.WaitGroup
	errs := make([]error, p)
	for r := range comms {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			got, err := comms[r].Allreduce(ctx, xs[r], Sum)
			if err == nil {
				err = sameFloats(got, want)
				got.Release()
			}
			errs[r] = err
		}()
	}
	wg.Wait()
	for r, err := range errs {
		if err != nil {
			t.Errorf("rank %d: %v", r, err)
		}
	}
	if sent[1][2] != 0 || sent[2][1] != 0 {
		t.Errorf("ranks 1 and 2 exchanged %d and %d bytes: the result went through a relay", sent[1][2], sent[2][1])
	}
	if min(sent[0][1], sent[0][2]) < n*8 {
		t.Errorf("rank 0 sent %d bytes to rank 1 and %d to rank 2, want the whole result (%d) to each", sent[0][1], sent[0][2], n*8)
	}
}

// A chain segment that reaches a relay before it asks for placement (a
// relay that left the previous barrier late) is received into the mesh
// pool's memory; it must be memory the pool keeps and reuses, already
// faulted in, not fresh heap pages that fault on the copy from the socket
// (3 x 2 Bcast 8 MiB on the emulated cluster: 3-4 ms a 512 KiB segment,
// 30-120 ms repetitions against 9-11).
func TestChainSegmentReusesPoolMemory(t *testing.T) {
	for _, bytes := range []int64{100, 8 << 20, 15 << 20, 64 << 20} {
		for _, op := range []string{opBcast, opMulticast} {
			d := decide(op, bytes, lay(6, 3, 2), map[string]Alg{op: AlgChain})
			if d.alg != AlgChain {
				t.Fatalf("%s %d bytes: %v, want the chain", op, bytes, d.alg)
			}
			seg := min(d.segment, bytes)
			if d.segment < MinPooled {
				t.Errorf("%s %d bytes: segments of %d bytes, below the pool's %d", op, bytes, d.segment, MinPooled)
			}
			if seg < MinPooled {
				continue // the whole payload in one message
			}
			p := NewRecvPool(1 << 30)
			a := p.Alloc(seg)
			p.Free(a)
			b := p.Alloc(seg)
			if startOf(a) != startOf(b) {
				t.Errorf("%s %d bytes: a freed segment buffer of %d bytes was not reused", op, bytes, seg)
			}
			p.Free(b)
			p.Close()
		}
	}
}
