package engine

import (
	"sort"
	"sync"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/rankhub/rankhub/views/internal/codec"
)

// Namespace is an engine's named values (IPython's engine namespace).
//
// A value dropped from it (rebound, deleted, cleared) stays reachable until
// no task that could have seen it runs and no result that could refer to
// it waits to be written: a function holding only a Go slice of an Arrow
// array it found here, or a result frame pointing into one, never sees the
// array's memory go back to its owner underneath (views/internal/bulk).
//
// An array a push received on the bulk path and bound here (setReceived)
// goes back to its owner (the receive pool, already faulted in, or the
// sender's arena) as soon as it is dropped when nothing but the namespace
// ever held it: no user code got it (Get, a Ref argument) and no answer to
// a pull sent it. One a pull sent goes back when buried (that answer was
// written). One user code got waits for the garbage collector, as every
// other value: user code may have kept it, or a Go slice of it, anywhere.
type Namespace struct {
	mu      sync.RWMutex
	m       map[string]any
	held    map[string]*codec.GCHold // the holds of the bulk arrays bound by setReceived
	dropped []droppedValue           // in drop order; dropped[0] is drop number base
	base    int
}

// droppedValue is a dropped value and, for a bulk array bound by
// setReceived, its hold.
type droppedValue struct {
	v any
	h *codec.GCHold
}

func NewNamespace() *Namespace {
	return &Namespace{m: map[string]any{}, held: map[string]*codec.GCHold{}}
}

// Get returns the value bound to name. The caller may keep it: a bulk
// array got here waits for the collector once dropped.
func (n *Namespace) Get(name string) (any, bool) { return n.get(name, codec.HeldByUser) }

// get returns the value bound to name for who (gcHold.seen).
func (n *Namespace) get(name string, who int32) (any, bool) {
	n.mu.RLock()
	defer n.mu.RUnlock()
	v, ok := n.m[name]
	if h := n.held[name]; h != nil {
		h.See(who)
	}
	return v, ok
}

// Has reports whether name is bound, handing its value to nobody.
func (n *Namespace) Has(name string) bool {
	n.mu.RLock()
	defer n.mu.RUnlock()
	_, ok := n.m[name]
	return ok
}

// lend returns the value bound to name for the engine's answer to a pull:
// once dropped, it goes back when buried (no unwritten answer refers to it).
func (n *Namespace) lend(name string) (any, bool) { return n.get(name, codec.HeldByAnswer) }

// Set binds name to v.
func (n *Namespace) Set(name string, v any) {
	n.setReceived(name, v, nil)
}

// setReceived binds name to v, an array received on the bulk path whose
// hold is h (nil: any other value). Nothing but the namespace may hold v
// yet (the engine's push binds what it decoded).
//
// The engine's own bookkeeping, unexported: user code reaches the
// namespace through Context.NS, and a value it could borrow as an
// answer's (lend) or bury (buryBefore) would go back to the pool under
// its feet.
func (n *Namespace) setReceived(name string, v any, h *codec.GCHold) {
	n.mu.Lock()
	if h != nil && n.held[name] == h {
		n.m[name] = v // the same array again: dropping it would free it
		n.mu.Unlock()
		return
	}
	free := n.dropLocked(name)
	n.m[name] = v
	if h != nil && !n.holds(h) {
		n.held[name] = h
	} else if h != nil {
		h.See(codec.HeldByUser) // bound twice: one name's drop must not free it
	}
	n.mu.Unlock()
	free.release()
}

// holds reports whether h is bound to a name already. n.mu is held.
func (n *Namespace) holds(h *codec.GCHold) bool {
	for _, x := range n.held {
		if x == h {
			return true
		}
	}
	return false
}

// Delete removes name.
func (n *Namespace) Delete(name string) {
	n.mu.Lock()
	free := n.dropLocked(name)
	delete(n.m, name)
	n.mu.Unlock()
	free.release()
}

// Clear removes every name.
func (n *Namespace) Clear() {
	n.mu.Lock()
	var free holds
	for name := range n.m {
		free = append(free, n.dropLocked(name)...)
	}
	n.m = map[string]any{}
	n.mu.Unlock()
	free.release()
}

// holds are bulk arrays' holds to release (outside n.mu).
type holds []*codec.GCHold

func (hs holds) release() {
	for _, h := range hs {
		h.Release()
	}
}

// dropLocked drops the value bound to name, if any: a bulk array nothing
// else ever held is returned for release, anything else goes to the
// dropped list. The caller rebinds or deletes name. n.mu is held.
func (n *Namespace) dropLocked(name string) holds {
	old, ok := n.m[name]
	if !ok {
		return nil
	}
	h := n.held[name]
	delete(n.held, name)
	if h != nil && h.Seen() == codec.HeldAlone {
		return holds{h}
	}
	n.dropped = append(n.dropped, droppedValue{old, h})
	return nil
}

// drops is the number of values dropped so far: a task that starts now
// cannot see those (they are no longer bound).
func (n *Namespace) drops() int {
	n.mu.RLock()
	defer n.mu.RUnlock()
	return n.base + len(n.dropped)
}

// buryBefore forgets the values dropped before drop number k (all of them
// for k < 0): bulk arrays only the namespace and the engine's answers held
// go back to their owners now; it reports whether another Arrow value was
// among them (the collector returns those).
func (n *Namespace) buryBefore(k int) (arrowDropped bool) {
	n.mu.Lock()
	cut := len(n.dropped)
	if k >= 0 {
		cut = min(max(k-n.base, 0), cut)
	}
	if cut == 0 {
		n.mu.Unlock()
		return false
	}
	var free holds
	for _, d := range n.dropped[:cut] {
		if d.h != nil && d.h.Seen() < codec.HeldByUser {
			free = append(free, d.h)
			continue
		}
		arrowDropped = arrowDropped || holdsArrow(d.v, 4)
	}
	n.dropped = append([]droppedValue(nil), n.dropped[cut:]...)
	n.base += cut
	n.mu.Unlock()
	free.release()
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
