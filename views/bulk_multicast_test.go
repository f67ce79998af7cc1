package views

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/rankhub/rankhub/collective"
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
		send := &bulkSender{ctx: context.Background(), world: cs[0], to: []int{1, 2, 3, 4, 5}, tags: &bulkTags{}}
		ctrl, bufs, err := encodeBulk(send, big)
		big.Release()
		if err != nil {
			t.Fatal(err)
		}
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
