package views

import (
	"runtime"
	"sync"

	"github.com/rankhub/rankhub/comm"
)

// outbox writes frames to a connection from its own goroutine, so that no
// reader goroutine, and not the hub's run, ever blocks on a slow peer (a
// reader that blocks stops reading, and its peer's heartbeats go unseen).
// Frames queued together go in one write.
type outbox struct {
	c     *comm.Conn
	mu    sync.Mutex
	q     []*comm.Frame
	alt   []func(error) *comm.Frame // per frame of q: what to send if it is too large for a frame
	keep  []any                     // what the queued frames' buffers alias (bulk arrays): held until written
	after []func()                  // run once the queued frames are written
	wake  chan struct{}
	onErr func(error) // the write failed (nil: the connection's reader notices)
}

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

// push queues a frame; it never blocks. alt makes what goes instead if
// the frame is too large to send. keep stays reachable until the frame is
// written (a frame's buffers do not keep arena memory alive).
func (o *outbox) push(f *comm.Frame, alt func(error) *comm.Frame, keep ...any) {
	o.pushBatch([]*comm.Frame{f}, []func(error) *comm.Frame{alt}, keep, nil)
}

// pushBatch queues frames (alts: one per frame, or nil) and what they
// alias; after, if set, runs once they are written.
func (o *outbox) pushBatch(fs []*comm.Frame, alts []func(error) *comm.Frame, keep []any, after func()) {
	o.mu.Lock()
	o.q = append(o.q, fs...)
	if alts == nil {
		alts = make([]func(error) *comm.Frame, len(fs))
	}
	o.alt = append(o.alt, alts...)
	o.keep = append(o.keep, keep...)
	if after != nil {
		o.after = append(o.after, after)
	}
	o.mu.Unlock()
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

func (o *outbox) run() {
	for {
		select {
		case <-o.wake:
		case <-o.c.Done():
			return
		}
		o.mu.Lock()
		q, alt, keep, after := o.q, o.alt, o.keep, o.after
		o.q, o.alt, o.keep, o.after = nil, nil, nil, nil
		o.mu.Unlock()
		tooLarge := func(i int, err error) *comm.Frame {
			if alt[i] == nil {
				return nil
			}
			return alt[i](err)
		}
		if len(q) > 0 {
			if err := sendEach(o.c, q, tooLarge); err != nil {
				if o.onErr != nil {
					o.onErr(err)
				}
				return // the connection failed; its reader ends the peer
			}
		}
		runtime.KeepAlive(keep)
		for _, fn := range after {
			fn()
		}
	}
}
