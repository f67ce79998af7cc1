package views

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rankhub/rankhub/collective"
	"github.com/rankhub/rankhub/comm"
)

// Outside clients. A client dials the hub with the job key from the
// connection file, sends fHello, then requests (fRequest, ID = request id).
// The hub answers each with fReply (same ID): an error code and message, a
// result, and task headers for submissions and fetches. For every task a
// client submitted or fetched, the hub later sends one fNotify (ID = message
// id) with the outcome. A reply always precedes the notifications of its
// tasks, because the hub watches them only after replying.

// hubError is an error answered by the hub; Is matches the sentinel of its code.
type hubError struct {
	code, msg string
}

func (e *hubError) Error() string { return e.msg }

var hubErrCodes = map[string]error{
	"no-such-engine": ErrNoSuchEngine, "shutdown": ErrShutdown, "unknown-result": ErrUnknownResult,
	"no-engines": ErrNoEngines, "not-sendable": ErrNotSendable,
}

func (e *hubError) Is(target error) bool { return hubErrCodes[e.code] == target && target != nil }

func hubErrCode(err error) string {
	for code, s := range hubErrCodes {
		if errors.Is(err, s) {
			return code
		}
	}
	return "error"
}

// encodeRequest encodes op and args followed by the payload descriptors
// (ctrl, first buffer, buffer count); the payloads' buffers go first in the
// frame, untouched.
func encodeRequest(op int, args []any, ps []payload) ([]byte, [][]byte, error) {
	e := &encoder{b: make([]byte, 0, 128)}
	descs := make([]any, len(ps))
	for i, p := range ps {
		descs[i] = []any{p.ctrl, len(e.bufs), len(p.bufs)}
		e.bufs = append(e.bufs, p.bufs...)
	}
	all := append(append([]any{}, args...), descs)
	for i, v := range []any{op, all} {
		e.path = append(e.path[:0], fmt.Sprintf("request value %d", i))
		if err := e.encode(v); err != nil {
			return nil, nil, err
		}
	}
	return e.b, e.bufs, nil
}

func taskHeader(t *task) []any {
	return []any{t.id, int(t.eng.Load()), t.submitted, t.kind, t.name, t.after, t.follow}
}

// notifyFrame encodes a finished task for a client.
func notifyFrame(t *task) *comm.Frame {
	ctrl, bufs, err := encodeValues(notifyValues(t)...)
	if err != nil {
		return notSendableFrame(t, err)
	}
	return &comm.Frame{Type: fNotify, ID: t.id, Control: ctrl, Buffers: bufs}
}

// notSendableFrame is the notification of t that says its result cannot
// be sent to the client, and why.
func notSendableFrame(t *task, err error) *comm.Frame {
	vals := notifyValues(t)
	vals[6], vals[7], vals[8], vals[10] = true, nil, CodeNotSendable, err.Error()
	ctrl, bufs, _ := encodeValues(vals...)
	return &comm.Frame{Type: fNotify, ID: t.id, Control: ctrl, Buffers: bufs}
}

// notifyValues are the values of a finished task's notification.
func notifyValues(t *task) []any {
	var re RemoteError
	failed := t.err != nil
	if failed && !errors.As(t.err, new(*RemoteError)) {
		re = RemoteError{EngineID: int(t.eng.Load()), Code: CodeError, Message: t.err.Error()}
	} else if failed {
		var p *RemoteError
		errors.As(t.err, &p)
		re = *p
	}
	return []any{int(t.eng.Load()), t.rank, t.host, t.started, t.completed, t.received, failed, t.value,
		re.Code, re.Type, re.Message, re.Traceback, t.stdout, t.stderr, t.exit, t.omitted[0], t.omitted[1]}
}

// ----- hub side -----

type clientConn struct {
	h       *Hub
	c       *comm.Conn
	out     *outbox
	mu      sync.Mutex
	watched map[uint64]bool
}

// outbox writes frames to a connection from its own goroutine, so that no
// reader goroutine ever blocks on a slow peer (a reader that blocks stops
// reading, and its peer's heartbeats go unseen). Frames queued together
// go in one write.
type outbox struct {
	c    *comm.Conn
	mu   sync.Mutex
	q    []*comm.Frame
	alt  []func(error) *comm.Frame // per frame of q: what to send if it is too large for a frame
	keep []any                     // what the queued frames' buffers alias (bulk arrays): held until written
	wake chan struct{}
}

func newOutbox(c *comm.Conn) *outbox {
	o := &outbox{c: c, wake: make(chan struct{}, 1)}
	go o.run()
	return o
}

// push queues a frame; it never blocks. alt makes what goes instead if
// the frame is too large to send. keep stays reachable until the frame is
// written (a frame's buffers do not keep arena memory alive).
func (o *outbox) push(f *comm.Frame, alt func(error) *comm.Frame, keep ...any) {
	o.mu.Lock()
	o.q = append(o.q, f)
	o.alt = append(o.alt, alt)
	o.keep = append(o.keep, keep...)
	o.mu.Unlock()
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

func (o *outbox) run() {
	for {
		select {
		case <-o.wake:
		case <-o.c.Done():
			return
		}
		o.mu.Lock()
		q, alt, keep := o.q, o.alt, o.keep
		o.q, o.alt, o.keep = nil, nil, nil
		o.mu.Unlock()
		tooLarge := func(i int, err error) *comm.Frame {
			if alt[i] == nil {
				return nil
			}
			return alt[i](err)
		}
		if len(q) > 0 && sendEach(o.c, q, tooLarge) != nil {
			return // the connection failed; its reader ends the client
		}
		runtime.KeepAlive(keep)
	}
}

func (h *Hub) serveClient(c *comm.Conn, hello *comm.Frame) {
	who := c.RemoteAddr()
	if v, err := decodeValues(hello.Control, hello.Buffers, 3); err == nil {
		who = fmt.Sprintf("%v (pid %v on %v)", v[0], v[1], v[2])
	}
	h.mu.Lock()
	if h.closed || h.stopping {
		h.mu.Unlock()
		c.Close()
		return
	}
	h.clients[c] = true
	h.mu.Unlock()
	h.log.Info().Str("client", who).Msg("client connected")
	cc := &clientConn{h: h, c: c, out: newOutbox(c), watched: map[uint64]bool{}}
	// Requests run in order on their own goroutine: the reader only reads,
	// so the client's heartbeats are seen even while a request waits on a
	// busy engine.
	reqs := make(chan *comm.Frame, 64)
	worked := make(chan struct{})
	go func() {
		defer close(worked)
		for f := range reqs {
			if err := recovered(func() { cc.handle(f) }); err != nil {
				// This client's recovery boundary: it gets an error
				// reply, then the hub closes it.
				withStack(h.log.Error().Str("client", who), err).Uint64("request", f.ID).Msg("panic while handling a client's request; client closed")
				ctrl, _, _ := encodeValues("error", fmt.Sprintf("hub: request %d: %v; the hub closes this connection", f.ID, err), nil, nil)
				c.Send(&comm.Frame{Type: fReply, ID: f.ID, Control: ctrl})
				c.Close()
				break
			}
		}
		for range reqs { // until the reader sees the connection closed
		}
	}()
	for {
		f, err := c.Recv()
		if err != nil {
			break
		}
		if f.Type != fRequest {
			h.log.Warn().Str("client", who).Int("type", int(f.Type)).Msg("unexpected frame from client; ignored")
			continue
		}
		select {
		case reqs <- f:
		case <-c.Done():
		}
	}
	close(reqs)
	<-worked
	h.mu.Lock()
	delete(h.clients, c)
	h.mu.Unlock()
	c.Close()
	h.log.Info().Str("client", who).Msg("client left")
}

func (cc *clientConn) reply(id uint64, err error, result any, tasks []*task) {
	code, msg := "", ""
	if err != nil {
		code, msg = hubErrCode(err), err.Error()
	}
	var hdrs []any
	if tasks != nil {
		hdrs = make([]any, len(tasks))
		for i, t := range tasks {
			hdrs[i] = taskHeader(t)
		}
	}
	ctrl, bufs, eerr := encodeValues(code, msg, result, hdrs)
	if eerr != nil {
		ctrl, bufs, _ = encodeValues("error", "hub: cannot encode the reply: "+eerr.Error(), nil, nil)
		tasks = nil
	}
	cc.out.push(&comm.Frame{Type: fReply, ID: id, Control: ctrl, Buffers: bufs}, func(err error) *comm.Frame {
		ctrl, _, _ := encodeValues("error", "hub: the reply is too large to send: "+err.Error(), nil, nil)
		return &comm.Frame{Type: fReply, ID: id, Control: ctrl}
	}, result)
	for _, t := range tasks {
		cc.mu.Lock()
		seen := cc.watched[t.id]
		cc.watched[t.id] = true
		cc.mu.Unlock()
		if !seen {
			t.watch(func(t *task) {
				cc.mu.Lock()
				delete(cc.watched, t.id)
				cc.mu.Unlock()
				cc.out.push(notifyFrame(t), func(err error) *comm.Frame {
					return notSendableFrame(t, fmt.Errorf("hub: the result is too large to send to this client: %w", err))
				}, t.value)
			})
		}
	}
}

func (cc *clientConn) handle(f *comm.Frame) {
	v, err := decodeValues(f.Control, f.Buffers, 2)
	if err != nil {
		cc.reply(f.ID, fmt.Errorf("hub: bad request: %w", err), nil, nil)
		return
	}
	op, _ := v[0].(int)
	args, _ := v[1].([]any)
	if len(args) == 0 {
		cc.reply(f.ID, fmt.Errorf("hub: bad request: no arguments"), nil, nil)
		return
	}
	descs, _ := args[len(args)-1].([]any)
	args = args[:len(args)-1]
	h := cc.h
	arg := func(i int) any {
		if i < len(args) {
			return args[i]
		}
		return nil
	}
	ids := func(i int) []uint64 {
		x, _ := As[[]uint64](arg(i))
		return x
	}
	switch op {
	case opEngines:
		var out []any
		for _, e := range h.Engines() {
			out = append(out, []any{e.ID, e.Rank, e.Host, e.PID, e.Queued, e.Done, e.Dead, e.DeadWhy})
		}
		cc.reply(f.ID, nil, out, nil)
	case opSubmit:
		ps := make([]payload, len(descs))
		for i, d := range descs {
			l, _ := d.([]any)
			if len(l) != 3 {
				cc.reply(f.ID, fmt.Errorf("hub: bad request: payload %d", i), nil, nil)
				return
			}
			ctrl, _ := l[0].([]byte)
			start, _ := l[1].(int)
			n, _ := l[2].(int)
			if start < 0 || n < 0 || start > len(f.Buffers) || n > len(f.Buffers)-start {
				cc.reply(f.ID, fmt.Errorf("hub: bad request: payload %d buffers [%d,+%d) of %d", i, start, n, len(f.Buffers)), nil, nil)
				return
			}
			ps[i] = payload{ctrl: ctrl, bufs: f.Buffers[start : start+n : start+n]}
			// An outside client's task is decoded here before any engine
			// sees it: a corrupt payload, or a reference to a bulk array
			// (outside clients are not on the mesh: an engine would wait
			// for it in vain), is this client's error, not the engines'.
			if err := checkValues(ps[i].ctrl, ps[i].bufs, 3); err != nil {
				cc.reply(f.ID, fmt.Errorf("hub: bad request: payload %d: %w", i, err), nil, nil)
				return
			}
		}
		if len(ps) == 0 {
			cc.reply(f.ID, fmt.Errorf("hub: bad request: no payload"), nil, nil)
			return
		}
		direct, _ := arg(0).(bool)
		kind, _ := arg(1).(int)
		name, _ := arg(2).(string)
		targets, _ := As[[]int](arg(3))
		var tasks []*task
		if direct {
			tasks, err = h.submitDirect(kind, name, targets, ps)
		} else {
			dep := func(i int) Dependency {
				a, _ := arg(i + 1).(bool)
				s, _ := arg(i + 2).(bool)
				fl, _ := arg(i + 3).(bool)
				return Dependency{MsgIDs: ids(i), Any: a, Success: s, Failure: fl}
			}
			timeout, _ := arg(12).(time.Duration)
			retries, _ := arg(13).(int)
			require, _ := stringList(arg(14))
			depend, _ := arg(15).(string)
			tasks, err = h.submitLB(kind, name, ps, lbSpec{targets: targets, after: dep(4), follow: dep(8), timeout: timeout, retries: retries,
				require: require, depend: depend})
		}
		cc.reply(f.ID, err, nil, tasks)
	case opFetch:
		tasks, err := h.fetch(ids(0))
		cc.reply(f.ID, err, nil, tasks)
	case opAbort:
		cc.reply(f.ID, h.abort(ids(0)), nil, nil)
	case opControl:
		targets, _ := As[[]int](arg(0))
		c, _ := arg(1).(int)
		if c != ctlClear && c != ctlShutdown {
			cc.reply(f.ID, fmt.Errorf("hub: bad control operation %d", c), nil, nil)
			return
		}
		cc.reply(f.ID, h.control(targets, c, nil), nil, nil)
	case opQueueStatus:
		q, n := h.queueStatus()
		out := make([]any, len(q))
		for i, s := range q {
			out[i] = []any{s.EngineID, s.Queued, s.Completed}
		}
		cc.reply(f.ID, nil, []any{out, n}, nil)
	case opResultStatus:
		var want []uint64
		if arg(0) != nil {
			want = ids(0)
		}
		p, c, err := h.resultStatus(want)
		cc.reply(f.ID, err, []any{p, c}, nil)
	case opPurge:
		var want []uint64
		if arg(0) != nil {
			want = ids(0)
		}
		n, err := h.purge(want)
		cc.reply(f.ID, err, n, nil)
	case opHistory:
		cc.reply(f.ID, nil, h.history(), nil)
	case opShutdown:
		timeout, _ := arg(0).(time.Duration)
		cc.reply(f.ID, nil, nil, nil)
		go h.Shutdown(timeout)
	default:
		cc.reply(f.ID, fmt.Errorf("hub: unknown request %d", op), nil, nil)
	}
}

// ----- client side -----

// remoteBackend is a client of a hub in another process.
type remoteBackend struct {
	conn    *comm.Conn
	reqSeq  atomic.Uint64
	mu      sync.Mutex
	pending map[uint64]chan *replyMsg
	tasks   map[uint64]*task
	err     error // why the connection ended
	doneCh  chan struct{}
	// pool receives frames of collective.MinPooled bytes and more, so
	// that their arrays are made read-only in place (decodeFrame).
	pool *collective.RecvPool
}

// clientPoolIdle is how much freed receive memory an outside client keeps
// for its next large frames.
const clientPoolIdle = 256 << 20

// decodeFrame decodes n values of a frame from the hub. A frame received
// into the pool is made read-only where it lies: its arrays stay in it and
// hold it until collected, slices and byte strings are copied out. Other
// frames are on the Go heap (arrays of a page or more are copied into
// read-only memory, decodeValues).
// inPlace says which: the frame's memory then goes back to the pool once
// its arrays are collected, and nothing else may keep its buffers.
func (b *remoteBackend) decodeFrame(f *comm.Frame, n int) (v []any, inPlace bool, err error) {
	if b.pool == nil || !b.pool.Protect(f.Buffers...) {
		v, err = decodeValues(f.Control, f.Buffers, n)
		return v, false, err
	}
	o := newFrameOwner(f.Release)
	defer o.drop()
	d := &decoder{b: f.Control, bufs: f.Buffers, frame: o}
	v, err = d.values(n)
	return v, true, err
}

type replyMsg struct {
	err    error
	result any
	tasks  []*task
}

// Connect attaches to a running job's hub through its connection file
// (hub.json in the job directory), like IPython's Client(url_file=...). The
// client has the same API as the in-process one; several may be connected
// at once.
func Connect(path string) (*Client, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return ConnectContext(ctx, path)
}

// ConnectContext is Connect bound to a context for dialing.
func ConnectContext(ctx context.Context, path string) (*Client, error) {
	ci, err := comm.ReadConnInfo(path)
	if err != nil {
		return nil, err
	}
	key, err := ci.KeyBytes()
	if err != nil {
		return nil, err
	}
	// The hub's interval: a client that pinged less often than the hub
	// expects would be dropped while idle.
	pool := collective.NewRecvPool(clientPoolIdle)
	opts := comm.Options{Heartbeat: ci.Heartbeat(), Allocator: pool}
	host, _ := os.Hostname()
	var conn *comm.Conn
	var errs []error
	if ci.Unix != "" && host == ci.Host {
		conn, err = comm.Dial(ctx, "unix", ci.Unix, key, opts)
		if err != nil {
			errs = append(errs, err)
		}
	}
	if conn == nil && ci.TCP != "" {
		// TLS whenever the hub serves it (its certificate is pinned in the
		// 0600 connection file): an outside client's traffic may cross
		// networks the job does not own.
		topts := opts
		topts.TLSFingerprint = ci.TLS
		conn, err = comm.Dial(ctx, "tcp", ci.TCP, key, topts)
		if err != nil {
			errs = append(errs, err)
		}
	}
	if conn == nil {
		pool.Close()
		return nil, fmt.Errorf("views: connect to the hub of %s: %w", path, errors.Join(errs...))
	}
	ctrl, _, _ := encodeValues("client", os.Getpid(), host)
	if err := conn.Send(&comm.Frame{Type: fHello, Control: ctrl}); err != nil {
		conn.Close()
		pool.Close()
		return nil, fmt.Errorf("views: connect to the hub of %s: %w", path, err)
	}
	b := &remoteBackend{conn: conn, pending: map[uint64]chan *replyMsg{}, tasks: map[uint64]*task{}, doneCh: make(chan struct{}), pool: pool}
	go b.read()
	return &Client{b: b}, nil
}

func (b *remoteBackend) read() {
	var err error
	for {
		var f *comm.Frame
		f, err = b.conn.Recv()
		if err != nil {
			break
		}
		// Each message's recovery boundary: a panic while handling it
		// fails the request or the task it answers, not the program.
		switch f.Type {
		case fReply:
			if perr := recovered(func() { b.onReply(f) }); perr != nil {
				b.failRequest(f.ID, fmt.Errorf("views: the hub's reply to request %d could not be handled: %w", f.ID, perr))
			}
		case fNotify:
			if perr := recovered(func() { b.onNotify(f) }); perr != nil {
				b.failTask(f.ID, "the hub's notification could not be handled: "+perr.Error())
			}
		}
	}
	b.mu.Lock()
	b.err = fmt.Errorf("%w: connection to the hub ended: %v", ErrShutdown, err)
	pend := b.pending
	b.pending = map[uint64]chan *replyMsg{}
	var open []*task
	for _, t := range b.tasks {
		if !t.isDone() {
			open = append(open, t)
		}
	}
	b.mu.Unlock()
	close(b.doneCh)
	for _, ch := range pend {
		ch <- &replyMsg{err: b.err}
	}
	now := time.Now()
	for _, t := range open {
		t.finish(nil, &RemoteError{EngineID: -1, Code: CodeShutdown, MsgID: t.id, Message: "connection to the hub lost before the result came: " + err.Error()}, now)
	}
}

func (b *remoteBackend) onReply(f *comm.Frame) {
	rm := &replyMsg{}
	v, _, err := b.decodeFrame(f, 4)
	if err != nil {
		rm.err = fmt.Errorf("views: bad reply from the hub: %w", err)
	} else {
		code, _ := v[0].(string)
		if code != "" {
			msg, _ := v[1].(string)
			rm.err = &hubError{code: code, msg: msg}
		}
		rm.result = v[2]
		hdrs, _ := v[3].([]any)
		b.mu.Lock()
		for _, h := range hdrs {
			l, _ := h.([]any)
			if len(l) != 7 {
				continue
			}
			id, _ := l[0].(uint64)
			t := b.tasks[id]
			if t == nil {
				kind, _ := l[3].(int)
				name, _ := l[4].(string)
				sub, _ := l[2].(time.Time)
				t = newTask(id, kind, name, sub)
				t.markSent()
				eng, _ := l[1].(int)
				t.eng.Store(int64(eng))
				t.after, _ = As[[]uint64](l[5])
				t.follow, _ = As[[]uint64](l[6])
				b.tasks[id] = t
			}
			rm.tasks = append(rm.tasks, t)
		}
		b.mu.Unlock()
	}
	b.mu.Lock()
	ch := b.pending[f.ID]
	delete(b.pending, f.ID)
	b.mu.Unlock()
	if ch != nil {
		ch <- rm
	}
}

// failRequest answers request id with err, unless it was answered.
func (b *remoteBackend) failRequest(id uint64, err error) {
	b.mu.Lock()
	ch := b.pending[id]
	delete(b.pending, id)
	b.mu.Unlock()
	if ch != nil {
		ch <- &replyMsg{err: err}
	}
}

// failTask finishes task id with an error saying why, unless it finished.
func (b *remoteBackend) failTask(id uint64, why string) {
	b.mu.Lock()
	t := b.tasks[id]
	b.mu.Unlock()
	if t != nil {
		t.finish(nil, &RemoteError{EngineID: -1, Code: CodeError, MsgID: id, Message: why}, time.Now())
	}
}

func (b *remoteBackend) onNotify(f *comm.Frame) {
	b.mu.Lock()
	t := b.tasks[f.ID]
	b.mu.Unlock()
	if t == nil {
		return
	}
	v, inPlace, err := b.decodeFrame(f, 17)
	if err != nil {
		b.failTask(f.ID, "undecodable result from the hub: "+err.Error())
		return
	}
	eng, _ := v[0].(int)
	t.eng.Store(int64(eng))
	t.rank, _ = v[1].(int)
	t.host, _ = v[2].(string)
	t.started, _ = v[3].(time.Time)
	t.completed, _ = v[4].(time.Time)
	recv := time.Now() // Received is this client's clock (v[5] is the hub's)
	t.stdout, _ = v[12].(string)
	t.stderr, _ = v[13].(string)
	t.exit, _ = v[14].(int)
	t.omitted[0], _ = v[15].(int64)
	t.omitted[1], _ = v[16].(int64)
	if !inPlace {
		t.frame = f // keeps out-of-band buffers the value aliases
	}
	if failed, _ := v[6].(bool); failed {
		re := &RemoteError{EngineID: eng, Rank: t.rank, Host: t.host, MsgID: t.id}
		re.Code, _ = v[8].(string)
		re.Type, _ = v[9].(string)
		re.Message, _ = v[10].(string)
		re.Traceback, _ = v[11].(string)
		t.finish(nil, re, recv)
		return
	}
	t.finish(v[7], nil, recv)
}

func (b *remoteBackend) request(op int, args []any, ps []payload) (*replyMsg, error) {
	ctrl, bufs, err := encodeRequest(op, args, ps)
	if err != nil {
		return nil, err
	}
	id := b.reqSeq.Add(1)
	ch := make(chan *replyMsg, 1)
	b.mu.Lock()
	if b.err != nil {
		b.mu.Unlock()
		return nil, b.err
	}
	b.pending[id] = ch
	b.mu.Unlock()
	if err := b.conn.Send(&comm.Frame{Type: fRequest, ID: id, Control: ctrl, Buffers: bufs}); err != nil {
		b.mu.Lock()
		delete(b.pending, id)
		b.mu.Unlock()
		return nil, fmt.Errorf("views: request to the hub: %w", err)
	}
	rm := <-ch
	return rm, rm.err
}

func (b *remoteBackend) engines() ([]EngineInfo, error) {
	rm, err := b.request(opEngines, nil, nil)
	if err != nil {
		return nil, err
	}
	l, _ := rm.result.([]any)
	out := make([]EngineInfo, 0, len(l))
	for _, x := range l {
		e, _ := x.([]any)
		if len(e) != 8 {
			return nil, fmt.Errorf("views: bad engine list from the hub")
		}
		var in EngineInfo
		in.ID, _ = e[0].(int)
		in.Rank, _ = e[1].(int)
		in.Host, _ = e[2].(string)
		in.PID, _ = e[3].(int)
		in.Queued, _ = e[4].(int)
		in.Done, _ = e[5].(int)
		in.Dead, _ = e[6].(bool)
		in.DeadWhy, _ = e[7].(string)
		out = append(out, in)
	}
	return out, nil
}

func (b *remoteBackend) ids() []int {
	es, err := b.engines()
	if err != nil {
		return nil
	}
	ids := []int{}
	for _, e := range es {
		if !e.Dead {
			ids = append(ids, e.ID)
		}
	}
	return ids
}

func (b *remoteBackend) waitForEngines(ctx context.Context, n int) error {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		ids := b.ids()
		if len(ids) >= n {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("views: waiting for %d engines (have %d): %w", n, len(ids), ctx.Err())
		case <-b.doneCh:
			return ErrShutdown
		case <-tick.C:
		}
	}
}

func (b *remoteBackend) submit(args []any, ps []payload) ([]*task, error) {
	rm, err := b.request(opSubmit, args, ps)
	if err != nil {
		return nil, err
	}
	return rm.tasks, nil
}

func (b *remoteBackend) submitDirect(kind int, name string, targets []int, ps []payload) ([]*task, error) {
	return b.submit([]any{true, kind, name, targets}, ps)
}

func (b *remoteBackend) submitLB(kind int, name string, ps []payload, s lbSpec) ([]*task, error) {
	return b.submit([]any{false, kind, name, s.targets,
		s.after.MsgIDs, s.after.Any, s.after.Success, s.after.Failure,
		s.follow.MsgIDs, s.follow.Any, s.follow.Success, s.follow.Failure,
		s.timeout, s.retries, s.require, s.depend}, ps)
}

func (b *remoteBackend) fetch(ids []uint64) ([]*task, error) {
	rm, err := b.request(opFetch, []any{ids}, nil)
	if err != nil {
		return nil, err
	}
	return rm.tasks, nil
}

func (b *remoteBackend) abort(ids []uint64) error {
	_, err := b.request(opAbort, []any{ids}, nil)
	return err
}

func (b *remoteBackend) control(targets []int, op int) error {
	_, err := b.request(opControl, []any{targets, op}, nil)
	return err
}

func (b *remoteBackend) queueStatus() ([]QueueStatus, int, error) {
	rm, err := b.request(opQueueStatus, nil, nil)
	if err != nil {
		return nil, 0, err
	}
	l, _ := rm.result.([]any)
	if len(l) != 2 {
		return nil, 0, fmt.Errorf("views: bad queue status from the hub")
	}
	qs, _ := l[0].([]any)
	out := make([]QueueStatus, 0, len(qs))
	for _, x := range qs {
		q, _ := x.([]any)
		if len(q) != 3 {
			return nil, 0, fmt.Errorf("views: bad queue status from the hub")
		}
		var s QueueStatus
		s.EngineID, _ = q[0].(int)
		s.Queued, _ = q[1].(int)
		s.Completed, _ = q[2].(int)
		out = append(out, s)
	}
	n, _ := l[1].(int)
	return out, n, nil
}

func (b *remoteBackend) resultStatus(ids []uint64) ([]uint64, []uint64, error) {
	var arg any
	if ids != nil {
		arg = ids
	}
	rm, err := b.request(opResultStatus, []any{arg}, nil)
	if err != nil {
		return nil, nil, err
	}
	l, _ := rm.result.([]any)
	if len(l) != 2 {
		return nil, nil, fmt.Errorf("views: bad result status from the hub")
	}
	p, _ := As[[]uint64](l[0])
	c, _ := As[[]uint64](l[1])
	return p, c, nil
}

func (b *remoteBackend) purge(ids []uint64) (int, error) {
	var arg any
	if ids != nil {
		arg = ids
	}
	rm, err := b.request(opPurge, []any{arg}, nil)
	if rm == nil {
		return 0, err
	}
	// Forget the proxies of purged results (handles already given out keep working).
	b.mu.Lock()
	for id, t := range b.tasks {
		if t.isDone() && (ids == nil || slices.Contains(ids, id)) {
			delete(b.tasks, id)
		}
	}
	b.mu.Unlock()
	n, _ := rm.result.(int)
	return n, err
}

func (b *remoteBackend) history() ([]uint64, error) {
	rm, err := b.request(opHistory, nil, nil)
	if err != nil {
		return nil, err
	}
	return As[[]uint64](rm.result)
}

// shutdown asks the hub to stop everything and waits (up to timeout plus a
// margin) until the hub closes the connection.
func (b *remoteBackend) shutdown(timeout time.Duration) error {
	if _, err := b.request(opShutdown, []any{timeout}, nil); err != nil {
		return err
	}
	select {
	case <-b.doneCh:
		return nil
	case <-time.After(timeout + 5*time.Second):
		b.conn.Close()
		return fmt.Errorf("views: the hub did not close the connection within %v of the shutdown", timeout+5*time.Second)
	}
}

func (b *remoteBackend) done() <-chan struct{} { return b.doneCh }

func (b *remoteBackend) close() error {
	b.conn.Close()
	<-b.doneCh
	b.pool.Close() // frames still held are unmapped when collected
	return nil
}

// bulkFor is nil: an outside client is not on the job's mesh.
func (b *remoteBackend) bulkFor([]int) *bulkSender { return nil }
