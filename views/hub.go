package views

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rankhub/rankhub/comm"
	"github.com/rs/zerolog"
)

// HubConfig describes the hub of a job (rank 0).
type HubConfig struct {
	Host   string
	Logger zerolog.Logger
}

// Hub is rank 0's scheduler: engines register with it, clients submit work
// through it, and it routes tasks to engines and results back.
//
// Locking: h.mu guards engines, tasks and nextID. It is never held while
// sending on a connection or while completing a task's waiters.
type Hub struct {
	cfg HubConfig
	log zerolog.Logger

	mu       sync.Mutex
	engines  map[int]*engineRec
	tasks    map[uint64]*task
	nextID   int
	changed  chan struct{} // closed and replaced when the engine set changes
	closed   bool
	stopping bool // shutdown requested: engines leaving is expected
	msgSeq   atomic.Uint64
	stopOnce sync.Once
	done     chan struct{}
	wg       sync.WaitGroup
}

// engineRec is the hub's record of one engine.
type engineRec struct {
	id      int
	rank    int
	host    string
	pid     int
	conn    *comm.Conn
	pending map[uint64]*task
	dead    bool
	why     string
	done    int // tasks completed
}

func (e *engineRec) where() string {
	return fmt.Sprintf("engine %d (rank %d on %s, pid %d)", e.id, e.rank, e.host, e.pid)
}

// NewHub makes a hub. Serve feeds it connections.
func NewHub(cfg HubConfig) *Hub {
	return &Hub{cfg: cfg, log: cfg.Logger, engines: map[int]*engineRec{}, tasks: map[uint64]*task{},
		changed: make(chan struct{}), done: make(chan struct{})}
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
		h.wg.Add(1)
		go func() {
			defer h.wg.Done()
			h.handle(c)
		}()
	}
}

func (h *Hub) handle(c *comm.Conn) {
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
	default:
		h.log.Warn().Str("peer", c.RemoteAddr()).Int("type", int(f.Type)).Msg("unexpected first frame; closed")
		c.Close()
	}
}

func (h *Hub) serveEngine(c *comm.Conn, reg *registerMsg) {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		c.Close()
		return
	}
	// Job ranks get engine id rank-1 (so engine ids are 0..N-2 like
	// IPython's); an id is never given twice, so a rank that comes back, or
	// an engine without a rank, gets the next free id.
	id := reg.Rank - 1
	if _, used := h.engines[id]; used || id < 0 {
		id = h.nextID
	}
	if id >= h.nextID {
		h.nextID = id + 1
	}
	e := &engineRec{id: id, rank: reg.Rank, host: reg.Host, pid: reg.PID, conn: c, pending: map[uint64]*task{}}
	h.engines[id] = e
	h.mu.Unlock()

	ctrl, _, _ := encodeValues(id)
	if err := c.Send(&comm.Frame{Type: fWelcome, Control: ctrl}); err != nil {
		h.engineGone(e, err)
		return
	}
	h.log.Info().Int("engine", id).Int("rank", reg.Rank).Str("host", reg.Host).Int("pid", reg.PID).Msg("engine registered")
	h.notify()
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
		h.complete(e, f)
	}
}

func (h *Hub) notify() {
	h.mu.Lock()
	close(h.changed)
	h.changed = make(chan struct{})
	h.mu.Unlock()
}

// engineGone fails the engine's pending tasks at once and drops it.
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
	expected := h.closed || h.stopping
	h.mu.Unlock()
	e.conn.Close()
	if expected && len(pending) == 0 {
		h.log.Info().Int("engine", e.id).Int("rank", e.rank).Msg("engine left")
	} else {
		h.log.Error().Int("engine", e.id).Int("rank", e.rank).Str("host", e.host).Err(err).Int("pending", len(pending)).Msg("engine lost")
	}
	now := time.Now()
	for _, t := range pending {
		t.finish(nil, &RemoteError{EngineID: e.id, Rank: e.rank, Host: e.host, Code: CodeEngineDied, MsgID: t.id,
			Message: fmt.Sprintf("%s died with the task pending: %v", e.where(), err)}, now)
	}
	h.notify()
}

func (h *Hub) complete(e *engineRec, f *comm.Frame) {
	recv := time.Now()
	h.mu.Lock()
	t := e.pending[f.ID]
	delete(e.pending, f.ID)
	e.done++
	h.mu.Unlock()
	if t == nil {
		h.log.Warn().Int("engine", e.id).Uint64("msg", f.ID).Msg("result for an unknown task; dropped")
		f.Release()
		return
	}
	r, err := parseResult(f)
	if err != nil {
		t.finish(nil, &RemoteError{EngineID: e.id, Rank: e.rank, Host: e.host, Code: CodeError, MsgID: t.id,
			Message: "undecodable result: " + err.Error()}, recv)
		return
	}
	t.started, t.completed = r.Started, r.Completed
	t.stdout, t.stderr, t.exit = r.Stdout, r.Stderr, r.Exit
	t.frame = f // keeps out-of-band buffers the value aliases
	if r.Status != statusOK {
		t.finish(nil, &RemoteError{EngineID: e.id, Rank: e.rank, Host: e.host, Code: r.Code, Type: r.ErrType,
			Message: r.ErrMsg, Traceback: r.Traceback, MsgID: t.id}, recv)
		return
	}
	t.finish(r.Value, nil, recv)
}

// IDs returns the ids of the live engines, sorted.
func (h *Hub) IDs() []int {
	h.mu.Lock()
	defer h.mu.Unlock()
	ids := make([]int, 0, len(h.engines))
	for id, e := range h.engines {
		if !e.dead {
			ids = append(ids, id)
		}
	}
	sort.Ints(ids)
	return ids
}

// WaitForEngines blocks until at least n engines are registered.
func (h *Hub) WaitForEngines(ctx context.Context, n int) error {
	for {
		h.mu.Lock()
		live := 0
		for _, e := range h.engines {
			if !e.dead {
				live++
			}
		}
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

// submit sends one task frame to each target. The returned tasks complete
// when their engine answers or dies.
func (h *Hub) submit(targets []int, kind int, name string, ctrl []byte, bufs [][]byte) ([]*task, error) {
	now := time.Now()
	h.mu.Lock()
	if h.closed {
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
	tasks := make([]*task, len(targets))
	for i, e := range recs {
		t := newTask(h.msgSeq.Add(1), e, kind, name, now)
		e.pending[t.id] = t
		h.tasks[t.id] = t
		tasks[i] = t
	}
	h.mu.Unlock()
	for i, e := range recs {
		err := e.conn.Send(&comm.Frame{Type: fTask, ID: tasks[i].id, Control: ctrl, Buffers: bufs})
		if err != nil {
			h.engineGone(e, err)
		}
	}
	return tasks, nil
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
			if e := h.engines[id]; e != nil && !e.dead {
				recs = append(recs, e)
			}
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

// Shutdown tells every engine to exit, waits up to timeout for them to
// leave, and stops the hub. It is idempotent.
func (h *Hub) Shutdown(timeout time.Duration) {
	h.stopOnce.Do(func() {
		h.mu.Lock()
		h.stopping = true
		h.mu.Unlock()
		h.control(nil, ctlShutdown, nil)
		deadline := time.After(timeout)
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
				continue
			case <-deadline:
			}
			break
		}
		h.mu.Lock()
		h.closed = true
		var conns []*comm.Conn
		for _, e := range h.engines {
			conns = append(conns, e.conn)
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
