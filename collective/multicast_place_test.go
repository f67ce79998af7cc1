package collective

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// placeWorld is 3 nodes × 2 ranks, each with an arena, whose chain relays
// ask for placement before the sender's segments reach them (placeGate);
// wrap (may be nil) wraps rank r's transport. netBytes counts the receive
// memory the transports allocate.
type placeWorld struct {
	comms    []*Comm
	ts       []*LocalTransport
	arenas   []*Arena
	netBytes atomic.Int64
	netLive  atomic.Int64 // receive memory the transports hold now
}

func newPlaceWorld(t *testing.T, wrap func(r int, tr Transport) Transport) *placeWorld {
	t.Helper()
	nodes := []int{0, 0, 1, 1, 2, 2}
	pw := &placeWorld{}
	pw.ts = NewLocalNetwork(len(nodes), LocalOptions{Nodes: nodes, Alloc: liveAlloc{countingAlloc{memory.DefaultAllocator, &pw.netBytes}, &pw.netLive}})
	gate := placeGate{ready: make([]chan struct{}, len(nodes)), once: make([]sync.Once, len(nodes)), user: true}
	for r := range gate.ready {
		gate.ready[r] = make(chan struct{})
	}
	dir := t.TempDir()
	for r := range nodes {
		a, err := NewArena(dir, fmt.Sprint("m", r), 64<<20)
		if err != nil {
			t.Fatal(err)
		}
		pw.arenas = append(pw.arenas, a)
		g := gate
		g.LocalTransport = pw.ts[r]
		var tr Transport = g
		if wrap != nil {
			tr = wrap(r, g)
		}
		c, err := New(tr, WithArena(a), WithAlgorithm("multicast:chain"))
		if err != nil {
			t.Fatal(err)
		}
		pw.comms = append(pw.comms, c)
	}
	t.Cleanup(func() {
		for _, c := range pw.comms {
			c.Close()
		}
		for _, a := range pw.arenas {
			a.Close()
		}
		for _, tr := range pw.ts {
			tr.Close()
		}
	})
	return pw
}

// multicastAll multicasts src from rank 0 of comms to all the others with
// tag 9 and returns every rank's error (a receiver's also when what it got
// differs). each, when not nil, may play rank r instead (done: its error).
func multicastAll(t *testing.T, comms []*Comm, src arrow.Array, each func(r int, c *Comm) (done bool, err error)) []error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	tos := make([]int, 0, len(comms)-1)
	for q := 1; q < len(comms); q++ {
		tos = append(tos, q)
	}
	errs := make([]error, len(comms))
	var wg sync.WaitGroup
	for r, c := range comms {
		wg.Go(func() {
			if each != nil {
				if done, err := each(r, c); done {
					errs[r] = err
					return
				}
			}
			if r == 0 {
				_, errs[r] = c.Multicast(ctx, tos, 9, src)
				return
			}
			got, err := c.Recv(ctx, 0, 9)
			if err == nil {
				err = sameFloats(got, src)
				got.Release()
			}
			errs[r] = err
		})
	}
	wg.Wait()
	if ctx.Err() != nil {
		t.Fatalf("the multicast hung: %v", errs)
	}
	return errs
}

// diesAfterOneSegment plays, in multicastAll, the rank of tr: it takes one
// segment of the chain from rank from (the multicast is rank 0's, as in
// multicastAll), then its process dies.
func diesAfterOneSegment(tr *LocalTransport, from int) func(r int, c *Comm) (bool, error) {
	return func(r int, c *Comm) (bool, error) {
		if r != tr.Rank() {
			return false, nil
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		m, err := tr.Recv(ctx, from, dataTag(userTag(0, 9), 0))
		if err != nil {
			return true, err
		}
		m.Release()
		tr.Close()
		return true, nil
	}
}

// TestMulticastChainRelaysReceiveInPlace: a multicast's chain leaders read
// the segments from the socket straight into their arena assembly (their
// node-mates alias it) and forward them from there, as Bcast's do: the
// transport allocates no receive memory for them and no relay copies a
// byte.
func TestMulticastChainRelaysReceiveInPlace(t *testing.T) {
	pw := newPlaceWorld(t, nil)
	const n = 1 << 18 // 2 MiB of float64: several segments
	src := randArray(rand.New(rand.NewSource(21)), memory.DefaultAllocator, arrow.PrimitiveTypes.Float64, n, 0, 0)
	defer src.Release()
	if err := errors.Join(multicastAll(t, pw.comms, src, nil)...); err != nil {
		t.Fatal(err)
	}
	if b := pw.netBytes.Load(); b != 0 {
		t.Errorf("chain multicast of %d bytes: the transports allocated %d bytes of receive memory: segments were not read in place", n*8, b)
	}
	for r, c := range pw.comms {
		if b := c.w.relayCopied.Load(); b != 0 {
			t.Errorf("rank %d copied %d bytes of segments into its assembly", r, b)
		}
	}
	arenasFree(t, pw.arenas)
}

// forwardAfterDeath is a relay whose segments after the first reach rank
// to only once it died (local sends do not block: all of them could
// otherwise be handed over before).
type forwardAfterDeath struct {
	placeGate
	to int
	n  *atomic.Int64
}

func (t forwardAfterDeath) Send(ctx context.Context, to int, tag uint64, hdr []byte, bufs [][]byte) error {
	if _, _, ok := sentSegment(hdr, bufs); ok && to == t.to && t.n.Add(1) > 1 {
		select {
		case <-t.net.dead[to]:
		case <-time.After(5 * time.Second):
		}
	}
	return t.placeGate.Send(ctx, to, tag, hdr, bufs)
}

// TestMulticastPlacingRelayFailsFreesArena: the leader after rank 2 dies
// after one segment while the sender's segments keep arriving, placed in
// rank 2's arena assembly. Rank 2 fails naming it, and what was placed
// but never forwarded does not stay pinned in its arena.
func TestMulticastPlacingRelayFailsFreesArena(t *testing.T) {
	pw := newPlaceWorld(t, func(r int, tr Transport) Transport {
		if r != 2 {
			return tr
		}
		return forwardAfterDeath{tr.(placeGate), 4, new(atomic.Int64)}
	})
	src := randArray(rand.New(rand.NewSource(22)), memory.DefaultAllocator, arrow.PrimitiveTypes.Float64, 1<<19, 0, 0)
	defer src.Release()
	// rank 4's relay, started by the route notice, asks for placement: the
	// gate lets rank 2 send
	errs := multicastAll(t, pw.comms, src, diesAfterOneSegment(pw.ts[4], 2))
	if errs[0] != nil || errs[1] != nil || errs[4] != nil {
		t.Errorf("sender, its node-mate, the dying rank: %v, %v, %v; want no errors", errs[0], errs[1], errs[4])
	}
	for _, r := range []int{2, 3} {
		if errs[r] == nil || !strings.Contains(errs[r].Error(), "rank 4") {
			t.Errorf("rank %d: %v, want an error naming rank 4", r, errs[r])
		}
	}
	// placeGate lets the segments through after 2 s even when rank 2 never
	// asked for placement: without this the test would pass unplaced
	if b := pw.comms[2].w.relayCopied.Load(); b != 0 {
		t.Errorf("rank 2 copied %d bytes: its segments were not placed, the test did not test placement", b)
	}
	arenasFree(t, pw.arenas)
}

// dupSegment is a sender that follows its chain's second segment with a
// zeroed copy of the first (the rest of the transport as it is, so that
// the sender sees the same layout).
type dupSegment struct {
	placeGate
	firstN *atomic.Int64
}

func (t dupSegment) Send(ctx context.Context, to int, tag uint64, hdr []byte, bufs [][]byte) error {
	if err := t.placeGate.Send(ctx, to, tag, hdr, bufs); err != nil {
		return err
	}
	h, at, ok := sentSegment(hdr, bufs)
	switch {
	case !ok:
	case at == 0:
		t.firstN.Store(h.cols[0].n)
	case at == t.firstN.Load():
		h.fields = append([]fieldMeta{{name: "0"}}, h.fields[1:]...) // its multicast's stamp kept
		return t.placeGate.Send(ctx, to, tag, h.marshal(), [][]byte{make([]byte, len(bufs[0]))})
	}
	return nil
}

// TestMulticastPlacingRelayRefusesDuplicate: while rank 2 places the
// segments in its arena, a zeroed copy of segment 0 follows segment 1. It
// is never written into the assembly: rank 2 refuses it naming the sender,
// the ranks it serves fail naming rank 2, and nothing stays in the arena.
func TestMulticastPlacingRelayRefusesDuplicate(t *testing.T) {
	pw := newPlaceWorld(t, func(r int, tr Transport) Transport {
		if r != 0 {
			return tr
		}
		return dupSegment{tr.(placeGate), new(atomic.Int64)}
	})
	src := randArray(rand.New(rand.NewSource(23)), memory.DefaultAllocator, arrow.PrimitiveTypes.Float64, 1<<19, 0, 0)
	defer src.Release()
	errs := multicastAll(t, pw.comms, src, nil)
	if errs[0] != nil || errs[1] != nil {
		t.Errorf("sender, its node-mate: %v, %v; want no errors", errs[0], errs[1])
	}
	var pe *PeerError
	if !errors.Is(errs[2], ErrProtocol) || !errors.As(errs[2], &pe) || pe.Peer != 0 {
		t.Errorf("rank 2 (the relay): %v, want a protocol error naming peer rank 0", errs[2])
	}
	for _, r := range []int{3, 4, 5} {
		if !errors.Is(errs[r], ErrUpstream) {
			t.Errorf("rank %d: %v, want ErrUpstream", r, errs[r])
		}
	}
	if b := pw.comms[2].w.relayCopied.Load(); b != 0 {
		t.Errorf("rank 2 copied %d bytes: its segments were not placed, the test did not test placement", b)
	}
	arenasFree(t, pw.arenas)
}
