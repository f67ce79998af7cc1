package hubcore

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"time"
)

// Scheme is how the load-balanced scheduler picks an engine for a task.
type Scheme int

// Scheduling schemes (IPython's TaskScheduler.scheme_name).
const (
	LeastLoad  Scheme = iota // the engine with the fewest tasks in flight (default)
	RoundRobin               // engines in turn
	Random                   // a uniformly random eligible engine
)

func (s Scheme) String() string {
	switch s {
	case LeastLoad:
		return "leastload"
	case RoundRobin:
		return "roundrobin"
	case Random:
		return "random"
	}
	return fmt.Sprintf("scheme(%d)", int(s))
}

// ParseScheme reads a scheme name: "leastload" (or "lru"), "roundrobin", "random".
func ParseScheme(s string) (Scheme, error) {
	switch s {
	case "", "leastload", "least-load", "lru":
		return LeastLoad, nil
	case "roundrobin", "round-robin":
		return RoundRobin, nil
	case "random":
		return Random, nil
	}
	return 0, fmt.Errorf("views: unknown scheduling scheme %q (want leastload, roundrobin or random)", s)
}

// Dependency says which earlier results a task waits for (IPython's
// Dependency). A task's After dependency is about time: it starts once the
// results are done. Its Follow dependency is also about place: it runs on the
// engine where those results ran.
type Dependency struct {
	MsgIDs []uint64
	// Any: one met result is enough (default: all of them).
	Any bool
	// Success and Failure say which outcomes count as met. With neither set,
	// only success counts.
	Success bool
	Failure bool
}

func (d Dependency) empty() bool { return len(d.MsgIDs) == 0 }

func (d Dependency) accepts(ok bool) bool {
	if !d.Success && !d.Failure {
		return ok
	}
	return (ok && d.Success) || (!ok && d.Failure)
}

// depState is what the scheduler knows about one earlier result.
type depState int

const (
	depPending depState = iota
	depOK
	depFailed
	depUnknown // never existed or purged
)

// depOracle tells the scheduler the state of a result and where it ran.
type depOracle func(id uint64) (depState, int)

// lbItem is one load-balanced task waiting in the scheduler.
type lbItem struct {
	id       uint64
	after    Dependency
	follow   Dependency
	deadline time.Time // zero: none
	targets  []int     // allowed engines (nil: any)
	avoid    map[int]bool
	unmet    map[int]string // engines that lack what the task requires, and what; nil: it requires nothing
}

// decision is the scheduler's answer for one item: run on engine, or fail.
type decision struct {
	id     uint64
	engine int
	code   string // "" to run; else CodeDependencyTimeout or CodeImpossibleDependency
	why    string
}

// lbCore is the load-balancing scheduler's deterministic core (no IO, no
// clock, no locks): the hub tells it about engines, loads and new tasks, and
// asks it what to run where. The caller serializes access.
type lbCore struct {
	scheme Scheme
	hwm    int // max tasks in flight per engine for load-balanced tasks; 0: no limit
	rng    *rand.Rand
	rr     int
	load   map[int]int // tasks in flight per live engine
	queue  []*lbItem
	timed  int // items of queue with a deadline
}

func newLBCore(scheme Scheme, hwm int, seed uint64) *lbCore {
	return &lbCore{scheme: scheme, hwm: hwm, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), load: map[int]int{}, rr: -1}
}

func (c *lbCore) addEngine(id int)    { c.load[id] = 0 }
func (c *lbCore) removeEngine(id int) { delete(c.load, id) }
func (c *lbCore) busy(id int, d int) {
	if _, ok := c.load[id]; ok {
		c.load[id] += d
		if c.load[id] < 0 {
			c.load[id] = 0
		}
	}
}
func (c *lbCore) push(it *lbItem) {
	c.queue = append(c.queue, it)
	if !it.deadline.IsZero() {
		c.timed++
	}
}

// left accounts for an item that left the queue.
func (c *lbCore) left(it *lbItem) {
	if !it.deadline.IsZero() {
		c.timed--
	}
}

// remove drops a waiting item (abort); it reports whether it was waiting.
func (c *lbCore) remove(id uint64) bool {
	for i, it := range c.queue {
		if it.id == id {
			c.left(it)
			c.queue = append(c.queue[:i], c.queue[i+1:]...)
			return true
		}
	}
	return false
}

// nextDeadline is the earliest deadline of a waiting item.
func (c *lbCore) nextDeadline() time.Time {
	var t time.Time
	if c.timed == 0 {
		return t
	}
	for _, it := range c.queue {
		if !it.deadline.IsZero() && (t.IsZero() || it.deadline.Before(t)) {
			t = it.deadline
		}
	}
	return t
}

// evaluate says whether a dependency is met (met), can never be met
// (impossible, with why), or must wait. For Follow it also returns the
// engines where the task may run (nil: anywhere).
func evaluate(d Dependency, oracle depOracle, follow bool) (met, impossible bool, why string, where []int) {
	if d.empty() {
		return true, false, "", nil
	}
	nMet, nDone := 0, 0
	locs := map[int]bool{}
	for _, id := range d.MsgIDs {
		st, eng := oracle(id)
		switch st {
		case depUnknown:
			if !d.Any {
				return false, true, fmt.Sprintf("result %d is unknown (never submitted or purged)", id), nil
			}
			nDone++
		case depPending:
		default:
			nDone++
			if d.accepts(st == depOK) {
				nMet++
				locs[eng] = true
			} else if !d.Any {
				return false, true, fmt.Sprintf("result %d %s, which the dependency does not accept", id, map[bool]string{true: "succeeded", false: "failed"}[st == depOK]), nil
			}
		}
	}
	all := len(d.MsgIDs)
	if d.Any {
		if nMet == 0 {
			if nDone == all {
				return false, true, "none of the results it depends on ended as required", nil
			}
			return false, false, "", nil
		}
	} else if nMet < all {
		return false, false, "", nil
	}
	if !follow {
		return true, false, "", nil
	}
	for e := range locs {
		where = append(where, e)
	}
	sort.Ints(where)
	if !d.Any && len(where) > 1 {
		return false, true, fmt.Sprintf("follows results that ran on different engines %v", where), nil
	}
	return true, false, "", where
}

// schedule decides for the waiting items, in submission order: items whose
// dependencies are met go to an eligible engine chosen by the scheme; items
// that can never run, or whose deadline passed, fail. Items that must wait
// stay queued (they do not block later items).
func (c *lbCore) schedule(now time.Time, oracle depOracle) []decision {
	var out []decision
	keep := c.queue[:0]
	full := false
	for _, it := range c.queue {
		if full {
			// Every engine is at its high-water mark: only deadlines matter.
			if !it.deadline.IsZero() && !now.Before(it.deadline) {
				out = append(out, decision{id: it.id, code: CodeDependencyTimeout, why: "no engine became free before the timeout"})
				c.left(it)
				continue
			}
			keep = append(keep, it)
			continue
		}
		d, wait := c.decide(now, it, oracle)
		if wait {
			keep = append(keep, it)
			if c.allFull() {
				full = true
			}
			continue
		}
		if d.code == "" {
			c.load[d.engine]++
		}
		out = append(out, d)
		c.left(it)
		if c.allFull() {
			full = true
		}
	}
	for i := len(keep); i < len(c.queue); i++ {
		c.queue[i] = nil
	}
	c.queue = keep
	return out
}

func (c *lbCore) allFull() bool {
	if c.hwm <= 0 {
		return false
	}
	for _, l := range c.load {
		if l < c.hwm {
			return false
		}
	}
	return true
}

func (c *lbCore) decide(now time.Time, it *lbItem, oracle depOracle) (decision, bool) {
	timedOut := !it.deadline.IsZero() && !now.Before(it.deadline)
	met, imp, why, _ := evaluate(it.after, oracle, false)
	if imp {
		return decision{id: it.id, code: CodeImpossibleDependency, why: "after: " + why}, false
	}
	fmet, fimp, fwhy, where := evaluate(it.follow, oracle, true)
	if fimp {
		return decision{id: it.id, code: CodeImpossibleDependency, why: "follow: " + fwhy}, false
	}
	if !met || !fmet {
		if timedOut {
			return decision{id: it.id, code: CodeDependencyTimeout, why: "dependencies not met before the timeout"}, false
		}
		return decision{}, true
	}
	// Candidate engines: live, allowed by the view's targets and by follow.
	var cands []int
	allowed := func(e int) bool {
		if it.targets != nil && !containsInt(it.targets, e) {
			return false
		}
		if where != nil && !containsInt(where, e) {
			return false
		}
		if _, lacks := it.unmet[e]; lacks {
			return false
		}
		return true
	}
	possible := false
	for e := range c.load {
		if !allowed(e) {
			continue
		}
		possible = true
		if c.hwm > 0 && c.load[e] >= c.hwm {
			continue
		}
		cands = append(cands, e)
	}
	if where != nil && !possible {
		return decision{id: it.id, code: CodeImpossibleDependency,
			why: fmt.Sprintf("follow: the task must run on engine(s) %v, which are no longer alive", where)}, false
	}
	if !possible && len(it.unmet) > 0 {
		ids := make([]int, 0, len(it.unmet))
		for e := range it.unmet {
			ids = append(ids, e)
		}
		sort.Ints(ids)
		parts := make([]string, len(ids))
		for i, e := range ids {
			parts[i] = it.unmet[e]
		}
		return decision{id: it.id, code: CodeImpossibleDependency,
			why: "require: no live engine meets the requirements: " + strings.Join(parts, "; ")}, false
	}
	// Retries avoid the engines the task failed on, while others exist.
	if len(it.avoid) > 0 {
		var other []int
		for _, e := range cands {
			if !it.avoid[e] {
				other = append(other, e)
			}
		}
		if len(other) > 0 {
			cands = other
		}
	}
	if len(cands) == 0 {
		if timedOut {
			return decision{id: it.id, code: CodeDependencyTimeout, why: "no engine became free before the timeout"}, false
		}
		return decision{}, true
	}
	sort.Ints(cands)
	var pick int
	switch c.scheme {
	case RoundRobin:
		// The first candidate after the last one picked.
		pick = cands[0]
		for _, e := range cands {
			if e > c.rr {
				pick = e
				break
			}
		}
		c.rr = pick
	case Random:
		pick = cands[c.rng.IntN(len(cands))]
	default:
		pick = cands[0]
		for _, e := range cands[1:] {
			if c.load[e] < c.load[pick] {
				pick = e
			}
		}
	}
	return decision{id: it.id, engine: pick}, false
}

func containsInt(xs []int, x int) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}
