package views

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// ownTasks are the tasks one Client submitted that may not have finished
// (IPython's client.outstanding), in submission order. Adding costs an
// append: finished tasks at the front are dropped then (a client that
// waits for each call before the next keeps none), the others when the
// list has doubled since the last sweep, and when it is read. Only a
// task's id and done channel are kept, never the task: a finished task's
// value (a pulled array) must not outlive its purge and the caller's last
// reference because the list has not been swept yet (the hub's pulls from
// engines on other nodes kept every array until 1024 tasks had been
// submitted).
type ownTasks struct {
	mu      sync.Mutex // a leaf
	ts      []ownTask
	sweepAt int
}

type ownTask struct {
	id   uint64
	done chan struct{}
}

func (o ownTask) isDone() bool {
	select {
	case <-o.done:
		return true
	default:
		return false
	}
}

func (o *ownTasks) add(ts []*task) {
	o.mu.Lock()
	k := 0
	for k < len(o.ts) && o.ts[k].isDone() {
		k++
	}
	o.ts = o.ts[k:]
	for _, t := range ts {
		o.ts = append(o.ts, ownTask{t.ID, t.Done})
	}
	if len(o.ts) >= o.sweepAt {
		o.sweepLocked()
		o.sweepAt = max(1024, 2*len(o.ts))
	}
	o.mu.Unlock()
}

// sweepLocked drops the finished tasks. mu is held.
func (o *ownTasks) sweepLocked() {
	k := 0
	for _, t := range o.ts {
		if !t.isDone() {
			o.ts[k] = t
			k++
		}
	}
	clear(o.ts[k:])
	o.ts = o.ts[:k]
}

// list returns the unfinished tasks as stand-ins holding the id and the
// done channel (what Outstanding and Wait read).
func (o *ownTasks) list() []*task {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.sweepLocked()
	out := make([]*task, len(o.ts))
	for i, t := range o.ts {
		out[i] = &task{ID: t.id, Done: t.done}
	}
	return out
}

func (c *Client) submitDirect(kind int, name string, targets []int, p []payload, accepted func()) ([]*task, error) {
	ts, err := c.b.submitDirect(kind, name, targets, p, accepted)
	if err == nil {
		c.own.add(ts)
	}
	return ts, err
}

func (c *Client) submitLB(kind int, name string, p []payload, spec lbSpec) ([]*task, error) {
	ts, err := c.b.submitLB(kind, name, p, spec)
	if err == nil {
		c.own.add(ts)
	}
	return ts, err
}

// Outstanding lists the message ids of this client's tasks that have not
// finished, in submission order (IPython's client.outstanding). Tasks of
// other clients of the same hub are not in it.
func (c *Client) Outstanding() []uint64 {
	ts := c.own.list()
	out := make([]uint64, len(ts))
	for i, t := range ts {
		out[i] = t.ID
	}
	return out
}

// Wait waits until the given results, or without any every task this
// client submitted so far, have finished, or timeout passes (negative: no
// limit); it reports whether they all finished (IPython's client.wait).
// Other clients' tasks are never waited for.
func (c *Client) Wait(timeout time.Duration, results ...*AsyncResult) bool {
	var ts []*task
	if len(results) == 0 {
		ts = c.own.list()
	}
	for _, r := range results {
		ts = append(ts, r.tasks...)
	}
	return (&AsyncResult{tasks: ts}).Wait(timeout)
}

// Done is closed once every task of the result has finished: select on it
// together with other results, contexts and timers.
func (r *AsyncResult) Done() <-chan struct{} {
	r.doneOnce.Do(func() {
		r.doneCh = make(chan struct{})
		left := atomic.Int64{}
		left.Store(int64(len(r.tasks)) + 1)
		finished := func(*task) {
			if left.Add(-1) == 0 {
				close(r.doneCh)
			}
		}
		for _, t := range r.tasks {
			t.Watch(finished)
		}
		finished(nil) // the +1: no close before every watcher is in place
	})
	return r.doneCh
}

// ByEngine waits up to timeout (negative: no limit) and returns each
// engine's value by engine id (IPython's get_dict). A remote failure is
// returned as by Get; a result with two tasks on one engine (a load-balanced
// map) has no such form and is an error naming the engine.
func (r *AsyncResult) ByEngine(timeout time.Duration) (map[int]any, error) {
	if !r.Wait(timeout) {
		return nil, ErrTimeout
	}
	if err := r.errors(); err != nil {
		return nil, err
	}
	out := make(map[int]any, len(r.tasks))
	for _, t := range r.tasks {
		id := int(t.Eng.Load())
		if _, dup := out[id]; dup {
			return nil, fmt.Errorf("views: ByEngine: engine %d ran more than one task of this result (messages %v)", id, r.MsgIDs())
		}
		v := r.value(t)
		if r.mapped {
			v = chunkElems(v)
		}
		out[id] = v
	}
	return out, nil
}
