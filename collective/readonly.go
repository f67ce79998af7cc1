package collective

import "github.com/apache/arrow-go/v18/arrow"

// ReadOnly reports whether every buffer of a received array lies in a
// peer's arena, which this side maps read-only (a write through the
// array's values faults). Arrays received over sockets (other nodes, or
// ForceTCP) are in this side's receive buffers and writable: a caller
// that must not let them change copies them.
func (c *Comm) ReadOnly(a arrow.Array) bool {
	c.w.mu.Lock()
	defer c.w.mu.Unlock()
	for _, b := range a.Data().Buffers() {
		if b == nil || b.Len() == 0 {
			continue
		}
		in := false
		for _, m := range c.w.maps {
			if m.Contains(b.Bytes()) {
				in = true
				break
			}
		}
		if !in {
			return false
		}
	}
	return true
}

// Protect makes a received array read-only where it lies: true when it is
// in a peer's arena (read-only already) or in this rank's receive buffers
// from the mesh (MinPooled bytes or more, over a socket), whose mapping
// is made read-only in place (RecvPool.Protect) until the array's memory
// is released. false when its memory cannot be protected (Go heap: small
// frames, an in-process transport): a caller that must not let it change
// copies it (ReadOnlyBuffers). Call it only on arrays from Recv: the
// whole receive mapping is protected, which holds that message alone.
func (c *Comm) Protect(a arrow.Array) bool {
	if c.ReadOnly(a) {
		return true
	}
	m, ok := c.w.t.(*Mesh)
	if !ok {
		return false
	}
	var bufs [][]byte
	for _, b := range a.Data().Buffers() {
		if b != nil && b.Len() > 0 {
			bufs = append(bufs, b.Bytes())
		}
	}
	return m.pool.Protect(bufs...)
}
