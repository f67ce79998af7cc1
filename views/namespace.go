package views

import (
	"sort"
	"sync"
)

// Namespace is an engine's named values (IPython's engine namespace).
type Namespace struct {
	mu sync.RWMutex
	m  map[string]any
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
	n.m[name] = v
	n.mu.Unlock()
}

// Delete removes name.
func (n *Namespace) Delete(name string) {
	n.mu.Lock()
	delete(n.m, name)
	n.mu.Unlock()
}

// Clear removes every name.
func (n *Namespace) Clear() {
	n.mu.Lock()
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
