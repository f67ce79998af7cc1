// Package bulk is the views' bulk path: push, scatter and Set from a
// driver in the hub's process, and the engines' answers to pull, gather and Get, move large numeric Arrow
// arrays over the job's collective mesh (package collective) instead of
// inside the hub's frames: on one node as arena descriptors (the receiver
// maps the sender's pages read-only, no byte copied; an array not yet in
// the arena is copied into it once, for all the engines of the call),
// across nodes written straight from the Arrow buffers and read into
// pooled buffers; a large array for several engines on other nodes goes
// as a multicast (collective.Multicast: once per node down a chain of
// engines that forward it, then as descriptors inside each node). The
// frame carries (source rank, tag) in the array's
// place; the receiver accepts references only from its peer (the hub's
// rank on an engine, the engine's rank on the hub).
//
// Lifetime: a received array is managed by the garbage collector, like the
// frame-decoded arrays it replaces: its memory goes back to its owner once
// neither the array nor any Arrow object built on its buffers (slices,
// records or chunked arrays holding it) is reachable. Callers should not
// Release it (it carries one extra reference, so a stray Release does not
// detach it). A Go slice taken from it (Float64Values) is valid only while
// the array or one of those objects is reachable. Engines keep values
// dropped from their namespace until no task that could have seen them
// runs and no result that could point at them waits to be written; tasks
// keep their arguments until sent; the hub keeps results until they are
// purged and written to every client. An array a push bound that nothing
// but the namespace (and the engine's own answers to pulls) ever held goes
// back at once when dropped, without a collection (internal/engine/namespace.go): the
// next push of that name lands in the same, already faulted-in memory.
// Arena memory is not Go heap, so the collector does not see its pressure:
// after every bulkGCBytes received (internal/codec/gc.go), and after purges and namespace drops
// of arrays, a collection is started to return what became unreachable.
// A receive over a socket that finds no idle buffer while one that would
// fit is held by a received array (made read-only in place, Protect: the
// collector owns it) runs a collection itself and waits for its cleanups
// (collective.RecvPool): a driver that pulls, uses and drops (and purges)
// arrays in a loop receives each into the buffer of the one before. Below
// collective.AsyncBelow (32 MiB) that wait would cost as much as the
// transfer, so the hub's receiver asks the pool to collect ahead
// (Comm.CollectAhead): collective.AheadTurns buffers take turns and no
// pull waits for a collection. Engines do not ask (their namespace gives a
// replaced push back at once).
//
// Tags: the bulk path uses world user tags from TagBase up; user code
// sending on the world keeps below it.
//
// It imports only the codec inside views (layout_test.go).
package bulk

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/rankhub/rankhub/collective"
	"github.com/rankhub/rankhub/views/internal/codec"
)

// TagBase is the first world-communicator user tag the views' bulk path
// uses; tags below it are free for user Send/Recv (views.BulkTagBase).
const TagBase = collective.MaxTag/2 + 1

// Threshold is the data size from which an array takes the bulk path.
var Threshold = 1 << 20

// Timeout bounds the wait for an array whose reference has arrived: it
// was sent before the reference, so only a dead or unreachable sender
// delays it.
const Timeout = 30 * time.Second

// Ready bounds the wait for the mesh before a send; without it by then
// the arrays travel in frames.
const Ready = 10 * time.Second

// Tags hands out the tags of one sending side (the zero value is ready).
type Tags struct{ n atomic.Uint64 }

func (t *Tags) next() uint64 {
	return TagBase + t.n.Add(1)%(collective.MaxTag-TagBase)
}

// Sender sends arrays to the world ranks `to` for one encoding (it is the
// codec's BulkSender). A deferred sender only hands out tags while
// encoding; Flush sends the
// arrays once the task that refers to them was accepted, so that a call
// that fails (an engine gone, a later part that cannot be encoded) leaves
// nothing queued at engines that will never ask for it.
type Sender struct {
	ctx      context.Context
	world    *collective.Comm
	to       []int
	tags     *Tags
	deferred bool
	pending  []send
}

type send struct {
	tag uint64
	a   arrow.Array
}

// NewSender is a sender from world's rank to the ranks to, with tags from
// tags; it sends each array as the codec hands it over.
func NewSender(ctx context.Context, world *collective.Comm, to []int, tags *Tags) *Sender {
	return &Sender{ctx: ctx, world: world, to: to, tags: tags}
}

// NewDeferredSender is NewSender whose arrays wait for Flush.
func NewDeferredSender(ctx context.Context, world *collective.Comm, to []int, tags *Tags) *Sender {
	return &Sender{ctx: ctx, world: world, to: to, tags: tags, deferred: true}
}

// Send and Rank make a Sender the codec's: only arrays that take the bulk
// path (Bulkable) are sent.
func (s *Sender) Send(a arrow.Array) (uint64, bool) {
	if !Bulkable(a) {
		return 0, false
	}
	return s.send(a)
}

// Rank is the sender's world rank.
func (s *Sender) Rank() int { return s.world.Rank() }

// Bulkable reports whether a takes the bulk path: a numeric array (what
// collective moves) of at least Threshold data bytes.
func Bulkable(a arrow.Array) bool {
	switch a.DataType().ID() {
	case arrow.INT8, arrow.INT16, arrow.INT32, arrow.INT64, arrow.UINT8, arrow.UINT16, arrow.UINT32, arrow.UINT64,
		arrow.FLOAT32, arrow.FLOAT64:
	default:
		return false
	}
	w := a.DataType().(arrow.FixedWidthDataType).BitWidth() / 8
	return a.Len()*w >= Threshold
}

// send sends a to every receiver and returns the tag they receive it with.
// ok is false when no receiver got it (nothing is left behind: the caller
// sends a in the frame). A receiver that could not be reached while others
// were is dead or cut off: its task fails when it waits for the array.
func (s *Sender) send(a arrow.Array) (tag uint64, ok bool) {
	tag = s.tags.next()
	if s.deferred {
		s.pending = append(s.pending, send{tag, a})
		return tag, true
	}
	sent, _ := s.world.Multicast(s.ctx, s.to, tag, a)
	return tag, sent > 0
}

// Flush sends a deferred sender's arrays (nil: nothing). A receiver that
// cannot be reached is dead or cut off: its task fails when it waits for
// the array.
func (s *Sender) Flush() {
	if s == nil {
		return
	}
	for _, p := range s.pending {
		_, _ = s.world.Multicast(s.ctx, s.to, p.tag, p.a)
	}
	s.pending = nil
}

// Receiver receives the arrays a frame refers to, from rank from (it is
// the codec's BulkReceiver).
type Receiver struct {
	ctx   context.Context
	world func(ctx context.Context) (*collective.Comm, error)
	from  int
	// Held, when set, learns each received array's hold (the engine's
	// worker: a value a push binds goes back to its owner when replaced,
	// if nothing else could have seen it; internal/engine/namespace.go).
	Held func(arrow.Array, *codec.GCHold)
}

// NewReceiver is a receiver of the arrays rank from sends on the mesh
// world returns.
func NewReceiver(ctx context.Context, world func(ctx context.Context) (*collective.Comm, error), from int) *Receiver {
	return &Receiver{ctx: ctx, world: world, from: from}
}

// Recv receives the array rank from sent with tag; a reference from
// another rank than the receiver's peer is refused (codec.ErrCorrupt).
func (r *Receiver) Recv(from int, tag uint64) (arrow.Array, error) {
	if from != r.from {
		return nil, fmt.Errorf("%w: a bulk array from rank %d, only rank %d sends here", codec.ErrCorrupt, from, r.from)
	}
	ctx, cancel := context.WithTimeout(r.ctx, Timeout)
	defer cancel()
	w, err := r.world(ctx)
	if err != nil {
		return nil, fmt.Errorf("views: bulk receive: %w", err)
	}
	a, err := w.Recv(ctx, from, tag)
	if err != nil {
		return nil, fmt.Errorf("views: bulk receive from rank %d: %w", from, err)
	}
	// Received over a socket (another node): the receive mapping is made
	// read-only in place; copied once into read-only memory only when it
	// cannot be (a frame on the Go heap).
	// A multicast leader's array lies in its own arena (its node-mates
	// alias it there): seen through a read-only mapping of that arena.
	var h *codec.GCHold
	out := a
	if view, ok := w.ReadOnlyView(a); ok {
		a = view
	} else if !w.Protect(a) {
		if ro, rh := codec.ReadOnlyOfHold(a); ro != nil {
			a.Release()
			out, h = ro, rh
		}
	} else if r.Held == nil {
		// The hub: the driver uses and drops what it pulls, so the
		// pool collects ahead for the pull before (collective.RecvPool).
		// Not on engines, whose namespace gives a replaced push back
		// at once.
		w.CollectAhead(a)
	}
	if h == nil {
		out, h = codec.GCOwnedHold(a)
	}
	if r.Held != nil {
		r.Held(out, h)
	}
	return out, nil
}

// Out is s as the codec takes it (nil stays nil: no bulk path).
func Out(s *Sender) codec.BulkSender {
	if s == nil {
		return nil
	}
	return s
}

// In is r as the codec takes it (nil stays nil: references refused).
func In(r *Receiver) codec.BulkReceiver {
	if r == nil {
		return nil
	}
	return r
}
