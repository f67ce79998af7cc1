package views

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/rankhub/rankhub/comm"
)

// task is one message to one engine and its outcome.
type task struct {
	id        uint64
	engineID  int
	kind      int
	name      string
	submitted time.Time
	done      chan struct{}

	// Written once before done is closed; read only after.
	started, completed, received time.Time
	value                        any
	err                          error
	stdout, stderr               string
	exit                         int
	frame                        *comm.Frame
	once                         sync.Once
}

func newTask(id uint64, e *engineRec, kind int, name string, now time.Time) *task {
	return &task{id: id, engineID: e.id, kind: kind, name: name, submitted: now, done: make(chan struct{})}
}

func (t *task) finish(v any, err error, received time.Time) {
	t.once.Do(func() {
		t.value, t.err, t.received = v, err, received
		close(t.done)
	})
}

func (t *task) isDone() bool {
	select {
	case <-t.done:
		return true
	default:
		return false
	}
}

// Metadata is what is known about one task, as in IPython's AsyncResult.metadata.
type Metadata struct {
	MsgID     uint64
	EngineID  int
	Submitted time.Time
	Started   time.Time // on the engine
	Completed time.Time // on the engine
	Received  time.Time // by the hub
	Stdout    string
	Stderr    string
	ExitCode  int    // for shell commands
	Status    string // "pending", "ok", "error"
	Error     error
}

// AsyncResult is the handle of a submission to one or more engines.
type AsyncResult struct {
	tasks  []*task
	single bool // the view had one target given as an int: Get returns the value itself
}

// MsgIDs returns the message ids, one per task, in target order.
func (r *AsyncResult) MsgIDs() []uint64 {
	out := make([]uint64, len(r.tasks))
	for i, t := range r.tasks {
		out[i] = t.id
	}
	return out
}

// EngineIDs returns the engine of each task, in target order.
func (r *AsyncResult) EngineIDs() []int {
	out := make([]int, len(r.tasks))
	for i, t := range r.tasks {
		out[i] = t.engineID
	}
	return out
}

// Ready reports whether every task has finished.
func (r *AsyncResult) Ready() bool {
	for _, t := range r.tasks {
		if !t.isDone() {
			return false
		}
	}
	return true
}

// Wait waits until every task has finished or timeout passes (negative: no
// limit). It reports whether the result is ready; it never fails.
func (r *AsyncResult) Wait(timeout time.Duration) bool {
	if timeout < 0 {
		for _, t := range r.tasks {
			<-t.done
		}
		return true
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for _, t := range r.tasks {
		select {
		case <-t.done:
		case <-timer.C:
			return r.Ready()
		}
	}
	return true
}

// WaitContext is Wait bound to a context.
func (r *AsyncResult) WaitContext(ctx context.Context) error {
	for _, t := range r.tasks {
		select {
		case <-t.done:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// Successful reports whether every task succeeded; ErrNotReady before that.
func (r *AsyncResult) Successful() (bool, error) {
	if !r.Ready() {
		return false, ErrNotReady
	}
	for _, t := range r.tasks {
		if t.err != nil {
			return false, nil
		}
	}
	return true, nil
}

// Get waits up to timeout (negative: no limit) and returns the result: the
// value itself for a single-engine view, else a []any in target order. A
// remote failure is a *RemoteError; several are a *CompositeError.
func (r *AsyncResult) Get(timeout time.Duration) (any, error) {
	if !r.Wait(timeout) {
		return nil, ErrTimeout
	}
	return r.collect()
}

// GetContext is Get bound to a context.
func (r *AsyncResult) GetContext(ctx context.Context) (any, error) {
	if err := r.WaitContext(ctx); err != nil {
		return nil, err
	}
	return r.collect()
}

// Values is Get that always returns one value per task.
func (r *AsyncResult) Values(timeout time.Duration) ([]any, error) {
	if !r.Wait(timeout) {
		return nil, ErrTimeout
	}
	vals := make([]any, len(r.tasks))
	for i, t := range r.tasks {
		vals[i] = t.value
	}
	return vals, r.errors()
}

func (r *AsyncResult) collect() (any, error) {
	if err := r.errors(); err != nil {
		return nil, err
	}
	if r.single && len(r.tasks) == 1 {
		return r.tasks[0].value, nil
	}
	vals := make([]any, len(r.tasks))
	for i, t := range r.tasks {
		vals[i] = t.value
	}
	return vals, nil
}

func (r *AsyncResult) errors() error {
	var errs []*RemoteError
	var other error
	for _, t := range r.tasks {
		if t.err == nil {
			continue
		}
		var re *RemoteError
		if errors.As(t.err, &re) {
			errs = append(errs, re)
		} else if other == nil {
			other = t.err
		}
	}
	if other != nil {
		return other
	}
	switch len(errs) {
	case 0:
		return nil
	case 1:
		if len(r.tasks) == 1 {
			return errs[0]
		}
	}
	return &CompositeError{Errors: errs}
}

// Metadata returns what is known of each task, in target order.
func (r *AsyncResult) Metadata() []Metadata {
	out := make([]Metadata, len(r.tasks))
	for i, t := range r.tasks {
		m := Metadata{MsgID: t.id, EngineID: t.engineID, Submitted: t.submitted, Status: "pending"}
		if t.isDone() {
			m.Started, m.Completed, m.Received = t.started, t.completed, t.received
			m.Stdout, m.Stderr, m.ExitCode, m.Error = t.stdout, t.stderr, t.exit, t.err
			m.Status = "ok"
			if t.err != nil {
				m.Status = "error"
			}
		}
		out[i] = m
	}
	return out
}

// Elapsed is the time from submission until the last result arrived (or now).
func (r *AsyncResult) Elapsed() time.Duration {
	var first, last time.Time
	for _, t := range r.tasks {
		if first.IsZero() || t.submitted.Before(first) {
			first = t.submitted
		}
		if !t.isDone() {
			return time.Since(first)
		}
		if t.received.After(last) {
			last = t.received
		}
	}
	return last.Sub(first)
}
