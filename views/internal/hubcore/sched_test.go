package hubcore

import (
	"reflect"
	"testing"
	"time"
)

// fakeResults is a scripted oracle: message id → state and engine.
type fakeResults map[uint64][2]int

func (f fakeResults) oracle(id uint64) (depState, int) {
	s, ok := f[id]
	if !ok {
		return depUnknown, -1
	}
	return depState(s[0]), s[1]
}

func core(scheme Scheme, hwm int, engines ...int) *lbCore {
	c := newLBCore(scheme, hwm, 1)
	for _, e := range engines {
		c.addEngine(e)
	}
	return c
}

func picks(ds []decision) []int {
	out := make([]int, len(ds))
	for i, d := range ds {
		if d.code != "" {
			out[i] = -1
		} else {
			out[i] = d.engine
		}
	}
	return out
}

func TestSchedLeastLoadAndRoundRobin(t *testing.T) {
	now := time.Unix(0, 0)
	c := core(LeastLoad, 0, 0, 1, 2)
	c.busy(0, 2)
	c.busy(1, 1)
	for i := uint64(1); i <= 4; i++ {
		c.push(&lbItem{id: i})
	}
	// Loads 2,1,0 → 2 (→1), then 1 or 2 at 1: lowest id among the least loaded.
	if got := picks(c.schedule(now, fakeResults{}.oracle)); !reflect.DeepEqual(got, []int{2, 1, 2, 0}) {
		t.Fatalf("least-load picks %v", got)
	}
	r := core(RoundRobin, 0, 0, 1, 2)
	for i := uint64(1); i <= 5; i++ {
		r.push(&lbItem{id: i})
	}
	if got := picks(r.schedule(now, fakeResults{}.oracle)); !reflect.DeepEqual(got, []int{0, 1, 2, 0, 1}) {
		t.Fatalf("round-robin picks %v", got)
	}
	rnd := core(Random, 0, 0, 1, 2)
	seen := map[int]bool{}
	for i := uint64(1); i <= 60; i++ {
		rnd.push(&lbItem{id: i})
	}
	for _, p := range picks(rnd.schedule(now, fakeResults{}.oracle)) {
		seen[p] = true
	}
	if len(seen) != 3 {
		t.Fatalf("random used engines %v", seen)
	}
}

func TestSchedHighWaterMark(t *testing.T) {
	now := time.Unix(0, 0)
	c := core(LeastLoad, 2, 0, 1)
	for i := uint64(1); i <= 6; i++ {
		c.push(&lbItem{id: i})
	}
	ds := c.schedule(now, fakeResults{}.oracle)
	if len(ds) != 4 || len(c.queue) != 2 {
		t.Fatalf("hwm 2 on 2 engines: %d placed, %d waiting", len(ds), len(c.queue))
	}
	c.busy(1, -1)
	ds = c.schedule(now, fakeResults{}.oracle)
	if got := picks(ds); !reflect.DeepEqual(got, []int{1}) || ds[0].id != 5 {
		t.Fatalf("after one completion: %v", ds)
	}
	// A timeout fires for a task that never found a free engine.
	c.queue[0].deadline = now.Add(time.Second)
	ds = c.schedule(now.Add(2*time.Second), fakeResults{}.oracle)
	if len(ds) != 1 || ds[0].code != CodeDependencyTimeout {
		t.Fatalf("timeout while full: %+v", ds)
	}
}

func TestSchedDependencies(t *testing.T) {
	now := time.Unix(0, 0)
	res := fakeResults{1: {int(depOK), 1}, 2: {int(depPending), -1}, 3: {int(depFailed), 0}, 4: {int(depOK), 0}}
	cases := []struct {
		name   string
		it     lbItem
		engine int    // expected engine, -1: fails, -2: waits
		code   string // expected failure code
	}{
		{"after met", lbItem{after: Dependency{MsgIDs: []uint64{1}}}, 0, ""},
		{"after pending waits", lbItem{after: Dependency{MsgIDs: []uint64{1, 2}}}, -2, ""},
		{"after any met", lbItem{after: Dependency{MsgIDs: []uint64{1, 2}, Any: true}}, 0, ""},
		{"after failed is impossible", lbItem{after: Dependency{MsgIDs: []uint64{3}}}, -1, CodeImpossibleDependency},
		{"failure accepted", lbItem{after: Dependency{MsgIDs: []uint64{3}, Failure: true}}, 0, ""},
		{"failure only rejects success", lbItem{after: Dependency{MsgIDs: []uint64{1}, Failure: true}}, -1, CodeImpossibleDependency},
		{"unknown is impossible", lbItem{after: Dependency{MsgIDs: []uint64{99}}}, -1, CodeImpossibleDependency},
		{"follow runs where it ran", lbItem{follow: Dependency{MsgIDs: []uint64{1}}}, 1, ""},
		{"follow on two engines is impossible", lbItem{follow: Dependency{MsgIDs: []uint64{1, 4}}}, -1, CodeImpossibleDependency},
		{"follow any picks one of them", lbItem{follow: Dependency{MsgIDs: []uint64{1, 4}, Any: true}}, 0, ""},
		{"timeout", lbItem{after: Dependency{MsgIDs: []uint64{2}}, deadline: now}, -1, CodeDependencyTimeout},
		{"targets restrict", lbItem{targets: []int{1}}, 1, ""},
	}
	for i, tc := range cases {
		c := core(LeastLoad, 0, 0, 1)
		it := tc.it
		it.id = uint64(100 + i)
		c.push(&it)
		ds := c.schedule(now, res.oracle)
		switch {
		case tc.engine == -2:
			if len(ds) != 0 || len(c.queue) != 1 {
				t.Errorf("%s: want wait, got %+v", tc.name, ds)
			}
		case tc.engine == -1:
			if len(ds) != 1 || ds[0].code != tc.code {
				t.Errorf("%s: want %s, got %+v", tc.name, tc.code, ds)
			}
		default:
			if len(ds) != 1 || ds[0].code != "" || ds[0].engine != tc.engine {
				t.Errorf("%s: want engine %d, got %+v", tc.name, tc.engine, ds)
			}
		}
	}
	// Follow on a dead engine can never be met.
	c := core(LeastLoad, 0, 0)
	c.push(&lbItem{id: 7, follow: Dependency{MsgIDs: []uint64{1}}})
	ds := c.schedule(now, res.oracle)
	if len(ds) != 1 || ds[0].code != CodeImpossibleDependency {
		t.Fatalf("follow on dead engine: %+v", ds)
	}
	// Retries avoid the engine a task failed on.
	c = core(LeastLoad, 0, 0, 1)
	c.push(&lbItem{id: 8, avoid: map[int]bool{0: true}})
	if got := picks(c.schedule(now, res.oracle)); !reflect.DeepEqual(got, []int{1}) {
		t.Fatalf("retry placement %v", got)
	}
}

func TestParseScheme(t *testing.T) {
	for s, want := range map[string]Scheme{"": LeastLoad, "lru": LeastLoad, "roundrobin": RoundRobin, "random": Random} {
		if got, err := ParseScheme(s); err != nil || got != want {
			t.Errorf("%q: %v %v", s, got, err)
		}
	}
	if _, err := ParseScheme("fastest"); err == nil {
		t.Error("bad scheme accepted")
	}
}

// TestSchedUnmetRequirements: engines that failed a task's requirements are
// never picked for it; once every live engine has, it is impossible, with
// what each lacked; an engine joining before that is tried.
func TestSchedUnmetRequirements(t *testing.T) {
	now := time.Unix(0, 0)
	c := core(LeastLoad, 0, 0, 1, 2)
	it := &lbItem{id: 1, unmet: map[int]string{0: "engine 0 lacks gpu"}}
	c.push(it)
	if got := picks(c.schedule(now, fakeResults{}.oracle)); !reflect.DeepEqual(got, []int{1}) {
		t.Fatalf("picks %v, want [1] (engine 0 lacks the requirement)", got)
	}
	c.busy(1, -1)
	it.unmet[1], it.unmet[2] = "engine 1 lacks gpu", "engine 2 lacks gpu"
	c.push(it)
	c.addEngine(3)
	if got := picks(c.schedule(now, fakeResults{}.oracle)); !reflect.DeepEqual(got, []int{3}) {
		t.Fatalf("picks %v, want [3] (the engine that joined)", got)
	}
	it.unmet[3] = "engine 3 lacks gpu"
	c.push(it)
	ds := c.schedule(now, fakeResults{}.oracle)
	if len(ds) != 1 || ds[0].code != CodeImpossibleDependency || ds[0].why != "require: no live engine meets the requirements: engine 0 lacks gpu; engine 1 lacks gpu; engine 2 lacks gpu; engine 3 lacks gpu" {
		t.Fatalf("decisions %+v", ds)
	}
}
