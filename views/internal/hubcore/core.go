package hubcore

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
)

// Codes of the failures the core decides (the same strings as views'
// RemoteError codes, which are defined from these).
const (
	CodeError                = "error"
	CodeEngineDied           = "engine-died"
	CodeAborted              = "aborted"
	CodeNotSendable          = "not-sendable"
	CodeDependencyTimeout    = "dependency-timeout"
	CodeImpossibleDependency = "impossible-dependency"
	CodeUnmetRequirement     = "unmet-requirement"
	CodeShutdown             = "shutdown"
)

// Errors the core's events return (views exports them as its own sentinels).
var (
	// ErrNoSuchEngine: SubmitDirect or Control named an engine that is not live.
	ErrNoSuchEngine = errors.New("views: no such engine")
	// ErrShutdown: Register, SubmitDirect or SubmitLB after Shutdown.
	ErrShutdown = errors.New("views: shut down")
	// ErrUnknownResult: a message id never submitted or purged (SubmitLB's
	// dependencies, Abort, Purge, ResultStatus, Known).
	ErrUnknownResult = errors.New("views: unknown result")
)

// Control operations carried by Control effects.
const (
	CtlAbort    = 1
	CtlClear    = 2
	CtlShutdown = 3
)

// Config configures a Core.
type Config struct {
	Host   string // the hub's host, named in the failures the hub decides
	Scheme Scheme
	HWM    int    // most load-balanced tasks in flight per engine; 0: no limit
	Seed   uint64 // of the Random scheme
}

// Registration is what an engine says about itself when it registers.
type Registration struct {
	Rank   int
	Host   string
	PID    int
	Mesh   bool     // on the job's collective mesh
	Funcs  []string // its registered functions, sorted
	Labels []string
}

// Payload is one task's encoded message, opaque to the core: it holds it
// while the task may still be sent (waiting, or retries left) and hands it
// out in Send effects.
type Payload struct {
	Ctrl   []byte
	Bufs   [][]byte
	Keep   any    // what Bufs alias, held until sent
	Suffix []byte // appended to Ctrl when sent (a load-balanced task's requirements)
}

// Spec are a load-balanced submission's options.
type Spec struct {
	Targets []int // allowed engines; nil: any
	After   Dependency
	Follow  Dependency
	Timeout time.Duration // 0: none
	Retries int
	// Requires: the payload carries requirements the engine checks; an
	// engine that lacks them answers CodeUnmetRequirement and the task
	// goes to another.
	Requires bool
}

// Result is an engine's answer to a task, as far as the core needs it.
type Result struct {
	Failed  bool
	Code    string // of a failure
	Message string
	// Corrupt: the answer could not be decoded (Message says why); the
	// task fails with CodeError, without retries.
	Corrupt bool
	// Body is the IO layer's decoded answer, handed back in the Complete
	// effect when the task completes with it.
	Body any
}

// EngineInfo describes one engine for status queries.
type EngineInfo struct {
	ID      int
	Rank    int
	Host    string
	PID     int
	Queued  int // tasks sent and not answered
	Done    int // tasks answered
	Dead    bool
	DeadWhy string
}

// QueueStatus is one engine's queue as the hub sees it.
type QueueStatus struct {
	EngineID  int
	Queued    int // tasks sent and not answered
	Completed int // tasks answered
}

// Effect is what the IO layer must do after an event.
type Effect interface{ isEffect() }

// Send: write these tasks to the engine, in order, with one write.
type Send struct {
	Engine int
	Tasks  []Dispatch
}

// Dispatch is one task of a Send.
type Dispatch struct {
	ID      uint64
	Payload Payload
	// Ranks are a direct task's target ranks (the engines' communicator);
	// nil for a load-balanced task.
	Ranks []int
}

// Control: send a control frame (abort, clear, shutdown) to the engine.
type Control struct {
	Engine int
	Op     int
	IDs    []uint64
}

// Complete: the task is finished. With Body (an engine's answer) the
// outcome is the engine's; otherwise it failed with Code and Message,
// decided by the hub or about the engine (Engine -1: no engine).
type Complete struct {
	ID      uint64
	Engine  int
	Rank    int
	Host    string
	Failed  bool
	Code    string
	Message string
	Body    any
}

// Requeue: the task is waiting again for an engine (a retry after a
// failure on From, or From lacked what it requires).
type Requeue struct {
	ID          uint64
	From        int
	RetriesLeft int
	Unmet       bool
}

// CloseEngine: close the engine's connection.
type CloseEngine struct{ Engine int }

// EnginesChanged: the set of live engines changed (wake who waits on it).
type EnginesChanged struct{}

// Purged: the results left the history.
type Purged struct{ IDs []uint64 }

// Note: something to log. Engine -1 and MsgID 0 name none.
type Note struct {
	Level  string // "info", "warn", "error"
	Engine int
	MsgID  uint64
	Text   string
	Fields []Field // more to log, in order
}

// Field is one named value of a Note.
type Field struct {
	Key   string
	Value any // int, string, []string or error text
}

func (Send) isEffect()           {}
func (Control) isEffect()        {}
func (Complete) isEffect()       {}
func (Requeue) isEffect()        {}
func (CloseEngine) isEffect()    {}
func (EnginesChanged) isEffect() {}
func (Purged) isEffect()         {}
func (Note) isEffect()           {}

type engine struct {
	id      int
	reg     Registration
	joined  bool // welcomed: takes work, listed
	dead    bool
	why     string
	done    int
	pending map[uint64]*task
	differs string // how its functions differ from the first engine's
}

func (e *engine) where() string {
	return fmt.Sprintf("engine %d (rank %d on %s, pid %d)", e.id, e.reg.Rank, e.reg.Host, e.reg.PID)
}

type task struct {
	id      uint64
	engine  int // -1 while waiting
	lb      bool
	retries int
	item    *lbItem
	payload Payload
	done    bool
	failed  bool
}

// Core is the hub's state machine: engines, the history of tasks, the
// load-balancing scheduler and its waiting tasks. It has no goroutines,
// locks, sockets or clock: the IO layer calls one event method at a time
// (Register, Joined, Lost, SubmitDirect, SubmitLB, Result, Unsendable,
// Abort, Purge, Control, SetScheduler, Tick, Shutdown, Close), then takes
// the effects with Ready and carries them out. Queries read the state.
// Time moves only by Tick.
type Core struct {
	cfg      Config
	lb       *lbCore
	engines  map[int]*engine
	tasks    map[uint64]*task // history, until purged
	waiting  map[uint64]*task // load-balanced tasks not on an engine
	taken    map[int]bool     // engine ids ever given out
	funcs    []string         // the first engine's functions; nil before it
	nextID   int
	nextMsg  uint64
	now      time.Time
	stopping bool
	closed   bool
	out      []Effect
	spare    []Effect // the array Ready returned last, for the next effects
}

// New returns a core with no engines, at time zero until the first Tick.
func New(cfg Config) *Core {
	return &Core{cfg: cfg, lb: newLBCore(cfg.Scheme, cfg.HWM, cfg.Seed), engines: map[int]*engine{},
		tasks: map[uint64]*task{}, waiting: map[uint64]*task{}, taken: map[int]bool{}}
}

// Ready returns the effects of the events since the last call, in order.
// The slice is the core's: valid until the next call of Ready, whose
// effects reuse its array (no allocation per event on the apply path).
func (c *Core) Ready() []Effect {
	out := c.out
	clear(c.spare) // the previous caller's effects: nothing keeps them reachable
	c.out, c.spare = c.spare[:0], out
	if cap(out) > maxSpareEffects { // a burst's array is not kept for ever
		c.spare = nil
	}
	return out
}

// maxSpareEffects is the largest array of effects Ready keeps for reuse.
const maxSpareEffects = 256

func (c *Core) emit(e Effect) { c.out = append(c.out, e) }

func (c *Core) note(level string, engine int, msg uint64, text string, kv ...any) {
	n := Note{Level: level, Engine: engine, MsgID: msg, Text: text}
	for i := 0; i+1 < len(kv); i += 2 {
		n.Fields = append(n.Fields, Field{Key: kv[i].(string), Value: kv[i+1]})
	}
	c.emit(n)
}

// Register gives a registering engine its id: rank-1 for a job rank (so
// ids are 0..N-2 like IPython's), else the next id never given out. The
// engine takes work once Joined.
func (c *Core) Register(r Registration) (int, error) {
	if c.stopping || c.closed {
		return 0, ErrShutdown
	}
	id := r.Rank - 1
	if id < 0 || c.taken[id] {
		id = c.nextID
	}
	if id >= c.nextID {
		c.nextID = id + 1
	}
	c.taken[id] = true
	e := &engine{id: id, reg: r, pending: map[uint64]*task{}}
	if c.funcs == nil {
		c.funcs = r.Funcs
		if c.funcs == nil {
			c.funcs = []string{}
		}
	} else {
		e.differs = funcsDiff(c.funcs, r.Funcs)
	}
	c.engines[id] = e
	return id, nil
}

// Joined: the engine has its welcome and takes work from now on.
func (c *Core) Joined(id int) {
	e := c.engines[id]
	if e == nil || e.joined || e.dead {
		return
	}
	if c.stopping || c.closed {
		e.dead, e.why = true, "the hub is shutting down"
		c.emit(CloseEngine{Engine: id})
		return
	}
	e.joined = true
	c.lb.addEngine(id)
	c.note("info", id, 0, "engine registered", "rank", e.reg.Rank, "host", e.reg.Host, "pid", e.reg.PID, "labels", e.reg.Labels)
	if e.differs != "" {
		c.note("warn", id, 0, fmt.Sprintf("engine %d registers other functions than the engines before it (%s); accepted, but tasks naming those functions fail on the engines that lack them", id, e.differs),
			"host", e.reg.Host, "pid", e.reg.PID, "functions", e.differs)
	}
	c.emit(EnginesChanged{})
	c.schedule()
}

// Lost: the engine's connection ended (why). Its pending tasks fail with
// CodeEngineDied, or wait for another engine when they are load-balanced
// with retries left.
func (c *Core) Lost(id int, why string) {
	e := c.engines[id]
	if e == nil || e.dead {
		return
	}
	e.dead, e.why = true, why
	c.emit(CloseEngine{Engine: id})
	if !e.joined {
		return // never took work, never listed
	}
	pending := sortedTasks(e.pending)
	e.pending = map[uint64]*task{}
	c.lb.removeEngine(id)
	if (c.closed || c.stopping) && len(pending) == 0 {
		c.note("info", id, 0, "engine left", "rank", e.reg.Rank)
	} else {
		c.note("error", id, 0, "engine lost", "rank", e.reg.Rank, "host", e.reg.Host, "error", why, "pending", len(pending))
	}
	for _, t := range pending {
		if t.lb && t.retries > 0 && !c.stopping {
			c.requeue(t, id, false, "")
			continue
		}
		c.complete(t, Complete{Engine: id, Rank: e.reg.Rank, Host: e.reg.Host, Failed: true, Code: CodeEngineDied,
			Message: fmt.Sprintf("%s died with the task pending: %s", e.where(), why)})
	}
	c.emit(EnginesChanged{})
	c.schedule()
}

func (c *Core) live(id int) *engine {
	if e := c.engines[id]; e != nil && e.joined && !e.dead {
		return e
	}
	return nil
}

// SubmitDirect sends one task to each target (engine ids); ps has one
// payload per target, or one shared by all. It returns the message ids.
func (c *Core) SubmitDirect(targets []int, ps []Payload) ([]uint64, error) {
	if c.stopping || c.closed {
		return nil, ErrShutdown
	}
	if len(ps) == 0 {
		return nil, fmt.Errorf("views: a submission without a payload")
	}
	es := make([]*engine, len(targets))
	ranks := make([]int, len(targets))
	for i, id := range targets {
		if es[i] = c.live(id); es[i] == nil {
			return nil, fmt.Errorf("%w: %d (live engines: %v)", ErrNoSuchEngine, id, c.Live())
		}
		ranks[i] = es[i].reg.Rank
	}
	ids := make([]uint64, len(targets))
	for i, e := range es {
		c.nextMsg++
		t := &task{id: c.nextMsg, engine: e.id}
		e.pending[t.id] = t
		c.lb.busy(e.id, 1)
		c.tasks[t.id] = t
		ids[i] = t.id
		c.emit(Send{Engine: e.id, Tasks: []Dispatch{{ID: t.id, Payload: ps[min(i, len(ps)-1)], Ranks: ranks}}})
	}
	return ids, nil
}

// SubmitLB queues one load-balanced task per payload; the scheduler sends
// each when its dependencies are met and an engine is eligible.
func (c *Core) SubmitLB(ps []Payload, spec Spec) ([]uint64, error) {
	if c.stopping || c.closed {
		return nil, ErrShutdown
	}
	for _, d := range [][]uint64{spec.After.MsgIDs, spec.Follow.MsgIDs} {
		for _, id := range d {
			if c.tasks[id] == nil {
				return nil, fmt.Errorf("%w: dependency on message %d", ErrUnknownResult, id)
			}
		}
	}
	ids := make([]uint64, len(ps))
	for i, p := range ps {
		c.nextMsg++
		t := &task{id: c.nextMsg, engine: -1, lb: true, retries: spec.Retries, payload: p}
		t.item = &lbItem{id: t.id, after: spec.After, follow: spec.Follow, targets: spec.Targets}
		if spec.Requires {
			t.item.unmet = map[int]string{}
		}
		if spec.Timeout > 0 {
			t.item.deadline = c.now.Add(spec.Timeout)
		}
		c.tasks[t.id] = t
		c.waiting[t.id] = t
		c.lb.push(t.item)
		ids[i] = t.id
	}
	c.schedule()
	return ids, nil
}

// Result is engine's answer to task msg. It reports whether r.Body went
// into a Complete effect (else the IO layer may release it).
func (c *Core) Result(engine int, msg uint64, r Result) bool {
	e := c.engines[engine]
	if e == nil {
		c.note("warn", engine, msg, "result from an unknown engine; dropped")
		return false
	}
	t := e.pending[msg]
	delete(e.pending, msg)
	c.lb.busy(engine, -1)
	e.done++
	if t == nil {
		c.note("warn", engine, msg, "result for an unknown task; dropped")
		return false
	}
	defer c.schedule()
	if !r.Corrupt && r.Code == CodeUnmetRequirement && t.item != nil && t.item.unmet != nil && !c.stopping {
		t.item.unmet[engine] = r.Message
		c.requeue(t, engine, true, r.Message)
		return false
	}
	if !r.Corrupt && r.Failed && t.lb && t.retries > 0 && r.Code != CodeAborted && !c.stopping {
		c.requeue(t, engine, false, "")
		return false
	}
	done := Complete{Engine: engine, Rank: e.reg.Rank, Host: e.reg.Host, Failed: r.Failed || r.Corrupt, Code: r.Code, Message: r.Message, Body: r.Body}
	if r.Corrupt {
		done.Code, done.Message, done.Body = CodeError, "undecodable result: "+r.Message, nil
	}
	c.complete(t, done)
	return done.Body != nil
}

// Unsendable: task msg could not be written to engine (too large for a
// frame: why); it fails, the engine is fine.
func (c *Core) Unsendable(engine int, msg uint64, why string) {
	e := c.engines[engine]
	if e == nil {
		return
	}
	t := e.pending[msg]
	if t == nil {
		return // the engine died meanwhile: its tasks were dealt with
	}
	delete(e.pending, msg)
	c.lb.busy(engine, -1)
	c.note("error", engine, msg, "task too large for a frame: it fails", "error", why)
	c.complete(t, Complete{Engine: engine, Rank: e.reg.Rank, Host: e.reg.Host, Failed: true, Code: CodeNotSendable,
		Message: "the task is too large to send to the engine: " + why})
	c.schedule()
}

// Abort makes the given tasks fail with CodeAborted if they have not
// started: waiting ones at once, those on an engine through a Control
// effect (the engine answers them aborted). Finished ones are left alone.
func (c *Core) Abort(ids []uint64) error {
	var unknown []uint64
	byEngine := map[int][]uint64{}
	for _, id := range ids {
		t := c.tasks[id]
		switch {
		case t == nil:
			unknown = append(unknown, id)
		case t.done:
		case c.waiting[id] != nil:
			delete(c.waiting, id)
			c.lb.remove(id)
			c.complete(t, Complete{Engine: -1, Host: c.cfg.Host, Failed: true, Code: CodeAborted, Message: "aborted before it was sent to an engine"})
		case t.engine >= 0:
			byEngine[t.engine] = append(byEngine[t.engine], id)
		}
	}
	for _, e := range sortedKeys(byEngine) {
		if c.live(e) == nil {
			c.note("warn", e, 0, "abort", "error", fmt.Sprintf("%v: %d (live engines: %v)", ErrNoSuchEngine, e, c.Live()))
			continue
		}
		c.emit(Control{Engine: e, Op: CtlAbort, IDs: byEngine[e]})
	}
	c.schedule()
	if len(unknown) > 0 {
		return fmt.Errorf("%w: %v", ErrUnknownResult, unknown)
	}
	return nil
}

// Control sends op (CtlClear, CtlShutdown) to the targets, every live
// engine when nil.
func (c *Core) Control(targets []int, op int) error {
	if targets == nil {
		targets = c.Live()
	}
	for _, id := range targets {
		if c.live(id) == nil {
			return fmt.Errorf("%w: %d (live engines: %v)", ErrNoSuchEngine, id, c.Live())
		}
	}
	for _, id := range targets {
		c.emit(Control{Engine: id, Op: op})
	}
	return nil
}

// Purge drops finished results from the history: the given ids, or every
// finished one when ids is nil. Outstanding tasks stay.
func (c *Core) Purge(ids []uint64) (int, error) {
	var gone, unknown []uint64
	if ids == nil {
		for _, id := range c.History() {
			if c.tasks[id].done {
				gone = append(gone, id)
			}
		}
	} else {
		for _, id := range ids {
			t := c.tasks[id]
			if t == nil {
				unknown = append(unknown, id)
			} else if t.done {
				gone = append(gone, id)
			}
		}
	}
	for _, id := range gone {
		delete(c.tasks, id)
	}
	if len(gone) > 0 {
		c.emit(Purged{IDs: gone})
	}
	if len(unknown) > 0 {
		return len(gone), fmt.Errorf("%w: %v", ErrUnknownResult, unknown)
	}
	return len(gone), nil
}

// SetScheduler changes the scheme and high-water mark from now on.
func (c *Core) SetScheduler(s Scheme, hwm int) {
	c.lb.scheme, c.lb.hwm = s, max(hwm, 0)
	c.schedule()
}

// Tick moves the core's clock to now (never back); when a waiting task's
// deadline passed, the scheduler runs (and fails it). Nothing else
// depends on time: every other event runs the scheduler itself.
func (c *Core) Tick(now time.Time) {
	if now.After(c.now) {
		c.now = now
	}
	if d := c.lb.nextDeadline(); !d.IsZero() && !c.now.Before(d) {
		c.schedule()
	}
}

// Shutdown begins the end: no more registrations or submissions, waiting
// tasks fail with CodeShutdown, every live engine is told to exit, and
// engines leaving is expected from now on.
func (c *Core) Shutdown() {
	if c.stopping {
		return
	}
	c.stopping = true
	for _, t := range sortedTasks(c.waiting) {
		c.lb.remove(t.id)
		delete(c.waiting, t.id)
		c.complete(t, Complete{Engine: -1, Host: c.cfg.Host, Failed: true, Code: CodeShutdown, Message: "the hub shut down before the task ran"})
	}
	for _, id := range c.Live() {
		c.emit(Control{Engine: id, Op: CtlShutdown})
	}
}

// Close ends it: every engine's connection is closed.
func (c *Core) Close() {
	if c.closed {
		return
	}
	c.stopping, c.closed = true, true
	for _, id := range sortedKeys(c.engines) {
		c.emit(CloseEngine{Engine: id})
	}
}

func (c *Core) requeue(t *task, from int, unmet bool, why string) {
	if !unmet {
		t.retries--
		if t.item.avoid == nil {
			t.item.avoid = map[int]bool{}
		}
		t.item.avoid[from] = true
	}
	t.engine = -1
	c.waiting[t.id] = t
	c.lb.push(t.item)
	c.emit(Requeue{ID: t.id, From: from, RetriesLeft: t.retries, Unmet: unmet})
}

func (c *Core) complete(t *task, d Complete) {
	t.done, t.failed = true, d.Failed
	t.payload = Payload{}
	d.ID = t.id
	c.emit(d)
}

// schedule runs the load-balancing decision until it has nothing more to
// decide: placed tasks go out in one Send per engine and round, tasks it
// gives up on complete failed (which may decide their dependents).
func (c *Core) schedule() {
	for len(c.lb.queue) > 0 {
		ds := c.lb.schedule(c.now, c.oracle)
		if len(ds) == 0 {
			return
		}
		var order []int
		sends := map[int][]Dispatch{}
		var fails []*task
		why := map[uint64]decision{}
		count := map[int]int{} // each engine's slice gets its size at once (a round can place 100,000 tasks)
		for _, d := range ds {
			if d.code == "" {
				count[d.engine]++
			}
		}
		for _, d := range ds {
			t := c.waiting[d.id]
			delete(c.waiting, d.id)
			if t == nil {
				continue
			}
			if d.code != "" {
				fails = append(fails, t)
				why[t.id] = d
				continue
			}
			e := c.engines[d.engine]
			t.engine = e.id
			e.pending[t.id] = t
			batch, ok := sends[e.id]
			if !ok {
				order = append(order, e.id)
				batch = make([]Dispatch, 0, count[e.id])
			}
			sends[e.id] = append(batch, Dispatch{ID: t.id, Payload: t.payload})
			if t.retries == 0 && t.item.unmet == nil {
				t.payload = Payload{} // nothing will need it again
			}
		}
		for _, e := range order {
			c.emit(Send{Engine: e, Tasks: sends[e]})
		}
		for _, t := range fails {
			d := why[t.id]
			c.complete(t, Complete{Engine: -1, Host: c.cfg.Host, Failed: true, Code: d.code, Message: d.why})
		}
	}
}

// oracle is the scheduler's view of earlier results.
func (c *Core) oracle(id uint64) (depState, int) {
	t := c.tasks[id]
	switch {
	case t == nil:
		return depUnknown, -1
	case !t.done:
		return depPending, -1
	case t.failed:
		return depFailed, t.engine
	}
	return depOK, t.engine
}

// ----- queries -----

// Live returns the ids of the live engines, sorted.
func (c *Core) Live() []int {
	ids := []int{}
	for id := range c.engines {
		if c.live(id) != nil {
			ids = append(ids, id)
		}
	}
	sort.Ints(ids)
	return ids
}

// Stopping reports whether Shutdown (or Close) came.
func (c *Core) Stopping() bool { return c.stopping }

// Engine returns a joined engine's registration and whether it is live.
func (c *Core) Engine(id int) (Registration, bool, bool) {
	e := c.engines[id]
	if e == nil || !e.joined {
		return Registration{}, false, false
	}
	return e.reg, !e.dead, true
}

// Engines lists every engine that joined, dead ones included, by id.
func (c *Core) Engines() []EngineInfo {
	out := []EngineInfo{}
	for _, id := range sortedKeys(c.engines) {
		e := c.engines[id]
		if e.joined {
			out = append(out, EngineInfo{ID: id, Rank: e.reg.Rank, Host: e.reg.Host, PID: e.reg.PID, Queued: len(e.pending), Done: e.done, Dead: e.dead, DeadWhy: e.why})
		}
	}
	return out
}

// QueueStatus returns the live engines' queues and the number of
// load-balanced tasks not yet on an engine.
func (c *Core) QueueStatus() ([]QueueStatus, int) {
	var out []QueueStatus
	for _, id := range c.Live() {
		e := c.engines[id]
		out = append(out, QueueStatus{EngineID: id, Queued: len(e.pending), Completed: e.done})
	}
	return out, len(c.waiting)
}

// ResultStatus splits ids (nil: the whole history) into pending and
// completed; an unknown id is an error.
func (c *Core) ResultStatus(ids []uint64) (pending, completed []uint64, err error) {
	if ids == nil {
		ids = c.History()
	}
	for _, id := range ids {
		t := c.tasks[id]
		switch {
		case t == nil:
			return nil, nil, fmt.Errorf("%w: %d", ErrUnknownResult, id)
		case t.done:
			completed = append(completed, id)
		default:
			pending = append(pending, id)
		}
	}
	return pending, completed, nil
}

// Known is nil when every id is in the history, else the error naming
// the first that is not.
func (c *Core) Known(ids []uint64) error {
	for _, id := range ids {
		if c.tasks[id] == nil {
			return fmt.Errorf("%w: %d", ErrUnknownResult, id)
		}
	}
	return nil
}

// History lists the message ids in the history, in submission order.
func (c *Core) History() []uint64 {
	ids := make([]uint64, 0, len(c.tasks))
	for id := range c.tasks {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	return ids
}

// NextDeadline is the earliest deadline of a waiting task (zero: none):
// the IO layer ticks then.
func (c *Core) NextDeadline() time.Time { return c.lb.nextDeadline() }

func sortedTasks(m map[uint64]*task) []*task {
	out := make([]*task, 0, len(m))
	for _, t := range m {
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out
}

func sortedKeys[V any](m map[int]V) []int {
	out := make([]int, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Ints(out)
	return out
}

// funcsDiff says how an engine's registered functions differ from the
// reference set (both sorted): "" when they are the same.
func funcsDiff(ref, got []string) string {
	in := func(list []string, name string) bool {
		i := sort.SearchStrings(list, name)
		return i < len(list) && list[i] == name
	}
	var missing, extra []string
	for _, n := range ref {
		if !in(got, n) {
			missing = append(missing, n)
		}
	}
	for _, n := range got {
		if !in(ref, n) {
			extra = append(extra, n)
		}
	}
	var parts []string
	if len(missing) > 0 {
		parts = append(parts, "lacks "+strings.Join(missing, ", "))
	}
	if len(extra) > 0 {
		parts = append(parts, "adds "+strings.Join(extra, ", "))
	}
	return strings.Join(parts, "; ")
}
