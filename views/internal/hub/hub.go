// Package hub is the hub's IO under package views: engines' and outside
// clients' connections, their outboxes, and the owner of the hub's state
// machine (views/internal/hubcore), which takes events from them and carries
// out the effects. Task is one message to one engine and its outcome: the
// hub's IO record and the future behind views.AsyncResult. See
// views/LOCKS.md.
package hub

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rankhub/rankhub/collective"
	"github.com/rankhub/rankhub/comm"
	"github.com/rankhub/rankhub/views/internal/bulk"
	"github.com/rankhub/rankhub/views/internal/codec"
	"github.com/rankhub/rankhub/views/internal/engine"
	"github.com/rankhub/rankhub/views/internal/hubcore"
	"github.com/rankhub/rankhub/views/internal/proto"
	"github.com/rs/zerolog"
)

// Config describes the hub of a job (rank 0).
type Config struct {
	Host   string
	Logger zerolog.Logger
	// Scheme is the load-balanced scheduler's scheme (RANKHUB_SCHEME when
	// zero and set; default LeastLoad).
	Scheme hubcore.Scheme
	// HWM is the high-water mark: the most load-balanced tasks in flight on
	// one engine; later tasks wait in the hub (RANKHUB_HWM; 0: no limit).
	HWM int
	// Seed seeds the Random scheme (0: from the clock).
	Seed uint64
	// World returns the communicator over every rank of the job, waiting
	// until it is ready; nil: no bulk path (internal/bulk). With it, pushes and
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
// history, the scheduler) with one owner at a time: the goroutine holding
// the turn. Connection readers, clients and the deadline timer hand it
// events (do, call, submit); whoever takes the turn runs the events waiting
// and carries out the effects the core returns, then leaves the turn. Sends
// are queued on each engine's outbox under the turn; after leaving it, a
// submitting client writes them itself when the outbox is idle, everyone
// else leaves them to the outbox's goroutine, so no reader ever blocks on
// a peer. See LOCKS.md.
type Hub struct {
	cfg Config
	log zerolog.Logger

	bulkTags bulk.Tags // tags of arrays this process sends on the bulk path

	// turn is held by the core's owner of the moment. Events that find it
	// taken wait in queue; every holder runs them before and after its own
	// and looks at queue again after leaving the turn (drive).
	turn   sync.Mutex
	qmu    sync.Mutex // guards queue; a leaf
	queue  []func()
	queued atomic.Int64 // len(queue), read without qmu
	spare  []func()     // queue's previous array, reused (under turn)

	kick     chan struct{} // wakes run: the queue is left to it
	quit     chan struct{} // closed to stop run
	loopDone chan struct{} // closed when run returned

	// Under the turn.
	core    *hubcore.Core
	futures futureTable   // the history's tasks, as clients see them
	changed chan struct{} // closed and replaced when the engine set changes
	dirty   []*outbox     // outboxes given frames in this turn
	timer   *time.Timer   // fires at the core's next deadline (run ticks it)
	armed   time.Time     // the deadline timer is set for
	stopped bool          // Shutdown has ended: effects are dropped
	// targets and targetsEnc are the last direct task's target ranks and
	// their encoding (encodedTargets).
	targets    []int
	targetsEnc []byte

	// mu guards engines (written under the turn), clients and closed.
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
	mesh bool               // reachable on the bulk path
	bulk codec.BulkReceiver // its answers' bulk arrays; nil without a mesh
	conn *comm.Conn
	out  *outbox
	// unsendable is the alternative of its task frames (made once, not per
	// send): a task too large for a frame fails.
	unsendable func(*comm.Frame, error) *comm.Frame
}

// answer is an engine's decoded result, the Body of its core Result.
type answer struct {
	r    *proto.Result
	f    *comm.Frame
	recv time.Time
}

// New makes a hub. Serve feeds it connections.
func New(cfg Config) *Hub {
	if cfg.Scheme == hubcore.LeastLoad {
		if s, err := hubcore.ParseScheme(os.Getenv("RANKHUB_SCHEME")); err == nil {
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
	h := &Hub{cfg: cfg, log: cfg.Logger, kick: make(chan struct{}, 1), quit: make(chan struct{}), loopDone: make(chan struct{}),
		core:    hubcore.New(hubcore.Config{Host: cfg.Host, Scheme: cfg.Scheme, HWM: cfg.HWM, Seed: cfg.Seed}),
		changed: make(chan struct{}), timer: time.NewTimer(time.Hour),
		engines: map[int]*engineRec{}, clients: map[*comm.Conn]bool{}, done: make(chan struct{})}
	go h.run()
	return h
}

// run ticks the core at the earliest deadline of a waiting task, and takes
// the turn for events a busy holder left to it (drive).
func (h *Hub) run() {
	defer close(h.loopDone)
	defer h.timer.Stop()
	for {
		select {
		case <-h.timer.C:
			var buf [8]*outbox
			h.turn.Lock()
			h.armed = time.Time{}
			out := h.step(nil, buf[:0])
			h.turn.Unlock()
			flushOut(out, false)
			h.drive(false)
		case <-h.kick:
			h.drive(false)
		case <-h.quit:
			return
		}
	}
}

// do hands fn to the core's owner: it runs now on this goroutine when
// nobody holds the turn, else the holder runs it before leaving. It never
// blocks for long (a holder's step is bounded work, no IO), and never
// writes to a peer.
func (h *Hub) do(fn func()) {
	h.qmu.Lock()
	h.queue = append(h.queue, fn)
	h.queued.Store(int64(len(h.queue)))
	h.qmu.Unlock()
	h.drive(false)
}

// call runs fn as the core's owner, after the events queued before it,
// and carries out the effects before it returns; frames for peers go to
// their outboxes' goroutines. Once the hub has shut down, fn still runs
// (queries answer, events find the core closed) and its effects are
// dropped. It reports whether the hub was running.
func (h *Hub) call(fn func()) bool { return h.callOut(fn, false, nil) }

// submit is call for a client's requests: frames that fn's effects queue
// on an idle outbox are written by this goroutine, after it left the turn
// (a client waits for its tasks anyway; readers never do this).
func (h *Hub) submit(fn func()) bool { return h.callOut(fn, true, nil) }

// callOut runs fn as call and submit do; then, when not nil, runs after
// the turn is left and before this goroutine writes the frames.
func (h *Hub) callOut(fn func(), direct bool, then func()) bool {
	var buf [8]*outbox
	h.turn.Lock()
	running := !h.stopped
	out := h.step(fn, buf[:0])
	h.turn.Unlock()
	if then != nil {
		then()
	}
	flushOut(out, direct)
	h.drive(direct)
	return running
}

// drive takes the turn while events wait and nobody holds it. A holder
// that ran many rounds leaves the rest to run, so a flood of events does
// not hold one caller for ever.
func (h *Hub) drive(direct bool) {
	for rounds := 1; ; rounds++ {
		if h.queued.Load() == 0 || !h.turn.TryLock() {
			return
		}
		var buf [8]*outbox // declared in the loop: outside it, it escapes (an allocation per call, on every result)
		out := h.step(nil, buf[:0])
		h.turn.Unlock()
		flushOut(out, direct)
		if rounds%8 == 0 && h.queued.Load() > 0 {
			select {
			case <-h.loopDone: // run has ended (shut down): go on here
				continue
			default:
			}
			select {
			case h.kick <- struct{}{}:
			default:
			}
			return
		}
	}
}

// step runs, under the turn, the events queued, then fn, then what came
// meanwhile, and carries out the effects. The frames stay in the outboxes:
// it appends those it gave frames to out, for flushOut after the turn.
func (h *Hub) step(fn func(), out []*outbox) []*outbox {
	h.core.Tick(time.Now())
	h.runQueued()
	if fn != nil {
		fn()
		h.runQueued()
	}
	h.flush()
	for h.queued.Load() > 0 { // events handed over by the effects (an outbox's error, say)
		h.runQueued()
		h.flush()
	}
	for _, o := range h.dirty {
		o.listed = false
	}
	out = append(out, h.dirty...)
	clear(h.dirty)
	h.dirty = h.dirty[:0]
	if h.stopped {
		return out
	}
	if next := h.core.NextDeadline(); !next.Equal(h.armed) {
		h.armed = next
		d := time.Hour
		if !next.IsZero() {
			d = max(time.Until(next), time.Millisecond)
		}
		h.timer.Reset(d)
	}
	return out
}

// runQueued runs the events waiting in the queue, in order (under the turn).
func (h *Hub) runQueued() {
	for h.queued.Load() > 0 {
		h.qmu.Lock()
		q := h.queue
		h.queue = h.spare[:0]
		h.queued.Store(0)
		h.qmu.Unlock()
		for i, fn := range q {
			fn()
			q[i] = nil
		}
		h.spare = q
	}
}

// flushOut sees to the frames queued in the turn just left: with direct,
// written by this goroutine when their outbox is idle; else (or when the
// outbox is busy) by the outbox's goroutine. Frames of one connection go
// out in the order the turns queued them.
func flushOut(out []*outbox, direct bool) {
	for _, o := range out {
		if direct {
			o.writeNow()
		} else {
			o.kick()
		}
	}
}

// flush carries out the core's effects (under the turn); once the hub has
// shut down they are dropped.
func (h *Hub) flush() {
	if h.stopped {
		h.core.Ready()
		return
	}
	for _, ef := range h.core.Ready() {
		switch ef := ef.(type) {
		case hubcore.Send:
			h.send(ef)
		case hubcore.Control:
			if e := h.engines[ef.Engine]; e != nil {
				ctrl, _, _ := codec.EncodeBulk(nil, ef.Op, ef.IDs)
				h.queueOut(e.out, []*comm.Frame{{Type: proto.FControl, Control: ctrl}}, nil, nil, nil)
			}
		case hubcore.Complete:
			h.finish(ef)
		case hubcore.Requeue:
			if t := h.futures.get(ef.ID); t != nil {
				t.Eng.Store(-1)
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
				if t := h.futures.get(id); t != nil {
					bulk = bulk || t.BulkBytes > 0
					h.futures.drop(id)
				}
			}
			if bulk {
				codec.CollectBulk() // purged results' bulk arrays go back to the engines
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
}

// queueOut queues frames on an engine's outbox without waking its
// goroutine: the turn's holder sees to them after the turn (flushOut).
func (h *Hub) queueOut(o *outbox, fs []*comm.Frame, alts []func(*comm.Frame, error) *comm.Frame, keep []any, after func()) {
	o.enqueue(fs, alts, keep, after)
	if !o.listed {
		o.listed = true
		h.dirty = append(h.dirty, o)
	}
}

// send queues tasks on their engine's outbox: one write for the batch.
func (h *Hub) send(s hubcore.Send) {
	e := h.engines[s.Engine]
	frames := make([]comm.Frame, len(s.Tasks)) // one allocation for the batch's frames
	fs := make([]*comm.Frame, len(s.Tasks))
	alts := make([]func(*comm.Frame, error) *comm.Frame, len(s.Tasks))
	keep := make([]any, 0, len(s.Tasks))
	ts := make([]*Task, 0, len(s.Tasks))
	for i, d := range s.Tasks {
		if t := h.futures.get(d.ID); t != nil {
			t.Eng.Store(int64(e.id))
			t.Rank, t.Host = e.rank, e.host
			ts = append(ts, t)
		}
		ctrl := d.Payload.Ctrl
		switch {
		case d.Ranks != nil:
			ctrl = append(ctrl[:len(ctrl):len(ctrl)], h.encodedTargets(d.Ranks)...)
		case len(d.Payload.Suffix) > 0:
			ctrl = append(ctrl[:len(ctrl):len(ctrl)], d.Payload.Suffix...)
		}
		frames[i] = comm.Frame{Type: proto.FTask, ID: d.ID, Control: ctrl, Buffers: d.Payload.Bufs}
		fs[i] = &frames[i]
		if d.Payload.Keep != nil {
			keep = append(keep, d.Payload.Keep)
		}
		alts[i] = e.unsendable
	}
	if hook := SendHook.Load(); hook != nil {
		for _, f := range fs {
			(*hook)(f.Buffers)
		}
	}
	h.queueOut(e.out, fs, alts, keep, func() {
		for _, t := range ts {
			t.MarkSent()
		}
	})
}

// encodedTargets is proto.EncodeTargets(ranks), kept for the next direct task to
// the same ranks (under the turn): a driver applying to one view again and
// again encodes its targets once, not on every round trip. The bytes are
// only ever copied (send appends them to a task's own control).
func (h *Hub) encodedTargets(ranks []int) []byte {
	if h.targetsEnc == nil || !slices.Equal(ranks, h.targets) {
		h.targets, h.targetsEnc = slices.Clone(ranks), proto.EncodeTargets(ranks)
	}
	return h.targetsEnc
}

// finish completes a task's future as the core decided (under the turn).
func (h *Hub) finish(c hubcore.Complete) {
	t := h.futures.get(c.ID)
	if t == nil {
		return
	}
	t.Eng.Store(int64(c.Engine))
	if c.Engine >= 0 {
		t.Rank, t.Host = c.Rank, c.Host
	}
	if a, ok := c.Body.(*answer); ok {
		r := a.r
		t.Started, t.Completed = r.Started, r.Completed
		t.Stdout, t.Stderr, t.Exit = r.Stdout, r.Stderr, r.Exit
		t.Omitted = [2]int64{r.StdoutOmitted, r.StderrOmitted}
		t.Frame = a.f // keeps out-of-band buffers the value aliases
		t.BulkBytes = r.BulkBytes
		if r.Status != proto.StatusOK {
			t.Finish(nil, &proto.RemoteError{EngineID: c.Engine, Rank: c.Rank, Host: c.Host, Code: r.Code, Type: r.ErrType,
				Message: r.ErrMsg, Traceback: r.Traceback, MsgID: t.ID}, a.recv)
		} else {
			t.Finish(r.Value, nil, a.recv)
		}
		return
	}
	t.Finish(nil, &proto.RemoteError{EngineID: c.Engine, Rank: c.Rank, Host: c.Host, Code: c.Code, MsgID: t.ID, Message: c.Message}, time.Now())
}

// SetScheduler changes the load-balanced scheme and high-water mark for the
// tasks scheduled from now on.
func (h *Hub) SetScheduler(s hubcore.Scheme, hwm int) {
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
	if err := engine.Recovered(func() { h.handlePeer(c) }); err != nil {
		engine.WithStack(h.log.Error().Str("peer", c.RemoteAddr()), err).Msg("panic while handling a peer's message; peer closed")
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
	case proto.FRegister:
		reg, err := proto.ParseRegister(f)
		if err != nil {
			h.log.Warn().Str("peer", c.RemoteAddr()).Err(err).Msg("bad registration; closed")
			c.Close()
			return
		}
		h.serveEngine(c, reg)
	case proto.FHello:
		h.serveClient(c, f)
	default:
		h.log.Warn().Str("peer", c.RemoteAddr()).Int("type", int(f.Type)).Msg("unexpected first frame; closed")
		c.Close()
	}
}

func (h *Hub) serveEngine(c *comm.Conn, reg *proto.Register) {
	id, err := -1, hubcore.ErrShutdown
	h.call(func() {
		id, err = h.core.Register(hubcore.Registration{Rank: reg.Rank, Host: reg.Host, PID: reg.PID, Mesh: reg.Mesh, Funcs: reg.Funcs, Labels: reg.Labels})
	})
	if err != nil {
		ctrl, _, _ := codec.EncodeBulk(nil, "the hub is shutting down")
		c.Send(&comm.Frame{Type: proto.FReject, Control: ctrl})
		c.Close()
		return
	}
	e := &engineRec{id: id, rank: reg.Rank, host: reg.Host, mesh: reg.Mesh, conn: c}
	if h.cfg.World != nil && reg.Mesh {
		e.bulk = bulk.NewReceiver(context.Background(), h.cfg.World, reg.Rank)
	}
	// The welcome goes out before the engine joins the core: no task or
	// control frame can overtake it. The id stays taken either way.
	bulkRank := -1 // the rank engines send bulk arrays to; -1: none
	if h.cfg.World != nil {
		bulkRank = h.cfg.Rank
	}
	ctrl, _, _ := codec.EncodeBulk(nil, id, bulkRank)
	if err := c.Send(&comm.Frame{Type: proto.FWelcome, Control: ctrl}); err != nil {
		h.log.Warn().Int("engine", id).Err(err).Msg("engine left before its welcome")
		h.do(func() { h.core.Lost(id, err.Error()) })
		c.Close()
		return
	}
	e.out = newOutbox(c, &h.wg, func(err error) {
		h.do(func() { h.core.Lost(id, err.Error()) })
	})
	e.unsendable = func(f *comm.Frame, err error) *comm.Frame {
		h.do(func() { h.core.Unsendable(id, f.ID, err.Error()) })
		return nil
	}
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
		if f.Type != proto.FResult {
			h.log.Warn().Int("engine", id).Int("type", int(f.Type)).Msg("unexpected frame from engine; ignored")
			continue
		}
		if err := engine.Recovered(func() { h.result(e, f) }); err != nil {
			engine.WithStack(h.log.Error().Int("engine", id).Int("rank", e.rank).Str("host", e.host), err).Uint64("msg", f.ID).Msg("panic while handling an engine's result; engine closed")
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
	r, perr := proto.ParseResult(f, e.bulk)
	var cr hubcore.Result
	if perr != nil {
		cr = hubcore.Result{Corrupt: true, Failed: true, Message: perr.Error()}
	} else {
		cr = hubcore.Result{Failed: r.Status != proto.StatusOK, Code: r.Code, Message: r.ErrMsg, Body: &answer{r: r, f: f, recv: recv}}
	}
	h.do(func() {
		if !h.core.Result(e.id, f.ID, cr) {
			f.Release()
		}
	})
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
			return hubcore.ErrShutdown
		}
		if live >= n {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("views: waiting for %d engines (have %d): %w", n, live, ctx.Err())
		case <-ch:
		case <-h.done:
			return hubcore.ErrShutdown
		}
	}
}

func corePayloads(ps []proto.Payload, suffix []byte) []hubcore.Payload {
	out := make([]hubcore.Payload, len(ps))
	for i, p := range ps {
		out[i] = hubcore.Payload{Ctrl: p.Ctrl, Bufs: p.Bufs, Keep: p.Keep, Suffix: suffix}
	}
	return out
}

// newFutures makes the tasks clients hold for the message ids the core
// gave out (under the turn).
func (h *Hub) newFutures(ids []uint64, kind int, name string, now time.Time, init func(*Task)) []*Task {
	tasks := make([]*Task, len(ids))
	for i, id := range ids {
		t := NewTask(id, kind, name, now)
		if init != nil {
			init(t)
		}
		h.futures.put(id, t)
		tasks[i] = t
	}
	return tasks
}

// SubmitDirect sends one task to each target; payloads has one entry per
// target, or one shared by all.
func (h *Hub) SubmitDirect(kind int, name string, targets []int, payloads []proto.Payload) ([]*Task, error) {
	return h.SubmitDirectThen(kind, name, targets, payloads, nil)
}

// SubmitDirectThen is SubmitDirect that calls accepted (when not nil) on
// this goroutine once the tasks exist, before it writes their frames to
// the engines; not when the call fails. A push starts its arrays down the
// mesh there, beside the task frames instead of after them (bulk.Sender:
// the tasks exist, so the arrays may go; issue 15).
func (h *Hub) SubmitDirectThen(kind int, name string, targets []int, payloads []proto.Payload, accepted func()) ([]*Task, error) {
	now := time.Now()
	var tasks []*Task
	err := hubcore.ErrShutdown
	var then func()
	if accepted != nil {
		then = func() {
			if err == nil {
				accepted()
			}
		}
	}
	h.callOut(func() {
		var ids []uint64
		if ids, err = h.core.SubmitDirect(targets, corePayloads(payloads, nil)); err == nil {
			tasks = h.newFutures(ids, kind, name, now, nil)
		}
	}, true, then)
	return tasks, err
}

// SubmitLB queues one load-balanced task per payload; the scheduler sends
// them when their dependencies are met and an engine is eligible.
func (h *Hub) SubmitLB(kind int, name string, payloads []proto.Payload, spec proto.Spec) ([]*Task, error) {
	now := time.Now()
	cs := hubcore.Spec{Targets: spec.Targets, After: spec.After, Follow: spec.Follow, Timeout: spec.Timeout, Retries: spec.Retries}
	var suffix []byte
	if len(spec.Require) > 0 || spec.Depend != "" {
		// Checked by the engine (proto.EncodeRequirements); the core keeps the
		// payload until done, for the next engine.
		suffix, cs.Requires = proto.EncodeRequirements(spec.Require, spec.Depend), true
	}
	var tasks []*Task
	err := hubcore.ErrShutdown
	h.submit(func() {
		var ids []uint64
		if ids, err = h.core.SubmitLB(corePayloads(payloads, suffix), cs); err == nil {
			tasks = h.newFutures(ids, kind, name, now, func(t *Task) {
				t.LB = true
				t.After, t.Follow = spec.After.MsgIDs, spec.Follow.MsgIDs
			})
		}
	})
	return tasks, err
}

// sendHook, when set by a test, sees the buffers handed to comm for each task.
var SendHook atomic.Pointer[func(bufs [][]byte)]

// Control sends a control frame to the given engines (all live ones if nil).
// Control frames bypass the engines' task queues.
func (h *Hub) Control(targets []int, op int) error {
	err := hubcore.ErrShutdown
	h.submit(func() { err = h.core.Control(targets, op) })
	return err
}

// Abort makes the given tasks fail with ErrAborted if they have not started:
// tasks still in the hub fail at once, tasks queued on an engine are marked
// there through the control channel. Finished tasks are left alone.
func (h *Hub) Abort(ids []uint64) error {
	err := hubcore.ErrShutdown
	h.submit(func() { err = h.core.Abort(ids) })
	return err
}

// Fetch returns the tasks of the given message ids from the history.
func (h *Hub) Fetch(ids []uint64) ([]*Task, error) {
	var out []*Task
	err := hubcore.ErrShutdown
	h.call(func() {
		if err = h.core.Known(ids); err == nil {
			out = make([]*Task, len(ids))
			for i, id := range ids {
				out[i] = h.futures.get(id)
			}
		}
	})
	return out, err
}

// QueueStatus returns the live engines' queues and the number of
// load-balanced tasks not yet on an engine.
func (h *Hub) QueueStatus() ([]hubcore.QueueStatus, int) {
	var q []hubcore.QueueStatus
	n := 0
	h.call(func() { q, n = h.core.QueueStatus() })
	return q, n
}

// ResultStatus splits ids into pending and completed; unknown ids are an error.
func (h *Hub) ResultStatus(ids []uint64) (pending, completed []uint64, err error) {
	err = hubcore.ErrShutdown
	h.call(func() { pending, completed, err = h.core.ResultStatus(ids) })
	return pending, completed, err
}

// Purge drops finished results from the history: the given ids, or all
// finished ones when ids is nil. Outstanding tasks are kept.
func (h *Hub) Purge(ids []uint64) (int, error) {
	n, err := 0, hubcore.ErrShutdown
	h.call(func() { n, err = h.core.Purge(ids) })
	return n, err
}

// History lists the message ids the hub holds, in submission order.
func (h *Hub) History() []uint64 {
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
		// closed; what they reported still counts (engines lost: their
		// tasks fail), then the core's effects are dropped.
		h.wg.Wait()
		close(h.quit)
		<-h.loopDone
		h.turn.Lock()
		out := h.step(nil, nil)
		h.stopped = true
		h.timer.Stop()
		h.turn.Unlock()
		flushOut(out, false)
		h.drive(false) // what came meanwhile (its effects dropped)
		close(h.done)
	})
	<-h.done
}

// Done is closed when the hub has shut down.
func (h *Hub) Done() <-chan struct{} { return h.done }

// Engines lists every engine the hub has seen, dead ones included.
func (h *Hub) Engines() []hubcore.EngineInfo {
	out := []hubcore.EngineInfo{}
	h.call(func() { out = h.core.Engines() })
	return out
}

// BulkFor returns the bulk sender to the given engines, or nil when there
// is no mesh or an engine is unknown (the payload then travels in frames).
func (h *Hub) BulkFor(targets []int) *bulk.Sender {
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
	ctx, cancel := context.WithTimeout(context.Background(), bulk.Ready)
	defer cancel()
	w, err := h.cfg.World(ctx)
	if err != nil {
		h.log.Warn().Err(err).Msg("no collective mesh: large arrays travel in frames")
		return nil
	}
	return bulk.NewDeferredSender(context.Background(), w, ranks, &h.bulkTags)
}

// EngineConn is engine id's connection, nil when the hub has none (tests
// close it to play a hub or a network that is gone).
func (h *Hub) EngineConn(id int) *comm.Conn {
	h.mu.Lock()
	defer h.mu.Unlock()
	if e := h.engines[id]; e != nil {
		return e.conn
	}
	return nil
}
