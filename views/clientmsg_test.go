package views

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rankhub/rankhub/comm"
)

// A request whose fields have the wrong types is refused with an error
// naming the field, and makes no task; before, the hub read such fields as
// zeros (a timeout given as text ran without a timeout; ids given as text
// fetched nothing and succeeded).
func TestHubRefusesMistypedRequestFields(t *testing.T) {
	pc := startProcs(t, 1, HubConfig{})
	c := rawClient(t, pc.path)
	defer c.Close()
	task, _, _ := encodeValues(kindApply, "add3", []any{1, 2, 3})
	lbArgs := func(timeout any) []any {
		return []any{false, kindApply, "add3", []int(nil), []uint64(nil), false, false, false, []uint64(nil), false, false, false, timeout, 0, []string(nil), ""}
	}
	for i, tc := range []struct {
		op    int
		args  []any
		ps    []payload
		field string
	}{
		{opSubmit, lbArgs("soon"), []payload{{Ctrl: task}}, "submit: field 12 (timeout): want a duration, got string"},
		{opSubmit, lbArgs(time.Second)[:10], []payload{{Ctrl: task}}, "submit: field 10 (follow.success): want a bool, got nothing (missing)"},
		{opSubmit, append(lbArgs(time.Second), "extra"), []payload{{Ctrl: task}}, "submit: 17 values, want 16"},
		{opSubmit, []any{true, "apply", "add3", []int{0}}, []payload{{Ctrl: task}}, "submit: field 1 (kind): want an int, got string"},
		{opFetch, []any{"1,2"}, nil, "fetch: field 0 (ids): want a list of message ids, got string"},
		{opControl, []any{[]int{0}, "clear"}, nil, "control: field 1 (operation): want an int, got string"},
	} {
		req, bufs, err := encodeRequest(tc.op, tc.args, tc.ps)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Send(&comm.Frame{Type: fRequest, ID: uint64(i + 1), Control: req, Buffers: bufs}); err != nil {
			t.Fatal(err)
		}
		f, err := c.Recv()
		if err != nil {
			t.Fatal(err)
		}
		m, err := parseReply(f)
		if err != nil || m.Code != "error" || !strings.Contains(m.Message, "hub: bad request: ") || !strings.Contains(m.Message, tc.field) || len(m.Tasks) != 0 {
			t.Errorf("request %d: reply %+v %v; want an error naming %q", i+1, m, err, tc.field)
		}
	}
	if h := pc.hub.h.History(); len(h) != 0 {
		t.Fatalf("tasks made of mistyped requests: %v", h)
	}
}

// fakeHub serves one client on a connection file: answer returns the
// frames that answer a request (nil: an empty success).
func fakeHub(t *testing.T, answer func(op int, f *comm.Frame) []*comm.Frame) string {
	t.Helper()
	ln, key := testListener(t, "fakehub")
	host, _ := os.Hostname()
	ci := &comm.ConnInfo{Unix: ln.UnixAddr(), Host: host, PID: os.Getpid(), Ranks: 1, Created: time.Now()}
	ci.SetKey(key)
	path := filepath.Join(t.TempDir(), "hub.json")
	if err := comm.WriteConnInfo(path, ci); err != nil {
		t.Fatal(err)
	}
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		for {
			f, err := c.Recv()
			if err != nil {
				return
			}
			if f.Type != fRequest {
				continue
			}
			v, _ := decodeValues(f.Control, f.Buffers, 2)
			op, _ := v[0].(int)
			fs := answer(op, f)
			if fs == nil {
				ok, _, _ := encodeValues("", "", nil, nil)
				fs = []*comm.Frame{{Type: fReply, ID: f.ID, Control: ok}}
			}
			for _, r := range fs {
				c.Send(r)
			}
		}
	}()
	return path
}

// A client refuses replies and notifications whose fields have the wrong
// types, naming the hub and the field; before, it read them as zeros (an
// engine id given as text was engine 0, an exit status given as text
// made a successful task with exit status 0).
func TestClientRefusesMistypedHubMessages(t *testing.T) {
	path := fakeHub(t, func(op int, f *comm.Frame) []*comm.Frame {
		reply := func(result any, hdrs []any) *comm.Frame {
			ctrl, _, _ := encodeValues("", "", result, hdrs)
			return &comm.Frame{Type: fReply, ID: f.ID, Control: ctrl}
		}
		switch op {
		case opQueueStatus:
			return []*comm.Frame{reply([]any{[]any{[]any{"zero", 1, 2}}, 0}, nil)}
		case opResultStatus:
			return []*comm.Frame{reply([]any{[]uint64{1}}, nil)}
		case opFetch:
			hdr := []any{uint64(5), 0, time.Now(), kindApply, "add3", []uint64(nil), []uint64(nil)}
			n := &notifyMsg{Engine: 0, Host: "n1", Value: 6}
			vals := n.Values()
			vals[14] = "one" // exit
			ctrl, _, _ := encodeValues(vals...)
			return []*comm.Frame{reply(nil, []any{hdr}), {Type: fNotify, ID: 5, Control: ctrl}}
		case opHistory:
			hdr := []any{uint64(6), 0, time.Now(), kindApply, "add3"} // two fields short
			return []*comm.Frame{reply([]uint64{6}, []any{hdr})}
		}
		return nil
	})
	cl, err := Connect(path)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	wantErr := func(what string, err error, field string) {
		t.Helper()
		if err == nil || !strings.Contains(err.Error(), "from the hub (") || !strings.Contains(err.Error(), field) {
			t.Errorf("%s: %v; want an error naming the hub and %q", what, err, field)
		}
	}
	q, _, err := cl.QueueStatus()
	wantErr(fmt.Sprintf("queue status %+v", q), err, "queue status: engine entry 0: field 0 (engine): want an int, got string")
	_, _, err = cl.ResultStatus()
	wantErr("result status", err, "result status: field 1 (completed): want a list of message ids, got nothing (missing)")
	_, err = cl.History()
	wantErr("history", err, "reply: task header 0: field 5 (after)")
	ar, err := cl.Result(5)
	if err != nil {
		t.Fatal(err)
	}
	_, err = ar.Get(5 * time.Second)
	wantErr("notification", err, "notification: field 14 (exit): want an int, got string")
}
