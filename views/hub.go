package views

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rankhub/rankhub/collective"
	"github.com/rankhub/rankhub/comm"
	"github.com/rankhub/rankhub/views/internal/hubcore"
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
// The hub's state is a pure state machine (internal/hubcore: engines, the
// history, the scheduler) owned by one goroutine, run: connection readers,
// clients and its timer hand it events (do, call), and run carries out the
// effects the core returns. Sends go through each engine's outbox, so run
// never blocks on a peer. See LOCKS.md.
type Hub struct {
	cfg HubConfig
	log zerolog.Logger

	bulkTags bulkTags // tags of arrays this process sends on the bulk path

	inbox    chan func()   // events for run
	quit     chan struct{} // closed to stop run
	loopDone chan struct{} // closed when run returned

	// Owned by run.
	core       *hubcore.Core
	futures    map[uint64]*task // the history's tasks, as clients see them
	changed    chan struct{}    // closed and replaced when the engine set changes
	afterFlush []func()
	stoppedMu  sync.Mutex // serializes call once run has ended

	// mu guards engines (written by run only), clients and closed.
	mu      sync.Mutex
	engines map[int]*engineRec
	clients map[*comm.Conn]bool
	closed  bool

	stopOnce sync.Once
	done     chan struct{}
	wg       sync.WaitGroup // connection goroutines and outboxes
}

// engineRec is the IO side of one engine: its connection and outbox.
type engineRec struct {
	id   int
	rank int
	host string
	mesh bool          // reachable on the bulk path
	bulk *bulkReceiver // its answers' bulk arrays; nil without a mesh
	conn *comm.Conn
	out  *outbox
}

// answer is an engine's decoded result, the Body of its core Result.
type answer struct {
	r    *resultMsg
	f    *comm.Frame
	recv time.Time
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
	h := &Hub{cfg: cfg, log: cfg.Logger, inbox: make(chan func(), 256), quit: make(chan struct{}), loopDone: make(chan struct{}),
		core:    hubcore.New(hubcore.Config{Host: cfg.Host, Scheme: cfg.Scheme, HWM: cfg.HWM, Seed: cfg.Seed}),
		futures: map[uint64]*task{}, changed: make(chan struct{}), engines: map[int]*engineRec{}, clients: map[*comm.Conn]bool{},
		done: make(chan struct{})}
	go h.run()
	return h
}

// run owns the core: it runs the events handed to it, a batch at a time,
// then carries out the effects; its timer ticks the core at the earliest
// deadline of a waiting task.
func (h *Hub) run() {
	defer close(h.loopDone)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var armed time.Time
	for {
		select {
		case fn := <-h.inbox:
			h.core.Tick(time.Now())
			fn()
		drain:
			for range 64 {
				select {
				case fn := <-h.inbox:
					fn()
				default:
					break drain
				}
			}
		case <-timer.C:
			armed = time.Time{}
			h.core.Tick(time.Now())
		case <-h.quit:
			// What the connections reported before they ended still
			// counts (engines lost: their tasks fail).
			for {
				select {
				case fn := <-h.inbox:
					fn()
					h.flush()
					continue
				default:
				}
				return
			}
		}
		h.flush()
		if next := h.core.NextDeadline(); !next.Equal(armed) {
			armed = next
			d := time.Hour
			if !next.IsZero() {
				d = max(time.Until(next), time.Millisecond)
			}
			timer.Reset(d)
		}
	}
}

// do hands fn to run; false once run ended (the hub shut down).
func (h *Hub) do(fn func()) bool {
	select {
	case h.inbox <- fn:
		return true
	case <-h.loopDone:
		return false
	}
}

// call runs fn on run and waits until its effects are carried out. Once
// run has ended (the hub shut down), fn runs on the caller, one caller at
// a time, and its effects are dropped: queries still answer, events find
// the core closed. It reports whether run took fn.
func (h *Hub) call(fn func()) bool {
	done := make(chan struct{})
	if h.do(func() {
		fn()
		h.afterFlush = append(h.afterFlush, func() { close(done) })
	}) {
		select {
		case <-done:
			return true
		case <-h.loopDone:
			select {
			case <-done:
				return true
			default: // queued after run's last look at its inbox: never ran
			}
		}
	}
	<-h.loopDone
	h.stoppedMu.Lock()
	defer h.stoppedMu.Unlock()
	fn()
	h.core.Ready()
	h.afterFlush = h.afterFlush[:0]
	return false
}

// flush carries out the core's effects (on run).
func (h *Hub) flush() {
	for _, ef := range h.core.Ready() {
		switch ef := ef.(type) {
		case hubcore.Send:
			h.send(ef)
		case hubcore.Control:
			if e := h.engines[ef.Engine]; e != nil {
				ctrl, _, _ := encodeValues(ef.Op, ef.IDs)
				e.out.push(&comm.Frame{Type: fControl, Control: ctrl}, nil)
			}
		case hubcore.Complete:
			h.finish(ef)
		case hubcore.Requeue:
			if t := h.futures[ef.ID]; t != nil {
				t.eng.Store(-1)
			}
			if !ef.Unmet {
				h.log.Info().Uint64("msg", ef.ID).Int("failed_on", ef.From).Int("retries_left", ef.RetriesLeft).Msg("task retried")
			}
		case hubcore.CloseEngine:
			if e := h.engines[ef.Engine]; e != nil {
				e.conn.Close()
			}
		case hubcore.EnginesChanged:
			close(h.changed)
			h.changed = make(chan struct{})
		case hubcore.Purged:
			bulk := false
			for _, id := range ef.IDs {
				if t := h.futures[id]; t != nil {
					bulk = bulk || t.bulkBytes > 0
					delete(h.futures, id)
				}
			}
			if bulk {
				collectBulk() // purged results' bulk arrays go back to the engines
			}
		case hubcore.Note:
			ev := h.log.Info()
			switch ef.Level {
			case "warn":
				ev = h.log.Warn()
			case "error":
				ev = h.log.Error()
			}
			if ef.Engine >= 0 {
				ev = ev.Int("engine", ef.Engine)
			}
			if ef.MsgID != 0 {
				ev = ev.Uint64("msg", ef.MsgID)
			}
			for _, f := range ef.Fields {
				switch v := f.Value.(type) {
				case int:
					ev = ev.Int(f.Key, v)
				case string:
					ev = ev.Str(f.Key, v)
				case []string:
					ev = ev.Strs(f.Key, v)
				default:
					ev = ev.Interface(f.Key, v)
				}
			}
			ev.Msg(ef.Text)
		}
	}
	for _, fn := range h.afterFlush {
		fn()
	}
	h.afterFlush = h.afterFlush[:0]
}

// send queues tasks on their engine's outbox: one write for the batch.
func (h *Hub) send(s hubcore.Send) {
	e := h.engines[s.Engine]
	fs := make([]*comm.Frame, len(s.Tasks))
	alts := make([]func(error) *comm.Frame, len(s.Tasks))
	keep := make([]any, 0, len(s.Tasks))
	ts := make([]*task, 0, len(s.Tasks))
	for i, d := range s.Tasks {
		if t := h.futures[d.ID]; t != nil {
			t.eng.Store(int64(e.id))
			t.rank, t.host = e.rank, e.host
			ts = append(ts, t)
		}
		ctrl := d.Payload.Ctrl
		switch {
		case d.Ranks != nil:
			ctrl = append(ctrl[:len(ctrl):len(ctrl)], encodeTargets(d.Ranks)...)
		case len(d.Payload.Suffix) > 0:
			ctrl = append(ctrl[:len(ctrl):len(ctrl)], d.Payload.Suffix...)
		}
		fs[i] = &comm.Frame{Type: fTask, ID: d.ID, Control: ctrl, Buffers: d.Payload.Bufs}
		if d.Payload.Keep != nil {
			keep = append(keep, d.Payload.Keep)
		}
		id := d.ID
		alts[i] = func(err error) *comm.Frame {
			h.do(func() { h.core.Unsendable(e.id, id, err.Error()) })
			return nil
		}
	}
	if hook := sendHook.Load(); hook != nil {
		for _, f := range fs {
			(*hook)(f.Buffers)
		}
	}
	e.out.pushBatch(fs, alts, keep, func() {
		for _, t := range ts {
			t.markSent()
		}
	})
}

// finish completes a task's future as the core decided (on run).
func (h *Hub) finish(c hubcore.Complete) {
	t := h.futures[c.ID]
	if t == nil {
		return
	}
	t.eng.Store(int64(c.Engine))
	if c.Engine >= 0 {
		t.rank, t.host = c.Rank, c.Host
	}
	if a, ok := c.Body.(*answer); ok {
		r := a.r
		t.started, t.completed = r.Started, r.Completed
		t.stdout, t.stderr, t.exit = r.Stdout, r.Stderr, r.Exit
		t.omitted = [2]int64{r.StdoutOmitted, r.StderrOmitted}
		t.frame = a.f // keeps out-of-band buffers the value aliases
		t.bulkBytes = r.bulkBytes
		if r.Status != statusOK {
			t.finish(nil, &RemoteError{EngineID: c.Engine, Rank: c.Rank, Host: c.Host, Code: r.Code, Type: r.ErrType,
				Message: r.ErrMsg, Traceback: r.Traceback, MsgID: t.id}, a.recv)
		} else {
			t.finish(r.Value, nil, a.recv)
		}
		return
	}
	t.finish(nil, &RemoteError{EngineID: c.Engine, Rank: c.Rank, Host: c.Host, Code: c.Code, MsgID: t.id, Message: c.Message}, time.Now())
}

// SetScheduler changes the load-balanced scheme and high-water mark for the
// tasks scheduled from now on.
func (h *Hub) SetScheduler(s Scheme, hwm int) {
	h.call(func() { h.core.SetScheduler(s, hwm) })
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

// goCounted starts fn on a goroutine that Shutdown waits for, unless the
// hub is closing.
func (h *Hub) goCounted(fn func()) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return false
	}
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		fn()
	}()
	return true
}

// goHandle starts a connection's goroutine unless the hub is shutting down.
func (h *Hub) goHandle(c *comm.Conn) bool { return h.goCounted(func() { h.handle(c) }) }

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
	id, err := -1, ErrShutdown
	h.call(func() {
		id, err = h.core.Register(hubcore.Registration{Rank: reg.Rank, Host: reg.Host, PID: reg.PID, Mesh: reg.Mesh, Funcs: reg.Funcs, Labels: reg.Labels})
	})
	if err != nil {
		ctrl, _, _ := encodeValues("the hub is shutting down")
		c.Send(&comm.Frame{Type: fReject, Control: ctrl})
		c.Close()
		return
	}
	e := &engineRec{id: id, rank: reg.Rank, host: reg.Host, mesh: reg.Mesh, conn: c}
	if h.cfg.World != nil && reg.Mesh {
		e.bulk = &bulkReceiver{ctx: context.Background(), world: h.cfg.World, from: reg.Rank}
	}
	// The welcome goes out before the engine joins the core: no task or
	// control frame can overtake it. The id stays taken either way.
	bulkRank := -1 // the rank engines send bulk arrays to; -1: none
	if h.cfg.World != nil {
		bulkRank = h.cfg.Rank
	}
	ctrl, _, _ := encodeValues(id, bulkRank)
	if err := c.Send(&comm.Frame{Type: fWelcome, Control: ctrl}); err != nil {
		h.log.Warn().Int("engine", id).Err(err).Msg("engine left before its welcome")
		h.do(func() { h.core.Lost(id, err.Error()) })
		c.Close()
		return
	}
	e.out = newOutbox(c, &h.wg, func(err error) {
		h.do(func() { h.core.Lost(id, err.Error()) })
	})
	if !h.call(func() {
		h.mu.Lock()
		h.engines[id] = e
		h.mu.Unlock()
		h.core.Joined(id)
	}) {
		c.Close()
		return
	}
	for {
		f, err := c.Recv()
		if err != nil {
			h.do(func() { h.core.Lost(id, err.Error()) })
			return
		}
		if f.Type != fResult {
			h.log.Warn().Int("engine", id).Int("type", int(f.Type)).Msg("unexpected frame from engine; ignored")
			continue
		}
		if err := recovered(func() { h.result(e, f) }); err != nil {
			withStack(h.log.Error().Int("engine", id).Int("rank", e.rank).Str("host", e.host), err).Uint64("msg", f.ID).Msg("panic while handling an engine's result; engine closed")
			h.do(func() {
				h.core.Lost(id, fmt.Sprintf("the hub closed it after a panic while handling its result for message %d: %v", f.ID, err))
			})
			return
		}
	}
}

// result decodes an engine's answer on its reader and hands it to the core.
func (h *Hub) result(e *engineRec, f *comm.Frame) {
	recv := time.Now()
	r, perr := parseResult(f, e.bulk)
	var cr hubcore.Result
	if perr != nil {
		cr = hubcore.Result{Corrupt: true, Failed: true, Message: perr.Error()}
	} else {
		cr = hubcore.Result{Failed: r.Status != statusOK, Code: r.Code, Message: r.ErrMsg, Body: &answer{r: r, f: f, recv: recv}}
	}
	if !h.do(func() {
		if !h.core.Result(e.id, f.ID, cr) {
			f.Release()
		}
	}) {
		f.Release()
	}
}

// IDs returns the ids of the live engines, sorted.
func (h *Hub) IDs() []int {
	ids := []int{}
	h.call(func() { ids = h.core.Live() })
	return ids
}

// WaitForEngines blocks until at least n engines are registered.
func (h *Hub) WaitForEngines(ctx context.Context, n int) error {
	for {
		live := 0
		var ch chan struct{}
		if !h.call(func() { live, ch = len(h.core.Live()), h.changed }) {
			return ErrShutdown
		}
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

func corePayloads(ps []payload, suffix []byte) []hubcore.Payload {
	out := make([]hubcore.Payload, len(ps))
	for i, p := range ps {
		out[i] = hubcore.Payload{Ctrl: p.ctrl, Bufs: p.bufs, Keep: p.keep, Suffix: suffix}
	}
	return out
}

// newFutures makes the tasks clients hold for the message ids the core
// gave out (on run).
func (h *Hub) newFutures(ids []uint64, kind int, name string, now time.Time, init func(*task)) []*task {
	tasks := make([]*task, len(ids))
	for i, id := range ids {
		t := newTask(id, kind, name, now)
		if init != nil {
			init(t)
		}
		h.futures[id] = t
		tasks[i] = t
	}
	return tasks
}

// submitDirect sends one task to each target; payloads has one entry per
// target, or one shared by all.
func (h *Hub) submitDirect(kind int, name string, targets []int, payloads []payload) ([]*task, error) {
	now := time.Now()
	var tasks []*task
	err := ErrShutdown
	h.call(func() {
		var ids []uint64
		if ids, err = h.core.SubmitDirect(targets, corePayloads(payloads, nil)); err == nil {
			tasks = h.newFutures(ids, kind, name, now, nil)
		}
	})
	return tasks, err
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
	cs := hubcore.Spec{Targets: spec.targets, After: spec.after, Follow: spec.follow, Timeout: spec.timeout, Retries: spec.retries}
	var suffix []byte
	if len(spec.require) > 0 || spec.depend != "" {
		// Checked by the engine (encodeRequirements); the core keeps the
		// payload until done, for the next engine.
		suffix, cs.Requires = encodeRequirements(spec.require, spec.depend), true
	}
	var tasks []*task
	err := ErrShutdown
	h.call(func() {
		var ids []uint64
		if ids, err = h.core.SubmitLB(corePayloads(payloads, suffix), cs); err == nil {
			tasks = h.newFutures(ids, kind, name, now, func(t *task) {
				t.lb = true
				t.after, t.follow = spec.after.MsgIDs, spec.follow.MsgIDs
			})
		}
	})
	return tasks, err
}

// sendHook, when set by a test, sees the buffers handed to comm for each task.
var sendHook atomic.Pointer[func(bufs [][]byte)]

// control sends a control frame to the given engines (all live ones if nil).
// Control frames bypass the engines' task queues.
func (h *Hub) control(targets []int, op int) error {
	err := ErrShutdown
	h.call(func() { err = h.core.Control(targets, op) })
	return err
}

// abort makes the given tasks fail with ErrAborted if they have not started:
// tasks still in the hub fail at once, tasks queued on an engine are marked
// there through the control channel. Finished tasks are left alone.
func (h *Hub) abort(ids []uint64) error {
	err := ErrShutdown
	h.call(func() { err = h.core.Abort(ids) })
	return err
}

// fetch returns the tasks of the given message ids from the history.
func (h *Hub) fetch(ids []uint64) ([]*task, error) {
	var out []*task
	err := ErrShutdown
	h.call(func() {
		if err = h.core.Known(ids); err == nil {
			out = make([]*task, len(ids))
			for i, id := range ids {
				out[i] = h.futures[id]
			}
		}
	})
	return out, err
}

// queueStatus returns the live engines' queues and the number of
// load-balanced tasks not yet on an engine.
func (h *Hub) queueStatus() ([]QueueStatus, int) {
	var q []QueueStatus
	n := 0
	h.call(func() { q, n = h.core.QueueStatus() })
	return q, n
}

// resultStatus splits ids into pending and completed; unknown ids are an error.
func (h *Hub) resultStatus(ids []uint64) (pending, completed []uint64, err error) {
	err = ErrShutdown
	h.call(func() { pending, completed, err = h.core.ResultStatus(ids) })
	return pending, completed, err
}

// purge drops finished results from the history: the given ids, or all
// finished ones when ids is nil. Outstanding tasks are kept.
func (h *Hub) purge(ids []uint64) (int, error) {
	n, err := 0, ErrShutdown
	h.call(func() { n, err = h.core.Purge(ids) })
	return n, err
}

// history lists the message ids the hub holds, in submission order.
func (h *Hub) history() []uint64 {
	ids := []uint64{}
	h.call(func() { ids = h.core.History() })
	return ids
}

// Shutdown tells every engine to exit, waits up to timeout for them to
// leave, and stops the hub: tasks still waiting in the hub fail with
// ErrShutdown, outside clients are disconnected. It returns once the hub's
// goroutines ended. It is idempotent; a second call waits for the first.
func (h *Hub) Shutdown(timeout time.Duration) {
	h.stopOnce.Do(func() {
		h.call(h.core.Shutdown)
		deadline := time.NewTimer(timeout)
		defer deadline.Stop()
	wait:
		for {
			live := 0
			var ch chan struct{}
			h.call(func() { live, ch = len(h.core.Live()), h.changed })
			if live == 0 {
				break
			}
			select {
			case <-ch:
			case <-deadline.C:
				break wait
			}
		}
		h.call(func() {
			h.core.Close()
			h.mu.Lock()
			h.closed = true
			for c := range h.clients {
				c.Close()
			}
			h.mu.Unlock()
		})
		// The connections' goroutines end now that their connections are
		// closed; run still takes what they report (engines lost), then stops.
		h.wg.Wait()
		close(h.quit)
		<-h.loopDone
		close(h.done)
	})
	<-h.done
}

// Done is closed when the hub has shut down.
func (h *Hub) Done() <-chan struct{} { return h.done }

// Engines lists every engine the hub has seen, dead ones included.
func (h *Hub) Engines() []EngineInfo {
	out := []EngineInfo{}
	h.call(func() { out = h.core.Engines() })
	return out
}

// bulkFor returns the bulk sender to the given engines, or nil when there
// is no mesh or an engine is unknown (the payload then travels in frames).
func (h *Hub) bulkFor(targets []int) *bulkSender {
	if h.cfg.World == nil {
		return nil
	}
	var ranks []int
	h.call(func() {
		for _, id := range targets {
			reg, live, ok := h.core.Engine(id)
			if !ok || !live || !reg.Mesh {
				ranks = nil
				return
			}
			ranks = append(ranks, reg.Rank)
		}
	})
	if ranks == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), bulkReady)
	defer cancel()
	w, err := h.cfg.World(ctx)
	if err != nil {
		h.log.Warn().Err(err).Msg("no collective mesh: large arrays travel in frames")
		return nil
	}
	return &bulkSender{ctx: context.Background(), world: w, to: ranks, tags: &h.bulkTags, deferred: true}
}
