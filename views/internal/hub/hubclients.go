package hub

import (
	"errors"
	"fmt"
	"sync"

	"github.com/rankhub/rankhub/comm"
	"github.com/rankhub/rankhub/views/internal/codec"
	"github.com/rankhub/rankhub/views/internal/engine"
	"github.com/rankhub/rankhub/views/internal/hubcore"
	"github.com/rankhub/rankhub/views/internal/proto"
)

// The hub side of outside clients: one goroutine reads a client's
// requests, another runs them in order, its outbox writes the replies and
// notifications.

// clientConn is the hub's side of one outside client.
type clientConn struct {
	h       *Hub
	c       *comm.Conn
	who     string // the client, as logs name it
	out     *outbox
	mu      sync.Mutex
	watched map[uint64]bool
}

// notifyFrame encodes a finished task for a client.
func notifyFrame(t *Task) *comm.Frame {
	ctrl, bufs, err := codec.EncodeBulk(nil, notifyOf(t).Values()...)
	if err != nil {
		return notSendableFrame(t, err)
	}
	return &comm.Frame{Type: proto.FNotify, ID: t.ID, Control: ctrl, Buffers: bufs}
}

// notSendableFrame is the notification of t that says its result cannot
// be sent to the client, and why.
func notSendableFrame(t *Task, err error) *comm.Frame {
	m := notifyOf(t)
	m.Failed, m.Value, m.Code, m.Message = true, nil, hubcore.CodeNotSendable, err.Error()
	ctrl, bufs, _ := codec.EncodeBulk(nil, m.Values()...)
	return &comm.Frame{Type: proto.FNotify, ID: t.ID, Control: ctrl, Buffers: bufs}
}

// notifyOf is a finished task's notification.
func notifyOf(t *Task) *proto.Notify {
	var re proto.RemoteError
	failed := t.Err != nil
	if failed && !errors.As(t.Err, new(*proto.RemoteError)) {
		re = proto.RemoteError{EngineID: int(t.Eng.Load()), Code: hubcore.CodeError, Message: t.Err.Error()}
	} else if failed {
		var p *proto.RemoteError
		errors.As(t.Err, &p)
		re = *p
	}
	return &proto.Notify{Engine: int(t.Eng.Load()), Rank: t.Rank, Host: t.Host, Started: t.Started, Completed: t.Completed, Received: t.Received,
		Failed: failed, Value: t.Value, Code: re.Code, Type: re.Type, Message: re.Message, Traceback: re.Traceback,
		Stdout: t.Stdout, Stderr: t.Stderr, Exit: t.Exit, StdoutOmitted: t.Omitted[0], StderrOmitted: t.Omitted[1]}
}

func (h *Hub) serveClient(c *comm.Conn, hello *comm.Frame) {
	who := c.RemoteAddr()
	if m, err := proto.ParseHello(hello); err == nil {
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
			if err := engine.Recovered(func() { cc.handle(f) }); err != nil {
				// This client's recovery boundary: it gets an error
				// reply, then the hub closes it.
				engine.WithStack(h.log.Error().Str("client", who), err).Uint64("request", f.ID).Msg("panic while handling a client's request; client closed")
				ctrl, _, _ := codec.EncodeBulk(nil, "error", fmt.Sprintf("hub: request %d: %v; the hub closes this connection", f.ID, err), nil, nil)
				c.Send(&comm.Frame{Type: proto.FReply, ID: f.ID, Control: ctrl})
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
		if f.Type != proto.FRequest {
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

func (cc *clientConn) reply(id uint64, err error, result any, tasks []*Task) {
	m := &proto.Reply{Result: result}
	if err != nil {
		m.Code, m.Message = proto.HubErrCode(err), err.Error()
	}
	if tasks != nil {
		m.Tasks = make([]proto.TaskHeader, len(tasks))
		for i, t := range tasks {
			m.Tasks[i] = headerOf(t)
		}
	}
	ctrl, bufs, eerr := m.Encode()
	if eerr != nil {
		ctrl, bufs, _ = (&proto.Reply{Code: "error", Message: "hub: cannot encode the reply: " + eerr.Error()}).Encode()
		tasks = nil
	}
	// Written on this goroutine (the client's requests wait for it, its
	// reader does not) unless the outbox is busy with a notification.
	cc.out.enqueue([]*comm.Frame{{Type: proto.FReply, ID: id, Control: ctrl, Buffers: bufs}}, []func(*comm.Frame, error) *comm.Frame{func(_ *comm.Frame, err error) *comm.Frame {
		ctrl, _, _ := (&proto.Reply{Code: "error", Message: "hub: the reply is too large to send: " + err.Error()}).Encode()
		return &comm.Frame{Type: proto.FReply, ID: id, Control: ctrl}
	}}, []any{result}, nil)
	cc.out.writeNow()
	for _, t := range tasks {
		cc.mu.Lock()
		seen := cc.watched[t.ID]
		cc.watched[t.ID] = true
		cc.mu.Unlock()
		if !seen {
			t.Watch(func(t *Task) {
				cc.mu.Lock()
				delete(cc.watched, t.ID)
				cc.mu.Unlock()
				cc.out.push(notifyFrame(t), func(_ *comm.Frame, err error) *comm.Frame {
					return notSendableFrame(t, fmt.Errorf("hub: the result is too large to send to this client: %w", err))
				}, t.Value)
			})
		}
	}
}

func (cc *clientConn) handle(f *comm.Frame) {
	m, err := proto.ParseRequest(f)
	if err != nil {
		cc.h.log.Warn().Str("client", cc.who).Uint64("request", f.ID).Err(err).Msg("bad request from a client")
		cc.reply(f.ID, fmt.Errorf("hub: bad request: %w", err), nil, nil)
		return
	}
	h := cc.h
	switch m.Op {
	case proto.OpEngines:
		cc.reply(f.ID, nil, proto.EngineListValue(h.Engines()), nil)
	case proto.OpSubmit:
		for i, p := range m.Payloads {
			// An outside client's task is decoded here before any engine
			// sees it: a corrupt payload, or a reference to a bulk array
			// (outside clients are not on the mesh: an engine would wait
			// for it in vain), is this client's error, not the engines'.
			if err := codec.CheckValues(p.Ctrl, p.Bufs, 3); err != nil {
				cc.reply(f.ID, fmt.Errorf("hub: bad request: payload %d: %w", i, err), nil, nil)
				return
			}
		}
		if len(m.Payloads) == 0 {
			cc.reply(f.ID, fmt.Errorf("hub: bad request: no payload"), nil, nil)
			return
		}
		var tasks []*Task
		if m.Direct {
			tasks, err = h.SubmitDirect(m.Kind, m.Name, m.Targets, m.Payloads)
		} else {
			tasks, err = h.SubmitLB(m.Kind, m.Name, m.Payloads, m.Spec)
		}
		cc.reply(f.ID, err, nil, tasks)
	case proto.OpFetch:
		tasks, err := h.Fetch(m.IDs)
		cc.reply(f.ID, err, nil, tasks)
	case proto.OpAbort:
		cc.reply(f.ID, h.Abort(m.IDs), nil, nil)
	case proto.OpControl:
		if m.Control != proto.CtlClear && m.Control != proto.CtlShutdown {
			cc.reply(f.ID, fmt.Errorf("hub: bad control operation %d", m.Control), nil, nil)
			return
		}
		cc.reply(f.ID, h.Control(m.Targets, m.Control), nil, nil)
	case proto.OpQueueStatus:
		q, n := h.QueueStatus()
		cc.reply(f.ID, nil, proto.QueueStatusValue(q, n), nil)
	case proto.OpResultStatus:
		p, c, err := h.ResultStatus(m.IDs)
		cc.reply(f.ID, err, []any{p, c}, nil)
	case proto.OpPurge:
		n, err := h.Purge(m.IDs)
		cc.reply(f.ID, err, n, nil)
	case proto.OpHistory:
		cc.reply(f.ID, nil, h.History(), nil)
	case proto.OpShutdown:
		cc.reply(f.ID, nil, nil, nil)
		go h.Shutdown(m.Timeout)
	}
}

// headerOf is what a reply says of t.
func headerOf(t *Task) proto.TaskHeader {
	return proto.TaskHeader{ID: t.ID, Engine: int(t.Eng.Load()), Submitted: t.Submitted, Kind: t.Kind, Name: t.Name, After: t.After, Follow: t.Follow}
}
