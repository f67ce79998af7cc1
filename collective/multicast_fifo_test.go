package collective

import (
	"context"
	"fmt"
	"math/rand"
	"strconv"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// TestMulticastSameTagInOrder: chained multicasts from one rank with one
// tag reach every receiver whole and in the order sent, as point-to-point
// messages of one (sender, tag) do, whether the receivers call Recv as
// they come or only after all were sent (their relays then all run before
// any Recv). Each array differs from the others in every element.
func TestMulticastSameTagInOrder(t *testing.T) {
	rng := rand.New(rand.NewSource(11))
	for _, nodes := range [][]int{{0, 0, 1, 1, 2, 2}, {0, 1, 2, 0, 1, 2}, {0, 1, 1, 2, 2, 2}} {
		for _, late := range []bool{true, false} {
			t.Run(fmt.Sprintf("%v/late=%v", nodes, late), func(t *testing.T) {
				const k = 3
				arrs := make([]arrow.Array, k)
				for i := range arrs {
					arrs[i] = randArray(rng, memory.DefaultAllocator, arrow.PrimitiveTypes.Float64, 70000+i*1000, 0, 0) // 2 segments each
					defer arrs[i].Release()
				}
				w := newTestWorld(t, 6, worldOpts{nodes: nodes, alg: "multicast:chain", large: 1})
				sent := make(chan struct{})
				mustRun(t, w, func(ctx context.Context, c *Comm) error {
					if c.Rank() == 0 {
						defer close(sent)
						for i, a := range arrs {
							if n, err := c.Multicast(ctx, []int{1, 2, 3, 4, 5}, 9, a); err != nil || n != 5 {
								return fmt.Errorf("multicast %d: sent %d, %v", i, n, err)
							}
						}
						return nil
					}
					if late {
						select {
						case <-sent:
						case <-ctx.Done():
							return ctx.Err()
						}
					}
					return recvInOrder(ctx, c, 0, 9, arrs)
				})
				waitRelays(t, w, func(q *relayQueue) bool { return false })
				w.close(t)
			})
		}
	}
}

// TestMulticastSameTagMixed: a direct multicast, a SendTo and chained
// multicasts with one tag arrive in the order sent, every byte right.
func TestMulticastSameTagMixed(t *testing.T) {
	rng := rand.New(rand.NewSource(12))
	nodes := []int{0, 1, 1, 2, 2}
	const small, large = 1000, minMulticastChain/8 + 5
	sizes := []int{small, large, small, large, large, small}
	arrs := make([]arrow.Array, len(sizes))
	for i, n := range sizes {
		arrs[i] = randArray(rng, memory.DefaultAllocator, arrow.PrimitiveTypes.Float64, n, 0, 0)
		defer arrs[i].Release()
	}
	w := newTestWorld(t, len(nodes), worldOpts{nodes: nodes})
	tos := []int{1, 2, 3, 4}
	// The table must take both paths, or this test tests one.
	for n, want := range map[int]Alg{small: AlgDirect, large: AlgChain} {
		if d := decide(opMulticast, int64(n)*8, w.comms[0].layoutOf([]int{0, 1, 2, 3, 4}, true), nil); d.alg != want {
			t.Fatalf("multicast of %d float64s on %v: %v, want %v", n, nodes, d.alg, want)
		}
	}
	sent := make(chan struct{})
	mustRun(t, w, func(ctx context.Context, c *Comm) error {
		if c.Rank() != 0 {
			<-sent
			return recvInOrder(ctx, c, 0, 9, arrs)
		}
		defer close(sent)
		for i, a := range arrs {
			var n int
			var err error
			if i == 2 { // a plain send between the chained ones
				n, err = c.SendTo(ctx, tos, 9, a)
			} else {
				n, err = c.Multicast(ctx, tos, 9, a)
			}
			if err != nil || n != len(tos) {
				return fmt.Errorf("message %d: sent %d, %v", i, n, err)
			}
		}
		return nil
	})
	w.close(t)
}

// recvInOrder receives len(want) arrays from `from` with tag and checks
// that each is exactly the one sent in its place.
func recvInOrder(ctx context.Context, c *Comm, from int, tag uint64, want []arrow.Array) error {
	for i, a := range want {
		got, err := c.Recv(ctx, from, tag)
		if err != nil {
			return fmt.Errorf("receive %d: %w", i, err)
		}
		err = sameFloats(got, a)
		got.Release()
		if err != nil {
			return fmt.Errorf("receive %d (of %d elements): %w", i, a.Len(), err)
		}
	}
	return nil
}

// TestMulticastSameTagNeverReceived: receivers that never call Recv hold
// every chained multicast of one tag until Close, as queued messages are
// held, and Close releases them all (w.close checks the allocators).
func TestMulticastSameTagNeverReceived(t *testing.T) {
	rng := rand.New(rand.NewSource(13))
	w := newTestWorld(t, 4, worldOpts{nodes: []int{0, 1, 2, 3}, alg: "multicast:chain", large: 1})
	const k = 3
	mustRun(t, w, func(ctx context.Context, c *Comm) error {
		if c.Rank() != 0 {
			return nil
		}
		for i := 0; i < k; i++ {
			a := randArray(rng, memory.DefaultAllocator, arrow.PrimitiveTypes.Float64, 70000, 0, 0)
			n, err := c.Multicast(ctx, []int{1, 2, 3}, 9, a)
			a.Release()
			if err != nil || n != 3 {
				return fmt.Errorf("multicast %d: sent %d, %v", i, n, err)
			}
		}
		return nil
	})
	// every relay has its array (the last ends last) and waits for a Recv
	waitRelays(t, w, func(q *relayQueue) bool { return len(q.waiting) == k && q.last.ended })
	w.close(t)
}

// waitRelays waits until every rank but 0 has one relay queue, for which
// keep holds, or none when keep never does.
func waitRelays(t *testing.T, w *testWorld, keep func(*relayQueue) bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for r, c := range w.comms[1:] {
		for {
			c.w.mu.Lock()
			ok := len(c.w.relays) == 0
			var state []string
			for k, q := range c.w.relays {
				ok = len(c.w.relays) == 1 && keep(q)
				state = append(state, fmt.Sprintf("(%d, %#x): %d waiting, last ended %v", k.from, k.tag, len(q.waiting), q.last.ended))
			}
			c.w.mu.Unlock()
			if ok {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("rank %d: relay queues %v", r+1, state)
			}
			time.Sleep(time.Millisecond)
		}
	}
}

// TestMulticastSameTagTwoSenders: two ranks multicast with one tag at the
// same time to ranks of a third node, whose leader serves both: every
// receiver gets each sender's array from Recv of that sender.
func TestMulticastSameTagTwoSenders(t *testing.T) {
	rng := rand.New(rand.NewSource(14))
	nodes := []int{0, 1, 2, 2, 2}
	a := randArray(rng, memory.DefaultAllocator, arrow.PrimitiveTypes.Float64, 70000, 0, 0)
	defer a.Release()
	b := randArray(rng, memory.DefaultAllocator, arrow.PrimitiveTypes.Float64, 70000, 0, 0)
	defer b.Release()
	for round := 0; round < 5; round++ {
		w := newTestWorld(t, len(nodes), worldOpts{nodes: nodes, alg: "multicast:chain", large: 1})
		mustRun(t, w, func(ctx context.Context, c *Comm) error {
			switch c.Rank() {
			case 0, 1:
				arr := []arrow.Array{a, b}[c.Rank()]
				if n, err := c.Multicast(ctx, []int{2, 3, 4}, 9, arr); err != nil || n != 3 {
					return fmt.Errorf("multicast: sent %d, %v", n, err)
				}
				return nil
			}
			if err := recvInOrder(ctx, c, 1, 9, []arrow.Array{b}); err != nil {
				return fmt.Errorf("from rank 1: %w", err)
			}
			if err := recvInOrder(ctx, c, 0, 9, []arrow.Array{a}); err != nil {
				return fmt.Errorf("from rank 0: %w", err)
			}
			return nil
		})
		waitRelays(t, w, func(q *relayQueue) bool { return false })
		w.close(t)
	}
}

// TestDataTagPerSender: the data tags of one user tag differ for every
// sender of a large world (a shared leader's node-mates would mix two
// that were equal) and stay user tags outside the world's context.
func TestDataTagPerSender(t *testing.T) {
	for _, ut := range []uint64{userTag(0, 9), userTag(deriveCtx(0, 3), MaxTag), userTag(ctxMask, 0)} {
		seen := map[uint64]int{}
		for o := 0; o < 1<<16; o++ {
			dt := dataTag(ut, o)
			if p, ok := seen[dt]; ok {
				t.Fatalf("user tag %#x: senders %d and %d share data tag %#x", ut, p, o, dt)
			}
			seen[dt] = o
			if dt>>62 != classUser || dt&MaxTag != ut&MaxTag || dt>>40&ctxMask == 0 || dt>>40&ctxMask == ut>>40&ctxMask {
				t.Fatalf("user tag %#x, sender %d: data tag %#x", ut, o, dt)
			}
		}
	}
}

// TestMulticastRecvGivesUpKeepsOrder: a Recv whose context ends while the
// relay of a chained multicast still waits for the array leaves that
// array to the next Recv, as a message a Recv gave up on stays queued;
// the multicast sent after it comes after it.
func TestMulticastRecvGivesUpKeepsOrder(t *testing.T) {
	rng := rand.New(rand.NewSource(15))
	w := newTestWorld(t, 3, worldOpts{nodes: []int{0, 1, 2}, alg: "multicast:chain", large: 1})
	a := randArray(rng, memory.DefaultAllocator, arrow.PrimitiveTypes.Float64, 70000, 0, 0)
	defer a.Release()
	b := randArray(rng, memory.DefaultAllocator, arrow.PrimitiveTypes.Float64, 70000, 0, 0)
	defer b.Release()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ut := userTag(0, 9)
	// A route notice sends rank 2 to rank 1 for the array, which holds it
	// back until rank 2's Recv gave up.
	seq := w.comms[0].w.mcastSeq.Add(1) // rank 0's next multicast number
	route := value{kind: kindNone, aux: auxRoute, fields: []fieldMeta{{name: "member"}, {name: strconv.FormatUint(seq, 10)}, {name: "1"}}}
	if err := w.comms[0].send(ctx, "multicast", 2, ut, route, nil); err != nil {
		t.Fatal(err)
	}
	short, stop := context.WithTimeout(ctx, 50*time.Millisecond)
	got, err := w.comms[2].Recv(short, 0, 9)
	stop()
	if err == nil {
		got.Release()
		t.Fatal("Recv returned an array rank 1 never sent")
	}
	col, err := columnOf(a)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.comms[1].send(ctx, "multicast", 2, dataTag(ut, 0), chainTags{seq: seq}.stamp(arrayValue(col)), nil); err != nil {
		t.Fatal(err)
	}
	if n, err := w.comms[0].Multicast(ctx, []int{2}, 9, b); err != nil || n != 1 {
		t.Fatalf("multicast: sent %d, %v", n, err)
	}
	if err := recvInOrder(ctx, w.comms[2], 0, 9, []arrow.Array{a, b}); err != nil {
		t.Fatal(err)
	}
	waitRelays(t, w, func(q *relayQueue) bool { return false })
	w.close(t)
}
