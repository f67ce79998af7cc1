package engine

import (
	"context"
	"errors"
	"fmt"
	"github.com/rankhub/rankhub/collective"
	"github.com/rankhub/rankhub/views/internal/codec"
	"github.com/rankhub/rankhub/views/internal/proto"
	"reflect"
	"sort"
	"strings"
	"sync"
)

// Context is passed to registered functions that take it as their first
// parameter: the engine's identity and namespace.
type Context struct {
	context.Context
	EngineID int
	Rank     int
	Host     string
	// NS is the engine's namespace (push/pull, Ref).
	NS *Namespace
	// Targets are the world ranks of the engines a DirectView call went to,
	// in the view's order (nil for load-balanced tasks).
	Targets []int

	eng Runner
}

// Runner is the engine a task runs on, as its Context needs it (views'
// Engine).
type Runner interface {
	// Mesh is how the engine reaches the job's communicator; nil: it was
	// started without a collective mesh.
	Mesh() func(ctx context.Context) (*collective.Comm, error)
	// SubComm is the communicator over the world ranks of a DirectView
	// call's targets, in the view's order, shared by calls with the same
	// targets.
	SubComm(w *collective.Comm, ranks []int) (*collective.Comm, error)
}

// Bind makes c a Context of a task that runs on r.
func Bind(c *Context, r Runner) *Context { c.eng = r; return c }

// ErrNoCommunicator is returned by Context.Comm and Context.World when the
// task has no communicator.
var ErrNoCommunicator = errors.New("views: no communicator")

// World returns the communicator over every rank of the job, rank 0 (the
// hub) included; every rank must take part in its collectives.
func (c *Context) World() (*collective.Comm, error) {
	if c.eng == nil || c.eng.Mesh() == nil {
		return nil, fmt.Errorf("%w: this engine was started without a collective mesh", ErrNoCommunicator)
	}
	return c.eng.Mesh()(c)
}

// Comm returns a communicator over the engines of the DirectView call that
// started this task, ranked in the view's order: an apply on all engines
// can allreduce among them without the hub. Calls with the same targets
// share one communicator, so their collectives must come in the same order
// on every target, as in MPI.
func (c *Context) Comm() (*collective.Comm, error) {
	if len(c.Targets) == 0 {
		return nil, fmt.Errorf("%w: a load-balanced task has no group of targets; use a DirectView", ErrNoCommunicator)
	}
	w, err := c.World()
	if err != nil {
		return nil, err
	}
	return c.eng.SubComm(w, c.Targets)
}

var typeOfContext = reflect.TypeOf((*Context)(nil))
var typeOfError = reflect.TypeOf((*error)(nil)).Elem()

// Function is a registered function and how to call it.
type Function struct {
	name    string
	fn      reflect.Value
	withCtx bool
	in      []reflect.Type
	variad  bool
	outVal  bool // returns a value first
	outErr  bool // returns an error last
}

var registry = struct {
	sync.RWMutex
	m map[string]*Function
}{m: map[string]*Function{}}

// ErrUnknownFunction is returned (wrapped in a RemoteError) when a task names
// a function that the engine's program did not register.
var ErrUnknownFunction = proto.ErrUnknownFunction

// Register makes fn callable by name on every rank that registers it; all
// ranks run the same binary, so register in init or before Main. fn may take
// a leading *views.Context, then any sendable parameters (variadic allowed),
// and return nothing, a value, an error, or a value and an error.
func Register(name string, fn any) error {
	if name == "" {
		return errors.New("views: Register: empty name")
	}
	rv := reflect.ValueOf(fn)
	if rv.Kind() != reflect.Func || rv.IsNil() {
		return fmt.Errorf("views: Register(%q): %T is not a function", name, fn)
	}
	t := rv.Type()
	f := &Function{name: name, fn: rv, variad: t.IsVariadic()}
	for i := 0; i < t.NumIn(); i++ {
		if i == 0 && t.In(0) == typeOfContext {
			f.withCtx = true
			continue
		}
		f.in = append(f.in, t.In(i))
	}
	switch t.NumOut() {
	case 0:
	case 1:
		if t.Out(0) == typeOfError {
			f.outErr = true
		} else {
			f.outVal = true
		}
	case 2:
		if t.Out(1) != typeOfError {
			return fmt.Errorf("views: Register(%q): second result must be error, not %s", name, t.Out(1))
		}
		f.outVal, f.outErr = true, true
	default:
		return fmt.Errorf("views: Register(%q): at most two results (value, error)", name)
	}
	registry.Lock()
	defer registry.Unlock()
	if _, dup := registry.m[name]; dup {
		return fmt.Errorf("views: Register(%q): already registered", name)
	}
	registry.m[name] = f
	return nil
}

// MustRegister is Register for init functions: it panics on a programming error.
func MustRegister(name string, fn any) {
	if err := Register(name, fn); err != nil {
		panic(err)
	}
}

// Registered lists the registered function names, sorted.
func Registered() []string {
	registry.RLock()
	defer registry.RUnlock()
	names := make([]string, 0, len(registry.m))
	for n := range registry.m {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Name is the name the function was registered under.
func (f *Function) Name() string { return f.name }

// Find returns the function registered under name, or an error wrapping
// ErrUnknownFunction that lists the registered ones.
func Find(name string) (*Function, error) {
	registry.RLock()
	f := registry.m[name]
	registry.RUnlock()
	if f == nil {
		return nil, fmt.Errorf("%w %q; registered: %s", ErrUnknownFunction, name, strings.Join(Registered(), ", "))
	}
	return f, nil
}

// Call converts args to the parameter types and calls the function. Panics
// in the function are returned as errors with the stack's first lines.
func (f *Function) Call(ctx *Context, args []any) (out any, err error) {
	n := len(f.in)
	if f.variad {
		if len(args) < n-1 {
			return nil, fmt.Errorf("%s takes at least %d arguments, got %d", f.name, n-1, len(args))
		}
	} else if len(args) != n {
		return nil, fmt.Errorf("%s takes %d arguments, got %d", f.name, n, len(args))
	}
	in := make([]reflect.Value, 0, len(args)+1)
	if f.withCtx {
		in = append(in, reflect.ValueOf(ctx))
	}
	for i, a := range args {
		t := f.in[min(i, n-1)]
		if f.variad && i >= n-1 {
			t = f.in[n-1].Elem()
		}
		if r, ok := a.(codec.Ref); ok {
			v, found := ctx.NS.Get(r.Name)
			if !found {
				return nil, fmt.Errorf("argument %d: Ref(%q): no such name in engine %d's namespace", i+1, r.Name, ctx.EngineID)
			}
			a = v
		}
		v, err := codec.Convert(a, t)
		if err != nil {
			return nil, fmt.Errorf("argument %d of %s: %w", i+1, f.name, err)
		}
		in = append(in, v)
	}
	defer func() {
		if p := recover(); p != nil {
			err = &PanicError{Value: p, Stack: StackTrace()}
		}
	}()
	res := f.fn.Call(in)
	if f.outErr {
		if e := res[len(res)-1]; !e.IsNil() {
			return nil, e.Interface().(error)
		}
	}
	if f.outVal {
		return res[0].Interface(), nil
	}
	return nil, nil
}
