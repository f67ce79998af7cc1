package batch

import (
	"sync"
	"time"

	"github.com/rankhub/rankhub/jobs"
)

// Cache lets one scheduler query answer Status calls for a while. Its lock
// is held across the query, so concurrent callers share one query and the
// query function may change its backend's state (say, a fallback it
// switched to) without a lock of its own. Set TTL before the first use; 0
// queries every time.
type Cache struct {
	TTL time.Duration

	mu      sync.Mutex
	states  map[string]jobs.SchedState
	at      time.Time
	queries int
}

// Status returns the state of every id: from the last answer when it is
// younger than TTL and covers all ids, else from one call of query, whose
// whole answer is kept for later calls.
func (c *Cache) Status(ids []string, query func(ids []string) (map[string]jobs.SchedState, error)) (map[string]jobs.SchedState, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(ids) == 0 {
		return map[string]jobs.SchedState{}, nil
	}
	if c.TTL > 0 && time.Since(c.at) < c.TTL {
		if out, ok := lookup(c.states, ids); ok {
			return out, nil
		}
	}
	c.queries++
	got, err := query(ids)
	if err != nil {
		return nil, err
	}
	c.states, c.at = got, time.Now()
	out, _ := lookup(got, ids)
	return out, nil
}

func lookup(m map[string]jobs.SchedState, ids []string) (map[string]jobs.SchedState, bool) {
	out := make(map[string]jobs.SchedState, len(ids))
	all := true
	for _, id := range ids {
		if s, ok := m[id]; ok {
			out[id] = s
		} else {
			all = false
		}
	}
	return out, all
}

// Forget drops id from the cached answer (after a cancel, say).
func (c *Cache) Forget(id string) {
	c.mu.Lock()
	delete(c.states, id)
	c.mu.Unlock()
}

// Queries reports how many times Status has called its query function.
func (c *Cache) Queries() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.queries
}
