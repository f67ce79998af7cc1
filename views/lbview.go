package views

import (
	"fmt"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
)

// TaskOptions are a load-balanced view's per-task flags (IPython's
// view.set_flags / temp_flags).
type TaskOptions struct {
	// After: start only once these results are done (time dependency).
	After Dependency
	// Follow: run on the engine where these results ran (location dependency).
	Follow Dependency
	// Timeout: fail with ErrDependencyTimeout if the dependencies are not met
	// (or no engine is free) this long after submission. Zero: no limit.
	Timeout time.Duration
	// Retries: how many times a task that failed, or whose engine died, is
	// re-submitted, to another engine when there is one.
	Retries int
	// Require: run only on an engine that has each of these, as an engine
	// label given at its start (rankhub start|engines --label gpu), a name
	// in its namespace, or a registered function (IPython's @require).
	Require []string
	// Depend: run only on an engine where the registered predicate of this
	// name, func(*Context) bool (or (bool, error)), returns true (IPython's
	// @depend). An engine that fails Require or Depend is not tried again
	// for the task; when every live engine failed them, the task fails with
	// ErrImpossibleDependency naming what each lacked.
	Depend string
}

// LoadBalancedView sends each task to one engine chosen by the hub's
// scheduler (IPython's LoadBalancedView).
type LoadBalancedView struct {
	c       *Client
	targets []int // nil: any engine
	opts    TaskOptions
}

// LoadBalancedView returns a view whose tasks go to any live engine, or to
// the given ones (resolved as in View).
func (c *Client) LoadBalancedView(ids ...int) (*LoadBalancedView, error) {
	if len(ids) == 0 {
		return &LoadBalancedView{c: c}, nil
	}
	t, err := resolve(c.IDs(), ids)
	if err != nil {
		return nil, err
	}
	return &LoadBalancedView{c: c, targets: t}, nil
}

// With returns a copy of the view with other task options.
func (v *LoadBalancedView) With(o TaskOptions) *LoadBalancedView {
	w := *v
	w.opts = o
	return &w
}

// Options returns the view's task options.
func (v *LoadBalancedView) Options() TaskOptions { return v.opts }

func (v *LoadBalancedView) spec() (lbSpec, error) {
	if v.opts.Retries < 0 || v.opts.Timeout < 0 {
		return lbSpec{}, fmt.Errorf("views: TaskOptions: negative retries or timeout")
	}
	return lbSpec{Targets: v.targets, After: v.opts.After, Follow: v.opts.Follow, Timeout: v.opts.Timeout, Retries: v.opts.Retries,
		Require: v.opts.Require, Depend: v.opts.Depend}, nil
}

// Apply queues one call of the registered function; the scheduler runs it on
// one engine once its dependencies are met. Get returns the value itself.
func (v *LoadBalancedView) Apply(name string, args ...any) (*AsyncResult, error) {
	spec, err := v.spec()
	if err != nil {
		return nil, err
	}
	if args == nil {
		args = []any{}
	}
	ctrl, bufs, err := encodeValues(kindApply, name, args)
	if err != nil {
		return nil, err
	}
	tasks, err := v.c.submitLB(kindApply, name, []payload{{Ctrl: ctrl, Bufs: bufs, Keep: args}}, spec)
	if err != nil {
		return nil, err
	}
	return &AsyncResult{b: v.c.b, tasks: tasks, single: true}, nil
}

// ApplySync is Apply followed by Get with no timeout.
func (v *LoadBalancedView) ApplySync(name string, args ...any) (any, error) {
	ar, err := v.Apply(name, args...)
	if err != nil {
		return nil, err
	}
	return ar.Get(-1)
}

// Execute queues a shell command on one engine.
func (v *LoadBalancedView) Execute(command string) (*AsyncResult, error) {
	spec, err := v.spec()
	if err != nil {
		return nil, err
	}
	ctrl, bufs, err := encodeValues(kindExecute, command, []any{})
	if err != nil {
		return nil, err
	}
	tasks, err := v.c.submitLB(kindExecute, command, []payload{{Ctrl: ctrl, Bufs: bufs}}, spec)
	if err != nil {
		return nil, err
	}
	return &AsyncResult{b: v.c.b, tasks: tasks, single: true}, nil
}

// Map calls the registered function on the elements of the sequences,
// chunkSize elements per task (0: one chunk per engine); each
// chunk is scheduled independently, so fast engines take more chunks. Get
// returns the results in order; Ordered and Unordered iterate them as they
// arrive.
func (v *LoadBalancedView) Map(name string, chunkSize int, seqs ...any) (*AsyncResult, error) {
	spec, err := v.spec()
	if err != nil {
		return nil, err
	}
	n, err := seqsLen(seqs)
	if err != nil {
		return nil, err
	}
	if chunkSize <= 0 {
		k := len(v.targets)
		if k == 0 {
			k = max(len(v.c.IDs()), 1)
		}
		chunkSize = max((n+k-1)/k, 1)
	}
	var ps []payload
	var parts []any
	for lo := 0; lo < n; lo += chunkSize {
		hi := min(lo+chunkSize, n)
		args := make([]any, len(seqs))
		for i, s := range seqs {
			p, err := sliceRows(s, lo, hi)
			if err != nil {
				return nil, err
			}
			args[i] = p
			parts = append(parts, p)
		}
		ctrl, bufs, err := encodeValues(kindMap, name, args)
		if err != nil {
			return nil, fmt.Errorf("chunk at element %d: %w", lo, err)
		}
		ps = append(ps, payload{Ctrl: ctrl, Bufs: bufs, Keep: args})
	}
	var tasks []*task
	if len(ps) > 0 {
		tasks, err = v.c.submitLB(kindMap, name, ps, spec)
		if err != nil {
			return nil, err
		}
	}
	releaseParts(parts)
	return &AsyncResult{b: v.c.b, tasks: tasks, mapped: true}, nil
}

// MapSync is Map followed by Get with no timeout.
func (v *LoadBalancedView) MapSync(name string, chunkSize int, seqs ...any) ([]any, error) {
	ar, err := v.Map(name, chunkSize, seqs...)
	if err != nil {
		return nil, err
	}
	out, err := ar.Get(-1)
	l, _ := out.([]any)
	return l, err
}

// releaseParts drops this package's references to Arrow slices it made;
// their memory stays alive as long as encoded payloads point at it.
func releaseParts(parts []any) {
	for _, p := range parts {
		switch x := p.(type) {
		case arrow.Array:
			x.Release()
		case arrow.RecordBatch:
			x.Release()
		case *arrow.Chunked:
			x.Release()
		}
	}
}
