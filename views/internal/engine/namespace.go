package engine

import (
	"sort"
	"sync"

	"github.com/apache/arrow-go/v18/arrow"
)

// Namespace is an engine's named values (IPython's engine namespace).
//
// A value dropped from it (rebound, deleted, cleared) stays reachable until
// no task that could have seen it runs and no result that could refer to
// it waits to be written: a function holding only a Go slice of an Arrow
// array it found here, or a result frame pointing into one, never sees the
// array's memory go back to its owner underneath (bulk.go).
type Namespace struct {
	mu      sync.RWMutex
	m       map[string]any
	dropped []any // in drop order; dropped[0] is drop number base
	base    int
}

func NewNamespace() *Namespace { return &Namespace{m: map[string]any{}} }

// Get returns the value bound to name.
func (n *Namespace) Get(name string) (any, bool) {
	n.mu.RLock()
	defer n.mu.RUnlock()
	v, ok := n.m[name]
	return v, ok
}

// Set binds name to v.
func (n *Namespace) Set(name string, v any) {
	n.mu.Lock()
	if old, ok := n.m[name]; ok {
		n.dropped = append(n.dropped, old)
	}
	n.m[name] = v
	n.mu.Unlock()
}

// Delete removes name.
func (n *Namespace) Delete(name string) {
	n.mu.Lock()
	if old, ok := n.m[name]; ok {
		n.dropped = append(n.dropped, old)
		delete(n.m, name)
	}
	n.mu.Unlock()
}

// Clear removes every name.
func (n *Namespace) Clear() {
	n.mu.Lock()
	for _, v := range n.m {
		n.dropped = append(n.dropped, v)
	}
	n.m = map[string]any{}
	n.mu.Unlock()
}

// Drops is the number of values dropped so far: a task that starts now
// cannot see those (they are no longer bound).
func (n *Namespace) Drops() int {
	n.mu.RLock()
	defer n.mu.RUnlock()
	return n.base + len(n.dropped)
}

// BuryBefore forgets the values dropped before drop number k (all of them
// for k < 0); it reports whether an Arrow value was among them.
func (n *Namespace) BuryBefore(k int) (arrowDropped bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	cut := len(n.dropped)
	if k >= 0 {
		cut = min(max(k-n.base, 0), cut)
	}
	if cut == 0 {
		return false
	}
	for _, v := range n.dropped[:cut] {
		arrowDropped = arrowDropped || holdsArrow(v, 4)
	}
	n.dropped = append([]any(nil), n.dropped[cut:]...)
	n.base += cut
	return arrowDropped
}

// holdsArrow reports whether v is or contains (in lists and maps, depth
// levels down) an Arrow value.
func holdsArrow(v any, depth int) bool {
	switch x := v.(type) {
	case arrow.Array, arrow.RecordBatch, *arrow.Chunked, arrow.Table:
		return true
	case []any:
		if depth > 0 {
			for _, e := range x {
				if holdsArrow(e, depth-1) {
					return true
				}
			}
		}
	case map[string]any:
		if depth > 0 {
			for _, e := range x {
				if holdsArrow(e, depth-1) {
					return true
				}
			}
		}
	}
	return false
}

// Names lists the bound names, sorted.
func (n *Namespace) Names() []string {
	n.mu.RLock()
	defer n.mu.RUnlock()
	out := make([]string, 0, len(n.m))
	for k := range n.m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
