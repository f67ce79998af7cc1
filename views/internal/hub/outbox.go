package hub

import (
	"runtime"
	"sync"

	"github.com/rankhub/rankhub/comm"
	"github.com/rankhub/rankhub/views/internal/proto"
)

// outbox writes a connection's frames in the order they were queued, one
// writer at a time: its own goroutine, or a goroutine that may wait on the
// peer and finds it idle (writeNow: a client submitting tasks, after its
// turn of the hub), so that no reader goroutine, and no holder of the hub's
// turn, ever blocks on a slow peer (a reader that blocks stops reading, and
// its peer's heartbeats go unseen). Frames queued together go in one write.
type outbox struct {
	c       *comm.Conn
	mu      sync.Mutex
	q       []*comm.Frame
	alt     []func(*comm.Frame, error) *comm.Frame // per frame of q: what to send instead if it is too large for a frame (given the frame and why)
	keep    []any                                  // what the queued frames' buffers alias (bulk arrays): held until written
	after   []func()                               // run once the queued frames are written
	writing bool                                   // a goroutine is writing q's frames (it writes those queued meanwhile too)
	failed  bool                                   // a write failed: nothing more is written
	// spare* are the slices of the last batch written, emptied, for the
	// next one (no allocation per batch).
	spareQ     []*comm.Frame
	spareAlt   []func(*comm.Frame, error) *comm.Frame
	spareKeep  []any
	spareAfter []func()
	wake       chan struct{}
	onErr      func(error) // the write failed (nil: the connection's reader notices)

	listed bool // in the hub's list of outboxes to see to after its turn (under the turn)
}

// maxSpare is the largest batch whose queues an outbox keeps for the next.
const maxSpare = 256

// newOutbox starts c's outbox goroutine, counted in wg; it ends when c closes.
func newOutbox(c *comm.Conn, wg *sync.WaitGroup, onErr func(error)) *outbox {
	o := &outbox{c: c, wake: make(chan struct{}, 1), onErr: onErr}
	wg.Add(1)
	go func() {
		defer wg.Done()
		o.run()
	}()
	return o
}

// push queues a frame for the outbox's goroutine; it never blocks. alt
// makes what goes instead if the frame is too large to send. keep stays
// reachable until the frame is written (a frame's buffers do not keep
// arena memory alive).
func (o *outbox) push(f *comm.Frame, alt func(*comm.Frame, error) *comm.Frame, keep ...any) {
	o.enqueue([]*comm.Frame{f}, []func(*comm.Frame, error) *comm.Frame{alt}, keep, nil)
	o.kick()
}

// enqueue queues frames (alts: one per frame, or nil) and what they alias;
// after, if set, runs once they are written. Nothing is written until
// kick or writeNow.
func (o *outbox) enqueue(fs []*comm.Frame, alts []func(*comm.Frame, error) *comm.Frame, keep []any, after func()) {
	o.mu.Lock()
	o.q = append(o.q, fs...)
	if alts == nil {
		alts = make([]func(*comm.Frame, error) *comm.Frame, len(fs))
	}
	o.alt = append(o.alt, alts...)
	o.keep = append(o.keep, keep...)
	if after != nil {
		o.after = append(o.after, after)
	}
	o.mu.Unlock()
}

// kick has the outbox's goroutine write what is queued.
func (o *outbox) kick() {
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

// writeNow writes what is queued on this goroutine, unless another one is
// writing already (it writes these frames too, after its own).
func (o *outbox) writeNow() { o.drain() }

func (o *outbox) run() {
	for {
		select {
		case <-o.wake:
		case <-o.c.Done():
			return
		}
		if !o.drain() {
			return // the connection failed; its reader ends the peer
		}
	}
}

// drain writes the queued frames until none is left, unless another
// goroutine is at it; false once a write failed.
func (o *outbox) drain() bool {
	o.mu.Lock()
	if o.writing || o.failed {
		ok := !o.failed
		o.mu.Unlock()
		return ok
	}
	o.writing = true
	for len(o.q) > 0 || len(o.after) > 0 {
		q, alt, keep, after := o.q, o.alt, o.keep, o.after
		o.q, o.alt, o.keep, o.after = o.spareQ, o.spareAlt, o.spareKeep, o.spareAfter
		o.spareQ, o.spareAlt, o.spareKeep, o.spareAfter = nil, nil, nil, nil
		o.mu.Unlock()
		tooLarge := func(i int, err error) *comm.Frame {
			if alt[i] == nil {
				return nil
			}
			return alt[i](q[i], err)
		}
		if len(q) > 0 {
			if err := proto.SendEach(o.c, q, tooLarge); err != nil {
				o.mu.Lock()
				o.failed, o.writing = true, false
				o.mu.Unlock()
				if o.onErr != nil {
					o.onErr(err)
				}
				return false
			}
		}
		runtime.KeepAlive(keep)
		for _, fn := range after {
			fn()
		}
		clear(q) // nothing written stays reachable from the spares
		clear(alt)
		clear(keep)
		clear(after)
		o.mu.Lock()
		if cap(q) <= maxSpare && cap(keep) <= maxSpare && cap(after) <= maxSpare { // a burst's queues are not kept for ever
			o.spareQ, o.spareAlt, o.spareKeep, o.spareAfter = q[:0], alt[:0], keep[:0], after[:0]
		}
	}
	o.writing = false
	o.mu.Unlock()
	return true
}
