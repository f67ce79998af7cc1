package views

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"
)

// Client is a driver's handle on the hub. On rank 0 it talks to the hub in
// process.
type Client struct {
	hub *Hub
}

// NewClient returns a client of an in-process hub.
func NewClient(h *Hub) *Client { return &Client{hub: h} }

// IDs returns the ids of the live engines, sorted.
func (c *Client) IDs() []int { return c.hub.IDs() }

// WaitForEngines blocks until n engines are registered.
func (c *Client) WaitForEngines(ctx context.Context, n int) error {
	return c.hub.WaitForEngines(ctx, n)
}

// Engines describes every engine the hub has seen.
func (c *Client) Engines() []EngineInfo { return c.hub.Engines() }

// DirectView returns a view over the engines live now (evaluated at creation).
func (c *Client) DirectView() (*DirectView, error) {
	ids := c.IDs()
	if len(ids) == 0 {
		return nil, ErrNoEngines
	}
	return &DirectView{c: c, targets: ids}, nil
}

// View returns a view over the given engine ids; a negative id counts from
// the end of the sorted live ids (-1 is the last engine). A single id makes
// a single-engine view whose Get returns the value itself.
func (c *Client) View(ids ...int) (*DirectView, error) {
	if len(ids) == 0 {
		return c.DirectView()
	}
	live := c.IDs()
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
	return &DirectView{c: c, targets: targets, single: len(ids) == 1}, nil
}

// Shutdown stops every engine and the hub.
func (c *Client) Shutdown(timeout time.Duration) { c.hub.Shutdown(timeout) }

// DirectView addresses a fixed set of engines (IPython's DirectView).
type DirectView struct {
	c       *Client
	targets []int
	single  bool
}

// Targets returns the engine ids of the view.
func (v *DirectView) Targets() []int { return append([]int(nil), v.targets...) }

func (v *DirectView) submit(kind int, name string, args []any) (*AsyncResult, error) {
	if args == nil {
		args = []any{}
	}
	ctrl, bufs, err := encodeValues(kind, name, args)
	if err != nil {
		return nil, err
	}
	tasks, err := v.c.hub.submit(v.targets, kind, name, ctrl, bufs)
	if err != nil {
		return nil, err
	}
	return &AsyncResult{tasks: tasks, single: v.single}, nil
}

// Apply calls the registered function name with args on every engine of the
// view, without waiting. Arguments that cannot be sent are an error here,
// before anything is sent.
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

// Execute runs a shell command on every engine of the view; each engine's
// stdout, stderr and exit status are in the result's Metadata.
func (v *DirectView) Execute(command string) (*AsyncResult, error) {
	return v.submit(kindExecute, command, nil)
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
	return v.submit(kindPull, "", args)
}

// Clear empties the namespaces of the view's engines (control channel: it
// does not wait behind queued tasks).
func (v *DirectView) Clear() error { return v.c.hub.control(v.targets, ctlClear, nil) }

// Abort makes the given results' tasks that have not started fail with
// ErrAborted. It goes through the control channel.
func (v *DirectView) Abort(rs ...*AsyncResult) error {
	byEngine := map[int][]uint64{}
	for _, r := range rs {
		for _, t := range r.tasks {
			if !t.isDone() {
				byEngine[t.engineID] = append(byEngine[t.engineID], t.id)
			}
		}
	}
	for id, ids := range byEngine {
		if err := v.c.hub.control([]int{id}, ctlAbort, ids); err != nil {
			return err
		}
	}
	return nil
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
