package codec

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// Received arrays whose memory is not the Go heap's (arena pages mapped
// from another rank, read-only copies, frames protected in place) are
// handed to the garbage collector (GCOwned): their memory goes back to its
// owner once nothing reachable refers to it. The collector does not see
// that memory's pressure, so collections are started for it (CollectBulk),
// rate-limited. views' bulk path (views/internal/bulk) and the read-only copies of the
// codec (arrow.go) share them.

// bulkGCBytes is how much may be received on the bulk path between
// collections started for it.
const bulkGCBytes = 256 << 20

var (
	BulkLive    atomic.Int64  // bytes of received bulk arrays not yet returned
	bulkSinceGC atomic.Int64  // bytes received since the last collection started for them, less those given back since without one
	gcEpoch     atomic.Uint64 // collections started for them
	gcPending   atomic.Bool   // a collection for them is scheduled
	gcLast      atomic.Int64  // when the last one started (UnixNano)
)

// bulkGCEvery is the least time between collections started for bulk
// arrays: requests in between are served by one collection at its end.
const bulkGCEvery = 100 * time.Millisecond

// CollectBulk starts a collection when received bulk arrays are alive, so
// that those no longer reachable go back to their owners: at once, or at
// most one per bulkGCEvery.
func CollectBulk() {
	if BulkLive.Load() == 0 || !gcPending.CompareAndSwap(false, true) {
		return
	}
	wait := time.Duration(gcLast.Load() + int64(bulkGCEvery) - time.Now().UnixNano())
	go func() {
		if wait > 0 {
			time.Sleep(wait)
		}
		gcLast.Store(time.Now().UnixNano())
		// The epoch first: an array given back from here on was counted
		// before the reset and must not be taken off the new count.
		gcEpoch.Add(1)
		bulkSinceGC.Store(0)
		gcPending.Store(false)
		runtime.GC()
	}()
}

// GCOwned returns an array over a's memory that the garbage collector
// manages: a is released once none of the returned array's buffers is
// reachable. Release on the returned array does nothing. a is taken over.
func GCOwned(a arrow.Array) arrow.Array {
	out, _ := GCOwnedHold(a)
	return out
}

// GCOwnedHold is GCOwned that also returns the hold on a: h.Release gives
// a back at once, for a caller that knows nothing can reach the returned
// array any more (nothing but it ever saw it).
func GCOwnedHold(a arrow.Array) (arrow.Array, *GCHold) {
	d := a.Data()
	h := &GCHold{a: a, epoch: gcEpoch.Load()}
	bufs := make([]*memory.Buffer, len(d.Buffers()))
	for i, b := range d.Buffers() {
		if b == nil {
			continue
		}
		nb := memory.NewBufferBytes(b.Bytes())
		h.bytes += int64(b.Len())
		h.n.Add(1)
		runtime.AddCleanup(nb, (*GCHold).drop, h)
		bufs[i] = nb
	}
	BulkLive.Add(h.bytes)
	if bulkSinceGC.Add(h.bytes) >= bulkGCBytes {
		CollectBulk()
	}
	nd := array.NewData(d.DataType(), d.Len(), bufs, nil, d.NullN(), d.Offset())
	out := array.MakeFromData(nd)
	nd.Release()
	// The array object counts too: a Go slice of its values (Float64Values)
	// aliases the memory without reaching any buffer object, but the array
	// holds it while the caller does. An extra reference keeps one stray
	// Release from detaching the array from its buffers.
	out.Retain()
	if od, ok := out.Data().(*array.Data); ok {
		h.n.Add(1)
		runtime.AddCleanup(od, (*GCHold).drop, h)
	}
	if h.n.Load() == 0 {
		h.Release()
	}
	return out, h
}

// GCHold is a received array, released when its last buffer object is
// collected, or earlier by whoever knows the array can no longer be
// reached (the namespace, for a value nothing else saw: Seen).
type GCHold struct {
	once  sync.Once
	n     atomic.Int64
	bytes int64
	a     arrow.Array
	epoch uint64 // gcEpoch when received
	// seen says who besides the namespace may hold the array: HeldAlone
	// (nobody), HeldByAnswer (the engine's answer to a pull, until
	// written), HeldByUser (user code: only the collector knows when it
	// let go).
	seen atomic.Int32
}

// Values of GCHold.Seen, in increasing exposure.
const (
	HeldAlone int32 = iota
	HeldByAnswer
	HeldByUser
)

// See records that who may hold h's array (it never goes back down).
func (h *GCHold) See(who int32) {
	for {
		s := h.seen.Load()
		if s >= who || h.seen.CompareAndSwap(s, who) {
			return
		}
	}
}

// Seen is who may hold h's array besides the namespace.
func (h *GCHold) Seen() int32 { return h.seen.Load() }

func (h *GCHold) drop() {
	if h.n.Add(-1) == 0 {
		h.release(false)
	}
}

// Release gives the array back now (once). Its bytes no longer wait for
// a collection: when none was started since it arrived, they stop
// counting towards the next one (bulkGCBytes). An engine whose pushes
// replace each other gives every one back this way, and started a
// collection every 256 MiB pushed for nothing (traced on 3 x 1 at 64 MiB:
// 7-14 ms each, beside the next push's transfer).
func (h *GCHold) Release() { h.release(true) }

func (h *GCHold) release(early bool) {
	h.once.Do(func() {
		h.a.Release()
		BulkLive.Add(-h.bytes)
		if early && gcEpoch.Load() == h.epoch {
			uncount(h.bytes)
		}
	})
}

// uncount takes n bytes off bulkSinceGC, down to zero at most (a
// collection may have reset it meanwhile).
func uncount(n int64) {
	for {
		c := bulkSinceGC.Load()
		if bulkSinceGC.CompareAndSwap(c, max(0, c-n)) {
			return
		}
	}
}
