package views

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rankhub/rankhub/collective"
	"github.com/rankhub/rankhub/comm"
	"github.com/rankhub/rankhub/views/internal/codec"
	"github.com/rankhub/rankhub/views/internal/hub"
	"github.com/rankhub/rankhub/views/internal/proto"
)

// Outside clients, the client side (the hub side is hubclients.go, the
// messages clientmsg.go). A client dials the hub with the job key from the
// connection file, sends fHello, then requests (fRequest, ID = request id).
// The hub answers each with fReply (same ID): an error code and message, a
// result, and task headers for submissions and fetches. For every task a
// client submitted or fetched, the hub later sends one fNotify (ID = message
// id) with the outcome. A reply always precedes the notifications of its
// tasks, because the hub watches them only after replying.

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
	o := codec.NewFrameOwner(f.Release)
	defer o.Drop()
	v, err = codec.NewDecoder(f.Control, f.Buffers, nil).InPlace(o).Values(n)
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
	if err := conn.Send((&helloMsg{Kind: "client", PID: os.Getpid(), Host: host}).Frame()); err != nil {
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
		if !t.IsDone() {
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
		t.Finish(nil, &RemoteError{EngineID: -1, Code: CodeShutdown, MsgID: t.ID, Message: "connection to the hub lost before the result came: " + err.Error()}, now)
	}
}

func (b *remoteBackend) onReply(f *comm.Frame) {
	rm := &replyMsg{}
	m, err := parseReplyWith(f, func(f *comm.Frame, n int) ([]any, error) {
		v, _, err := b.decodeFrame(f, n)
		return v, err
	})
	if err != nil {
		rm.err = fmt.Errorf("views: bad reply from the hub (%s) to request %d: %w", b.conn.RemoteAddr(), f.ID, err)
	} else {
		if m.Code != "" {
			rm.err = &proto.HubError{Code: m.Code, Msg: m.Message}
		}
		rm.result = m.Result
		b.mu.Lock()
		for _, h := range m.Tasks {
			t := b.tasks[h.ID]
			if t == nil {
				t = hub.NewTask(h.ID, h.Kind, h.Name, h.Submitted)
				t.MarkSent()
				t.Eng.Store(int64(h.Engine))
				t.After, t.Follow = h.After, h.Follow
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
		t.Finish(nil, &RemoteError{EngineID: -1, Code: CodeError, MsgID: id, Message: why}, time.Now())
	}
}

func (b *remoteBackend) onNotify(f *comm.Frame) {
	b.mu.Lock()
	t := b.tasks[f.ID]
	b.mu.Unlock()
	if t == nil {
		return
	}
	inPlace := false
	m, err := parseNotifyWith(f, func(f *comm.Frame, n int) (v []any, err error) {
		v, inPlace, err = b.decodeFrame(f, n)
		return v, err
	})
	if err != nil {
		b.failTask(f.ID, fmt.Sprintf("undecodable result from the hub (%s): %v", b.conn.RemoteAddr(), err))
		return
	}
	t.Eng.Store(int64(m.Engine))
	t.Rank, t.Host = m.Rank, m.Host
	t.Started, t.Completed = m.Started, m.Completed
	recv := time.Now() // Received is this client's clock (m.Received is the hub's)
	t.Stdout, t.Stderr, t.Exit = m.Stdout, m.Stderr, m.Exit
	t.Omitted = [2]int64{m.StdoutOmitted, m.StderrOmitted}
	if !inPlace {
		t.Frame = f // keeps out-of-band buffers the value aliases
	}
	if m.Failed {
		t.Finish(nil, &RemoteError{EngineID: m.Engine, Rank: m.Rank, Host: m.Host, MsgID: t.ID, Code: m.Code, Type: m.Type,
			Message: m.Message, Traceback: m.Traceback}, recv)
		return
	}
	t.Finish(m.Value, nil, recv)
}

func (b *remoteBackend) request(m *requestMsg) (*replyMsg, error) {
	ctrl, bufs, err := m.Encode()
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

func (b *remoteBackend) submitDirect(kind int, name string, targets []int, ps []payload, accepted func()) ([]*task, error) {
	ts, err := b.submit(&requestMsg{Direct: true, Kind: kind, Name: name, Targets: targets, Payloads: ps})
	if err == nil && accepted != nil {
		accepted()
	}
	return ts, err
}

func (b *remoteBackend) submitLB(kind int, name string, ps []payload, s lbSpec) ([]*task, error) {
	return b.submit(&requestMsg{Kind: kind, Name: name, Targets: s.Targets, Spec: s, Payloads: ps})
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
		if t.IsDone() && (ids == nil || slices.Contains(ids, id)) {
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
	b.pool.Close() // frames still held are unmapped when collected
	return nil
}

// bulkFor is nil: an outside client is not on the job's mesh.
func (b *remoteBackend) bulkFor([]int) *bulkSender { return nil }
