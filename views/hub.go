package views

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rankhub/rankhub/collective"
	"github.com/rankhub/rankhub/comm"
	"github.com/rs/zerolog"
)

// HubConfig describes the hub of a job (rank 0).
type HubConfig struct {
	Host   string
	Logger zerolog.Logger
	// Scheme is the load-balanced scheduler's scheme (RANKHUB_SCHEME when
	// zero and set; default LeastLoad).
	Scheme Scheme
	// HWM is the high-water mark: the most load-balanced tasks in flight on
	// one engine; later tasks wait in the hub (RANKHUB_HWM; 0: no limit).
	HWM int
	// Seed seeds the Random scheme (0: from the clock).
	Seed uint64
	// World returns the communicator over every rank of the job, waiting
	// until it is ready; nil: no bulk path (bulk.go). With it, pushes and
	// scatters of a driver in this process and the engines' answers to
	// pulls and gathers move large numeric Arrow arrays over the mesh.
	World func(ctx context.Context) (*collective.Comm, error)
	// Rank is the hub's rank on that communicator (0 in a rankhub job).
	Rank int
}

// Hub is rank 0's scheduler: engines register with it, clients submit work
// through it, and it routes tasks to engines and results back. Finished
// results stay in its history until purged, so any client can fetch them.
//
// Locking (see LOCKS.md): h.mu guards engines, tasks, waiting, core, nextID,
// clients and the dispatch fields of tasks. It is never held while sending
// on a connection or while finishing a task (which runs watchers). A task's
// own t.mu is taken after h.mu, never before.
type Hub struct {
	cfg HubConfig
	log zerolog.Logger

	bulkTags bulkTags // tags of arrays this process sends on the bulk path

	mu       sync.Mutex
	engines  map[int]*engineRec
	tasks    map[uint64]*task // history, until purged
	waiting  map[uint64]*task // load-balanced tasks not yet on an engine
	core     *lbCore
	clients  map[*comm.Conn]bool
	taken    map[int]bool // engine ids ever given out (never reused)
	funcs    []string     // the first engine's registered functions: later ones are compared to them
	nextID   int
	changed  chan struct{} // closed and replaced when the engine set changes
	closed   bool
	stopping bool // shutdown requested: engines leaving is expected
	msgSeq   atomic.Uint64
	stopOnce sync.Once
	done     chan struct{}
	kick     chan struct{}
	wg       sync.WaitGroup
}

// engineRec is the hub's record of one engine.
type engineRec struct {
	id      int
	rank    int
	host    string
	pid     int
	mesh    bool          // reachable on the bulk path
	bulk    *bulkReceiver // its answers' bulk arrays; nil without a mesh
	conn    *comm.Conn
	pending map[uint64]*task
	dead    bool
	why     string
	done    int // tasks completed
	funcs   []string
	labels  []string
}

func (e *engineRec) where() string {
	return fmt.Sprintf("engine %d (rank %d on %s, pid %d)", e.id, e.rank, e.host, e.pid)
}

// NewHub makes a hub. Serve feeds it connections.
func NewHub(cfg HubConfig) *Hub {
	if cfg.Scheme == LeastLoad {
		if s, err := ParseScheme(os.Getenv("RANKHUB_SCHEME")); err == nil {
			cfg.Scheme = s
		}
	}
	if cfg.HWM == 0 {
		if n, err := strconv.Atoi(os.Getenv("RANKHUB_HWM")); err == nil && n > 0 {
			cfg.HWM = n
		}
	}
	if cfg.Seed == 0 {
		cfg.Seed = uint64(time.Now().UnixNano())
	}
	h := &Hub{cfg: cfg, log: cfg.Logger, engines: map[int]*engineRec{}, tasks: map[uint64]*task{},
		waiting: map[uint64]*task{}, core: newLBCore(cfg.Scheme, cfg.HWM, cfg.Seed), clients: map[*comm.Conn]bool{},
		changed: make(chan struct{}), done: make(chan struct{}), kick: make(chan struct{}, 1)}
	h.wg.Add(1)
	go h.timers()
	return h
}

// SetScheduler changes the load-balanced scheme and high-water mark for the
// tasks scheduled from now on.
func (h *Hub) SetScheduler(s Scheme, hwm int) {
	h.mu.Lock()
	h.core.scheme, h.core.hwm = s, max(hwm, 0)
	h.mu.Unlock()
	h.pump()
}

// Serve accepts connections from ln until the hub shuts down or ln closes.
func (h *Hub) Serve(ln *comm.Listener) error {
	for {
		c, err := ln.Accept()
		if err != nil {
			select {
			case <-h.done:
				return nil
			default:
			}
			return err
		}
		if !h.goHandle(c) {
			c.Close()
			return nil
		}
	}
}

// goHandle starts a connection's goroutine unless the hub is shutting down.
func (h *Hub) goHandle(c *comm.Conn) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return false
	}
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		h.handle(c)
	}()
	return true
}

func (h *Hub) handle(c *comm.Conn) {
	// The recovery boundary of this peer: a panic while handling its
	// messages closes it (serveEngine and serveClient have their own
	// boundaries that say more); the hub and the other peers go on.
	if err := recovered(func() { h.handlePeer(c) }); err != nil {
		withStack(h.log.Error().Str("peer", c.RemoteAddr()), err).Msg("panic while handling a peer's message; peer closed")
		c.Close()
	}
}

func (h *Hub) handlePeer(c *comm.Conn) {
	f, err := c.Recv()
	if err != nil {
		h.log.Warn().Str("peer", c.RemoteAddr()).Err(err).Msg("peer left before registering")
		c.Close()
		return
	}
	switch f.Type {
	case fRegister:
		reg, err := parseRegister(f)
		if err != nil {
			h.log.Warn().Str("peer", c.RemoteAddr()).Err(err).Msg("bad registration; closed")
			c.Close()
			return
		}
		h.serveEngine(c, reg)
	case fHello:
		h.serveClient(c, f)
	default:
		h.log.Warn().Str("peer", c.RemoteAddr()).Int("type", int(f.Type)).Msg("unexpected first frame; closed")
		c.Close()
	}
}

func (h *Hub) serveEngine(c *comm.Conn, reg *registerMsg) {
	h.mu.Lock()
	if h.closed || h.stopping {
		h.mu.Unlock()
		ctrl, _, _ := encodeValues("the hub is shutting down")
		c.Send(&comm.Frame{Type: fReject, Control: ctrl})
		c.Close()
		return
	}
	// Job ranks get engine id rank-1 (so engine ids are 0..N-2 like
	// IPython's); an id is never given twice, so a rank that comes back, or
	// an engine without a rank, gets the next free id.
	id := reg.Rank - 1
	if h.taken[id] || id < 0 {
		id = h.nextID
	}
	if id >= h.nextID {
		h.nextID = id + 1
	}
	if h.taken == nil {
		h.taken = map[int]bool{}
	}
	h.taken[id] = true // reserved now, published after the welcome
	e := &engineRec{id: id, rank: reg.Rank, host: reg.Host, pid: reg.PID, mesh: reg.Mesh, conn: c, pending: map[uint64]*task{}, funcs: reg.Funcs, labels: reg.Labels}
	var differs string
	if h.funcs == nil {
		h.funcs = reg.Funcs // the first engine's functions are the reference
		if h.funcs == nil {
			h.funcs = []string{}
		}
	} else {
		differs = funcsDiff(h.funcs, reg.Funcs)
	}
	if h.cfg.World != nil && reg.Mesh {
		e.bulk = &bulkReceiver{ctx: context.Background(), world: h.cfg.World, from: reg.Rank}
	}
	h.mu.Unlock()

	// The welcome goes out before the engine is published: no task or
	// control frame can overtake it. The id stays reserved either way.
	bulkRank := -1 // the rank engines send bulk arrays to; -1: none
	if h.cfg.World != nil {
		bulkRank = h.cfg.Rank
	}
	ctrl, _, _ := encodeValues(id, bulkRank)
	if err := c.Send(&comm.Frame{Type: fWelcome, Control: ctrl}); err != nil {
		h.log.Warn().Int("engine", id).Err(err).Msg("engine left before its welcome")
		c.Close()
		return
	}
	h.mu.Lock()
	if h.closed || h.stopping {
		h.mu.Unlock()
		c.Close()
		return
	}
	h.engines[id] = e
	h.core.addEngine(id)
	h.mu.Unlock()
	h.log.Info().Int("engine", id).Int("rank", reg.Rank).Str("host", reg.Host).Int("pid", reg.PID).Strs("labels", reg.Labels).Msg("engine registered")
	if differs != "" {
		h.log.Warn().Int("engine", id).Str("host", reg.Host).Int("pid", reg.PID).Str("functions", differs).
			Msgf("engine %d registers other functions than the engines before it (%s); accepted, but tasks naming those functions fail on the engines that lack them", id, differs)
	}
	h.notify()
	h.wake()
	for {
		f, err := c.Recv()
		if err != nil {
			h.engineGone(e, err)
			return
		}
		if f.Type != fResult {
			h.log.Warn().Int("engine", id).Int("type", int(f.Type)).Msg("unexpected frame from engine; ignored")
			continue
		}
		if err := recovered(func() { h.complete(e, f) }); err != nil {
			withStack(h.log.Error().Str("engine", e.where()), err).Uint64("msg", f.ID).Msg("panic while handling an engine's result; engine closed")
			h.engineGone(e, fmt.Errorf("the hub closed it after a panic while handling its result for message %d: %w", f.ID, err))
			return
		}
	}
}

func (h *Hub) notify() {
	h.mu.Lock()
	close(h.changed)
	h.changed = make(chan struct{})
	h.mu.Unlock()
}

// engineGone fails the engine's pending tasks at once (or re-queues the
// load-balanced ones that may be retried) and drops it.
func (h *Hub) engineGone(e *engineRec, err error) {
	h.mu.Lock()
	if e.dead {
		h.mu.Unlock()
		return
	}
	e.dead = true
	e.why = err.Error()
	pending := e.pending
	e.pending = map[uint64]*task{}
	h.core.removeEngine(e.id)
	expected := h.closed || h.stopping
	var failed []*task
	for _, t := range pending {
		if t.lb && t.retries > 0 && !h.stopping {
			h.requeueLocked(t, e.id)
			continue
		}
		t.ctrl, t.bufs, t.keep = nil, nil, nil
		failed = append(failed, t)
	}
	h.mu.Unlock()
	e.conn.Close()
	if expected && len(pending) == 0 {
		h.log.Info().Int("engine", e.id).Int("rank", e.rank).Msg("engine left")
	} else {
		h.log.Error().Int("engine", e.id).Int("rank", e.rank).Str("host", e.host).Err(err).Int("pending", len(pending)).Msg("engine lost")
	}
	now := time.Now()
	sort.Slice(failed, func(i, j int) bool { return failed[i].id < failed[j].id })
	for _, t := range failed {
		t.finish(nil, &RemoteError{EngineID: e.id, Rank: e.rank, Host: e.host, Code: CodeEngineDied, MsgID: t.id,
			Message: fmt.Sprintf("%s died with the task pending: %v", e.where(), err)}, now)
	}
	h.notify()
	h.wake() // never dispatch from a reader goroutine
}

// requeueLocked puts a load-balanced task back in the scheduler to be retried
// away from the engine it failed on.
func (h *Hub) requeueLocked(t *task, failedOn int) {
	t.retries--
	if t.item.avoid == nil {
		t.item.avoid = map[int]bool{}
	}
	t.item.avoid[failedOn] = true
	t.eng.Store(-1)
	h.waiting[t.id] = t
	h.core.push(t.item)
	h.log.Info().Uint64("msg", t.id).Int("failed_on", failedOn).Int("retries_left", t.retries).Msg("task retried")
}

func (h *Hub) complete(e *engineRec, f *comm.Frame) {
	recv := time.Now()
	r, perr := parseResult(f, e.bulk)
	h.mu.Lock()
	t := e.pending[f.ID]
	delete(e.pending, f.ID)
	h.core.busy(e.id, -1)
	e.done++
	if t != nil && perr == nil && r.Code == CodeUnmetRequirement && t.item != nil && t.item.unmet != nil && !h.stopping {
		// This engine lacks what the task requires: another one, if any
		// can (the scheduler fails it as impossible when none can).
		t.item.unmet[e.id] = r.ErrMsg
		t.eng.Store(-1)
		h.waiting[t.id] = t
		h.core.push(t.item)
		h.mu.Unlock()
		f.Release()
		h.wake()
		return
	}
	if t != nil && perr == nil && r.Status != statusOK && t.lb && t.retries > 0 && r.Code != CodeAborted && !h.stopping {
		h.requeueLocked(t, e.id)
		h.mu.Unlock()
		f.Release()
		h.wake()
		return
	}
	if t != nil {
		t.ctrl, t.bufs, t.keep = nil, nil, nil
	}
	h.mu.Unlock()
	if t == nil {
		h.log.Warn().Int("engine", e.id).Uint64("msg", f.ID).Msg("result for an unknown task; dropped")
		f.Release()
		return
	}
	t.rank, t.host = e.rank, e.host
	if perr != nil {
		t.finish(nil, &RemoteError{EngineID: e.id, Rank: e.rank, Host: e.host, Code: CodeError, MsgID: t.id,
			Message: "undecodable result: " + perr.Error()}, recv)
		h.wake()
		return
	}
	t.started, t.completed = r.Started, r.Completed
	t.stdout, t.stderr, t.exit = r.Stdout, r.Stderr, r.Exit
	t.omitted = [2]int64{r.StdoutOmitted, r.StderrOmitted}
	t.frame = f // keeps out-of-band buffers the value aliases
	t.bulkBytes = r.bulkBytes
	if r.Status != statusOK {
		t.finish(nil, &RemoteError{EngineID: e.id, Rank: e.rank, Host: e.host, Code: r.Code, Type: r.ErrType,
			Message: r.ErrMsg, Traceback: r.Traceback, MsgID: t.id}, recv)
	} else {
		t.finish(r.Value, nil, recv)
	}
	h.wake()
}

// IDs returns the ids of the live engines, sorted.
func (h *Hub) IDs() []int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.liveLocked()
}

// WaitForEngines blocks until at least n engines are registered.
func (h *Hub) WaitForEngines(ctx context.Context, n int) error {
	for {
		h.mu.Lock()
		live := len(h.liveLocked())
		ch := h.changed
		h.mu.Unlock()
		if live >= n {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("views: waiting for %d engines (have %d): %w", n, live, ctx.Err())
		case <-ch:
		case <-h.done:
			return ErrShutdown
		}
	}
}

// payload is one task's encoded (kind, name, args) and its out-of-band buffers.
type payload struct {
	ctrl []byte
	bufs [][]byte
	// keep is what bufs alias, held until they are sent: arrays received
	// on the bulk path live in arena memory that their buffers' objects,
	// not the bytes, keep (bulk.go).
	keep any
}

// submitDirect sends one task to each target; payloads has one entry per
// target, or one shared by all.
func (h *Hub) submitDirect(kind int, name string, targets []int, payloads []payload) ([]*task, error) {
	if len(targets) == 0 {
		return nil, ErrNoEngines
	}
	now := time.Now()
	h.mu.Lock()
	if h.closed || h.stopping {
		h.mu.Unlock()
		return nil, ErrShutdown
	}
	recs := make([]*engineRec, len(targets))
	for i, id := range targets {
		e := h.engines[id]
		if e == nil || e.dead {
			h.mu.Unlock()
			return nil, fmt.Errorf("%w: %d (live engines: %v)", ErrNoSuchEngine, id, h.liveLocked())
		}
		recs[i] = e
	}
	ranks := make([]int, len(recs))
	for i, e := range recs {
		ranks[i] = e.rank
	}
	enc := encodeTargets(ranks)
	tasks := make([]*task, len(targets))
	for i, e := range recs {
		t := newTask(h.msgSeq.Add(1), kind, name, now)
		t.eng.Store(int64(e.id))
		t.rank, t.host = e.rank, e.host
		p := payloads[min(i, len(payloads)-1)]
		t.ctrl, t.bufs, t.keep, t.targets = p.ctrl, p.bufs, p.keep, enc
		e.pending[t.id] = t
		h.core.busy(e.id, 1)
		h.tasks[t.id] = t
		tasks[i] = t
	}
	h.mu.Unlock()
	for i, e := range recs {
		h.dispatch(e, tasks[i])
	}
	return tasks, nil
}

// lbSpec are a load-balanced submission's options.
type lbSpec struct {
	targets []int // nil: any engine
	after   Dependency
	follow  Dependency
	timeout time.Duration
	retries int
	require []string // TaskOptions.Require
	depend  string   // TaskOptions.Depend
}

// submitLB queues one load-balanced task per payload; the scheduler sends
// them when their dependencies are met and an engine is eligible.
func (h *Hub) submitLB(kind int, name string, payloads []payload, spec lbSpec) ([]*task, error) {
	now := time.Now()
	h.mu.Lock()
	if h.closed || h.stopping {
		h.mu.Unlock()
		return nil, ErrShutdown
	}
	for _, d := range [][]uint64{spec.after.MsgIDs, spec.follow.MsgIDs} {
		for _, id := range d {
			if h.tasks[id] == nil {
				h.mu.Unlock()
				return nil, fmt.Errorf("%w: dependency on message %d", ErrUnknownResult, id)
			}
		}
	}
	tasks := make([]*task, len(payloads))
	for i, p := range payloads {
		t := newTask(h.msgSeq.Add(1), kind, name, now)
		t.lb = true
		t.ctrl, t.bufs, t.keep = p.ctrl, p.bufs, p.keep
		t.retries = spec.retries
		t.after, t.follow = spec.after.MsgIDs, spec.follow.MsgIDs
		t.item = &lbItem{id: t.id, after: spec.after, follow: spec.follow, targets: spec.targets}
		if len(spec.require) > 0 || spec.depend != "" {
			// Checked by the engine (encodeRequirements); the task keeps its
			// payload until done, for the next engine.
			t.targets = encodeRequirements(spec.require, spec.depend)
			t.item.unmet = map[int]string{}
		}
		if spec.timeout > 0 {
			t.item.deadline = now.Add(spec.timeout)
		}
		h.tasks[t.id] = t
		h.waiting[t.id] = t
		h.core.push(t.item)
		tasks[i] = t
	}
	h.mu.Unlock()
	if spec.timeout > 0 {
		h.wake()
	}
	h.pump()
	return tasks, nil
}

// dispatch sends a task to its engine.
func (h *Hub) dispatch(e *engineRec, t *task) { h.dispatchBatch(e, []*task{t}) }

// dispatchBatch sends tasks to one engine with a single write.
func (h *Hub) dispatchBatch(e *engineRec, ts []*task) {
	fs := make([]*comm.Frame, len(ts))
	keep := make([]any, len(ts))
	h.mu.Lock()
	for i, t := range ts {
		ctrl := t.ctrl
		if len(t.targets) > 0 {
			ctrl = append(ctrl[:len(ctrl):len(ctrl)], t.targets...)
		}
		fs[i] = &comm.Frame{Type: fTask, ID: t.id, Control: ctrl, Buffers: t.bufs}
		keep[i] = t.keep
		if t.retries == 0 && (t.item == nil || t.item.unmet == nil) {
			t.ctrl, t.bufs, t.keep = nil, nil, nil // nothing will need them again
		}
	}
	h.mu.Unlock()
	if hook := sendHook.Load(); hook != nil {
		for _, f := range fs {
			(*hook)(f.Buffers)
		}
	}
	var tooLarge []*task
	var why []error
	err := sendEach(e.conn, fs, func(i int, err error) *comm.Frame {
		tooLarge, why = append(tooLarge, ts[i]), append(why, err)
		return nil
	})
	runtime.KeepAlive(keep)
	for _, t := range ts {
		t.markSent()
	}
	if err != nil {
		h.engineGone(e, err)
	}
	// A task too large for a frame fails, the engine is fine.
	now := time.Now()
	for i, t := range tooLarge {
		h.mu.Lock()
		delete(e.pending, t.id)
		h.core.busy(e.id, -1)
		t.ctrl, t.bufs, t.keep = nil, nil, nil
		h.mu.Unlock()
		h.log.Error().Int("engine", e.id).Uint64("msg", t.id).Err(why[i]).Msg("task too large for a frame: it fails")
		t.finish(nil, &RemoteError{EngineID: e.id, Rank: e.rank, Host: e.host, Code: CodeNotSendable, MsgID: t.id,
			Message: fmt.Sprintf("the task is too large to send to the engine: %v", why[i])}, now)
	}
	if len(tooLarge) > 0 {
		h.wake()
	}
}

// sendHook, when set by a test, sees the buffers handed to comm for each task.
var sendHook atomic.Pointer[func(bufs [][]byte)]

// oracleLocked is the scheduler's view of earlier results.
func (h *Hub) oracleLocked(id uint64) (depState, int) {
	t := h.tasks[id]
	if t == nil {
		return depUnknown, -1
	}
	if !t.isDone() {
		return depPending, -1
	}
	if t.err != nil {
		return depFailed, int(t.eng.Load())
	}
	return depOK, int(t.eng.Load())
}

// pump runs the scheduler until it has nothing more to decide, sending the
// tasks it placed and failing those it gave up on.
func (h *Hub) pump() {
	type run struct {
		e *engineRec
		t *task
	}
	type fail struct {
		t         *task
		code, why string
	}
	for {
		h.mu.Lock()
		if len(h.core.queue) == 0 {
			h.mu.Unlock()
			return
		}
		ds := h.core.schedule(time.Now(), h.oracleLocked)
		if len(ds) == 0 {
			h.mu.Unlock()
			return
		}
		var runs []run
		var fails []fail
		for _, d := range ds {
			t := h.waiting[d.id]
			delete(h.waiting, d.id)
			if t == nil {
				continue
			}
			if d.code != "" {
				t.ctrl, t.bufs, t.keep = nil, nil, nil
				fails = append(fails, fail{t, d.code, d.why})
				continue
			}
			e := h.engines[d.engine]
			t.eng.Store(int64(e.id))
			t.rank, t.host = e.rank, e.host
			e.pending[t.id] = t
			runs = append(runs, run{e, t})
		}
		h.mu.Unlock()
		// One write per engine for everything placed on it in this round.
		for len(runs) > 0 {
			e := runs[0].e
			var batch []*task
			k := 0
			for _, r := range runs {
				if r.e == e {
					batch = append(batch, r.t)
				} else {
					runs[k] = r
					k++
				}
			}
			runs = runs[:k]
			h.dispatchBatch(e, batch)
		}
		now := time.Now()
		for _, f := range fails {
			f.t.finish(nil, &RemoteError{EngineID: -1, Rank: 0, Host: h.cfg.Host, Code: f.code, MsgID: f.t.id, Message: f.why}, now)
		}
	}
}

func (h *Hub) wake() {
	select {
	case h.kick <- struct{}{}:
	default:
	}
}

// timers fires dependency timeouts: it sleeps until the earliest deadline
// of a waiting task, or until woken because a new deadline came.
func (h *Hub) timers() {
	defer h.wg.Done()
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		h.mu.Lock()
		next := h.core.nextDeadline()
		h.mu.Unlock()
		d := time.Hour
		if !next.IsZero() {
			d = max(time.Until(next), time.Millisecond)
		}
		t.Reset(d)
		select {
		case <-h.done:
			return
		case <-h.kick:
			h.pump()
		case <-t.C:
			h.pump()
		}
	}
}

func (h *Hub) liveLocked() []int {
	ids := []int{}
	for id, e := range h.engines {
		if !e.dead {
			ids = append(ids, id)
		}
	}
	sort.Ints(ids)
	return ids
}

// control sends a control frame to the given engines (all live ones if nil).
// Control frames bypass the engines' task queues.
func (h *Hub) control(targets []int, op int, ids []uint64) error {
	ctrl, _, err := encodeValues(op, ids)
	if err != nil {
		return err
	}
	h.mu.Lock()
	var recs []*engineRec
	if targets == nil {
		for _, e := range h.engines {
			if !e.dead {
				recs = append(recs, e)
			}
		}
	} else {
		for _, id := range targets {
			e := h.engines[id]
			if e == nil || e.dead {
				live := h.liveLocked()
				h.mu.Unlock()
				return fmt.Errorf("%w: %d (live engines: %v)", ErrNoSuchEngine, id, live)
			}
			recs = append(recs, e)
		}
	}
	h.mu.Unlock()
	for _, e := range recs {
		if err := e.conn.Send(&comm.Frame{Type: fControl, Control: ctrl}); err != nil {
			h.engineGone(e, err)
		}
	}
	return nil
}

// abort makes the given tasks fail with ErrAborted if they have not started:
// tasks still in the hub fail at once, tasks queued on an engine are marked
// there through the control channel. Finished tasks are left alone.
func (h *Hub) abort(ids []uint64) error {
	h.mu.Lock()
	var local []*task
	byEngine := map[int][]uint64{}
	var unknown []uint64
	for _, id := range ids {
		t := h.tasks[id]
		if t == nil {
			unknown = append(unknown, id)
			continue
		}
		if t.isDone() {
			continue
		}
		if _, ok := h.waiting[id]; ok {
			delete(h.waiting, id)
			h.core.remove(id)
			t.ctrl, t.bufs, t.keep = nil, nil, nil
			local = append(local, t)
			continue
		}
		if e := int(t.eng.Load()); e >= 0 {
			byEngine[e] = append(byEngine[e], id)
		}
	}
	h.mu.Unlock()
	now := time.Now()
	for _, t := range local {
		t.finish(nil, &RemoteError{EngineID: -1, Host: h.cfg.Host, Code: CodeAborted, MsgID: t.id, Message: "aborted before it was sent to an engine"}, now)
	}
	for e, ids := range byEngine {
		if err := h.control([]int{e}, ctlAbort, ids); err != nil {
			h.log.Warn().Err(err).Int("engine", e).Msg("abort")
		}
	}
	h.pump()
	if len(unknown) > 0 {
		return fmt.Errorf("%w: %v", ErrUnknownResult, unknown)
	}
	return nil
}

// fetch returns the tasks of the given message ids from the history.
func (h *Hub) fetch(ids []uint64) ([]*task, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]*task, len(ids))
	for i, id := range ids {
		t := h.tasks[id]
		if t == nil {
			return nil, fmt.Errorf("%w: %d", ErrUnknownResult, id)
		}
		out[i] = t
	}
	return out, nil
}

// QueueStatus is one engine's queue as the hub sees it.
type QueueStatus struct {
	EngineID  int
	Queued    int // tasks sent and not answered
	Completed int // tasks answered
}

// queueStatus returns the live engines' queues and the number of
// load-balanced tasks not yet on an engine.
func (h *Hub) queueStatus() ([]QueueStatus, int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []QueueStatus
	for _, id := range h.liveLocked() {
		e := h.engines[id]
		out = append(out, QueueStatus{EngineID: id, Queued: len(e.pending), Completed: e.done})
	}
	return out, len(h.waiting)
}

// resultStatus splits ids into pending and completed; unknown ids are an error.
func (h *Hub) resultStatus(ids []uint64) (pending, completed []uint64, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if ids == nil {
		for id := range h.tasks {
			ids = append(ids, id)
		}
		sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	}
	for _, id := range ids {
		t := h.tasks[id]
		switch {
		case t == nil:
			return nil, nil, fmt.Errorf("%w: %d", ErrUnknownResult, id)
		case t.isDone():
			completed = append(completed, id)
		default:
			pending = append(pending, id)
		}
	}
	return pending, completed, nil
}

// purge drops finished results from the history: the given ids, or all
// finished ones when ids is nil. Outstanding tasks are kept.
func (h *Hub) purge(ids []uint64) (int, error) {
	bulk := false
	defer func() {
		if bulk {
			collectBulk() // purged results' bulk arrays go back to the engines
		}
	}()
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	if ids == nil {
		for id, t := range h.tasks {
			if t.isDone() {
				bulk = bulk || t.bulkBytes > 0
				delete(h.tasks, id)
				n++
			}
		}
		return n, nil
	}
	var unknown []uint64
	for _, id := range ids {
		t := h.tasks[id]
		if t == nil {
			unknown = append(unknown, id)
			continue
		}
		if t.isDone() {
			bulk = bulk || t.bulkBytes > 0
			delete(h.tasks, id)
			n++
		}
	}
	if len(unknown) > 0 {
		return n, fmt.Errorf("%w: %v", ErrUnknownResult, unknown)
	}
	return n, nil
}

// history lists the message ids the hub holds, in submission order.
func (h *Hub) history() []uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	ids := make([]uint64, 0, len(h.tasks))
	for id := range h.tasks {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	return ids
}

// Shutdown tells every engine to exit, waits up to timeout for them to
// leave, and stops the hub: tasks still waiting in the hub fail with
// ErrShutdown, outside clients are disconnected. It is idempotent.
func (h *Hub) Shutdown(timeout time.Duration) {
	h.stopOnce.Do(func() {
		h.mu.Lock()
		h.stopping = true
		var waiting []*task
		for id, t := range h.waiting {
			waiting = append(waiting, t)
			h.core.remove(id)
			delete(h.waiting, id)
		}
		h.mu.Unlock()
		now := time.Now()
		for _, t := range waiting {
			t.finish(nil, &RemoteError{EngineID: -1, Host: h.cfg.Host, Code: CodeShutdown, MsgID: t.id, Message: "the hub shut down before the task ran"}, now)
		}
		h.control(nil, ctlShutdown, nil)
		deadline := time.NewTimer(timeout)
		defer deadline.Stop()
	wait:
		for {
			h.mu.Lock()
			live := len(h.liveLocked())
			ch := h.changed
			h.mu.Unlock()
			if live == 0 {
				break
			}
			select {
			case <-ch:
			case <-deadline.C:
				break wait
			}
		}
		h.mu.Lock()
		h.closed = true
		var conns []*comm.Conn
		for _, e := range h.engines {
			conns = append(conns, e.conn)
		}
		for c := range h.clients {
			conns = append(conns, c)
		}
		h.mu.Unlock()
		close(h.done)
		for _, c := range conns {
			c.Close()
		}
	})
}

// Done is closed when the hub has shut down.
func (h *Hub) Done() <-chan struct{} { return h.done }

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

// Engines lists every engine the hub has seen, dead ones included.
func (h *Hub) Engines() []EngineInfo {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]EngineInfo, 0, len(h.engines))
	for _, e := range h.engines {
		out = append(out, EngineInfo{ID: e.id, Rank: e.rank, Host: e.host, PID: e.pid, Queued: len(e.pending), Done: e.done, Dead: e.dead, DeadWhy: e.why})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// bulkFor returns the bulk sender to the given engines, or nil when there
// is no mesh or an engine is unknown (the payload then travels in frames).
func (h *Hub) bulkFor(targets []int) *bulkSender {
	if h.cfg.World == nil {
		return nil
	}
	h.mu.Lock()
	ranks := make([]int, len(targets))
	for i, id := range targets {
		e := h.engines[id]
		if e == nil || e.dead || !e.mesh {
			h.mu.Unlock()
			return nil
		}
		ranks[i] = e.rank
	}
	h.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), bulkReady)
	defer cancel()
	w, err := h.cfg.World(ctx)
	if err != nil {
		h.log.Warn().Err(err).Msg("no collective mesh: large arrays travel in frames")
		return nil
	}
	return &bulkSender{ctx: context.Background(), world: w, to: ranks, tags: &h.bulkTags, deferred: true}
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
