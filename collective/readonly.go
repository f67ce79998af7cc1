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
