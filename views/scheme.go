package views

import "github.com/rankhub/rankhub/views/internal/hubcore"

// Scheme is how the load-balanced scheduler picks an engine for a task.
type Scheme = hubcore.Scheme

// Scheduling schemes (IPython's TaskScheduler.scheme_name).
const (
	LeastLoad  = hubcore.LeastLoad  // the engine with the fewest tasks in flight (default)
	RoundRobin = hubcore.RoundRobin // engines in turn
	Random     = hubcore.Random     // a uniformly random eligible engine
)

// ParseScheme reads a scheme name: "leastload" (or "lru"), "roundrobin", "random".
func ParseScheme(s string) (Scheme, error) { return hubcore.ParseScheme(s) }

// Dependency says which earlier results a task waits for (IPython's
// Dependency). A task's After dependency is about time: it starts once the
// results are done. Its Follow dependency is also about place: it runs on the
// engine where those results ran.
type Dependency = hubcore.Dependency

// On returns a dependency on every task of the given results, met by their
// success (add .Failure = true to accept failures too).
func On(results ...*AsyncResult) Dependency {
	var d Dependency
	for _, r := range results {
		if r != nil {
			d.MsgIDs = append(d.MsgIDs, r.MsgIDs()...)
		}
	}
	return d
}

// EngineInfo describes one engine for status queries.
type EngineInfo = hubcore.EngineInfo

// QueueStatus is one engine's queue as the hub sees it.
type QueueStatus = hubcore.QueueStatus

func containsInt(xs []int, x int) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}
