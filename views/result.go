package views

import (
	"context"
	"errors"
	"iter"
	"reflect"
	"sync"
	"time"

	"github.com/rankhub/rankhub/views/internal/codec"
)

// Metadata is what is known about one task, as in IPython's AsyncResult.metadata.
// Times are ordered: Submitted ≤ Started ≤ Completed ≤ Received (Started and
// Completed are stamped on the engine's clock).
type Metadata struct {
	MsgID     uint64
	EngineID  int // -1 while a load-balanced task waits for an engine
	Submitted time.Time
	Started   time.Time // on the engine
	Completed time.Time // on the engine
	Received  time.Time // by this client (an outside client's own clock)
	Stdout    string
	Stderr    string
	// StdoutOmitted and StderrOmitted count the bytes an engine left out of
	// the middle of a command's long output (Stdout and Stderr hold the
	// first and last MiB around a line that says so); 0: nothing left out.
	StdoutOmitted int64
	StderrOmitted int64
	ExitCode      int    // for shell commands
	Status        string // "pending", "ok", "error"
	Error         error
	After         []uint64 // the time dependencies of a load-balanced task
	Follow        []uint64 // its location dependencies
}

// AsyncResult is the handle of a submission to one or more engines.
type AsyncResult struct {
	b      backend
	tasks  []*task
	single bool // the view had one target given as an int: Get returns the value itself
	mapped bool // each task's value is a chunk ([]any) of a map: Get flattens them
	// reduce, if set, turns the tasks' values into the result (gather).
	reduce func(vals []any) (any, error)

	doneOnce sync.Once
	doneCh   chan struct{} // Done's, made on first use
}

// value is what the caller receives of t's value: for a client in the
// hub's process a detached copy (internal/codec/detach.go), so that its writes never reach
// the hub's record.
func (r *AsyncResult) value(t *task) any {
	if _, local := r.b.(localBackend); local {
		var frame [][]byte
		if t.Frame != nil {
			frame = t.Frame.Buffers
		}
		return codec.Detach(t.Value, frame)
	}
	return t.Value
}

// MsgIDs returns the message ids, one per task, in target order.
func (r *AsyncResult) MsgIDs() []uint64 {
	out := make([]uint64, len(r.tasks))
	for i, t := range r.tasks {
		out[i] = t.ID
	}
	return out
}

// EngineIDs returns the engine of each task, in target order (-1 for a
// load-balanced task not yet on an engine).
func (r *AsyncResult) EngineIDs() []int {
	out := make([]int, len(r.tasks))
	for i, t := range r.tasks {
		out[i] = int(t.Eng.Load())
	}
	return out
}

// Len is the number of tasks.
func (r *AsyncResult) Len() int { return len(r.tasks) }

// Ready reports whether every task has finished.
func (r *AsyncResult) Ready() bool {
	for _, t := range r.tasks {
		if !t.IsDone() {
			return false
		}
	}
	return true
}

// Progress is the number of tasks finished so far.
func (r *AsyncResult) Progress() int {
	n := 0
	for _, t := range r.tasks {
		if t.IsDone() {
			n++
		}
	}
	return n
}

// Sent is closed once every task's message has been handed to the operating
// system (IPython's track=True): from then on the caller may modify the
// buffers of the arguments it passed, which were sent without a copy.
func (r *AsyncResult) Sent() <-chan struct{} {
	if len(r.tasks) == 1 {
		return r.tasks[0].Sent
	}
	ch := make(chan struct{})
	go func() {
		for _, t := range r.tasks {
			<-t.Sent
		}
		close(ch)
	}()
	return ch
}

// Wait waits until every task has finished or timeout passes (negative: no
// limit). It reports whether the result is ready; it never fails.
func (r *AsyncResult) Wait(timeout time.Duration) bool {
	if timeout < 0 {
		for _, t := range r.tasks {
			<-t.Done
		}
		return true
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for _, t := range r.tasks {
		select {
		case <-t.Done:
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
		case <-t.Done:
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
		if t.Err != nil {
			return false, nil
		}
	}
	return true, nil
}

// Get waits up to timeout (negative: no limit) and returns the result: the
// value itself for a single-engine view, the flattened elements for a map,
// else a []any in target order. A remote failure is a *RemoteError; several
// are a *CompositeError. ErrTimeout if the timeout passes first.
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

// GetEngine waits up to timeout for the task that ran on engine id and
// returns its value (IPython's ar.get_dict()[id]).
func (r *AsyncResult) GetEngine(id int, timeout time.Duration) (any, error) {
	if !r.Wait(timeout) {
		return nil, ErrTimeout
	}
	for _, t := range r.tasks {
		if int(t.Eng.Load()) == id {
			return r.value(t), t.Err
		}
	}
	return nil, ErrNoSuchEngine
}

// Values is Get that always returns one value per task.
func (r *AsyncResult) Values(timeout time.Duration) ([]any, error) {
	if !r.Wait(timeout) {
		return nil, ErrTimeout
	}
	vals := make([]any, len(r.tasks))
	for i, t := range r.tasks {
		vals[i] = r.value(t)
	}
	return vals, r.errors()
}

func (r *AsyncResult) collect() (any, error) {
	if err := r.errors(); err != nil {
		return nil, err
	}
	vals := make([]any, len(r.tasks))
	for i, t := range r.tasks {
		vals[i] = r.value(t)
	}
	switch {
	case r.reduce != nil:
		return r.reduce(vals)
	case r.mapped:
		var out []any
		for _, v := range vals {
			out = append(out, chunkElems(v)...)
		}
		return out, nil
	case r.single && len(r.tasks) == 1:
		return vals[0], nil
	}
	return vals, nil
}

// chunkElems lists the elements of a map chunk's result.
func chunkElems(v any) []any {
	if l, ok := v.([]any); ok {
		return l
	}
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Slice {
		return []any{v}
	}
	out := make([]any, rv.Len())
	for i := range out {
		out[i] = rv.Index(i).Interface()
	}
	return out
}

func (r *AsyncResult) errors() error {
	var errs []*RemoteError
	var other error
	for _, t := range r.tasks {
		if t.Err == nil {
			continue
		}
		var re *RemoteError
		if errors.As(t.Err, &re) {
			errs = append(errs, re)
		} else if other == nil {
			other = t.Err
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

// Ordered yields the results in submission order, each as soon as it and
// those before it are done (for a map: element by element). A failed task
// yields its error once.
func (r *AsyncResult) Ordered() iter.Seq2[any, error] {
	return func(yield func(any, error) bool) {
		for _, t := range r.tasks {
			<-t.Done
			if !r.yieldTask(t, yield) {
				return
			}
		}
	}
}

// Unordered yields the results as they arrive. Each task's completion is
// delivered once through a channel: waking costs O(1), not a select over
// every pending task.
func (r *AsyncResult) Unordered() iter.Seq2[any, error] {
	return func(yield func(any, error) bool) {
		arrived := make(chan *task, len(r.tasks)) // never blocks a watcher
		for _, t := range r.tasks {
			t.Watch(func(t *task) { arrived <- t })
		}
		for range r.tasks {
			if !r.yieldTask(<-arrived, yield) {
				return
			}
		}
	}
}

func (r *AsyncResult) yieldTask(t *task, yield func(any, error) bool) bool {
	if t.Err != nil {
		return yield(nil, t.Err)
	}
	if r.mapped {
		for _, v := range chunkElems(r.value(t)) {
			if !yield(v, nil) {
				return false
			}
		}
		return true
	}
	return yield(r.value(t), nil)
}

// Abort makes this result's tasks that have not started fail with
// ErrAborted (through the control channel, ahead of queued work).
func (r *AsyncResult) Abort() error {
	if r.b == nil {
		return ErrShutdown
	}
	var ids []uint64
	for _, t := range r.tasks {
		if !t.IsDone() {
			ids = append(ids, t.ID)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	return r.b.abort(ids)
}

// Metadata returns what is known of each task, in target order.
func (r *AsyncResult) Metadata() []Metadata {
	out := make([]Metadata, len(r.tasks))
	for i, t := range r.tasks {
		m := Metadata{MsgID: t.ID, EngineID: int(t.Eng.Load()), Submitted: t.Submitted, Status: "pending", After: t.After, Follow: t.Follow}
		if t.IsDone() {
			m.Started, m.Completed, m.Received = t.Started, t.Completed, t.Received
			m.Stdout, m.Stderr, m.ExitCode, m.Error = t.Stdout, t.Stderr, t.Exit, t.Err
			m.StdoutOmitted, m.StderrOmitted = t.Omitted[0], t.Omitted[1]
			m.Status = "ok"
			if t.Err != nil {
				m.Status = "error"
			}
		}
		out[i] = m
	}
	return out
}

// Elapsed is the time from the first submission until the last result
// arrived, or until now while some are outstanding.
func (r *AsyncResult) Elapsed() time.Duration {
	var first, last time.Time
	for _, t := range r.tasks {
		if first.IsZero() || t.Submitted.Before(first) {
			first = t.Submitted
		}
	}
	for _, t := range r.tasks {
		if !t.IsDone() {
			return time.Since(first)
		}
		if t.Received.After(last) {
			last = t.Received
		}
	}
	return last.Sub(first)
}

// WallTime is Elapsed once the result is ready (IPython's wall_time); zero before.
func (r *AsyncResult) WallTime() time.Duration {
	if !r.Ready() {
		return 0
	}
	return r.Elapsed()
}

// SerialTime is the sum of the tasks' run times on their engines (IPython's
// serial_time): compare it with WallTime to see the parallel speed-up.
func (r *AsyncResult) SerialTime() time.Duration {
	var s time.Duration
	for _, t := range r.tasks {
		if t.IsDone() && !t.Started.IsZero() {
			s += t.Completed.Sub(t.Started)
		}
	}
	return s
}
