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

// notifyFrame encodes a finished task for a client.
func notifyFrame(t *task) *comm.Frame {
	ctrl, bufs, err := encodeValues(notifyOf(t).values()...)
	if err != nil {
		return notSendableFrame(t, err)
	}
	return &comm.Frame{Type: fNotify, ID: t.id, Control: ctrl, Buffers: bufs}
}

// notSendableFrame is the notification of t that says its result cannot
// be sent to the client, and why.
func notSendableFrame(t *task, err error) *comm.Frame {
	m := notifyOf(t)
	m.Failed, m.Value, m.Code, m.Message = true, nil, CodeNotSendable, err.Error()
	ctrl, bufs, _ := encodeValues(m.values()...)
	return &comm.Frame{Type: fNotify, ID: t.id, Control: ctrl, Buffers: bufs}
}

// notifyOf is a finished task's notification.
func notifyOf(t *task) *notifyMsg {
	var re RemoteError
	failed := t.err != nil
	if failed && !errors.As(t.err, new(*RemoteError)) {
		re = RemoteError{EngineID: int(t.eng.Load()), Code: CodeError, Message: t.err.Error()}
	} else if failed {
		var p *RemoteError
		errors.As(t.err, &p)
		re = *p
	}
	return &notifyMsg{Engine: int(t.eng.Load()), Rank: t.rank, Host: t.host, Started: t.started, Completed: t.completed, Received: t.received,
		Failed: failed, Value: t.value, Code: re.Code, Type: re.Type, Message: re.Message, Traceback: re.Traceback,
		Stdout: t.stdout, Stderr: t.stderr, Exit: t.exit, StdoutOmitted: t.omitted[0], StderrOmitted: t.omitted[1]}
}

// ----- hub side -----

type clientConn struct {
	h       *Hub
	c       *comm.Conn
	who     string // the client, as logs name it
	out     *outbox
	mu      sync.Mutex
	watched map[uint64]bool
}

// outbox writes frames to a connection from its own goroutine, so that no
// reader goroutine, and not the hub's run, ever blocks on a slow peer (a
// reader that blocks stops reading, and its peer's heartbeats go unseen).
// Frames queued together go in one write.
type outbox struct {
	c     *comm.Conn
	mu    sync.Mutex
	q     []*comm.Frame
	alt   []func(error) *comm.Frame // per frame of q: what to send if it is too large for a frame
	keep  []any                     // what the queued frames' buffers alias (bulk arrays): held until written
	after []func()                  // run once the queued frames are written
	wake  chan struct{}
	onErr func(error) // the write failed (nil: the connection's reader notices)
}

// newOutbox starts c's outbox goroutine, counted in wg; it ends when c closes.
func newOutbox(c *comm.Conn, wg *sync.WaitGroup, onErr func(error)) *outbox {
	o := &outbox{c: c, wake: make(chan struct{}, 1), onErr: onErr}
	wg.Add(1)
	go func() {
		defer wg.Done()
		o.run()
	}()
	return o
}

// push queues a frame; it never blocks. alt makes what goes instead if
// the frame is too large to send. keep stays reachable until the frame is
// written (a frame's buffers do not keep arena memory alive).
func (o *outbox) push(f *comm.Frame, alt func(error) *comm.Frame, keep ...any) {
	o.pushBatch([]*comm.Frame{f}, []func(error) *comm.Frame{alt}, keep, nil)
}

// pushBatch queues frames (alts: one per frame, or nil) and what they
// alias; after, if set, runs once they are written.
func (o *outbox) pushBatch(fs []*comm.Frame, alts []func(error) *comm.Frame, keep []any, after func()) {
	o.mu.Lock()
	o.q = append(o.q, fs...)
	if alts == nil {
		alts = make([]func(error) *comm.Frame, len(fs))
	}
	o.alt = append(o.alt, alts...)
	o.keep = append(o.keep, keep...)
	if after != nil {
		o.after = append(o.after, after)
	}
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
		q, alt, keep, after := o.q, o.alt, o.keep, o.after
		o.q, o.alt, o.keep, o.after = nil, nil, nil, nil
		o.mu.Unlock()
		tooLarge := func(i int, err error) *comm.Frame {
			if alt[i] == nil {
				return nil
			}
			return alt[i](err)
		}
		if len(q) > 0 {
			if err := sendEach(o.c, q, tooLarge); err != nil {
				if o.onErr != nil {
					o.onErr(err)
				}
				return // the connection failed; its reader ends the peer
			}
		}
		runtime.KeepAlive(keep)
		for _, fn := range after {
			fn()
		}
	}
}

func (h *Hub) serveClient(c *comm.Conn, hello *comm.Frame) {
	who := c.RemoteAddr()
	if m, err := parseHello(hello); err == nil {
		who = fmt.Sprintf("%s (pid %d on %s, %s)", m.Kind, m.PID, m.Host, who)
	} else {
		h.log.Warn().Str("client", who).Err(err).Msg("bad hello from a client; closed")
		c.Close()
		return
	}
	stopping := true
	h.call(func() { stopping = h.core.Stopping() })
	h.mu.Lock()
	if h.closed || stopping {
		h.mu.Unlock()
		c.Close()
		return
	}
	h.clients[c] = true
	h.mu.Unlock()
	h.log.Info().Str("client", who).Msg("client connected")
	cc := &clientConn{h: h, c: c, who: who, out: newOutbox(c, &h.wg, nil), watched: map[uint64]bool{}}
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
	m := &replyWire{Result: result}
	if err != nil {
		m.Code, m.Message = hubErrCode(err), err.Error()
	}
	if tasks != nil {
		m.Tasks = make([]taskHeader, len(tasks))
		for i, t := range tasks {
			m.Tasks[i] = headerOf(t)
		}
	}
	ctrl, bufs, eerr := m.encode()
	if eerr != nil {
		ctrl, bufs, _ = (&replyWire{Code: "error", Message: "hub: cannot encode the reply: " + eerr.Error()}).encode()
		tasks = nil
	}
	cc.out.push(&comm.Frame{Type: fReply, ID: id, Control: ctrl, Buffers: bufs}, func(err error) *comm.Frame {
		ctrl, _, _ := (&replyWire{Code: "error", Message: "hub: the reply is too large to send: " + err.Error()}).encode()
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
	m, err := parseRequest(f)
	if err != nil {
		cc.h.log.Warn().Str("client", cc.who).Uint64("request", f.ID).Err(err).Msg("bad request from a client")
		cc.reply(f.ID, fmt.Errorf("hub: bad request: %w", err), nil, nil)
		return
	}
	h := cc.h
	switch m.Op {
	case opEngines:
		cc.reply(f.ID, nil, engineListValue(h.Engines()), nil)
	case opSubmit:
		for i, p := range m.Payloads {
			// An outside client's task is decoded here before any engine
			// sees it: a corrupt payload, or a reference to a bulk array
			// (outside clients are not on the mesh: an engine would wait
			// for it in vain), is this client's error, not the engines'.
			if _, err := decodeValues(p.ctrl, p.bufs, 3); err != nil {
				cc.reply(f.ID, fmt.Errorf("hub: bad request: payload %d: %w", i, err), nil, nil)
				return
			}
		}
		if len(m.Payloads) == 0 {
			cc.reply(f.ID, fmt.Errorf("hub: bad request: no payload"), nil, nil)
			return
		}
		var tasks []*task
		if m.Direct {
			tasks, err = h.submitDirect(m.Kind, m.Name, m.Targets, m.Payloads)
		} else {
			tasks, err = h.submitLB(m.Kind, m.Name, m.Payloads, m.Spec)
		}
		cc.reply(f.ID, err, nil, tasks)
	case opFetch:
		tasks, err := h.fetch(m.IDs)
		cc.reply(f.ID, err, nil, tasks)
	case opAbort:
		cc.reply(f.ID, h.abort(m.IDs), nil, nil)
	case opControl:
		if m.Control != ctlClear && m.Control != ctlShutdown {
			cc.reply(f.ID, fmt.Errorf("hub: bad control operation %d", m.Control), nil, nil)
			return
		}
		cc.reply(f.ID, h.control(m.Targets, m.Control), nil, nil)
	case opQueueStatus:
		q, n := h.queueStatus()
		cc.reply(f.ID, nil, queueStatusValue(q, n), nil)
	case opResultStatus:
		p, c, err := h.resultStatus(m.IDs)
		cc.reply(f.ID, err, []any{p, c}, nil)
	case opPurge:
		n, err := h.purge(m.IDs)
		cc.reply(f.ID, err, n, nil)
	case opHistory:
		cc.reply(f.ID, nil, h.history(), nil)
	case opShutdown:
		cc.reply(f.ID, nil, nil, nil)
		go h.Shutdown(m.Timeout)
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
	opts := comm.Options{Heartbeat: ci.Heartbeat()}
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
		return nil, fmt.Errorf("views: connect to the hub of %s: %w", path, errors.Join(errs...))
	}
	if err := conn.Send((&helloMsg{Kind: "client", PID: os.Getpid(), Host: host}).frame()); err != nil {
		conn.Close()
		return nil, fmt.Errorf("views: connect to the hub of %s: %w", path, err)
	}
	b := &remoteBackend{conn: conn, pending: map[uint64]chan *replyMsg{}, tasks: map[uint64]*task{}, doneCh: make(chan struct{})}
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
	m, err := parseReply(f)
	if err != nil {
		rm.err = fmt.Errorf("views: bad reply from the hub (%s) to request %d: %w", b.conn.RemoteAddr(), f.ID, err)
	} else {
		if m.Code != "" {
			rm.err = &hubError{code: m.Code, msg: m.Message}
		}
		rm.result = m.Result
		b.mu.Lock()
		for _, h := range m.Tasks {
			t := b.tasks[h.ID]
			if t == nil {
				t = newTask(h.ID, h.Kind, h.Name, h.Submitted)
				t.markSent()
				t.eng.Store(int64(h.Engine))
				t.after, t.follow = h.After, h.Follow
				b.tasks[h.ID] = t
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
	m, err := parseNotify(f)
	if err != nil {
		b.failTask(f.ID, fmt.Sprintf("undecodable result from the hub (%s): %v", b.conn.RemoteAddr(), err))
		return
	}
	t.eng.Store(int64(m.Engine))
	t.rank, t.host = m.Rank, m.Host
	t.started, t.completed = m.Started, m.Completed
	recv := time.Now() // Received is this client's clock (m.Received is the hub's)
	t.stdout, t.stderr, t.exit = m.Stdout, m.Stderr, m.Exit
	t.omitted = [2]int64{m.StdoutOmitted, m.StderrOmitted}
	t.frame = f
	if m.Failed {
		t.finish(nil, &RemoteError{EngineID: m.Engine, Rank: m.Rank, Host: m.Host, MsgID: t.id, Code: m.Code, Type: m.Type,
			Message: m.Message, Traceback: m.Traceback}, recv)
		return
	}
	t.finish(m.Value, nil, recv)
}

func (b *remoteBackend) request(m *requestMsg) (*replyMsg, error) {
	ctrl, bufs, err := m.encode()
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
	rm, err := b.request(&requestMsg{Op: opEngines})
	if err != nil {
		return nil, err
	}
	es, perr := parseEngineList(rm.result)
	return check(b, es, perr)
}

// check names the hub in an error decoding a reply's result.
func check[T any](b *remoteBackend, v T, err error) (T, error) {
	if err != nil {
		err = fmt.Errorf("views: bad reply from the hub (%s): %w", b.conn.RemoteAddr(), err)
	}
	return v, err
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

func (b *remoteBackend) submit(m *requestMsg) ([]*task, error) {
	m.Op = opSubmit
	rm, err := b.request(m)
	if err != nil {
		return nil, err
	}
	return rm.tasks, nil
}

func (b *remoteBackend) submitDirect(kind int, name string, targets []int, ps []payload) ([]*task, error) {
	return b.submit(&requestMsg{Direct: true, Kind: kind, Name: name, Targets: targets, Payloads: ps})
}

func (b *remoteBackend) submitLB(kind int, name string, ps []payload, s lbSpec) ([]*task, error) {
	return b.submit(&requestMsg{Kind: kind, Name: name, Targets: s.targets, Spec: s, Payloads: ps})
}

func (b *remoteBackend) fetch(ids []uint64) ([]*task, error) {
	rm, err := b.request(&requestMsg{Op: opFetch, IDs: ids})
	if err != nil {
		return nil, err
	}
	return rm.tasks, nil
}

func (b *remoteBackend) abort(ids []uint64) error {
	_, err := b.request(&requestMsg{Op: opAbort, IDs: ids})
	return err
}

func (b *remoteBackend) control(targets []int, op int) error {
	_, err := b.request(&requestMsg{Op: opControl, Targets: targets, Control: op})
	return err
}

func (b *remoteBackend) queueStatus() ([]QueueStatus, int, error) {
	rm, err := b.request(&requestMsg{Op: opQueueStatus})
	if err != nil {
		return nil, 0, err
	}
	q, n, err := parseQueueStatus(rm.result)
	q, err = check(b, q, err)
	return q, n, err
}

func (b *remoteBackend) resultStatus(ids []uint64) ([]uint64, []uint64, error) {
	rm, err := b.request(&requestMsg{Op: opResultStatus, IDs: ids})
	if err != nil {
		return nil, nil, err
	}
	p, c, err := parseResultStatus(rm.result)
	p, err = check(b, p, err)
	return p, c, err
}

func (b *remoteBackend) purge(ids []uint64) (int, error) {
	rm, err := b.request(&requestMsg{Op: opPurge, IDs: ids})
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
	n, perr := parsePurged(rm.result)
	if err == nil {
		_, err = check(b, n, perr)
	}
	return n, err
}

func (b *remoteBackend) history() ([]uint64, error) {
	rm, err := b.request(&requestMsg{Op: opHistory})
	if err != nil {
		return nil, err
	}
	ids, perr := parseHistory(rm.result)
	return check(b, ids, perr)
}

// shutdown asks the hub to stop everything and waits (up to timeout plus a
// margin) until the hub closes the connection.
func (b *remoteBackend) shutdown(timeout time.Duration) error {
	if _, err := b.request(&requestMsg{Op: opShutdown, Timeout: timeout}); err != nil {
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
	return nil
}

// bulkFor is nil: an outside client is not on the job's mesh.
func (b *remoteBackend) bulkFor([]int) *bulkSender { return nil }
