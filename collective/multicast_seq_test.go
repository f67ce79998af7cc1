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

// liveAlloc counts the bytes allocated and not yet freed in live.
type liveAlloc struct {
	countingAlloc
	live *atomic.Int64
}

func (a liveAlloc) Allocate(n int) []byte {
	a.live.Add(int64(n))
	return a.countingAlloc.Allocate(n)
}

func (a liveAlloc) Free(b []byte) {
	a.live.Add(-int64(cap(b)))
	a.countingAlloc.Free(b)
}

// followUps multicasts k more arrays of src's shape (null fraction nulls),
// each different in every element, from rank 0 of pw with tag 9, and
// checks that every receiver gets exactly its own, never another
// multicast's. Then no receive memory and no arena range stays pinned.
func followUps(t *testing.T, pw *placeWorld, rng *rand.Rand, n, k int, nulls float64) {
	t.Helper()
	for i := 0; i < k; i++ {
		a := randArray(rng, memory.DefaultAllocator, arrow.PrimitiveTypes.Float64, n, 0, nulls)
		errs := multicastAll(t, pw.comms, a, nil)
		a.Release()
		if err := errors.Join(errs...); err != nil {
			t.Fatalf("multicast %d after the failed one (same shape and tag): %v", i+2, err)
		}
	}
	pinned(t, pw)
}

// pinned fails when receive memory or arena ranges stay held.
func pinned(t *testing.T, pw *placeWorld) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for pw.netLive.Load() != 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if b := pw.netLive.Load(); b != 0 {
		t.Errorf("%d bytes of receive memory still held: leftover segments are pinned", b)
	}
	arenasFree(t, pw.arenas)
}

// dupOnce is dupSegment for the first multicast only.
type dupOnce struct {
	dupSegment
	done *atomic.Bool
}

func (t dupOnce) Send(ctx context.Context, to int, tag uint64, hdr []byte, bufs [][]byte) error {
	if t.done.Load() {
		return t.placeGate.Send(ctx, to, tag, hdr, bufs)
	}
	if _, at, ok := sentSegment(hdr, bufs); ok && at != 0 && at == t.firstN.Load() {
		defer t.done.Store(true)
	}
	return t.dupSegment.Send(ctx, to, tag, hdr, bufs)
}

// TestMulticastAfterRefusedDuplicate: rank 2 refuses a duplicate segment
// of a multicast (the rest of that multicast then stays behind in its
// queue); the next multicasts of the same shape and tag each reach every
// receiver exactly (they failed naming the innocent sender, and later
// returned an older multicast's array as theirs), and nothing stays pinned.
func TestMulticastAfterRefusedDuplicate(t *testing.T) {
	pw := newPlaceWorld(t, func(r int, tr Transport) Transport {
		if r != 0 {
			return tr
		}
		return dupOnce{dupSegment{tr.(placeGate), new(atomic.Int64)}, new(atomic.Bool)}
	})
	rng := rand.New(rand.NewSource(31))
	const n = 1 << 19
	src := randArray(rng, memory.DefaultAllocator, arrow.PrimitiveTypes.Float64, n, 0, 0)
	errs := multicastAll(t, pw.comms, src, nil)
	src.Release()
	var pe *PeerError
	if !errors.Is(errs[2], ErrProtocol) || !errors.As(errs[2], &pe) || pe.Peer != 0 {
		t.Fatalf("rank 2 (the relay): %v, want a protocol error naming peer rank 0", errs[2])
	}
	pinned(t, pw) // the leftovers went without a next multicast to find them
	followUps(t, pw, rng, n, 3, 0)
}

// failSecondSegmentTo fails the second segment a relay forwards to rank to
// (the link cut for a moment), so that the relay fails while the sender's
// segments keep coming.
type failSecondSegmentTo struct {
	placeGate
	to int
	n  *atomic.Int64
}

func (t failSecondSegmentTo) Send(ctx context.Context, to int, tag uint64, hdr []byte, bufs [][]byte) error {
	if h, err := parseHeader(hdr); err == nil && h.kind == kindArray && to == t.to && tag>>62 == classUser && t.n.Add(1) == 2 {
		return fmt.Errorf("injected: link to rank %d cut", to)
	}
	return t.placeGate.Send(ctx, to, tag, hdr, bufs)
}

// TestMulticastAfterFailedRelay: rank 2 cannot forward the second segment
// to the next leader (rank 4) and fails, with the sender's segments, with
// or without nulls, still arriving; the next multicasts of the same shape
// and tag reach every receiver exactly and nothing stays pinned.
func TestMulticastAfterFailedRelay(t *testing.T) {
	for _, nulls := range []float64{0, 0.1} {
		t.Run(fmt.Sprintf("nulls=%v", nulls), func(t *testing.T) {
			pw := newPlaceWorld(t, func(r int, tr Transport) Transport {
				if r != 2 {
					return tr
				}
				return failSecondSegmentTo{tr.(placeGate), 4, new(atomic.Int64)}
			})
			rng := rand.New(rand.NewSource(32))
			const n = 1 << 19
			src := randArray(rng, memory.DefaultAllocator, arrow.PrimitiveTypes.Float64, n, 0, nulls)
			errs := multicastAll(t, pw.comms, src, nil)
			src.Release()
			if errs[0] != nil || errs[1] != nil {
				t.Errorf("sender, its node-mate: %v, %v; want no errors", errs[0], errs[1])
			}
			if errs[2] == nil || !strings.Contains(errs[2].Error(), "rank 4") {
				t.Errorf("rank 2: %v, want an error naming rank 4", errs[2])
			}
			for _, r := range []int{3, 4, 5} {
				if !errors.Is(errs[r], ErrUpstream) {
					t.Errorf("rank %d: %v, want ErrUpstream", r, errs[r])
				}
			}
			pinned(t, pw) // the leftovers went without a next multicast to find them
			followUps(t, pw, rng, n, 3, nulls)
		})
	}
}

// holdAfterFirstTo holds the segments after the first to rank to until
// release is closed.
type holdAfterFirstTo struct {
	placeGate
	to      int
	n       *atomic.Int64
	release chan struct{}
}

func (t holdAfterFirstTo) Send(ctx context.Context, to int, tag uint64, hdr []byte, bufs [][]byte) error {
	if _, _, ok := sentSegment(hdr, bufs); ok && to == t.to && t.n.Add(1) > 1 {
		select {
		case <-t.release:
		case <-time.After(30 * time.Second):
		}
	}
	return t.placeGate.Send(ctx, to, tag, hdr, bufs)
}

// TestMulticastAfterRelayTimeout: rank 2's relay gives up waiting for the
// sender's second segment (a short relay timeout); the sender's segments
// come after that, then the next multicasts of the same shape and tag: each
// reaches every receiver exactly and nothing stays pinned.
func TestMulticastAfterRelayTimeout(t *testing.T) {
	release := make(chan struct{})
	var once sync.Once
	pw := newPlaceWorld(t, func(r int, tr Transport) Transport {
		if r != 0 {
			return tr
		}
		return holdAfterFirstTo{tr.(placeGate), 2, new(atomic.Int64), release}
	})
	defer once.Do(func() { close(release) })
	pw.comms[2].w.relayTimeout.Store(int64(300 * time.Millisecond))
	rng := rand.New(rand.NewSource(33))
	const n = 1 << 19
	src := randArray(rng, memory.DefaultAllocator, arrow.PrimitiveTypes.Float64, n, 0, 0)
	errs := multicastAll(t, pw.comms, src, func(r int, c *Comm) (bool, error) {
		if r != 2 {
			return false, nil
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		got, err := c.Recv(ctx, 0, 9)
		if err == nil {
			got.Release()
		}
		// the next relays have the default timeout; then the sender goes on
		pw.comms[2].w.relayTimeout.Store(0)
		once.Do(func() { close(release) })
		return true, err
	})
	src.Release()
	var pe *PeerError
	if errs[2] == nil || !errors.As(errs[2], &pe) || pe.Peer != 0 || !strings.Contains(errs[2].Error(), "timeout") {
		t.Errorf("rank 2: %v, want a timeout error naming rank 0", errs[2])
	}
	for _, r := range []int{3, 4, 5} {
		if !errors.Is(errs[r], ErrUpstream) {
			t.Errorf("rank %d: %v, want ErrUpstream", r, errs[r])
		}
	}
	pinned(t, pw) // the leftovers went without a next multicast to find them
	followUps(t, pw, rng, n, 3, 0)
}

// TestMulticastConcurrentSameTag: two goroutines of one rank multicast
// arrays of one shape with one tag at the same time; every receiver's two
// Recvs return the two arrays, each exactly, in either order.
func TestMulticastConcurrentSameTag(t *testing.T) {
	rng := rand.New(rand.NewSource(34))
	nodes := []int{0, 1, 1, 2, 2}
	for round := 0; round < 6; round++ {
		a := randArray(rng, memory.DefaultAllocator, arrow.PrimitiveTypes.Float64, 1<<19, 0, 0) // 8 segments
		b := randArray(rng, memory.DefaultAllocator, arrow.PrimitiveTypes.Float64, 1<<19, 0, 0)
		w := newTestWorld(t, len(nodes), worldOpts{nodes: nodes, alg: "multicast:chain", large: 1})
		mustRun(t, w, func(ctx context.Context, c *Comm) error {
			if c.Rank() == 0 {
				var wg sync.WaitGroup
				errs := make([]error, 2)
				for i, arr := range []arrow.Array{a, b} {
					wg.Go(func() {
						if n, err := c.Multicast(ctx, []int{1, 2, 3, 4}, 9, arr); err != nil || n != 4 {
							errs[i] = fmt.Errorf("multicast %d: sent %d, %v", i, n, err)
						}
					})
				}
				wg.Wait()
				return errors.Join(errs...)
			}
			seen := map[int]bool{}
			for i := 0; i < 2; i++ {
				got, err := c.Recv(ctx, 0, 9)
				if err != nil {
					return fmt.Errorf("receive %d: %w", i, err)
				}
				which := -1
				for j, want := range []arrow.Array{a, b} {
					if sameFloats(got, want) == nil {
						which = j
					}
				}
				got.Release()
				if which < 0 || seen[which] {
					return fmt.Errorf("receive %d: neither array, or one of them twice (%d)", i, which)
				}
				seen[which] = true
			}
			return nil
		})
		waitRelays(t, w, func(q *relayQueue) bool { return false })
		w.close(t)
		a.Release()
		b.Release()
	}
}

// failNoticeTo fails the first route notice this sender sends to rank to.
type failNoticeTo struct {
	placeGate
	to   int
	done *atomic.Bool // only the first
}

func (t failNoticeTo) Send(ctx context.Context, to int, tag uint64, hdr []byte, bufs [][]byte) error {
	if h, err := parseHeader(hdr); err == nil && to == t.to && h.kind == kindNone && h.aux == auxRoute && !t.done.Swap(true) {
		return fmt.Errorf("injected: route notice to rank %d lost", to)
	}
	return t.placeGate.Send(ctx, to, tag, hdr, bufs)
}

// TestMulticastNoticeFailsToLeader: the route notice to rank 2, the leader
// of node 1, cannot be sent (its link alive): rank 2 never relays, so the
// ranks routed through it (its node-mate 3, the next leader 4 and 4's
// mate 5) fail at once naming rank 2 instead of waiting for the relay
// timeout (10 minutes), and the sender reports both.
func TestMulticastNoticeFailsToLeader(t *testing.T) {
	pw := newPlaceWorld(t, func(r int, tr Transport) Transport {
		if r != 0 {
			return tr
		}
		return failNoticeTo{tr.(placeGate), 2, new(atomic.Bool)}
	})
	rng := rand.New(rand.NewSource(35))
	src := randArray(rng, memory.DefaultAllocator, arrow.PrimitiveTypes.Float64, 1<<19, 0, 0)
	defer src.Release()
	var sent int
	errs := multicastAll(t, pw.comms, src, func(r int, c *Comm) (bool, error) {
		switch r {
		case 0:
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			n, err := c.Multicast(ctx, []int{1, 2, 3, 4, 5}, 9, src)
			sent = n
			return true, err
		case 2:
			return true, nil // no notice, nothing to receive
		}
		return false, nil
	})
	if sent != 1 || errs[0] == nil || !strings.Contains(errs[0].Error(), "rank 2") {
		t.Errorf("sender: sent %d, %v; want 1 (rank 1) and an error naming rank 2", sent, errs[0])
	}
	if errs[1] != nil {
		t.Errorf("rank 1: %v", errs[1])
	}
	for _, r := range []int{3, 4, 5} {
		if !errors.Is(errs[r], ErrUpstream) || !strings.Contains(errs[r].Error(), "rank 2") {
			t.Errorf("rank %d: %v, want ErrUpstream naming rank 2", r, errs[r])
		}
	}
	followUpsWithout2(t, pw, rng)
}

// followUpsWithout2 checks that a multicast to every rank works after
// TestMulticastNoticeFailsToLeader's (rank 2 gets it too: its queue holds
// nothing of the one it missed that it could take for this one).
func followUpsWithout2(t *testing.T, pw *placeWorld, rng *rand.Rand) {
	t.Helper()
	a := randArray(rng, memory.DefaultAllocator, arrow.PrimitiveTypes.Float64, 1<<19, 0, 0)
	defer a.Release()
	if err := errors.Join(multicastAll(t, pw.comms, a, nil)...); err != nil {
		t.Fatalf("the next multicast: %v", err)
	}
	pinned(t, pw)
}

// TestDropQueuedByMessage: DropQueued takes exactly the queued messages
// its predicate names, of one tag and within it, and leaves the others in
// their order (a failed multicast's leftovers go, the next one's stay), on
// both transports.
func TestDropQueuedByMessage(t *testing.T) {
	for _, name := range []string{"local", "mesh"} {
		t.Run(name, func(t *testing.T) {
			var ts []Transport
			if name == "local" {
				for _, lt := range NewLocalNetwork(2, LocalOptions{}) {
					ts = append(ts, lt)
				}
			} else {
				for _, m := range loopbackMeshes(t, 2) {
					ts = append(ts, m)
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			const tag, other, last = 7, 8, 9
			for _, s := range []struct {
				tag uint64
				h   string
			}{{tag, "a"}, {tag, "b"}, {other, "b"}, {tag, "c"}, {tag, "b"}, {last, "end"}} {
				if err := ts[1].Send(ctx, 0, s.tag, []byte(s.h), [][]byte{[]byte(s.h)}); err != nil {
					t.Fatal(err)
				}
			}
			m, err := ts[0].Recv(ctx, 1, last) // the link keeps order: all are queued
			if err != nil {
				t.Fatal(err)
			}
			m.Release()
			var dropped []string
			ts[0].(dropper).DropQueued(func(tg uint64, m *Message) bool { return tg == tag && string(m.Header) == "b" }, func(from int, m *Message) {
				dropped = append(dropped, fmt.Sprintf("%d %s", from, m.Header))
				m.Release()
			})
			if fmt.Sprint(dropped) != "[1 b 1 b]" {
				t.Errorf("dropped %v, want the two b of tag %d from rank 1", dropped, tag)
			}
			for _, want := range []struct {
				tag uint64
				h   string
			}{{tag, "a"}, {tag, "c"}, {other, "b"}} {
				m, err := ts[0].Recv(ctx, 1, want.tag)
				if err != nil {
					t.Fatal(err)
				}
				if string(m.Header) != want.h || string(m.Bufs[0]) != want.h {
					t.Errorf("tag %d: got %q, want %q", want.tag, m.Header, want.h)
				}
				m.Release()
			}
		})
	}
}
