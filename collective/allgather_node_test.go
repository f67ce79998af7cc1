package collective

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// countingGate counts the collective bytes sent between nodes and holds
// data sends to a rank until it asked for placement (placeGate), so that
// the leaders' placement is seen whatever the goroutines' timing.
type countingGate struct {
	placeGate
	nodes []int
	cross *atomic.Int64
}

func (t countingGate) Send(ctx context.Context, to int, tag uint64, header []byte, bufs [][]byte) error {
	if t.nodes[to] != t.nodes[t.Rank()] && isCollTag(tag) {
		for _, b := range bufs {
			t.cross.Add(int64(len(b)))
		}
	}
	return t.placeGate.Send(ctx, to, tag, header, bufs)
}

// TestAllgatherNodeOneBlockPerNodePair: the node-aware allgather on 3
// nodes x 2 (in blocks and cyclic) moves each node's block across the wire
// once to every other node (what it must: 12 parts; the ring moves 15, the
// direct 24), the leaders' transports allocate no receive memory (the
// blocks land in their arenas) and no rank allocates result memory: the
// node-mates alias their leader's blocks and each other's parts.
func TestAllgatherNodeOneBlockPerNodePair(t *testing.T) {
	for _, nodes := range [][]int{{0, 0, 1, 1, 2, 2}, {0, 1, 2, 0, 1, 2}} {
		const n = 1 << 16 // 512 KiB of float64 per rank
		var netBytes, cross atomic.Int64
		ts := NewLocalNetwork(len(nodes), LocalOptions{Nodes: nodes, Alloc: countingAlloc{memory.DefaultAllocator, &netBytes}})
		gate := placeGate{ready: make([]chan struct{}, len(nodes)), once: make([]sync.Once, len(nodes))}
		for r := range gate.ready {
			gate.ready[r] = make(chan struct{})
			if slices.Index(nodes, nodes[r]) != r { // not a leader: never places; sends to it go at once
				close(gate.ready[r])
			}
		}
		var results atomic.Int64
		dir := t.TempDir()
		comms := make([]*Comm, len(nodes))
		arenas := make([]*Arena, len(nodes))
		for r := range comms {
			a, err := NewArena(dir, fmt.Sprint("g", r), 64<<20)
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			arenas[r] = a
			g := gate
			g.LocalTransport = ts[r]
			c, err := New(countingGate{g, nodes, &cross}, WithArena(a), WithAlgorithm("allgather:node"), WithAllocator(countingAlloc{memory.DefaultAllocator, &results}))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			comms[r] = c
		}
		rng := rand.New(rand.NewSource(21))
		parts := make([]arrow.Array, len(nodes))
		for r := range parts {
			parts[r] = randArray(rng, memory.DefaultAllocator, arrow.PrimitiveTypes.Float64, n, 0, 0)
			defer parts[r].Release()
		}
		var wg sync.WaitGroup
		errs := make([]error, len(comms))
		for r, c := range comms {
			wg.Go(func() {
				all, err := c.Allgather(context.Background(), parts[r])
				if err != nil {
					errs[r] = err
					return
				}
				defer all.Release()
				for q, ch := range all.Chunks() {
					if err := sameFloats(ch, parts[q]); err != nil {
						errs[r] = fmt.Errorf("part of rank %d: %w", q, err)
						return
					}
				}
			})
		}
		wg.Wait()
		for r, err := range errs {
			if err != nil {
				t.Fatalf("nodes %v: rank %d: %v", nodes, r, err)
			}
		}
		if want := int64(3 * 2 * 2 * n * 8); cross.Load() != want {
			t.Errorf("nodes %v: %d bytes crossed nodes, want %d (each node's block once to each other node)", nodes, cross.Load(), want)
		}
		if b := netBytes.Load(); b != 0 {
			t.Errorf("nodes %v: the transports allocated %d bytes of receive memory: blocks were not placed in the leaders' arenas", nodes, b)
		}
		if b := results.Load(); b != 0 {
			t.Errorf("nodes %v: %d bytes of result memory allocated: a rank copied parts instead of aliasing them", nodes, b)
		}
	}
}

// TestAllgatherNodeTypeMismatchFailsEveryRank: a rank whose part has
// another type fails the node-aware allgather on every rank (no hang),
// its leader naming it.
func TestAllgatherNodeTypeMismatchFailsEveryRank(t *testing.T) {
	nodes := []int{0, 0, 1, 1, 2, 2}
	w := newTestWorld(t, len(nodes), worldOpts{nodes: nodes, alg: "allgather:node"})
	rng := rand.New(rand.NewSource(3))
	parts := make([]arrow.Array, len(nodes))
	for r := range parts {
		dt := arrow.DataType(arrow.PrimitiveTypes.Float64)
		if r == 3 {
			dt = arrow.PrimitiveTypes.Int64
		}
		parts[r] = randArray(rng, memory.DefaultAllocator, dt, 100, 0, 0)
		defer parts[r].Release()
	}
	errs := w.run(10*time.Second, func(ctx context.Context, c *Comm) error {
		all, err := c.Allgather(ctx, parts[c.Rank()])
		if all != nil {
			all.Release()
		}
		return err
	})
	for r, err := range errs {
		if err == nil || errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("rank %d: %v, want the mismatch", r, err)
		}
	}
	if err := errs[2]; err == nil || !errors.Is(err, ErrType) || !strings.Contains(err.Error(), "rank 3") {
		t.Errorf("rank 2 (rank 3's leader): %v, want ErrType naming rank 3", err)
	}
	w.close(t)
}
