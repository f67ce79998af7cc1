package collective

import (
	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

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

// CollectAhead tells this rank's receive pool that a, received over a
// socket and protected (Protect), goes to a program that uses and drops
// such arrays in a loop (RecvPool.CollectAhead). Nothing for other arrays.
func (c *Comm) CollectAhead(a arrow.Array) {
	m, ok := c.w.t.(*Mesh)
	if !ok {
		return
	}
	var bufs [][]byte
	for _, b := range a.Data().Buffers() {
		if b != nil && b.Len() > 0 {
			bufs = append(bufs, b.Bytes())
		}
	}
	m.pool.CollectAhead(bufs...)
}

// ReadOnlyView returns an array over a's bytes seen through a read-only
// mapping of this rank's own arena, when every buffer of a lies in that
// arena (a multicast leader assembles the array there for its
// node-mates): no byte is copied, and a write through the view faults as
// through a peer's arena. a is taken over: it is released when the view's
// last buffer is. ok is false, and a untouched, when a is not in this
// rank's arena or the arena cannot be mapped.
func (c *Comm) ReadOnlyView(a arrow.Array) (view arrow.Array, ok bool) {
	ar := c.w.opts.arena
	d := a.Data()
	if ar == nil || len(d.Children()) > 0 {
		return nil, false
	}
	m, err := c.w.mapping(ar.Path())
	if err != nil {
		return nil, false
	}
	ros := make([][]byte, len(d.Buffers()))
	for i, b := range d.Buffers() {
		if b == nil || b.Len() == 0 {
			continue
		}
		off := ar.offsetOf(b.Bytes())
		if off < 0 {
			return nil, false
		}
		if ros[i], err = m.Bytes(off, int64(b.Len())); err != nil {
			return nil, false
		}
	}
	o := &msgOwner{done: a.Release}
	o.n.Add(1) // held while the buffers are made
	bufs := make([]*memory.Buffer, len(ros))
	for i, b := range d.Buffers() {
		switch {
		case b == nil:
		case ros[i] == nil:
			bufs[i] = memory.NewBufferBytes(nil)
		default:
			bufs[i] = o.buffer(ros[i])
		}
	}
	nd := array.NewData(d.DataType(), d.Len(), bufs, nil, d.NullN(), d.Offset())
	for _, b := range bufs {
		if b != nil {
			b.Release()
		}
	}
	view = array.MakeFromData(nd)
	nd.Release()
	o.Free(nil)
	return view, true
}
