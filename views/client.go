package views

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/rankhub/rankhub/views/internal/codec"
)

// Client is a driver's handle on the hub: in process on rank 0 (NewClient),
// or from outside the job through the connection file (Connect). Both have
// the same API.
type Client struct {
	b   backend
	own ownTasks // this client's unfinished tasks
}

// NewClient returns a client of an in-process hub.
func NewClient(h *Hub) *Client { return &Client{b: localBackend{h.h}} }

// IDs returns the ids of the live engines, sorted. Ids are never reused
// after an engine leaves.
func (c *Client) IDs() []int { return c.b.ids() }

// WaitForEngines blocks until n engines are registered.
func (c *Client) WaitForEngines(ctx context.Context, n int) error {
	return c.b.waitForEngines(ctx, n)
}

// Engines describes every engine the hub has seen (nil if the hub cannot be
// reached).
func (c *Client) Engines() []EngineInfo {
	e, _ := c.b.engines()
	return e
}

// Done is closed when the hub shut down (or, for an outside client, when the
// connection to it ended).
func (c *Client) Done() <-chan struct{} { return c.b.done() }

// Close ends an outside client's connection; the job goes on. A no-op in
// process.
func (c *Client) Close() error { return c.b.close() }

// DirectView returns a view over the engines live now (evaluated at creation).
func (c *Client) DirectView() (*DirectView, error) {
	ids := c.IDs()
	if len(ids) == 0 {
		return nil, ErrNoEngines
	}
	return &DirectView{c: c, targets: ids}, nil
}

// resolve turns view indices into engine ids: a non-negative value is an
// engine id, a negative one counts from the end of the sorted live ids (-1
// is the last engine).
func resolve(live, ids []int) ([]int, error) {
	targets := make([]int, len(ids))
	for i, id := range ids {
		if id < 0 {
			if -id > len(live) {
				return nil, fmt.Errorf("%w: index %d with %d engines", ErrNoSuchEngine, id, len(live))
			}
			id = live[len(live)+id]
		}
		if k := sort.SearchInts(live, id); k == len(live) || live[k] != id {
			return nil, fmt.Errorf("%w: %d (live engines: %v)", ErrNoSuchEngine, id, live)
		}
		targets[i] = id
	}
	return targets, nil
}

// View returns a view over the given engine ids; a negative id counts from
// the end of the sorted live ids (-1 is the last engine). A single id makes
// a single-engine view whose Get returns the value itself.
func (c *Client) View(ids ...int) (*DirectView, error) {
	if len(ids) == 0 {
		return c.DirectView()
	}
	targets, err := resolve(c.IDs(), ids)
	if err != nil {
		return nil, err
	}
	return &DirectView{c: c, targets: targets, single: len(ids) == 1}, nil
}

// Slice returns a view over the live engines at positions [start:stop:step]
// of the sorted ids, as Python slices a list: stop is exclusive, negative
// start and stop count from the end, out-of-range bounds are clamped (so
// Slice(0, math.MaxInt, 2) is every other engine), a negative step walks
// backwards. The ids are fixed when the view is made.
func (c *Client) Slice(start, stop, step int) (*DirectView, error) {
	live := c.IDs()
	n := len(live)
	if step == 0 {
		return nil, fmt.Errorf("views: slice step cannot be zero")
	}
	norm := func(i int) int {
		if i < 0 {
			i += n
		}
		return i
	}
	askStart, askStop := start, stop
	start, stop = norm(start), norm(stop)
	var ids []int
	if step > 0 {
		start, stop = max(start, 0), min(stop, n)
		for i := start; i < stop; i += step {
			ids = append(ids, live[i])
		}
	} else {
		start, stop = min(start, n-1), max(stop, -1)
		for i := start; i > stop; i += step {
			ids = append(ids, live[i])
		}
	}
	if len(ids) == 0 {
		return nil, fmt.Errorf("%w: slice [%d:%d:%d] of %d engines (ids %v) is empty", ErrNoEngines, askStart, askStop, step, n, live)
	}
	return &DirectView{c: c, targets: ids}, nil
}

// QueueStatus reports each live engine's queue and the number of
// load-balanced tasks still waiting in the hub (IPython's queue_status).
func (c *Client) QueueStatus() (engines []QueueStatus, unassigned int, err error) {
	return c.b.queueStatus()
}

// ResultStatus splits message ids into pending and completed (all the
// hub's results when ids is empty).
func (c *Client) ResultStatus(ids ...uint64) (pending, completed []uint64, err error) {
	if len(ids) == 0 {
		ids = nil
	}
	return c.b.resultStatus(ids)
}

// Purge drops the given finished results from the hub's history; results
// still outstanding are kept. It returns how many were dropped.
func (c *Client) Purge(ids ...uint64) (int, error) {
	if len(ids) == 0 {
		return 0, nil
	}
	return c.b.purge(ids)
}

// PurgeAll drops every finished result from the hub's history.
func (c *Client) PurgeAll() (int, error) { return c.b.purge(nil) }

// History lists the message ids the hub holds, oldest first.
func (c *Client) History() ([]uint64, error) { return c.b.history() }

// Result returns a handle on earlier tasks by message id, also from a
// client that did not submit them (IPython's client.get_result).
func (c *Client) Result(ids ...uint64) (*AsyncResult, error) {
	tasks, err := c.b.fetch(ids)
	if err != nil {
		return nil, err
	}
	return &AsyncResult{b: c.b, tasks: tasks, single: len(ids) == 1}, nil
}

// Abort makes the given tasks fail with ErrAborted if they have not started.
func (c *Client) Abort(ids ...uint64) error { return c.b.abort(ids) }

// Shutdown stops every engine and the hub (waiting up to timeout for the
// engines to leave).
func (c *Client) Shutdown(timeout time.Duration) error { return c.b.shutdown(timeout) }

// DirectView addresses a fixed set of engines (IPython's DirectView).
type DirectView struct {
	c       *Client
	targets []int
	single  bool
}

// Targets returns the engine ids of the view.
func (v *DirectView) Targets() []int { return append([]int(nil), v.targets...) }

// On returns the same view aimed at other engines, for one call or more
// (IPython's targets= argument); ids resolve as in Client.View.
func (v *DirectView) On(ids ...int) (*DirectView, error) { return v.c.View(ids...) }

func (v *DirectView) submit(kind int, name string, args []any) (*AsyncResult, error) {
	if args == nil {
		args = []any{}
	}
	var bulk *bulkSender
	if kind == kindPush {
		bulk = v.c.b.bulkFor(v.targets)
	}
	ctrl, bufs, err := codec.EncodeBulk(bulkOut(bulk), kind, name, args)
	if err != nil {
		return nil, err
	}
	fl := flushOnAccept(bulk)
	tasks, err := v.c.submitDirect(kind, name, v.targets, []payload{{Ctrl: ctrl, Bufs: bufs, Keep: args}}, fl.startFunc())
	if err != nil {
		return nil, err // deferred sender: nothing was sent
	}
	fl.wait()
	return &AsyncResult{b: v.c.b, tasks: tasks, single: v.single}, nil
}

// submitEach sends each target its own arguments.
func (v *DirectView) submitEach(kind int, name string, args [][]any) ([]*task, error) {
	ps := make([]payload, len(args))
	bulks := make([]*bulkSender, len(args))
	for i, a := range args {
		if kind == kindPush {
			bulks[i] = v.c.b.bulkFor(v.targets[i : i+1])
		}
		ctrl, bufs, err := codec.EncodeBulk(bulkOut(bulks[i]), kind, name, a)
		if err != nil {
			return nil, fmt.Errorf("engine %d: %w", v.targets[i], err)
		}
		ps[i] = payload{Ctrl: ctrl, Bufs: bufs, Keep: a}
	}
	fl := flushOnAccept(bulks...)
	tasks, err := v.c.submitDirect(kind, name, v.targets, ps, fl.startFunc())
	if err != nil {
		return nil, err // deferred senders: nothing was sent
	}
	fl.wait()
	return tasks, nil
}

// flusher sends deferred bulk senders' arrays once the tasks that refer
// to them exist: the hub calls its start (startFunc) when it accepted
// them, before it writes their frames, so that the arrays go down the mesh
// beside the task frames instead of after them (issue 15: on 3 x 2 the
// five task frames took 1-10 ms of the driver's goroutine before the array
// could start); a call that fails never calls it, and nothing is sent.
type flusher struct {
	senders []*bulkSender
	done    chan struct{}
}

// flushOnAccept is the flusher of senders (nil ones ignored).
func flushOnAccept(senders ...*bulkSender) *flusher {
	f := &flusher{}
	for _, s := range senders {
		if s != nil {
			f.senders = append(f.senders, s)
		}
	}
	return f
}

// startFunc is the call that begins sending on its own goroutine (nil
// when there is nothing to send).
func (f *flusher) startFunc() func() {
	if len(f.senders) == 0 {
		return nil
	}
	return func() {
		f.done = make(chan struct{})
		go func() {
			defer close(f.done)
			for _, s := range f.senders {
				s.Flush()
			}
		}()
	}
}

// wait returns once the arrays were handed to the mesh (at once when
// start was never called).
func (f *flusher) wait() {
	if f.done != nil {
		<-f.done
	}
}

// Apply calls the registered function name with args on every engine of the
// view, without waiting. Arguments that cannot be sent are an error here,
// before anything is sent. Ref(name) passes an engine-local value.
func (v *DirectView) Apply(name string, args ...any) (*AsyncResult, error) {
	return v.submit(kindApply, name, args)
}

// ApplySync is Apply followed by Get with no timeout.
func (v *DirectView) ApplySync(name string, args ...any) (any, error) {
	ar, err := v.Apply(name, args...)
	if err != nil {
		return nil, err
	}
	return ar.Get(-1)
}

// Map calls the registered function on the elements of the sequences
// (slices, Arrow arrays of equal length), partitioned over the view's
// engines in contiguous blocks; Get returns the results in order.
func (v *DirectView) Map(name string, seqs ...any) (*AsyncResult, error) {
	n, err := seqsLen(seqs)
	if err != nil {
		return nil, err
	}
	parts := make([][]any, len(v.targets))
	bounds := partition(n, len(v.targets))
	var made []any
	for i := range v.targets {
		for _, s := range seqs {
			p, err := sliceRows(s, bounds[i], bounds[i+1])
			if err != nil {
				return nil, err
			}
			parts[i] = append(parts[i], p)
			made = append(made, p)
		}
	}
	tasks, err := v.submitEach(kindMap, name, parts)
	releaseParts(made)
	if err != nil {
		return nil, err
	}
	return &AsyncResult{b: v.c.b, tasks: tasks, mapped: true}, nil
}

// MapSync is Map followed by Get with no timeout.
func (v *DirectView) MapSync(name string, seqs ...any) ([]any, error) {
	ar, err := v.Map(name, seqs...)
	if err != nil {
		return nil, err
	}
	out, err := ar.Get(-1)
	l, _ := out.([]any)
	return l, err
}

// Execute runs a shell command (/bin/sh -c) on every engine of the view;
// each engine's stdout, stderr and exit status are in the result's Metadata.
func (v *DirectView) Execute(command string) (*AsyncResult, error) {
	return v.submit(kindExecute, command, nil)
}

// Run reads a script file here and runs its text as an executable on every
// engine (a "#!" line picks the interpreter, else /bin/sh). Output and exit
// status are in the Metadata, as for Execute.
func (v *DirectView) Run(path string) (*AsyncResult, error) {
	text, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("views: run: %w", err)
	}
	return v.submit(kindRun, path, []any{string(text)})
}

// Push binds names to values in the namespace of every engine of the view.
func (v *DirectView) Push(ns map[string]any) (*AsyncResult, error) {
	return v.submit(kindPush, "", []any{ns})
}

// Pull reads names from every engine; each value is a []any of the names' values.
func (v *DirectView) Pull(names ...string) (*AsyncResult, error) {
	args := make([]any, len(names))
	for i, n := range names {
		args[i] = n
	}
	ar, err := v.submit(kindPull, "", args)
	if err == nil && len(names) == 1 {
		ar.reduce = v.oneName // IPython's pull('x'): [v, v, ...]
	}
	return ar, err
}

// oneName turns the answers to a pull of one name, a one-element list per
// engine, into one value per engine (the value itself on a single-engine
// view).
func (v *DirectView) oneName(vals []any) (any, error) {
	out := make([]any, len(vals))
	for i, x := range vals {
		l, _ := x.([]any)
		if len(l) == 1 {
			out[i] = l[0]
		}
	}
	if v.single {
		return out[0], nil
	}
	return out, nil
}

// Set binds one name on every engine (IPython's view['name'] = value) and
// waits for it.
func (v *DirectView) Set(name string, value any) error {
	ar, err := v.Push(map[string]any{name: value})
	if err != nil {
		return err
	}
	_, err = ar.Get(-1)
	return err
}

// Get reads one name from every engine (IPython's view['name']): one value
// per engine, or the value itself on a single-engine view.
func (v *DirectView) Get(name string) (any, error) {
	ar, err := v.submit(kindPull, "", []any{name})
	if err != nil {
		return nil, err
	}
	ar.reduce = v.oneName
	return ar.Get(-1)
}

// Delete removes names from the namespaces of the view's engines.
func (v *DirectView) Delete(names ...string) (*AsyncResult, error) {
	args := make([]any, len(names))
	for i, n := range names {
		args[i] = n
	}
	return v.submit(kindDelete, "", args)
}

// Scatter partitions seq by rows (a Go slice, an Arrow array, record or
// chunked array) into contiguous blocks, one per engine in target order,
// and binds each block to name there. Arrow blocks are zero-copy slices.
func (v *DirectView) Scatter(name string, seq any) (*AsyncResult, error) {
	n, err := seqsLen([]any{seq})
	if err != nil {
		return nil, err
	}
	bounds := partition(n, len(v.targets))
	args := make([][]any, len(v.targets))
	var made []any
	for i := range v.targets {
		p, err := sliceRows(seq, bounds[i], bounds[i+1])
		if err != nil {
			return nil, err
		}
		args[i] = []any{map[string]any{name: p}}
		made = append(made, p)
	}
	tasks, err := v.submitEach(kindPush, "", args)
	releaseParts(made)
	if err != nil {
		return nil, err
	}
	return &AsyncResult{b: v.c.b, tasks: tasks}, nil
}

// Gather pulls name from every engine in target order and concatenates the
// parts: Go slices into one slice, Arrow arrays into an *arrow.Chunked and
// records into an arrow.Table (both without copying).
func (v *DirectView) Gather(name string) (*AsyncResult, error) {
	ar, err := v.submit(kindPull, "", []any{name})
	if err != nil {
		return nil, err
	}
	ar.reduce = func(vals []any) (any, error) {
		parts := make([]any, len(vals))
		for i, x := range vals {
			l, _ := x.([]any)
			if len(l) != 1 {
				return nil, fmt.Errorf("%w: engine %d sent %d values", ErrCannotGather, v.targets[i], len(l))
			}
			parts[i] = l[0]
		}
		return concat(parts)
	}
	return ar, nil
}

// Clear empties the namespaces of the view's engines (control channel: it
// does not wait behind queued tasks).
func (v *DirectView) Clear() error { return v.c.b.control(v.targets, ctlClear) }

// Shutdown stops the view's engines (control channel). The hub and the
// other engines go on; Client.Shutdown stops everything.
func (v *DirectView) Shutdown() error { return v.c.b.control(v.targets, ctlShutdown) }

// Abort makes the given results' tasks that have not started fail with
// ErrAborted. It goes through the control channel.
func (v *DirectView) Abort(rs ...*AsyncResult) error {
	var ids []uint64
	for _, r := range rs {
		for _, t := range r.tasks {
			if !t.IsDone() {
				ids = append(ids, t.ID)
			}
		}
	}
	if len(ids) == 0 {
		return nil
	}
	return v.c.b.abort(ids)
}

// FormatOutputs renders each task's stdout and stderr as IPython's %px does:
// "[stdout:N] line" for each line.
func FormatOutputs(r *AsyncResult) string {
	var b strings.Builder
	for _, m := range r.Metadata() {
		for _, s := range []struct{ name, text string }{{"stdout", m.Stdout}, {"stderr", m.Stderr}} {
			if s.text == "" {
				continue
			}
			for _, line := range strings.Split(strings.TrimRight(s.text, "\n"), "\n") {
				fmt.Fprintf(&b, "[%s:%d] %s\n", s.name, m.EngineID, line)
			}
		}
	}
	return b.String()
}
