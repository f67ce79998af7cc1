package collective

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/apache/arrow-go/v18/arrow/memory"
)

// errPeerClosed is what a local transport returns for a closed peer.
var errPeerClosed = errors.New("peer closed its transport")

// LocalOptions configure NewLocalNetwork.
type LocalOptions struct {
	// Alloc holds received messages (nil: memory.DefaultAllocator). A test
	// passes a memory.CheckedAllocator to see leaked messages.
	Alloc memory.Allocator
	// SameNode makes every pair of ranks report SameNode, enabling arenas.
	SameNode bool
	// Nodes, when set (one entry per rank), emulates several nodes: ranks
	// with equal entries are on one node (SameNode, NodeOf); it overrides
	// SameNode.
	Nodes []int
}

// LocalTransport is one rank of an in-process network made by
// NewLocalNetwork. Messages are copied once, into one allocation per
// message, like a socket would; buffers passed as arena descriptors are not
// copied at all.
type LocalTransport struct {
	net  *localNet
	rank int
}

type localKey struct {
	from, to int
	tag      uint64
}

type localQueue struct {
	msgs   []*Message
	notify chan struct{} // closed and replaced when a message arrives
}

type localNet struct {
	opts  LocalOptions
	mu    sync.Mutex
	qs    map[localKey]*localQueue
	drop  []func(from int, tag uint64, m *Message) bool // per receiving rank, under mu
	place map[localKey]*localPlace                      // SetPlace, under mu
	// sending counts, per key, the Sends that looked up its placement and
	// have not queued their message yet (TrySetPlace), under mu.
	sending map[localKey]int
	dead    []chan struct{}
	once    []sync.Once
}

// NewLocalNetwork returns n connected in-process transports, one per rank.
func NewLocalNetwork(n int, opts LocalOptions) []*LocalTransport {
	if opts.Alloc == nil {
		opts.Alloc = memory.DefaultAllocator
	}
	ln := &localNet{opts: opts, qs: make(map[localKey]*localQueue), drop: make([]func(int, uint64, *Message) bool, n),
		dead: make([]chan struct{}, n), once: make([]sync.Once, n)}
	ts := make([]*LocalTransport, n)
	for i := range ts {
		ln.dead[i] = make(chan struct{})
		ts[i] = &LocalTransport{net: ln, rank: i}
	}
	return ts
}

// PeerExited reports whether peer's transport was closed (its "process"
// is gone).
func (t *LocalTransport) PeerExited(peer int) bool {
	return peer >= 0 && peer < len(t.net.dead) && isClosed(t.net.dead[peer])
}

// LinkErr returns errPeerClosed once peer's transport was closed.
func (t *LocalTransport) LinkErr(peer int) error {
	if t.PeerExited(peer) {
		return errPeerClosed
	}
	return nil
}

// Rank implements Transport.
func (t *LocalTransport) Rank() int { return t.rank }

// Size implements Transport.
func (t *LocalTransport) Size() int { return len(t.net.dead) }

// SameNode implements Transport.
func (t *LocalTransport) SameNode(peer int) bool {
	if n := t.net.opts.Nodes; n != nil {
		return peer >= 0 && peer < len(n) && n[peer] == n[t.rank]
	}
	return t.net.opts.SameNode
}

// NodeOf names the node of rank p (Nodes, or one node for all with
// SameNode, or one node per rank).
func (t *LocalTransport) NodeOf(p int) string {
	switch {
	case t.net.opts.Nodes != nil && p >= 0 && p < len(t.net.opts.Nodes):
		return fmt.Sprint("node", t.net.opts.Nodes[p])
	case t.net.opts.SameNode:
		return "node"
	}
	return fmt.Sprint("rank", p)
}

// Close marks this rank as gone: its pending and future receives fail, and
// peers waiting for a message from it fail once its queued messages are
// consumed. Queued messages addressed to it are released.
func (t *LocalTransport) Close() error {
	ln := t.net
	ln.once[t.rank].Do(func() {
		close(ln.dead[t.rank])
		ln.mu.Lock()
		for k, q := range ln.qs {
			if k.to == t.rank {
				for _, m := range q.msgs {
					m.Release()
				}
				q.msgs = nil
			}
		}
		ln.mu.Unlock()
	})
	return nil
}

// localPlace is one SetPlace: fn, and order, held by a Send from its call
// of fn until its message is queued, so that fn sees the messages in the
// order they are queued.
type localPlace struct {
	fn    PlaceFunc
	order sync.Mutex
}

func (ln *localNet) queue(k localKey) *localQueue {
	q := ln.qs[k]
	if q == nil {
		q = &localQueue{notify: make(chan struct{})}
		ln.qs[k] = q
	}
	return q
}

func isClosed(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// Send implements Transport: one copy into a 64-byte aligned allocation.
func (t *LocalTransport) Send(ctx context.Context, to int, tag uint64, header []byte, bufs [][]byte) error {
	ln := t.net
	if to < 0 || to >= len(ln.dead) {
		return fmt.Errorf("local transport: send to rank %d of %d", to, len(ln.dead))
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if isClosed(ln.dead[t.rank]) {
		return errPeerClosed
	}
	if isClosed(ln.dead[to]) {
		return errPeerClosed
	}
	k := localKey{t.rank, to, tag}
	ln.mu.Lock()
	place := ln.place[k]
	if ln.sending == nil {
		ln.sending = map[localKey]int{}
	}
	ln.sending[k]++ // until enqueue
	ln.mu.Unlock()
	if place != nil {
		place.order.Lock()
		defer place.order.Unlock()
		lens := make([]uint64, len(bufs))
		for i, b := range bufs {
			lens[i] = uint64(len(b))
		}
		if out, release := place.fn(header, lens); samePlaces(out, bufs) {
			for i, b := range bufs {
				copy(out[i], b)
			}
			return ln.enqueue(t.rank, to, tag, NewMessage(append([]byte(nil), header...), out, release))
		} else if release != nil {
			release()
		}
	}
	total := int64(0)
	for _, b := range bufs {
		total += align64(int64(len(b)))
	}
	var mem []byte
	if total > 0 {
		mem = ln.opts.Alloc.Allocate(int(total))
	}
	out := make([][]byte, len(bufs))
	off := int64(0)
	for i, b := range bufs {
		n := int64(len(b))
		out[i] = mem[off : off+n : off+n]
		copy(out[i], b)
		off += align64(n)
	}
	h := append([]byte(nil), header...)
	alloc := ln.opts.Alloc
	m := NewMessage(h, out, func() {
		if mem != nil {
			alloc.Free(mem)
		}
	})
	return ln.enqueue(t.rank, to, tag, m)
}

// enqueue delivers m to rank to's queue for (from, tag), ending the Send
// that counted itself in sending.
func (ln *localNet) enqueue(from, to int, tag uint64, m *Message) error {
	ln.mu.Lock()
	k := localKey{from, to, tag}
	if n := ln.sending[k]; n > 1 {
		ln.sending[k] = n - 1
	} else {
		delete(ln.sending, k) // also for a message not sent through Send (tests)
	}
	if isClosed(ln.dead[to]) {
		ln.mu.Unlock()
		m.Release()
		return errPeerClosed
	}
	if drop := ln.drop[to]; drop != nil && drop(from, tag, m) {
		ln.mu.Unlock()
		return nil
	}
	q := ln.queue(k)
	q.msgs = append(q.msgs, m)
	close(q.notify)
	q.notify = make(chan struct{})
	ln.mu.Unlock()
	return nil
}

// Recv implements Transport.
func (t *LocalTransport) Recv(ctx context.Context, from int, tag uint64) (*Message, error) {
	ln := t.net
	if from < 0 || from >= len(ln.dead) {
		return nil, fmt.Errorf("local transport: receive from rank %d of %d", from, len(ln.dead))
	}
	k := localKey{from, t.rank, tag}
	for {
		if isClosed(ln.dead[t.rank]) {
			return nil, errPeerClosed
		}
		ln.mu.Lock()
		q := ln.queue(k)
		if len(q.msgs) > 0 {
			m := q.msgs[0]
			q.msgs[0] = nil
			q.msgs = q.msgs[1:]
			ln.mu.Unlock()
			return m, nil
		}
		wait := q.notify
		ln.mu.Unlock()
		select {
		case <-wait:
		case <-ln.dead[from]:
			ln.mu.Lock()
			empty := len(ln.queue(k).msgs) == 0
			ln.mu.Unlock()
			if empty {
				return nil, errPeerClosed
			}
		case <-ln.dead[t.rank]:
			return nil, errPeerClosed
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// SetDrop lets the communicator consume messages of aborted collectives on
// arrival, as Mesh.SetDrop. fn runs under the network's lock.
func (t *LocalTransport) SetDrop(fn func(from int, tag uint64, m *Message) bool) {
	t.net.mu.Lock()
	t.net.drop[t.rank] = fn
	t.net.mu.Unlock()
}

// DropQueued hands the messages queued for this rank that satisfy pred
// to fn, as Mesh.DropQueued.
func (t *LocalTransport) DropQueued(pred func(tag uint64, m *Message) bool, fn func(from int, m *Message)) {
	type dropped struct {
		from int
		m    *Message
	}
	var out []dropped
	t.net.mu.Lock()
	for k, q := range t.net.qs {
		if k.to != t.rank {
			continue
		}
		kept := q.msgs[:0]
		for _, m := range q.msgs {
			if pred(k.tag, m) {
				out = append(out, dropped{k.from, m})
			} else {
				kept = append(kept, m)
			}
		}
		clear(q.msgs[len(kept):])
		q.msgs = kept
	}
	t.net.mu.Unlock()
	for _, d := range out {
		fn(d.from, d.m)
	}
}

func align64(n int64) int64 { return (n + 63) &^ 63 }

// SetPlace implements placer: messages from peer with tag land where fn
// says (their bytes copied there at Send, as a socket would).
func (t *LocalTransport) SetPlace(peer int, tag uint64, fn PlaceFunc) {
	ln := t.net
	ln.mu.Lock()
	defer ln.mu.Unlock()
	ln.setPlace(localKey{peer, t.rank, tag}, fn)
}

// TrySetPlace is SetPlace when no message from peer with tag is queued
// for this rank or being sent to it (a Send that looked up the placement
// before this call and has not queued its message); it reports whether it
// installed fn.
func (t *LocalTransport) TrySetPlace(peer int, tag uint64, fn PlaceFunc) bool {
	ln := t.net
	k := localKey{peer, t.rank, tag}
	ln.mu.Lock()
	defer ln.mu.Unlock()
	if q := ln.qs[k]; ln.sending[k] > 0 || (q != nil && len(q.msgs) > 0) {
		return false
	}
	ln.setPlace(k, fn)
	return true
}

// setPlace sets (fn nil: removes) the placement of k; under mu.
func (ln *localNet) setPlace(k localKey, fn PlaceFunc) {
	if fn == nil {
		delete(ln.place, k)
		return
	}
	if ln.place == nil {
		ln.place = map[localKey]*localPlace{}
	}
	ln.place[k] = &localPlace{fn: fn}
}

// samePlaces reports whether out has one slice of each length of bufs.
func samePlaces(out, bufs [][]byte) bool {
	if out == nil || len(out) != len(bufs) {
		return false
	}
	for i, b := range bufs {
		if len(out[i]) != len(b) {
			return false
		}
	}
	return true
}
