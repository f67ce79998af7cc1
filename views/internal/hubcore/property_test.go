package hubcore

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"testing"
	"time"
)

// TestCoreInvariants drives cores with seeded random events (engines
// joining and dying, direct and load-balanced submissions with retries,
// timeouts, dependencies and requirements, answers of every kind, aborts,
// purges, ticks, scheduler changes) and checks after every event that:
// a task is sent only to a live engine, never while it is on an engine or
// finished; a load-balanced task is sent only below the high-water mark;
// a task completes at most once and never while on an engine. At the end
// (shutdown, the engines answer or die, close) every task submitted has
// completed exactly once and none waits: nothing is lost, nothing twice,
// nothing retried once the hub stops.
func TestCoreInvariants(t *testing.T) {
	for seed := uint64(1); seed <= 120; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { simulate(t, seed, 250) })
	}
}

type simTask struct {
	lb       bool
	on       int // engine it is on; -1: none
	complete int // Complete effects seen
}

type sim struct {
	t     *testing.T
	c     *Core
	rng   *rand.Rand
	hwm   int
	now   time.Time
	live  map[int]bool
	on    map[int]map[uint64]bool // engine → tasks sent and not answered
	tasks map[uint64]*simTask
	rank  int
}

func simulate(t *testing.T, seed uint64, steps int) {
	s := &sim{t: t, rng: rand.New(rand.NewPCG(seed, 7)), now: time.Unix(0, 0), live: map[int]bool{}, on: map[int]map[uint64]bool{}, tasks: map[uint64]*simTask{}}
	s.c = New(Config{Host: "hub", Scheme: Scheme(s.rng.IntN(3)), Seed: seed})
	s.c.Tick(s.now)
	for step := 0; step < steps; step++ {
		s.event(step)
		s.check(fmt.Sprintf("step %d", step))
	}
	s.c.Shutdown()
	s.check("shutdown")
	// Every engine goes: half with their tasks pending, half after
	// answering them (successes and failures alike).
	for _, e := range s.liveIDs() {
		if s.rng.IntN(2) == 0 {
			for _, id := range sortedIDs(s.on[e]) {
				delete(s.on[e], id)
				s.tasks[id].on = -1
				res := Result{Body: "v"}
				if s.rng.IntN(2) == 0 {
					res = Result{Failed: true, Code: CodeError, Message: "boom", Body: "v"}
				}
				s.c.Result(e, id, res)
				s.check(fmt.Sprintf("answer %d on %d after shutdown", id, e))
			}
		}
		s.lose(e)
		s.check(fmt.Sprintf("engine %d leaves", e))
	}
	s.c.Close()
	s.check("close")
	for _, id := range sortedIDs(s.tasks) {
		if n := s.tasks[id].complete; n != 1 {
			t.Fatalf("seed %d: task %d completed %d times", seed, id, n)
		}
	}
	if q, n := s.c.QueueStatus(); n != 0 {
		t.Fatalf("seed %d: %d tasks still waiting after shutdown (%v)", seed, n, q)
	}
}

func (s *sim) lose(e int) {
	for id := range s.on[e] {
		s.tasks[id].on = -1
	}
	delete(s.on, e)
	delete(s.live, e)
	s.c.Lost(e, "gone")
}

func (s *sim) liveIDs() []int { return sortedKeys(s.live) }

func (s *sim) someIDs(n int) []uint64 {
	if len(s.tasks) == 0 {
		return nil
	}
	ids := sortedIDs(s.tasks)
	var out []uint64
	for range n {
		out = append(out, ids[s.rng.IntN(len(ids))]+uint64(s.rng.IntN(2))) // now and then one not yet given out
	}
	return out
}

func (s *sim) event(step int) {
	r := s.rng
	switch k := r.IntN(100); {
	case k < 8 || len(s.live) == 0 && k < 30:
		s.rank++
		id, err := s.c.Register(Registration{Rank: s.rank, Host: "n", PID: s.rank})
		if err != nil {
			s.t.Fatalf("step %d: register: %v", step, err)
		}
		s.live[id] = true
		s.on[id] = map[uint64]bool{}
		s.c.Joined(id)
	case k < 12 && len(s.live) > 0:
		live := s.liveIDs()
		s.lose(live[r.IntN(len(live))])
	case k < 25 && len(s.live) > 0:
		live := s.liveIDs()
		targets := []int{live[r.IntN(len(live))]}
		ids, err := s.c.SubmitDirect(targets, []Payload{{}})
		if err != nil {
			s.t.Fatalf("step %d: submit direct to live %v: %v", step, targets, err)
		}
		s.add(ids, false)
	case k < 50:
		spec := Spec{Retries: r.IntN(3), Requires: r.IntN(5) == 0}
		if r.IntN(3) == 0 {
			spec.Timeout = time.Duration(1+r.IntN(50)) * time.Millisecond
		}
		if r.IntN(3) == 0 {
			spec.After = Dependency{MsgIDs: s.someIDs(1 + r.IntN(2)), Any: r.IntN(2) == 0, Failure: r.IntN(3) == 0}
		}
		if r.IntN(4) == 0 {
			spec.Follow = Dependency{MsgIDs: s.someIDs(1), Success: true, Failure: r.IntN(2) == 0}
		}
		ids, err := s.c.SubmitLB(make([]Payload, 1+r.IntN(4)), spec)
		if err == nil {
			s.add(ids, true)
		}
	case k < 80:
		var busy []int
		for _, e := range s.liveIDs() {
			if len(s.on[e]) > 0 {
				busy = append(busy, e)
			}
		}
		if len(busy) == 0 {
			return
		}
		e := busy[r.IntN(len(busy))]
		ids := sortedIDs(s.on[e])
		id := ids[r.IntN(len(ids))]
		delete(s.on[e], id)
		s.tasks[id].on = -1
		res := Result{Body: "v"}
		switch r.IntN(6) {
		case 0:
			res = Result{Failed: true, Code: CodeError, Message: "boom", Body: "v"}
		case 1:
			res = Result{Failed: true, Code: CodeUnmetRequirement, Message: "lacks gpu", Body: "v"}
		case 2:
			res = Result{Failed: true, Code: CodeAborted, Message: "aborted", Body: "v"}
		case 3:
			res = Result{Corrupt: true, Message: "truncated"}
		}
		if r.IntN(20) == 0 {
			s.c.Unsendable(e, id, "too large")
			return
		}
		s.c.Result(e, id, res)
	case k < 85:
		s.c.Abort(s.someIDs(1 + r.IntN(3)))
	case k < 88:
		if r.IntN(2) == 0 {
			s.c.Purge(nil)
		} else {
			s.c.Purge(s.someIDs(2))
		}
	case k < 90:
		s.hwm = r.IntN(3)
		s.c.SetScheduler(Scheme(r.IntN(3)), s.hwm)
	default:
		s.now = s.now.Add(time.Duration(r.IntN(30)) * time.Millisecond)
		s.c.Tick(s.now)
	}
}

func (s *sim) add(ids []uint64, lb bool) {
	for _, id := range ids {
		if s.tasks[id] != nil {
			s.t.Fatalf("message id %d given twice", id)
		}
		s.tasks[id] = &simTask{lb: lb, on: -1}
	}
}

// check applies the effects of the last event to the model, failing at
// the first that breaks an invariant.
func (s *sim) check(when string) {
	for _, ef := range s.c.Ready() {
		switch e := ef.(type) {
		case Send:
			if !s.live[e.Engine] {
				s.t.Fatalf("%s: %+v sent to engine %d, which is not live", when, e, e.Engine)
			}
			for _, d := range e.Tasks {
				tk := s.tasks[d.ID]
				switch {
				case tk == nil:
					s.t.Fatalf("%s: sends unknown task %d", when, d.ID)
				case tk.complete > 0:
					s.t.Fatalf("%s: sends task %d, which completed", when, d.ID)
				case tk.on >= 0:
					s.t.Fatalf("%s: sends task %d to engine %d while it is on engine %d", when, d.ID, e.Engine, tk.on)
				case tk.lb && s.hwm > 0 && len(s.on[e.Engine]) >= s.hwm:
					s.t.Fatalf("%s: sends load-balanced task %d to engine %d with %d in flight (high-water mark %d)", when, d.ID, e.Engine, len(s.on[e.Engine]), s.hwm)
				}
				tk.on = e.Engine
				s.on[e.Engine][d.ID] = true
			}
		case Complete:
			tk := s.tasks[e.ID]
			switch {
			case tk == nil:
				s.t.Fatalf("%s: completes unknown task %d", when, e.ID)
			case tk.complete > 0:
				s.t.Fatalf("%s: completes task %d again: %+v", when, e.ID, e)
			case tk.on >= 0:
				s.t.Fatalf("%s: completes task %d while it is on engine %d: %+v", when, e.ID, tk.on, e)
			case e.Failed && e.Code == "":
				s.t.Fatalf("%s: task %d failed without a code: %+v", when, e.ID, e)
			}
			tk.complete++
		case Requeue:
			if tk := s.tasks[e.ID]; tk == nil || tk.on >= 0 || tk.complete > 0 {
				s.t.Fatalf("%s: requeues task %d that is on an engine, finished or unknown (%+v)", when, e.ID, tk)
			}
		}
	}
}

func sortedIDs[V any](m map[uint64]V) []uint64 {
	out := make([]uint64, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}
