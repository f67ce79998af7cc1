package collective

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// gateTransport holds every data send (collective or user) to the rank slow until
// gate is closed (or a timeout passes, counted in stalled): a peer whose
// link is slow. A root that sends one piece after another cannot reach the
// other peers before the slow one's send ends.
type gateTransport struct {
	*LocalTransport
	slow    int
	gate    chan struct{}
	stalled *atomic.Int32
}

func (t gateTransport) Send(ctx context.Context, to int, tag uint64, header []byte, bufs [][]byte) error {
	if to == t.slow && (isCollTag(tag) || tag>>62 == classUser) && len(bufs) > 0 {
		select {
		case <-t.gate:
		case <-time.After(2 * time.Second):
			t.stalled.Add(1)
		}
	}
	return t.LocalTransport.Send(ctx, to, tag, header, bufs)
}

// runSlowPeer runs op on 3 ranks, one per node, from root 0 with rank 1's
// link held until rank 2 has its result: it fails when rank 2 had to wait
// for rank 1's send to end.
func runSlowPeer(t *testing.T, alg string, op func(ctx context.Context, c *Comm, in arrow.Array) (arrow.Array, error), check func(r int, got, src arrow.Array) error) {
	t.Helper()
	nodes := []int{0, 1, 2}
	ts := NewLocalNetwork(3, LocalOptions{Nodes: nodes})
	gate := make(chan struct{})
	var stalled atomic.Int32
	comms := make([]*Comm, 3)
	for r := range comms {
		c, err := New(gateTransport{ts[r], 1, gate, &stalled}, WithAlgorithm(alg))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		comms[r] = c
	}
	const n = 3 << 16 // 1.5 MiB of float64: above the large threshold
	src := randArray(rand.New(rand.NewSource(3)), memory.DefaultAllocator, arrow.PrimitiveTypes.Float64, n, 0, 0)
	defer src.Release()
	errs := make([]error, 3)
	var wg sync.WaitGroup
	for r, c := range comms {
		wg.Go(func() {
			var in arrow.Array
			if r == 0 {
				in = src
			}
			got, err := op(context.Background(), c, in)
			if r == 2 {
				close(gate)
			}
			if err == nil {
				err = check(r, got, src)
				got.Release()
			}
			errs[r] = err
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if s := stalled.Load(); s > 0 {
		t.Errorf("%q: rank 2 got its data only after the send to the slow rank 1 ended (%d sends waited out the 2 s gate): root sends one peer after another", alg, s)
	}
}

// TestScatterSlowPeerDoesNotDelayOthers: across nodes the root sends every
// piece at once, so that a slow link to one peer does not hold back
// another's piece (and the links carry data together).
func TestScatterSlowPeerDoesNotDelayOthers(t *testing.T) {
	runSlowPeer(t, "", func(ctx context.Context, c *Comm, in arrow.Array) (arrow.Array, error) {
		return c.Scatter(ctx, 0, in)
	}, func(r int, got, src arrow.Array) error {
		counts := evenCounts(int64(src.Len()), 3)
		ds := displs(counts)
		want := array.NewSlice(src, ds[r], ds[r]+counts[r])
		defer want.Release()
		return sameFloats(got, want)
	})
}

// TestMulticastDirectSlowPeerDoesNotDelayOthers: below the chain's sizes a
// multicast (the driver's push to engines on other nodes) writes to every
// receiver at once, as Bcast's direct tree does: one slow link does not
// hold back another receiver's data.
func TestMulticastDirectSlowPeerDoesNotDelayOthers(t *testing.T) {
	const tag = 7
	runSlowPeer(t, "", func(ctx context.Context, c *Comm, in arrow.Array) (arrow.Array, error) {
		if c.Rank() != 0 {
			return c.Recv(ctx, 0, tag)
		}
		sent, err := c.Multicast(ctx, []int{1, 2}, tag, in)
		if err == nil && sent != 2 {
			err = fmt.Errorf("multicast reached %d receivers, want 2", sent)
		}
		in.Retain()
		return in, err
	}, func(r int, got, src arrow.Array) error {
		if err := sameFloats(got, src); err != nil {
			return fmt.Errorf("rank %d: %w", r, err)
		}
		return nil
	})
}

// TestBcastDirectSlowPeerDoesNotDelayOthers: with one rank on each of 3
// nodes the decision table's bcast (direct) streams to both other nodes at
// once.
func TestBcastDirectSlowPeerDoesNotDelayOthers(t *testing.T) {
	for _, alg := range []string{"", "bcast:direct"} {
		runSlowPeer(t, alg, func(ctx context.Context, c *Comm, in arrow.Array) (arrow.Array, error) {
			return c.Bcast(ctx, 0, in)
		}, func(r int, got, src arrow.Array) error {
			if err := sameFloats(got, src); err != nil {
				return fmt.Errorf("rank %d: %w", r, err)
			}
			return nil
		})
	}
}

// TestBcastOneRankPerNodeNoAssembly: with one rank on each of 3 nodes a
// large bcast lands in the receive buffers of the transport and stays
// there: no rank assembles it in memory of its own (the result allocator)
// or stages it in an arena (below minChainDirect: the direct tree).
func TestBcastOneRankPerNodeNoAssembly(t *testing.T) {
	for _, n := range []int{1 << 15, 1 << 20} { // 256 KiB, 8 MiB of float64
		src := randArray(rand.New(rand.NewSource(5)), memory.DefaultAllocator, arrow.PrimitiveTypes.Float64, n, 0, 0)
		w := newTestWorld(t, 3, worldOpts{nodes: []int{0, 1, 2}})
		mustRun(t, w, func(ctx context.Context, c *Comm) error {
			var in arrow.Array
			if c.Rank() == 0 {
				in = src
			}
			got, err := c.Bcast(ctx, 0, in)
			if err != nil {
				return err
			}
			defer got.Release()
			if err := sameFloats(got, src); err != nil {
				return fmt.Errorf("rank %d: %w", c.Rank(), err)
			}
			if err := c.Barrier(ctx); err != nil { // every rank holds its result
				return err
			}
			if c.Rank() == 0 {
				if b := w.mem.CurrentAlloc(); b != 0 {
					t.Errorf("bcast of %d bytes over 3 nodes x 1: %d bytes of result memory in use: a rank copied the payload instead of keeping the received buffers", n*8, b)
				}
				for r, a := range w.arenas {
					if u := a.InUse(); u != 0 {
						t.Errorf("bcast of %d bytes over 3 nodes x 1: rank %d's arena holds %d bytes", n*8, r, u)
					}
				}
			}
			return c.Barrier(ctx)
		})
		w.close(t)
		src.Release()
	}
}

// countingAlloc counts every byte allocated through it.
type countingAlloc struct {
	memory.Allocator
	total *atomic.Int64
}

func (a countingAlloc) Allocate(n int) []byte {
	a.total.Add(int64(n))
	return a.Allocator.Allocate(n)
}

// placeGate holds a rank's data sends to a peer until that peer has asked
// its transport to place messages (TrySetPlace), or 2 s passed: the test then
// sees the relays' placement whatever the goroutines' timing.
type placeGate struct {
	*LocalTransport
	ready []chan struct{} // per rank: closed at its first SetPlace
	once  []sync.Once
	user  bool // gate multicasts' segments (user tags) too
}

func (t placeGate) SetPlace(peer int, tag uint64, fn PlaceFunc) {
	t.LocalTransport.SetPlace(peer, tag, fn)
	if fn != nil {
		t.once[t.Rank()].Do(func() { close(t.ready[t.Rank()]) })
	}
}

func (t placeGate) TrySetPlace(peer int, tag uint64, fn PlaceFunc) bool {
	ok := t.LocalTransport.TrySetPlace(peer, tag, fn)
	if fn != nil {
		t.once[t.Rank()].Do(func() { close(t.ready[t.Rank()]) })
	}
	return ok
}

func (t placeGate) Send(ctx context.Context, to int, tag uint64, header []byte, bufs [][]byte) error {
	if (isCollTag(tag) || t.user) && len(bufs) > 0 {
		select {
		case <-t.ready[to]:
		case <-time.After(2 * time.Second):
		}
	}
	return t.LocalTransport.Send(ctx, to, tag, header, bufs)
}

// TestBcastChainRelaysReceiveInPlace: the chain's leaders read the
// segments straight into their assembly (in the arena when they serve
// node-mates) and forward them from there: the transport allocates no
// receive memory for them and no relay copies a byte.
func TestBcastChainRelaysReceiveInPlace(t *testing.T) {
	for _, nodes := range [][]int{{0, 1, 2, 3}, {0, 0, 1, 1, 2, 2}} {
		var netBytes atomic.Int64
		ts := NewLocalNetwork(len(nodes), LocalOptions{Nodes: nodes, Alloc: countingAlloc{memory.DefaultAllocator, &netBytes}})
		gate := placeGate{ready: make([]chan struct{}, len(nodes)), once: make([]sync.Once, len(nodes))}
		for r := range gate.ready {
			gate.ready[r] = make(chan struct{})
		}
		dir := t.TempDir()
		comms := make([]*Comm, len(nodes))
		for r := range comms {
			a, err := NewArena(dir, fmt.Sprint("p", r), 64<<20)
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			g := gate
			g.LocalTransport = ts[r]
			c, err := New(g, WithArena(a), WithAlgorithm("bcast:chain"))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			comms[r] = c
		}
		const n = 1 << 18 // 2 MiB of float64: 4 segments
		src := randArray(rand.New(rand.NewSource(9)), memory.DefaultAllocator, arrow.PrimitiveTypes.Float64, n, 0, 0)
		bcastAll(t, comms, src)
		src.Release()
		if b := netBytes.Load(); b != 0 {
			t.Errorf("chain bcast of %d bytes over nodes %v: the transport allocated %d bytes of receive memory: segments were not read in place", n*8, nodes, b)
		}
		for r, c := range comms {
			if b := c.w.relayCopied.Load(); b != 0 {
				t.Errorf("nodes %v: rank %d copied %d bytes of segments into its assembly", nodes, r, b)
			}
		}
	}
}

// bcastAll runs a Bcast of src from rank 0 on every comm and checks what
// each got.
func bcastAll(t *testing.T, comms []*Comm, src arrow.Array) {
	t.Helper()
	errs := make([]error, len(comms))
	var wg sync.WaitGroup
	for r, c := range comms {
		wg.Go(func() {
			var in arrow.Array
			if r == 0 {
				in = src
			}
			got, err := c.Bcast(context.Background(), 0, in)
			if err == nil {
				err = sameFloats(got, src)
				got.Release()
			}
			errs[r] = err
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
}

// TestBcastChainAnnouncedThroughDirectTree: with one rank on each of 3
// nodes root chains from minChainDirect bytes, announcing it through the
// direct tree; the relay reads the segments in place.
func TestBcastChainAnnouncedThroughDirectTree(t *testing.T) {
	old := minChainDirect
	minChainDirect = 1 << 20
	t.Cleanup(func() { minChainDirect = old })
	for _, n := range []int{1 << 16, 1 << 18} { // 512 KiB direct, 2 MiB chained
		var netBytes atomic.Int64
		nodes := []int{0, 1, 2}
		ts := NewLocalNetwork(3, LocalOptions{Nodes: nodes, Alloc: countingAlloc{memory.DefaultAllocator, &netBytes}})
		gate := placeGate{ready: make([]chan struct{}, 3), once: make([]sync.Once, 3)}
		for r := range gate.ready {
			gate.ready[r] = make(chan struct{})
		}
		comms := make([]*Comm, 3)
		for r := range comms {
			g := gate
			g.LocalTransport = ts[r]
			if r == 0 || n < 1<<18 {
				g.once[r].Do(func() { close(g.ready[r]) }) // nobody places: do not wait
			}
			c, err := New(g)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			comms[r] = c
		}
		src := randArray(rand.New(rand.NewSource(13)), memory.DefaultAllocator, arrow.PrimitiveTypes.Float64, n, 0, 0)
		bcastAll(t, comms, src)
		src.Release()
		chained := comms[1].w.relayCopied.Load() == 0 && netBytes.Load() < int64(n*8)
		if want := n >= 1<<18; chained != want {
			t.Errorf("bcast of %d bytes over 3 nodes x 1 (chain from %d): transport allocated %d bytes, relay copied %d: chained = %v, want %v",
				n*8, minChainDirect, netBytes.Load(), comms[1].w.relayCopied.Load(), chained, want)
		}
	}
}
