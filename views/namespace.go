package views

import (
	"sort"
	"sync"

	"github.com/apache/arrow-go/v18/arrow"
)

// Namespace is an engine's named values (IPython's engine namespace).
//
// A value dropped from it (rebound, deleted, cleared) stays reachable until
// the engine has finished the running task and written its result: a
// function holding only a Go slice of an Arrow array it found here, or a
// result frame pointing into one, never sees the array's memory go back to
// its owner underneath (bulk.go).
type Namespace struct {
	mu      sync.RWMutex
	m       map[string]any
	dropped []any
}

func newNamespace() *Namespace { return &Namespace{m: map[string]any{}} }

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

// bury forgets the dropped values; it reports whether an Arrow value was
// among them.
func (n *Namespace) bury() (arrowDropped bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, v := range n.dropped {
		switch v.(type) {
		case arrow.Array, arrow.RecordBatch, *arrow.Chunked:
			arrowDropped = true
		}
	}
	clear(n.dropped)
	n.dropped = n.dropped[:0]
	return arrowDropped
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
