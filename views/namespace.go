package views

import (
	"sort"
	"sync"

	"github.com/apache/arrow-go/v18/arrow"
)

// Namespace is an engine's named values (IPython's engine namespace).
//
// Values bound by a push (Push, Set, Scatter) belong to the namespace: an
// Arrow array, record or chunked array among them is Released when its
// name is rebound, deleted or cleared, which returns large arrays received
// over the mesh to their owner at once instead of at the next garbage
// collection. A function that keeps such a value beyond its call must
// Retain it (the Arrow rule for every holder). Values bound with Set are
// the caller's and never released by the namespace.
type Namespace struct {
	mu    sync.RWMutex
	m     map[string]any
	owned map[string]bool
}

func newNamespace() *Namespace { return &Namespace{m: map[string]any{}, owned: map[string]bool{}} }

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
	n.dropLocked(name)
	n.m[name] = v
	n.mu.Unlock()
}

// setOwned binds name to a pushed value the namespace owns.
func (n *Namespace) setOwned(name string, v any) {
	n.mu.Lock()
	n.dropLocked(name)
	n.m[name] = v
	n.owned[name] = true
	n.mu.Unlock()
}

// retained returns name's value with one more reference on Arrow values
// (release drops it), so that a concurrent rebind cannot free it in use.
func (n *Namespace) retained(name string) (v any, ok bool, release func()) {
	n.mu.RLock()
	defer n.mu.RUnlock()
	v, ok = n.m[name]
	if r, isArrow := v.(interface{ Retain() }); ok && isArrow {
		r.Retain()
		return v, true, func() { releaseValue(v) }
	}
	return v, ok, func() {}
}

// dropLocked releases name's value if the namespace owns it.
func (n *Namespace) dropLocked(name string) {
	if n.owned[name] {
		releaseValue(n.m[name])
		delete(n.owned, name)
	}
}

// releaseValue releases an Arrow value; other values are left to the
// garbage collector.
func releaseValue(v any) {
	switch x := v.(type) {
	case arrow.Array:
		x.Release()
	case arrow.RecordBatch:
		x.Release()
	case *arrow.Chunked:
		if x != nil {
			x.Release()
		}
	}
}

// Delete removes name.
func (n *Namespace) Delete(name string) {
	n.mu.Lock()
	n.dropLocked(name)
	delete(n.m, name)
	n.mu.Unlock()
}

// Clear removes every name.
func (n *Namespace) Clear() {
	n.mu.Lock()
	for name := range n.owned {
		n.dropLocked(name)
	}
	n.m = map[string]any{}
	n.mu.Unlock()
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
