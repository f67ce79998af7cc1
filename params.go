package rankhub

import (
	"fmt"
	"math"
)

// Params is what a registered sweep function receives: the task's parameters
// by name (int64, float64, string or bool, as typed in the job file), plus
// "seed" (uint64), "replicate" and "index" (int).
//
// A sweep function has the form
//
//	func(p rankhub.Params) (map[string]float64, error)
//
// (a leading *views.Context is allowed). It may also return a struct whose
// exported fields are the outputs: a field matches an output name ignoring
// case and underscores (AbsMagnetization is abs_magnetization).
type Params map[string]any

// Float returns a numeric parameter as float64; it panics with a clear
// message when the name is missing or not a number (the panic becomes the
// task's RemoteError; the engine lives on).
func (p Params) Float(name string) float64 {
	switch v := p[name].(type) {
	case float64:
		return v
	case int64:
		return float64(v)
	case int:
		return float64(v)
	case uint64:
		return float64(v)
	}
	panic(p.missing(name, "a number"))
}

// Int returns an integer parameter; a float with an integral value is accepted.
func (p Params) Int(name string) int {
	switch v := p[name].(type) {
	case int64:
		return int(v)
	case int:
		return v
	case uint64:
		return int(v)
	case float64:
		if v == math.Trunc(v) {
			return int(v)
		}
	}
	panic(p.missing(name, "an integer"))
}

// String returns a string parameter.
func (p Params) String(name string) string {
	if s, ok := p[name].(string); ok {
		return s
	}
	panic(p.missing(name, "a string"))
}

// Bool returns a boolean parameter.
func (p Params) Bool(name string) bool {
	if b, ok := p[name].(bool); ok {
		return b
	}
	panic(p.missing(name, "a boolean"))
}

// Seed is the task's seed, derived from the job's seed, the task's parameter
// values by name and its replicate (jobs.TaskSeed): the same for a task
// whichever rank runs it, whenever, and unchanged when the sweep grows.
func (p Params) Seed() uint64 {
	if s, ok := p["seed"].(uint64); ok {
		return s
	}
	panic(p.missing("seed", "a uint64"))
}

// Replicate is the task's replicate number (0-based).
func (p Params) Replicate() int { return p.Int("replicate") }

func (p Params) missing(name, want string) error {
	v, ok := p[name]
	if !ok {
		names := make([]string, 0, len(p))
		for k := range p {
			names = append(names, k)
		}
		return fmt.Errorf("sweep parameter %q is missing (have %v)", name, names)
	}
	return fmt.Errorf("sweep parameter %q is %T (%v), not %s", name, v, v, want)
}
