package views

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/rankhub/rankhub/collective"
	"github.com/rankhub/rankhub/views/internal/bulk"
)

// nodesWorld is ranks on emulated nodes (nodes[r] is rank r's), each with
// an arena, in process; multicasts take the chain whatever their size.
func nodesWorld(t *testing.T, nodes []int) ([]*collective.LocalTransport, []*collective.Comm, []*collective.Arena) {
	t.Helper()
	return arenaWorld(t, collective.LocalOptions{Nodes: nodes}, len(nodes), 64<<20, collective.WithAlgorithm("multicast:chain"))
}

// TestBulkPushAcrossNodesMulticast: a push to the 5 engines of 3 nodes x 2
// goes down the chain; every engine gets the array exactly, and every
// arena (the hub's staging, the leaders' assembled copies the node-mates
// alias) is empty again once the engines dropped their arrays. With
// engine rank 2, a leader, known dead before the push, the chain goes
// around it: every other engine gets the array.
func TestBulkPushAcrossNodesMulticast(t *testing.T) {
	for _, dead := range []int{-1, 2} {
		ts, cs, as := nodesWorld(t, []int{0, 0, 1, 1, 2, 2})
		big := float64Ramp(memory.DefaultAllocator, 1<<19) // 4 MiB
		if dead >= 0 {
			ts[dead].Close()
		}
		ctrl, bufs := pushFromRank0(t, cs[0], big)
		errs := make([]error, 6)
		var wg sync.WaitGroup
		for r := 1; r < 6; r++ {
			if r == dead {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				vals, err := decodeBulk(ctrl, bufs, 1, receiverOf(cs[r], 0))
				if err == nil {
					if got := vals[0].(*array.Float64); got.Len() != 1<<19 || got.Value(1<<19-1) != 1<<19-1 {
						err = fmt.Errorf("rank %d: %d values, last %v", r, got.Len(), got.Value(got.Len()-1))
					}
				}
				errs[r] = err
			}()
		}
		wg.Wait()
		for r := 1; r < 6; r++ {
			switch {
			case r == dead:
			case errs[r] != nil:
				t.Errorf("dead %d: rank %d: %v", dead, r, errs[r])
			}
		}
		for i, a := range as {
			waitInUse(t, a, 0, fmt.Sprintf("dead %d: arena of rank %d after every engine dropped the array", dead, i))
		}
	}
}

// TestBulkMulticastLeadersReadOnlyWithoutCopy: the node leaders of a
// multicast push assemble the array in their arenas for their node-mates;
// they see it through a read-only mapping of that arena, as the mates do,
// instead of copying it into read-only memory (on the emulated cluster a
// copy of 512 MiB, into fresh pages, on every leader for every push). A
// write faults on every engine, the values are exact, and every arena is
// empty once the engines dropped their arrays.
func TestBulkMulticastLeadersReadOnlyWithoutCopy(t *testing.T) {
	_, cs, as := nodesWorld(t, []int{0, 0, 1, 1, 2, 2})
	const n = 1 << 19 // 4 MiB
	big := float64Ramp(memory.DefaultAllocator, n)
	copied := roCopied.Load()
	ctrl, bufs := pushFromRank0(t, cs[0], big)
	errs := make([]error, 6)
	var wg sync.WaitGroup
	for r := 1; r < 6; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			vals, err := decodeBulk(ctrl, bufs, 1, receiverOf(cs[r], 0))
			if err != nil {
				errs[r] = err
				return
			}
			got := vals[0].(*array.Float64)
			switch {
			case got.Len() != n || got.Value(n-1) != n-1 || got.Value(7) != 7:
				errs[r] = fmt.Errorf("%d values, [7] = %v, last %v", got.Len(), got.Value(7), got.Value(got.Len()-1))
			case !tryWrite(got.Float64Values(), -1):
				errs[r] = fmt.Errorf("a write into the received array did not fault")
			}
		}()
	}
	wg.Wait()
	for r := 1; r < 6; r++ {
		if errs[r] != nil {
			t.Errorf("rank %d: %v", r, errs[r])
		}
	}
	if c := roCopied.Load() - copied; c != 0 {
		t.Errorf("%d bytes copied into read-only memory, want none (the leaders see their arenas read-only)", c)
	}
	for i, a := range as {
		waitInUse(t, a, 0, fmt.Sprintf("arena of rank %d after every engine dropped the array", i))
	}
}

// pushFromRank0 encodes a push of big (released) from world rank 0 to
// ranks 1-5 on the bulk path and returns the task's payload.
func pushFromRank0(t *testing.T, w *collective.Comm, big arrow.Array) (ctrl []byte, bufs [][]byte) {
	t.Helper()
	send := bulk.NewSender(context.Background(), w, []int{1, 2, 3, 4, 5}, &bulkTags{})
	ctrl, bufs, err := encodeBulk(send, big)
	big.Release()
	if err != nil {
		t.Fatal(err)
	}
	return ctrl, bufs
}
