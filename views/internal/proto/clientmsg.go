package proto

import (
	"fmt"
	"time"

	"github.com/rankhub/rankhub/comm"
	"github.com/rankhub/rankhub/views/internal/codec"
	"github.com/rankhub/rankhub/views/internal/hubcore"
)

// The client↔hub messages, typed: each has an encoder and a parser that
// checks every field. The wire layout is the codec's (a list of values per
// message, in the order of the fields below); a value of the wrong type, a
// missing or an extra value is an error naming the message and the field,
// never a zero.

// fields reads a message's decoded values and keeps the first error.
type fields struct {
	what string // the message, as errors name it
	v    []any
	err  error
}

func (r *fields) fail(i int, name, want string) {
	if r.err != nil {
		return
	}
	got := "nothing (missing)"
	if i < len(r.v) {
		got = fmt.Sprintf("%T", r.v[i])
		if r.v[i] == nil {
			got = "nil"
		}
	}
	r.err = fmt.Errorf("%w: %s: field %d (%s): want %s, got %s", codec.ErrCorrupt, r.what, i, name, want, got)
}

func (r *fields) get(i int) any {
	if i < len(r.v) {
		return r.v[i]
	}
	return nil
}

func scalar[T any](r *fields, i int, name, want string) T {
	x, ok := r.get(i).(T)
	if !ok {
		r.fail(i, name, want)
	}
	return x
}

func (r *fields) int(i int, name string) int { return scalar[int](r, i, name, "an int") }
func (r *fields) i64(i int, name string) int64 {
	return scalar[int64](r, i, name, "an int64")
}
func (r *fields) str(i int, name string) string { return scalar[string](r, i, name, "a string") }
func (r *fields) bool(i int, name string) bool  { return scalar[bool](r, i, name, "a bool") }
func (r *fields) u64(i int, name string) uint64 { return scalar[uint64](r, i, name, "a uint64") }
func (r *fields) time(i int, name string) time.Time {
	return scalar[time.Time](r, i, name, "a time")
}
func (r *fields) dur(i int, name string) time.Duration {
	return scalar[time.Duration](r, i, name, "a duration")
}

// list reads a list field (nil: an empty list); nilOK reports nil apart.
func list[T any](r *fields, i int, name, want string) (out []T, isNil bool) {
	v := r.get(i)
	if i >= len(r.v) {
		r.fail(i, name, want)
		return nil, false
	}
	if v == nil {
		return nil, true
	}
	out, err := codec.As[[]T](v)
	if err != nil {
		r.fail(i, name, want)
	}
	return out, false
}

// ids and ints read lists where empty and nil mean the same (nil).
func (r *fields) ids(i int, name string) []uint64 {
	l, _ := list[uint64](r, i, name, "a list of message ids")
	if len(l) == 0 {
		return nil
	}
	return l
}
func (r *fields) ints(i int, name string) []int {
	l, _ := list[int](r, i, name, "a list of ints")
	if len(l) == 0 {
		return nil
	}
	return l
}
func (r *fields) strs(i int, name string) []string {
	l, ok := stringList(r.get(i))
	if !ok || i >= len(r.v) {
		r.fail(i, name, "a list of strings")
	}
	return l
}
func (r *fields) list(i int, name string) []any {
	v := r.get(i)
	l, ok := v.([]any)
	if (!ok && v != nil) || i >= len(r.v) {
		r.fail(i, name, "a list")
	}
	return l
}

// done checks that there is no value past the n fields read.
func (r *fields) done(n int) error {
	if r.err == nil && len(r.v) != n {
		r.err = fmt.Errorf("%w: %s: %d values, want %d", codec.ErrCorrupt, r.what, len(r.v), n)
	}
	return r.err
}

// EncodeRequest encodes op and args followed by the payload descriptors
// (ctrl, first buffer, buffer count); the payloads' buffers go first in the
// frame, untouched.
func EncodeRequest(op int, args []any, ps []Payload) ([]byte, [][]byte, error) {
	e := codec.NewEncoder(128)
	descs := make([]any, len(ps))
	for i, p := range ps {
		descs[i] = []any{p.Ctrl, e.AddBuffers(p.Bufs), len(p.Bufs)}
	}
	all := append(append([]any{}, args...), descs)
	for i, v := range []any{op, all} {
		if err := e.Encode(fmt.Sprintf("request value %d", i), v); err != nil {
			return nil, nil, err
		}
	}
	ctrl, bufs := e.Result()
	return ctrl, bufs, nil
}

// ----- hello -----

// Hello is an outside client's first frame.
type Hello struct {
	Kind string // "client"
	PID  int
	Host string
}

func (m *Hello) Frame() *comm.Frame {
	ctrl, _, _ := codec.EncodeValues(m.Kind, m.PID, m.Host)
	return &comm.Frame{Type: FHello, Control: ctrl}
}

func ParseHello(f *comm.Frame) (*Hello, error) {
	v, err := codec.DecodeValues(f.Control, f.Buffers, 3)
	if err != nil {
		return nil, err
	}
	r := &fields{what: "hello", v: v}
	m := &Hello{Kind: r.str(0, "kind"), PID: r.int(1, "pid"), Host: r.str(2, "host")}
	return m, r.done(3)
}

// ----- requests -----

// Payload is one task's encoded (kind, name, args) and its out-of-band buffers.
type Payload struct {
	Ctrl []byte
	Bufs [][]byte
	// Keep is what Bufs alias, held until they are sent: arrays received
	// on the bulk path live in arena memory that their buffers' objects,
	// not the bytes, keep (views/internal/bulk).
	Keep any
}

// Spec are a load-balanced submission's options.
type Spec struct {
	Targets []int // nil: any engine
	After   hubcore.Dependency
	Follow  hubcore.Dependency
	Timeout time.Duration
	Retries int
	Require []string // TaskOptions.Require
	Depend  string   // TaskOptions.Depend
}

var opNames = map[int]string{OpEngines: "engines", OpSubmit: "submit", OpFetch: "fetch", OpAbort: "abort", OpControl: "control",
	OpQueueStatus: "queue-status", OpResultStatus: "result-status", OpPurge: "purge", OpHistory: "history", OpShutdown: "shutdown"}

// Request is one request of a client (FRequest); which fields count
// depends on Op.
type Request struct {
	Op int
	// OpSubmit
	Direct   bool
	Kind     int
	Name     string
	Targets  []int // OpSubmit, OpControl (nil: every live engine)
	Spec     Spec
	Payloads []Payload
	// OpFetch, OpAbort; OpResultStatus and OpPurge, where nil means all
	IDs []uint64
	// OpControl
	Control int
	// OpShutdown
	Timeout time.Duration
}

// encode writes the request: op, then a list of its arguments ending with
// the payload descriptors (EncodeRequest).
func (m *Request) Encode() ([]byte, [][]byte, error) {
	var args []any
	idsOrAll := func() any {
		if m.IDs == nil {
			return nil
		}
		return m.IDs
	}
	switch m.Op {
	case OpSubmit:
		args = []any{m.Direct, m.Kind, m.Name, m.Targets}
		if !m.Direct {
			s := m.Spec
			args = append(args, s.After.MsgIDs, s.After.Any, s.After.Success, s.After.Failure,
				s.Follow.MsgIDs, s.Follow.Any, s.Follow.Success, s.Follow.Failure, s.Timeout, s.Retries, s.Require, s.Depend)
		}
	case OpFetch, OpAbort:
		args = []any{m.IDs}
	case OpResultStatus, OpPurge:
		args = []any{idsOrAll()}
	case OpControl:
		args = []any{m.Targets, m.Control}
	case OpShutdown:
		args = []any{m.Timeout}
	}
	return EncodeRequest(m.Op, args, m.Payloads)
}

// ParseRequest decodes and checks a request; the error names the field.
func ParseRequest(f *comm.Frame) (*Request, error) {
	v, err := codec.DecodeValues(f.Control, f.Buffers, 2)
	if err != nil {
		return nil, err
	}
	op, ok := v[0].(int)
	if !ok {
		return nil, fmt.Errorf("%w: request: field 0 (op): want an int, got %T", codec.ErrCorrupt, v[0])
	}
	name, known := opNames[op]
	if !known {
		return nil, fmt.Errorf("unknown request %d", op)
	}
	args, ok := v[1].([]any)
	if !ok || len(args) == 0 {
		return nil, fmt.Errorf("no arguments")
	}
	descs, ok := args[len(args)-1].([]any)
	if !ok && args[len(args)-1] != nil {
		return nil, fmt.Errorf("%w: %s: payload descriptors: want a list, got %T", codec.ErrCorrupt, name, args[len(args)-1])
	}
	r := &fields{what: name, v: args[:len(args)-1]}
	m := &Request{Op: op}
	n := 0
	switch op {
	case OpEngines, OpQueueStatus, OpHistory:
	case OpSubmit:
		m.Direct, m.Kind, m.Name, m.Targets = r.bool(0, "direct"), r.int(1, "kind"), r.str(2, "name"), r.ints(3, "targets")
		n = 4
		if !m.Direct && r.err == nil {
			dep := func(i int, name string) hubcore.Dependency {
				return hubcore.Dependency{MsgIDs: r.ids(i, name), Any: r.bool(i+1, name+".any"), Success: r.bool(i+2, name+".success"), Failure: r.bool(i+3, name+".failure")}
			}
			m.Spec = Spec{Targets: m.Targets, After: dep(4, "after"), Follow: dep(8, "follow"), Timeout: r.dur(12, "timeout"),
				Retries: r.int(13, "retries"), Require: r.strs(14, "require"), Depend: r.str(15, "depend")}
			n = 16
		}
		if m.Payloads, err = ParseDescriptors(descs, f.Buffers); err != nil {
			return nil, err
		}
	case OpFetch, OpAbort:
		m.IDs, n = r.ids(0, "ids"), 1
	case OpResultStatus, OpPurge:
		var all bool
		m.IDs, all = list[uint64](r, 0, "ids", "a list of message ids or nil")
		if !all && len(m.IDs) == 0 {
			m.IDs = []uint64{} // none, where nil is all
		}
		n = 1
	case OpControl:
		var all bool
		m.Targets, all = list[int](r, 0, "targets", "a list of ints or nil")
		if !all && len(m.Targets) == 0 {
			m.Targets = []int{} // none, where nil is every live engine
		}
		m.Control, n = r.int(1, "operation"), 2
	case OpShutdown:
		m.Timeout, n = r.dur(0, "timeout"), 1
	}
	if err := r.done(n); err != nil {
		return nil, err
	}
	return m, nil
}

// ParseDescriptors reads a submission's payload descriptors (ctrl, first
// buffer, buffer count) against the frame's buffers.
func ParseDescriptors(descs []any, bufs [][]byte) ([]Payload, error) {
	ps := make([]Payload, len(descs))
	for i, d := range descs {
		l, _ := d.([]any)
		if len(l) != 3 {
			return nil, fmt.Errorf("payload %d", i)
		}
		ctrl, ok1 := l[0].([]byte)
		start, ok2 := l[1].(int)
		n, ok3 := l[2].(int)
		if !ok1 || !ok2 || !ok3 {
			return nil, fmt.Errorf("payload %d: want (control bytes, first buffer, buffer count), got (%T, %T, %T)", i, l[0], l[1], l[2])
		}
		if start < 0 || n < 0 || start > len(bufs) || n > len(bufs)-start {
			return nil, fmt.Errorf("payload %d buffers [%d,+%d) of %d", i, start, n, len(bufs))
		}
		ps[i] = Payload{Ctrl: ctrl, Bufs: bufs[start : start+n : start+n]}
	}
	return ps, nil
}

// ----- replies -----

// TaskHeader is what a reply says of each task it made or found.
type TaskHeader struct {
	ID        uint64
	Engine    int
	Submitted time.Time
	Kind      int
	Name      string
	After     []uint64
	Follow    []uint64
}

func (h TaskHeader) Value() any {
	return []any{h.ID, h.Engine, h.Submitted, h.Kind, h.Name, h.After, h.Follow}
}

// Reply is a reply (FReply) as it travels: an error code and message
// ("" when it succeeded), the op's result, and task headers.
type Reply struct {
	Code    string
	Message string
	Result  any
	Tasks   []TaskHeader
}

func (m *Reply) Encode() ([]byte, [][]byte, error) {
	var hdrs []any
	if m.Tasks != nil {
		hdrs = make([]any, len(m.Tasks))
		for i, h := range m.Tasks {
			hdrs[i] = h.Value()
		}
	}
	return codec.EncodeValues(m.Code, m.Message, m.Result, hdrs)
}

// FrameDecoder decodes the n values of a frame from the hub.
type FrameDecoder func(f *comm.Frame, n int) ([]any, error)

// HeapDecode decodes a frame on the Go heap (arrays of a page or more are
// copied into read-only memory).
func HeapDecode(f *comm.Frame, n int) ([]any, error) {
	return codec.DecodeValues(f.Control, f.Buffers, n)
}

func ParseReply(f *comm.Frame) (*Reply, error) { return ParseReplyWith(f, HeapDecode) }

func ParseReplyWith(f *comm.Frame, decode FrameDecoder) (*Reply, error) {
	v, err := decode(f, 4)
	if err != nil {
		return nil, err
	}
	r := &fields{what: "reply", v: v}
	m := &Reply{Code: r.str(0, "code"), Message: r.str(1, "message"), Result: v[2]}
	for i, x := range r.list(3, "tasks") {
		l, ok := x.([]any)
		if !ok {
			r.fail(3, fmt.Sprintf("tasks[%d]", i), "a task header")
			break
		}
		h := &fields{what: fmt.Sprintf("reply: task header %d", i), v: l}
		th := TaskHeader{ID: h.u64(0, "id"), Engine: h.int(1, "engine"), Submitted: h.time(2, "submitted"), Kind: h.int(3, "kind"),
			Name: h.str(4, "name"), After: h.ids(5, "after"), Follow: h.ids(6, "follow")}
		if err := h.done(7); err != nil {
			return nil, err
		}
		m.Tasks = append(m.Tasks, th)
	}
	return m, r.done(4)
}

// The results of the requests that have one, as values and back.

func EngineListValue(es []hubcore.EngineInfo) any {
	out := make([]any, len(es))
	for i, e := range es {
		out[i] = []any{e.ID, e.Rank, e.Host, e.PID, e.Queued, e.Done, e.Dead, e.DeadWhy}
	}
	return out
}

func ParseEngineList(v any) ([]hubcore.EngineInfo, error) {
	l, ok := v.([]any)
	if !ok && v != nil {
		return nil, fmt.Errorf("%w: engines: want a list, got %T", codec.ErrCorrupt, v)
	}
	out := make([]hubcore.EngineInfo, 0, len(l))
	for i, x := range l {
		e, _ := x.([]any)
		r := &fields{what: fmt.Sprintf("engines: entry %d", i), v: e}
		in := hubcore.EngineInfo{ID: r.int(0, "id"), Rank: r.int(1, "rank"), Host: r.str(2, "host"), PID: r.int(3, "pid"),
			Queued: r.int(4, "queued"), Done: r.int(5, "done"), Dead: r.bool(6, "dead"), DeadWhy: r.str(7, "dead why")}
		if err := r.done(8); err != nil {
			return nil, err
		}
		out = append(out, in)
	}
	return out, nil
}

func QueueStatusValue(q []hubcore.QueueStatus, waiting int) any {
	out := make([]any, len(q))
	for i, s := range q {
		out[i] = []any{s.EngineID, s.Queued, s.Completed}
	}
	return []any{out, waiting}
}

func ParseQueueStatus(v any) ([]hubcore.QueueStatus, int, error) {
	l, _ := v.([]any)
	r := &fields{what: "queue status", v: l}
	qs, waiting := r.list(0, "engines"), r.int(1, "waiting")
	if err := r.done(2); err != nil {
		return nil, 0, err
	}
	out := make([]hubcore.QueueStatus, 0, len(qs))
	for i, x := range qs {
		q, _ := x.([]any)
		r := &fields{what: fmt.Sprintf("queue status: engine entry %d", i), v: q}
		s := hubcore.QueueStatus{EngineID: r.int(0, "engine"), Queued: r.int(1, "queued"), Completed: r.int(2, "completed")}
		if err := r.done(3); err != nil {
			return nil, 0, err
		}
		out = append(out, s)
	}
	return out, waiting, nil
}

func ParseResultStatus(v any) (pending, completed []uint64, err error) {
	l, _ := v.([]any)
	r := &fields{what: "result status", v: l}
	pending, completed = r.ids(0, "pending"), r.ids(1, "completed")
	return pending, completed, r.done(2)
}

// ParsePurged reads purge's count; nil (a hub that did not count) is 0.
func ParsePurged(v any) (int, error) {
	switch n := v.(type) {
	case nil:
		return 0, nil
	case int:
		return n, nil
	}
	return 0, fmt.Errorf("%w: purge: field count: want an int, got %T", codec.ErrCorrupt, v)
}

func ParseHistory(v any) ([]uint64, error) {
	r := &fields{what: "history", v: []any{v}}
	ids := r.ids(0, "ids")
	return ids, r.done(1)
}

// ----- notifications -----

// Notify is a finished task's outcome (FNotify, ID = message id).
type Notify struct {
	Engine        int
	Rank          int
	Host          string
	Started       time.Time
	Completed     time.Time
	Received      time.Time // the hub's; the client stamps its own
	Failed        bool
	Value         any
	Code          string
	Type          string
	Message       string
	Traceback     string
	Stdout        string
	Stderr        string
	Exit          int
	StdoutOmitted int64
	StderrOmitted int64
}

func (m *Notify) Values() []any {
	return []any{m.Engine, m.Rank, m.Host, m.Started, m.Completed, m.Received, m.Failed, m.Value,
		m.Code, m.Type, m.Message, m.Traceback, m.Stdout, m.Stderr, m.Exit, m.StdoutOmitted, m.StderrOmitted}
}

func ParseNotify(f *comm.Frame) (*Notify, error) { return ParseNotifyWith(f, HeapDecode) }

func ParseNotifyWith(f *comm.Frame, decode FrameDecoder) (*Notify, error) {
	v, err := decode(f, 17)
	if err != nil {
		return nil, err
	}
	r := &fields{what: "notification", v: v}
	m := &Notify{Engine: r.int(0, "engine"), Rank: r.int(1, "rank"), Host: r.str(2, "host"), Started: r.time(3, "started"),
		Completed: r.time(4, "completed"), Received: r.time(5, "received"), Failed: r.bool(6, "failed"), Value: v[7],
		Code: r.str(8, "code"), Type: r.str(9, "type"), Message: r.str(10, "message"), Traceback: r.str(11, "traceback"),
		Stdout: r.str(12, "stdout"), Stderr: r.str(13, "stderr"), Exit: r.int(14, "exit"),
		StdoutOmitted: r.i64(15, "stdout omitted"), StderrOmitted: r.i64(16, "stderr omitted")}
	return m, r.done(17)
}
