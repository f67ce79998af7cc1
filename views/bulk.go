package views

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/rankhub/rankhub/collective"
)

// Bulk path: push, scatter and Set from a driver in the hub's process, and
// pull, gather and Get answered by engines, move large numeric Arrow arrays
// over the job's collective mesh (package collective) instead of inside the
// hub's frames: on one node as arena descriptors (the engine maps the
// sender's pages read-only, no byte copied; an array not yet in the arena
// is copied into it once, for all the engines of the call), across nodes
// written straight from the Arrow buffers and read into pooled buffers.
// The frame carries a reference (source rank, tag) in the array's place.
// Received arrays are read-only, as all Arrow arrays are; their memory goes
// back to its owner when the Go garbage collector finds them unreachable
// (or when every buffer is Released), so views users need not Release.
//
// Tags: the bulk path uses user tags from BulkTagBase up on the world
// communicator; user code sending on the world keeps below it.

// BulkTagBase is the first world-communicator user tag the views' bulk
// path uses; tags below it are free for user Send/Recv.
const BulkTagBase = collective.MaxTag/2 + 1

// bulkThreshold is the data size from which an array takes the bulk path.
var bulkThreshold = 1 << 20

// bulkTimeout bounds the wait for an array whose reference has arrived: it
// was sent before the reference, so only a dead or stuck sender delays it.
const bulkTimeout = time.Minute

// bulkReady bounds the wait for the mesh before a send; without it by then
// the arrays travel in frames.
const bulkReady = 10 * time.Second

// errBulkSend marks a failed send on the bulk path: the caller encodes the
// payload again without it.
var errBulkSend = errors.New("views: bulk send failed")

// bulkTags hands out the tags of one sending side.
type bulkTags struct{ n atomic.Uint64 }

func (t *bulkTags) next() uint64 {
	return BulkTagBase + t.n.Add(1)%(collective.MaxTag-BulkTagBase)
}

// bulkSender sends arrays to the world ranks `to` for one encoding.
type bulkSender struct {
	ctx   context.Context
	world *collective.Comm
	to    []int
	tags  *bulkTags
}

// bulkable reports whether a takes the bulk path: a numeric array (what
// collective moves) of at least bulkThreshold data bytes.
func bulkable(a arrow.Array) bool {
	switch a.DataType().ID() {
	case arrow.INT8, arrow.INT16, arrow.INT32, arrow.INT64, arrow.UINT8, arrow.UINT16, arrow.UINT32, arrow.UINT64,
		arrow.FLOAT32, arrow.FLOAT64:
	default:
		return false
	}
	w := a.DataType().(arrow.FixedWidthDataType).BitWidth() / 8
	return a.Len()*w >= bulkThreshold
}

// send sends a to every receiver and returns the tag they receive it with.
func (s *bulkSender) send(a arrow.Array) (uint64, error) {
	tag := s.tags.next()
	if err := s.world.SendTo(s.ctx, s.to, tag, a); err != nil {
		return 0, fmt.Errorf("%w: to ranks %v: %w", errBulkSend, s.to, err)
	}
	return tag, nil
}

// bulkReceiver receives the arrays a frame refers to.
type bulkReceiver struct {
	ctx   context.Context
	world func(ctx context.Context) (*collective.Comm, error)
}

func (r *bulkReceiver) recv(from int, tag uint64) (arrow.Array, error) {
	ctx, cancel := context.WithTimeout(r.ctx, bulkTimeout)
	defer cancel()
	w, err := r.world(ctx)
	if err != nil {
		return nil, fmt.Errorf("views: bulk receive: %w", err)
	}
	a, err := w.Recv(ctx, from, tag)
	if err != nil {
		return nil, fmt.Errorf("views: bulk receive from rank %d: %w", from, err)
	}
	return gcOwned(a), nil
}

// gcOwned returns an array over a's memory whose hold on a ends when the
// garbage collector finds the returned array's buffers unreachable, or
// when all of them are Released, whichever comes first. a is taken over.
func gcOwned(a arrow.Array) arrow.Array {
	h := &gcHold{a: a}
	k := &gcKeeper{h: h}
	runtime.AddCleanup(k, func(h *gcHold) { h.release() }, h)
	d := a.Data()
	bufs := make([]*memory.Buffer, len(d.Buffers()))
	for i, b := range d.Buffers() {
		if b != nil {
			bufs[i] = memory.NewBufferWithAllocator(b.Bytes(), k)
			k.n.Add(1)
		}
	}
	nd := array.NewData(d.DataType(), d.Len(), bufs, nil, d.NullN(), d.Offset())
	for _, b := range bufs {
		if b != nil {
			b.Release() // nd holds them
		}
	}
	out := array.MakeFromData(nd)
	nd.Release()
	return out
}

// gcHold is the received array and whether it was released.
type gcHold struct {
	once sync.Once
	a    arrow.Array
}

func (h *gcHold) release() { h.once.Do(func() { h.a.Release() }) }

// gcKeeper is the allocator of a gcOwned array's buffers: they reference
// it, so it lives as long as any of them.
type gcKeeper struct {
	h *gcHold
	n atomic.Int64
}

// Allocate is never used: the buffers are immutable.
func (k *gcKeeper) Allocate(size int) []byte { return make([]byte, size) }

// Reallocate is never used: the buffers are immutable.
func (k *gcKeeper) Reallocate(size int, b []byte) []byte {
	nb := make([]byte, size)
	copy(nb, b)
	return nb
}

// Free is called when a buffer is Released to zero.
func (k *gcKeeper) Free([]byte) {
	if k.n.Add(-1) == 0 {
		k.h.release()
	}
}
