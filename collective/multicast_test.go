package collective

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// TestMulticastEveryLayout: every receiver of a multicast gets the array
// exactly, direct or by the chain, to all others or a subset, on every
// emulated layout; arena ranges all come back (w.close checks).
func TestMulticastEveryLayout(t *testing.T) {
	rng := rand.New(rand.NewSource(5))
	for _, nodes := range layouts {
		for _, alg := range []string{"multicast:chain", "multicast:direct"} { // the table: TestDecideTable
			for _, sub := range []bool{false, true} {
				src := rng.Intn(6)
				var tos []int
				for q := 0; q < 6; q++ {
					if q != src && (!sub || q%2 == 1) {
						tos = append(tos, q)
					}
				}
				a := randArray(rng, memory.DefaultAllocator, arrow.PrimitiveTypes.Float64, 70000, rng.Intn(5), 0) // 2 segments
				w := newTestWorld(t, 6, worldOpts{nodes: nodes, alg: alg, large: 1})
				mustRun(t, w, func(ctx context.Context, c *Comm) error {
					if c.Rank() == src {
						sent, err := c.Multicast(ctx, tos, 9, a)
						if err != nil || sent != len(tos) {
							return fmt.Errorf("multicast to %v: sent %d, %v", tos, sent, err)
						}
						return nil
					}
					in := false
					for _, q := range tos {
						in = in || q == c.Rank()
					}
					if !in {
						return nil
					}
					got, err := c.Recv(ctx, src, 9)
					if err != nil {
						return err
					}
					defer got.Release()
					if err := sameFloats(got, a); err != nil {
						t.Errorf("nodes %v %q from %d to %v: rank %d: %v", nodes, alg, src, tos, c.Rank(), err)
					}
					return nil
				})
				w.close(t)
				a.Release()
			}
		}
	}
}

// TestMulticastLeaderDiesMidForward: the leader of the second node dies
// after the first segment. The sender does not hang and names it; the
// receivers behind it fail naming it; the sender's node-mate has the array.
func TestMulticastLeaderDiesMidForward(t *testing.T) {
	nodes := []int{0, 0, 1, 1, 2, 2}
	w := newTestWorld(t, 6, worldOpts{nodes: nodes, alg: "multicast:chain"})
	a := randArray(rand.New(rand.NewSource(3)), memory.DefaultAllocator, arrow.PrimitiveTypes.Float64, 400000, 0, 0)
	defer a.Release()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	errs := make([]error, 6)
	var wg sync.WaitGroup
	for r, c := range w.comms {
		wg.Add(1)
		go func() {
			defer wg.Done()
			switch r {
			case 0:
				_, errs[r] = c.Multicast(ctx, []int{1, 2, 3, 4, 5}, 9, a)
			case 2:
				// one segment, then the process dies
				m, err := w.ts[2].Recv(ctx, 0, dataTag(userTag(0, 9), 0))
				if err != nil {
					errs[r] = err
					return
				}
				m.Release()
				w.ts[2].Close()
			default:
				got, err := c.Recv(ctx, 0, 9)
				if err == nil {
					err = sameFloats(got, a)
					got.Release()
				}
				errs[r] = err
			}
		}()
	}
	wg.Wait()
	if ctx.Err() != nil {
		t.Fatalf("the multicast hung: %v", errs)
	}
	// The sender may have handed every segment over before rank 2 died
	// (here it always has: local sends do not block): then only the
	// receivers can tell.
	if errs[0] != nil && !strings.Contains(errs[0].Error(), "peer rank 2") {
		t.Errorf("sender: %v, want nil or an error naming rank 2", errs[0])
	}
	if errs[1] != nil {
		t.Errorf("rank 1 (the sender's node-mate): %v", errs[1])
	}
	for _, r := range []int{3, 4, 5} {
		var pe *PeerError
		if !errors.As(errs[r], &pe) || !strings.Contains(errs[r].Error(), "peer rank 2: peer closed") {
			t.Errorf("rank %d behind the dead leader: %v, want an error naming peer rank 2", r, errs[r])
		}
	}
	if errs[2] != nil {
		t.Errorf("rank 2 before dying: %v", errs[2])
	}
	w.close(t)
}

// TestMulticastBusyLeader: a leader that does not call Recv (its engine is
// busy with another task) still forwards: the ranks behind it get the
// array first.
func TestMulticastBusyLeader(t *testing.T) {
	nodes := []int{0, 1, 1, 2, 2}
	w := newTestWorld(t, 5, worldOpts{nodes: nodes, alg: "multicast:chain"})
	a := randArray(rand.New(rand.NewSource(4)), memory.DefaultAllocator, arrow.PrimitiveTypes.Float64, 200000, 0, 0)
	defer a.Release()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	others := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	for r, c := range w.comms {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var err error
			switch r {
			case 0:
				_, err = c.Multicast(ctx, []int{1, 2, 3, 4}, 9, a)
			case 1: // busy until everybody behind it has the array
				select {
				case <-others:
				case <-ctx.Done():
				}
				if ctx.Err() != nil {
					err = fmt.Errorf("rank 1: the others never got the array")
					break
				}
				fallthrough
			default:
				var got arrow.Array
				if got, err = c.Recv(ctx, 0, 9); err == nil {
					err = sameFloats(got, a)
					got.Release()
				}
			}
			mu.Lock()
			errs = append(errs, err)
			mu.Unlock()
		}()
	}
	go func() {
		// ranks 2, 3, 4 report first
		for {
			mu.Lock()
			n := len(errs)
			mu.Unlock()
			if n >= 4 || ctx.Err() != nil {
				close(others)
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	w.close(t)
}
