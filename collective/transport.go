package collective

import (
	"context"
	"sync"
)

// Transport is one rank's view of the point-to-point links of a
// communicator. comm provides the production implementation; NewLocalNetwork
// provides an in-process one for goroutine ranks and tests.
//
// Send and Recv must be safe for concurrent use. Messages between one pair of
// ranks with one tag are delivered in the order they were sent.
type Transport interface {
	// Rank is this rank's number in [0, Size()).
	Rank() int
	// Size is the number of ranks.
	Size() int
	// Send writes header and bufs to rank `to` as one message, without
	// copying bufs into an intermediate buffer. When Send returns the
	// transport no longer references header or bufs.
	Send(ctx context.Context, to int, tag uint64, header []byte, bufs [][]byte) error
	// Recv returns the next message from `from` with `tag`. The caller owns
	// the message and must Release it.
	Recv(ctx context.Context, from int, tag uint64) (*Message, error)
	// SameNode reports whether peer shares this rank's host, so that shared
	// memory arenas can be used between them.
	SameNode(peer int) bool
}

// PlaceFunc chooses where the buffers of a message land, from its header
// and its buffers' lengths, before any byte of them arrives: one slice per
// buffer, of exactly its length, and what to call when the message is
// released (or lost); nil: the transport's memory. It runs on the
// transport's receiving goroutine and must not block.
type PlaceFunc func(header []byte, lens []uint64) (bufs [][]byte, release func())

// placer is an optional ability of a Transport (Mesh, LocalTransport):
// messages from peer with tag that arrive after SetPlace land where fn
// says; SetPlace(peer, tag, nil) ends it.
//
// fn is called for every later arrival of (peer, tag) that has buffers, in
// the order they are queued, before the previous one's bytes are
// necessarily in place; a message it declines (nil) is queued in the
// transport's memory. What arrived before SetPlace, or was being received
// while it ran, is queued without fn ever seeing it: a caller that must
// know every arrival (the chain relay's order check) uses TrySetPlace,
// which installs fn only when there is no such message and says whether it
// did, decided under the lock the arrival path takes.
type placer interface {
	SetPlace(peer int, tag uint64, fn PlaceFunc)
	TrySetPlace(peer int, tag uint64, fn PlaceFunc) bool
}

// setPlace sets (fn nil: removes) the placement of key in *m.
func setPlace[K comparable](m *map[K]PlaceFunc, key K, fn PlaceFunc) {
	if fn == nil {
		delete(*m, key)
		return
	}
	if *m == nil {
		*m = map[K]PlaceFunc{}
	}
	(*m)[key] = fn
}

// Message is one received message. Bufs usually alias one receive
// allocation; Release returns it to the transport. Release is idempotent.
type Message struct {
	Header []byte
	Bufs   [][]byte

	once    sync.Once
	release func()
}

// NewMessage builds a received message whose memory is returned by release
// (nil: nothing to return). Transports call it.
func NewMessage(header []byte, bufs [][]byte, release func()) *Message {
	return &Message{Header: header, Bufs: bufs, release: release}
}

// Release returns the message's memory to its owner. It may be called more
// than once; only the first call has an effect.
func (m *Message) Release() {
	if m == nil {
		return
	}
	m.once.Do(func() {
		if m.release != nil {
			m.release()
		}
		m.Header, m.Bufs = nil, nil
	})
}

// dropper is implemented by transports that let a communicator take back
// messages of aborted collectives, so that their arena ranges are released
// at once instead of at Close (Mesh implements it).
type dropper interface {
	// SetDrop installs fn, called for every arriving message before it is
	// queued; when fn returns true it consumed the message.
	SetDrop(fn func(from int, tag uint64, m *Message) bool)
	// DropQueued hands every queued message that satisfies pred (which
	// runs under the transport's lock) to fn.
	DropQueued(pred func(tag uint64, m *Message) bool, fn func(from int, m *Message))
}
