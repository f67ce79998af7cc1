package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/rs/zerolog"

	"github.com/rankhub/rankhub/collective"
	"github.com/rankhub/rankhub/comm"
	"github.com/rankhub/rankhub/views/internal/bulk"
	"github.com/rankhub/rankhub/views/internal/codec"
	"github.com/rankhub/rankhub/views/internal/proto"
)

// Config describes the engine side of a rank (views.EngineConfig).
type Config struct {
	Rank   int
	Host   string
	Logger zerolog.Logger
	// World returns the communicator over every rank of the job (the
	// collective mesh), waiting until it is ready; nil: no collectives.
	World func(ctx context.Context) (*collective.Comm, error)
	// Labels describe the engine (such as "gpu") for TaskOptions.Require.
	Labels []string
	// CaptureOutput points the process's stdout and stderr into pipes so
	// that what registered functions print during a task comes back in
	// its Metadata.Stdout and Stderr (stdcapture.go). For processes that
	// run this one engine (rank processes); off for engines sharing a
	// process with other code.
	CaptureOutput bool
}

// Engine executes tasks sent by the hub, one at a time in arrival order,
// while a reader goroutine handles control messages (abort, clear,
// shutdown) at once, even when a long task is running.
type Engine struct {
	cfg  Config
	conn *comm.Conn
	id   int
	ns   *Namespace

	mu      sync.Mutex
	cond    *sync.Cond
	queue   []*comm.Frame
	busy    bool // a task is running or its result is being encoded
	stopped bool
	running context.CancelFunc // cancels the running shell command on shutdown

	outMu    sync.Mutex // a leaf: guards out, keep and outTimer
	out      []*comm.Frame
	keep     []*proto.Result // the results of out: their values stay reachable until written
	marks    []int           // per result of out: the namespace's drop count when its task started
	outTimer *time.Timer

	commMu sync.Mutex // a leaf: guards comms
	comms  map[string]*collective.Comm

	// hubRank is the world rank answers to pulls send large arrays to on
	// the bulk path (internal/bulk); -1: the hub has no mesh.
	hubRank  int
	bulkTags bulk.Tags
	recv     codec.BulkReceiver // the worker's, from the hub's rank; nil without a mesh
	// received are the holds of the bulk arrays the running task's frame
	// brought (the worker's: cleared after each task).
	received map[arrow.Array]*codec.GCHold
	std      *StdCapture // what functions print; nil: not captured
}

// Serve registers with the hub over conn and serves tasks until the hub
// shuts the engine down (nil) or the connection fails (an error naming why).
func Serve(ctx context.Context, conn *comm.Conn, cfg Config) error {
	reg := &proto.Register{Rank: cfg.Rank, Host: cfg.Host, PID: os.Getpid(), Mesh: cfg.World != nil, Funcs: Registered(), Labels: cfg.Labels}
	f, err := reg.Frame()
	if err != nil {
		return err
	}
	if err := conn.Send(f); err != nil {
		return fmt.Errorf("views: register with hub: %w", err)
	}
	wf, err := conn.Recv()
	if err != nil {
		return fmt.Errorf("views: register with hub: %w", err)
	}
	if wf.Type == proto.FReject {
		v, _ := codec.DecodeValues(wf.Control, nil, 1)
		return fmt.Errorf("views: hub refused registration: %v", v)
	}
	if wf.Type != proto.FWelcome {
		return fmt.Errorf("views: register with hub: unexpected frame type %d", wf.Type)
	}
	v, err := codec.DecodeValues(wf.Control, wf.Buffers, 2)
	if err != nil {
		return fmt.Errorf("views: welcome: %w", err)
	}
	id, ok1 := v[0].(int)
	bulkRank, ok2 := v[1].(int)
	if !ok1 || !ok2 {
		return fmt.Errorf("views: welcome: bad engine id or hub rank")
	}
	e := &Engine{cfg: cfg, conn: conn, id: id, ns: NewNamespace(), hubRank: bulkRank}
	if cfg.CaptureOutput {
		if e.std, err = StartStdCapture(); err != nil {
			cfg.Logger.Warn().Err(err).Msg("what functions print stays in the rank's output")
		}
	}
	e.cond = sync.NewCond(&e.mu)
	cfg.Logger.Info().Int("engine", id).Msg("registered with hub")
	return e.serve(ctx)
}

func (e *Engine) serve(ctx context.Context) error {
	// The worker's context ends with the engine: a function that watches
	// its Context stops when the hub is lost, not hours later.
	wctx, stopWork := context.WithCancel(ctx)
	defer stopWork()
	e.recv = bulk.In(e.workerReceiver(wctx))
	workerDone := make(chan struct{})
	go func() {
		defer close(workerDone)
		e.work(wctx)
	}()
	stop := context.AfterFunc(ctx, func() { e.conn.Close() })
	defer stop()
	var err error
	for {
		f, rerr := e.conn.Recv()
		if rerr != nil {
			err = rerr
			break
		}
		switch f.Type {
		case proto.FTask:
			e.mu.Lock()
			e.queue = append(e.queue, f)
			e.cond.Signal()
			e.mu.Unlock()
		case proto.FControl:
			stop := false
			if perr := Recovered(func() { stop = e.control(f) }); perr != nil {
				// This message's recovery boundary: it is dropped.
				WithStack(e.cfg.Logger.Error().Int("engine", e.id), perr).Msg("panic while handling a control message from the hub; message dropped")
			}
			if stop {
				err = nil
				goto out
			}
		default:
			e.cfg.Logger.Warn().Int("type", int(f.Type)).Msg("unexpected frame from hub; ignored")
		}
	}
out:
	stopWork()
	e.mu.Lock()
	e.stopped = true
	if e.running != nil {
		e.running()
	}
	e.cond.Broadcast()
	e.mu.Unlock()
	e.conn.Close()
	<-workerDone
	if err != nil && ctx.Err() != nil {
		return ctx.Err()
	}
	if err != nil {
		return fmt.Errorf("views: engine %d lost the hub: %w", e.id, err)
	}
	e.cfg.Logger.Info().Int("engine", e.id).Msg("shut down by hub")
	return nil
}

// control handles a control frame; it reports whether the engine must stop.
func (e *Engine) control(f *comm.Frame) bool {
	v, err := codec.DecodeValues(f.Control, f.Buffers, 2)
	if err != nil {
		e.cfg.Logger.Warn().Err(err).Msg("bad control frame")
		return false
	}
	op, _ := v[0].(int)
	switch op {
	case proto.CtlAbort:
		ids, _ := v[1].([]uint64)
		// Queued tasks are answered at once, ahead of the running one;
		// a task not in the queue has started (or finished) already.
		want := map[uint64]bool{}
		for _, id := range ids {
			want[id] = true
		}
		var gone []*comm.Frame
		e.mu.Lock()
		keep := e.queue[:0]
		for _, q := range e.queue {
			if want[q.ID] {
				gone = append(gone, q)
				continue
			}
			keep = append(keep, q)
		}
		for i := len(keep); i < len(e.queue); i++ {
			e.queue[i] = nil
		}
		e.queue = keep
		e.mu.Unlock()
		now := time.Now()
		for _, q := range gone {
			go e.drain(q)
			e.reply(q.ID, &proto.Result{Status: proto.StatusError, Code: proto.CodeAborted, ErrMsg: "aborted before it ran", Started: now, Completed: now})
		}
	case proto.CtlClear:
		e.ns.Clear()
		// An idle engine lets the values go now; a busy one after the
		// running task (the worker buries them).
		e.mu.Lock()
		idle := !e.busy && len(e.queue) == 0
		e.mu.Unlock()
		e.outMu.Lock()
		idle = idle && len(e.out) == 0
		e.outMu.Unlock()
		if idle && e.ns.buryBefore(-1) {
			codec.CollectBulk()
		}
	case proto.CtlShutdown:
		return true
	}
	return false
}

func (e *Engine) work(ctx context.Context) {
	for {
		// Between tasks, values dropped from the namespace before the
		// oldest unwritten result's task started can be referred to by
		// nothing the engine runs or sends: they may go (and their arena
		// memory back to its owner). All of them once every result was
		// written.
		e.outMu.Lock()
		upTo := -1
		if len(e.marks) > 0 {
			upTo = e.marks[0]
		}
		e.outMu.Unlock()
		if e.ns.buryBefore(upTo) {
			codec.CollectBulk()
		}
		e.mu.Lock()
		for len(e.queue) == 0 && !e.stopped {
			e.cond.Wait()
		}
		if e.stopped {
			e.mu.Unlock()
			e.outMu.Lock()
			e.flushLocked()
			e.outMu.Unlock()
			return
		}
		f := e.queue[0]
		e.queue[0] = nil
		e.queue = e.queue[1:]
		e.busy = true
		e.mu.Unlock()

		mark := e.ns.drops()
		res := &proto.Result{Started: time.Now()}
		// Each task's recovery boundary: a panic while handling it (a
		// function's own panics are caught closer, in call) fails the task
		// with an error naming it, and the engine goes on.
		if err := Recovered(func() { e.run(ctx, f, res) }); err != nil {
			e.panicked(f.ID, res, err, "handling")
		}
		clear(e.received)
		res.Completed = time.Now()
		f.Release()
		// Coalesce replies while more tasks wait: under load many results
		// go in one write; an idle engine answers at once, and a timer
		// sends held results if the next task takes longer than
		// maxReplyDelay, so no result waits behind a long task.
		var rf *comm.Frame
		if err := Recovered(func() { rf = e.resultFrame(f.ID, res) }); err != nil { // outside outMu: it may send on the bulk path
			e.panicked(f.ID, res, err, "encoding the result of")
			rf = e.resultFrame(f.ID, res)
		}
		e.mu.Lock()
		more := len(e.queue) > 0
		e.mu.Unlock()
		e.outMu.Lock()
		e.out = append(e.out, rf)
		e.keep = append(e.keep, res)
		e.marks = append(e.marks, mark)
		if !more || len(e.out) >= maxReplyBatch {
			e.flushLocked()
		} else if e.outTimer == nil {
			e.outTimer = time.AfterFunc(maxReplyDelay, func() {
				e.outMu.Lock()
				e.outTimer = nil
				e.flushLocked()
				e.outMu.Unlock()
			})
		}
		e.outMu.Unlock()
		e.mu.Lock()
		e.busy = false // only now: the result is in e.out (see ctlClear)
		e.mu.Unlock()
	}
}

// maxReplyBatch and maxReplyDelay bound how many results wait for one
// write, and for how long.
const (
	maxReplyBatch = 64
	maxReplyDelay = 2 * time.Millisecond
)

// flushLocked sends the held results; e.outMu is held.
func (e *Engine) flushLocked() {
	if e.outTimer != nil {
		e.outTimer.Stop()
		e.outTimer = nil
	}
	if len(e.out) > 0 {
		e.flush(e.out, e.keep)
		e.out = e.out[:0]
		clear(e.keep)
		e.keep = e.keep[:0]
		e.marks = e.marks[:0]
	}
}

// flush sends the results fs of rs. A result too large for a frame is
// replaced by an error result saying so, which reaches the caller at once.
func (e *Engine) flush(fs []*comm.Frame, rs []*proto.Result) {
	err := proto.SendEach(e.conn, fs, func(i int, err error) *comm.Frame {
		id, r := fs[i].ID, rs[i]
		e.cfg.Logger.Error().Int("engine", e.id).Uint64("msg", id).Err(err).Msg("result too large for a frame: the task fails")
		alt := &proto.Result{Status: proto.StatusError, Code: proto.CodeNotSendable,
			ErrMsg:  fmt.Sprintf("engine %d: the result of task %d is too large to send: %v", e.id, id, err),
			Started: r.Started, Completed: r.Completed, Exit: r.Exit}
		if len(r.Stdout)+len(r.Stderr) <= 4*MaxOutputKeep+1024 { // the outputs a command leaves (capture)
			alt.Stdout, alt.Stderr, alt.StdoutOmitted, alt.StderrOmitted = r.Stdout, r.Stderr, r.StdoutOmitted, r.StderrOmitted
		}
		return e.resultFrame(id, alt)
	})
	if err != nil {
		e.cfg.Logger.Warn().Err(err).Int("results", len(fs)).Msg("could not send results")
	}
	for i := range fs {
		fs[i] = nil
	}
}

func (e *Engine) resultFrame(id uint64, res *proto.Result) *comm.Frame {
	ctrl, bufs, err := res.Encode()
	if err != nil {
		// The value cannot be sent: report that instead of the value.
		res.Value = nil
		res.Status, res.Code, res.ErrType, res.ErrMsg = proto.StatusError, proto.CodeNotSendable, "", err.Error()
		ctrl, bufs, _ = res.Encode()
	}
	return &comm.Frame{Type: proto.FResult, ID: id, Source: int32(e.id), Control: ctrl, Buffers: bufs}
}

// panicked makes res the error of task id after a panic while the engine
// was doing what (handling, encoding the result of) it.
func (e *Engine) panicked(id uint64, res *proto.Result, err error, what string) {
	WithStack(e.cfg.Logger.Error().Int("engine", e.id), err).Uint64("msg", id).Msg("panic while " + what + " a task; the task fails")
	res.Value, res.Bulk = nil, nil
	res.Status, res.Code, res.ErrType = proto.StatusError, proto.CodePanic, ""
	res.ErrMsg = fmt.Sprintf("engine %d: panic while %s task %d: %v", e.id, what, id, err)
	var pe *PanicError
	if errors.As(err, &pe) {
		res.Traceback = pe.Stack
	}
}

func (e *Engine) reply(id uint64, res *proto.Result) {
	e.flush([]*comm.Frame{e.resultFrame(id, res)}, []*proto.Result{res})
}

// bulkReceiver receives the arrays tasks refer to from the hub's rank, or
// is nil without a mesh on either side.
func (e *Engine) bulkReceiver(ctx context.Context) *bulk.Receiver {
	if e.cfg.World == nil || e.hubRank < 0 {
		return nil
	}
	return bulk.NewReceiver(ctx, e.cfg.World, e.hubRank)
}

// workerReceiver is the worker's bulkReceiver: it notes the holds of the
// arrays it receives, so that a push binds them as received values.
func (e *Engine) workerReceiver(ctx context.Context) *bulk.Receiver {
	r := e.bulkReceiver(ctx)
	if r != nil {
		r.Held = func(a arrow.Array, h *codec.GCHold) {
			if e.received == nil {
				e.received = map[arrow.Array]*codec.GCHold{}
			}
			e.received[a] = h
		}
	}
	return r
}

// drain receives the bulk arrays an aborted task refers to and drops them,
// so that the hub gets its arena ranges back.
func (e *Engine) drain(f *comm.Frame) {
	defer f.Release()
	ctx, cancel := context.WithTimeout(context.Background(), bulk.Timeout)
	defer cancel()
	var err error
	if perr := Recovered(func() { _, _, err = proto.DecodeTask(f, e.bulkReceiver(ctx)) }); perr != nil {
		WithStack(e.cfg.Logger.Error().Int("engine", e.id), perr).Uint64("msg", f.ID).Msg("panic while draining an aborted task")
		return
	}
	if err == nil {
		codec.CollectBulk()
	}
}

func (e *Engine) run(ctx context.Context, f *comm.Frame, res *proto.Result) {
	v, targets, req, err := proto.DecodeTaskReq(f, e.recv)
	if err != nil {
		res.Status, res.Code, res.ErrMsg = proto.StatusError, proto.CodeBadArguments, err.Error()
		return
	}
	if req != nil {
		if lacks := e.unmet(ctx, req, targets); lacks != "" {
			res.Status, res.Code, res.ErrMsg = proto.StatusError, proto.CodeUnmetRequirement, fmt.Sprintf("engine %d on %s %s", e.id, e.cfg.Host, lacks)
			return
		}
	}
	kind, _ := v[0].(int)
	name, _ := v[1].(string)
	args, _ := v[2].([]any)
	switch kind {
	case proto.KindApply, proto.KindMap:
		fn, err := Find(name)
		if err != nil {
			res.Status, res.Code, res.ErrMsg = proto.StatusError, proto.CodeUnknownFunction, err.Error()
			return
		}
		c := e.newContext(ctx, targets)
		call := func() (any, error) { return fn.Call(c, args) }
		if kind == proto.KindMap {
			call = func() (any, error) { return mapChunk(c, fn, args) }
		}
		out, err := e.captured(res, call)
		if err != nil {
			res.Status, res.ErrMsg, res.ErrType = proto.StatusError, err.Error(), fmt.Sprintf("%T", err)
			res.Code = proto.CodeError
			var pe *PanicError
			if errors.As(err, &pe) {
				res.Code, res.Traceback = proto.CodePanic, pe.Stack
			}
			return
		}
		res.Value = out
	case proto.KindExecute:
		e.execute(ctx, name, []string{"/bin/sh", "-c", name}, res)
	case proto.KindRun:
		text := ""
		if len(args) == 1 {
			text, _ = args[0].(string)
		}
		e.runScript(ctx, name, text, res)
	case proto.KindDelete:
		for _, a := range args {
			n, _ := a.(string)
			e.ns.Delete(n)
		}
	case proto.KindPush:
		if len(args) != 1 {
			res.Status, res.Code, res.ErrMsg = proto.StatusError, proto.CodeBadArguments, "push takes one map"
			return
		}
		m, ok := args[0].(map[string]any)
		if !ok {
			res.Status, res.Code, res.ErrMsg = proto.StatusError, proto.CodeBadArguments, fmt.Sprintf("push takes a map of names, not %T", args[0])
			return
		}
		for k, val := range m {
			var h *codec.GCHold
			if a, ok := val.(arrow.Array); ok {
				h = e.received[a]
			}
			e.ns.setReceived(k, val, h)
		}
	case proto.KindPull:
		out := make([]any, len(args))
		for i, a := range args {
			n, _ := a.(string)
			val, ok := e.ns.lend(n)
			if !ok {
				res.Status, res.Code, res.ErrMsg = proto.StatusError, proto.CodeError, fmt.Sprintf("name %q is not defined on engine %d", n, e.id)
				return
			}
			out[i] = val
		}
		res.Value = out
		if e.hubRank >= 0 && e.cfg.World != nil {
			wctx, cancel := context.WithTimeout(ctx, bulk.Ready)
			if w, err := e.cfg.World(wctx); err == nil {
				res.Bulk = bulk.NewSender(ctx, w, []int{e.hubRank}, &e.bulkTags)
			}
			cancel()
		}
	default:
		res.Status, res.Code, res.ErrMsg = proto.StatusError, proto.CodeBadArguments, fmt.Sprintf("unknown task kind %d", kind)
	}
}

// mapChunk calls fn on the elements of the chunk's sequences, in order.
func mapChunk(c *Context, fn *Function, seqs []any) ([]any, error) {
	if len(seqs) == 0 {
		return nil, fmt.Errorf("map of %s: no sequence", fn.Name())
	}
	n, ok := codec.RowsOf(seqs[0])
	if !ok {
		return nil, fmt.Errorf("map of %s: %T is not a sequence", fn.Name(), seqs[0])
	}
	for j, s := range seqs[1:] {
		if m, ok := codec.RowsOf(s); !ok || m != n {
			return nil, fmt.Errorf("map of %s: sequence %d has %d elements, sequence 1 has %d", fn.Name(), j+2, m, n)
		}
	}
	out := make([]any, n)
	args := make([]any, len(seqs))
	for i := 0; i < n; i++ {
		for j, s := range seqs {
			v, err := elementAt(s, i)
			if err != nil {
				return nil, fmt.Errorf("map of %s, sequence %d: %w", fn.Name(), j+1, err)
			}
			args[j] = v
		}
		v, err := fn.Call(c, args)
		if err != nil {
			return nil, fmt.Errorf("element %d: %w", i, err)
		}
		out[i] = v
	}
	return out, nil
}

// runScript runs a script's text as an executable file: its "#!" line picks
// the interpreter, else /bin/sh runs it.
func (e *Engine) runScript(ctx context.Context, name, text string, res *proto.Result) {
	f, err := os.CreateTemp("", "rankhub-run-*")
	if err != nil {
		res.Status, res.Code, res.ErrMsg, res.Exit = proto.StatusError, proto.CodeError, "run "+name+": "+err.Error(), -1
		return
	}
	path := f.Name()
	defer os.Remove(path)
	_, werr := f.WriteString(text)
	cerr := f.Close()
	if werr != nil || cerr != nil {
		res.Status, res.Code, res.ErrMsg, res.Exit = proto.StatusError, proto.CodeError, fmt.Sprintf("run %s: writing the script: %v %v", name, werr, cerr), -1
		return
	}
	argv := []string{"/bin/sh", path}
	if strings.HasPrefix(text, "#!") {
		os.Chmod(path, 0o700)
		argv = []string{path}
	}
	e.execute(ctx, name, argv, res)
}

// execute runs a command, capturing its output.
func (e *Engine) execute(ctx context.Context, cmdline string, argv []string, res *proto.Result) {
	cctx, cancel := context.WithCancel(ctx)
	e.mu.Lock()
	e.running = cancel
	e.mu.Unlock()
	defer func() {
		e.mu.Lock()
		e.running = nil
		e.mu.Unlock()
		cancel()
	}()
	cmd := exec.CommandContext(cctx, argv[0], argv[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	var out, errb Capture // streams with a cap: see maxOutputKeep
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	res.Stdout, res.StdoutOmitted = out.Text("stdout")
	res.Stderr, res.StderrOmitted = errb.Text("stderr")
	if res.StdoutOmitted > 0 || res.StderrOmitted > 0 {
		e.cfg.Logger.Warn().Int("engine", e.id).Str("command", cmdline).Int64("stdout_omitted", res.StdoutOmitted).
			Int64("stderr_omitted", res.StderrOmitted).Msg("output too long: its middle was left out")
	}
	if err != nil {
		res.Status, res.ErrType = proto.StatusError, fmt.Sprintf("%T", err)
		var xe *exec.ExitError
		if errors.As(err, &xe) {
			res.Exit = xe.ExitCode()
			res.Code = proto.CodeExitStatus
			res.ErrMsg = fmt.Sprintf("command %q: %v", cmdline, err)
			return
		}
		res.Code, res.ErrMsg, res.Exit = proto.CodeError, err.Error(), -1
	}
}

// unmet says what of req this engine lacks ("" when it meets them): each
// required name as a label, a namespace name or a registered function, and
// the predicate's answer.
func (e *Engine) unmet(ctx context.Context, req *proto.Requirements, targets []int) string {
	var missing []string
	for _, r := range req.Require {
		if slices.Contains(e.cfg.Labels, r) {
			continue
		}
		if e.ns.Has(r) {
			continue
		}
		if _, err := Find(r); err == nil {
			continue
		}
		missing = append(missing, r)
	}
	var parts []string
	if len(missing) > 0 {
		parts = append(parts, "lacks "+strings.Join(missing, ", ")+" (no such label, namespace name or function)")
	}
	if req.Depend != "" {
		fn, err := Find(req.Depend)
		if err != nil {
			parts = append(parts, "has no predicate "+strconv.Quote(req.Depend))
		} else {
			c := e.newContext(ctx, targets)
			out, err := fn.Call(c, nil)
			if ok, _ := out.(bool); err != nil || !ok {
				why := fmt.Sprintf("predicate %s returned %v", req.Depend, out)
				if err != nil {
					why = fmt.Sprintf("predicate %s failed: %v", req.Depend, err)
				}
				parts = append(parts, why)
			}
		}
	}
	return strings.Join(parts, "; ")
}

// captured runs a registered function's call, with what it prints captured
// into res when the engine captures output.
func (e *Engine) captured(res *proto.Result, call func() (any, error)) (any, error) {
	if e.std == nil {
		return call()
	}
	e.std.Begin()
	defer e.std.End(res)
	return call()
}

// elementAt returns element i of a sequence received by an engine.
func elementAt(s any, i int) (any, error) {
	switch x := s.(type) {
	case []any:
		return x[i], nil
	case arrow.Array:
		if x.IsNull(i) {
			return nil, nil
		}
		return x.GetOneForMarshal(i), nil
	}
	rv := reflect.ValueOf(s)
	if rv.Kind() == reflect.Slice || rv.Kind() == reflect.Array {
		return rv.Index(i).Interface(), nil
	}
	return nil, fmt.Errorf("%T is not a sequence", s)
}

// subComm returns the cached communicator over the given world ranks.
func (e *Engine) subComm(w *collective.Comm, ranks []int) (*collective.Comm, error) {
	key := fmt.Sprint(ranks)
	e.commMu.Lock()
	defer e.commMu.Unlock()
	if c, ok := e.comms[key]; ok {
		return c, nil
	}
	c, err := w.Sub(ranks)
	if err != nil {
		return nil, err
	}
	if e.comms == nil {
		e.comms = map[string]*collective.Comm{}
	}
	e.comms[key] = c
	return c, nil
}

// newContext is the Context of a task on e with these targets.
func (e *Engine) newContext(ctx context.Context, targets []int) *Context {
	c := &Context{Context: ctx, EngineID: e.id, Rank: e.cfg.Rank, Host: e.cfg.Host, NS: e.ns, Targets: targets}
	return Bind(c, (*engineRunner)(e))
}

// engineRunner is an Engine as a Context reaches it (engine.Runner), without
// adding methods to Engine.
type engineRunner Engine

func (r *engineRunner) Mesh() func(ctx context.Context) (*collective.Comm, error) { return r.cfg.World }

func (r *engineRunner) SubComm(w *collective.Comm, ranks []int) (*collective.Comm, error) {
	return (*Engine)(r).subComm(w, ranks)
}
