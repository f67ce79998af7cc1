package views

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/rankhub/rankhub/comm"
	"github.com/rankhub/rankhub/views/internal/codec"
	"github.com/rankhub/rankhub/views/internal/engine"
)

// Hardening tests (issue 12): hostile payloads, hints from the wire, output
// and results too large for a frame.

// Wire tags of the codec, for payloads built by hand.
const (
	tInt        = codec.TagInt
	tList       = codec.TagList
	tArrow      = codec.TagArrow
	arrowArray  = codec.ArrowArray
	arrowRecord = codec.ArrowRecord
	arrowBulk   = codec.ArrowBulk
)

// fuzzEntry is one input of a decoder fuzz target: a control payload and
// out-of-band buffers.
type fuzzEntry struct {
	name string
	ctrl []byte
	bufs [][]byte
}

// codecCorpus holds the codec's fuzz corpora (FuzzDecodeArrow,
// FuzzDecodeValues).
var codecCorpus = filepath.Join("internal", "codec", "testdata", "fuzz")

// readFuzzCorpus reads the stored corpus of a fuzz target (dir/target),
// every argument a []byte. An empty or missing corpus is an error: the
// tests that send it would prove nothing.
func readFuzzCorpus(t *testing.T, dir, target string) []fuzzEntry {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, target, "*"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatalf("no fuzz corpus in %s", filepath.Join(dir, target))
	}
	var out []fuzzEntry
	for _, path := range files {
		text, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(string(text)), "\n")
		if len(lines) < 2 || lines[0] != "go test fuzz v1" {
			t.Fatalf("%s: not a fuzz corpus file", path)
		}
		var args [][]byte
		for i, l := range lines[1:] {
			q, ok := strings.CutPrefix(l, "[]byte(")
			q, ok2 := strings.CutSuffix(q, ")")
			s, err := strconv.Unquote(q)
			if !ok || !ok2 || err != nil {
				t.Fatalf("%s:%d: not a []byte value: %q", path, i+2, l)
			}
			args = append(args, []byte(s))
		}
		out = append(out, fuzzEntry{name: target + "/" + filepath.Base(path), ctrl: args[0], bufs: args[1:]})
	}
	return out
}

// hostileCorpus is every fuzz corpus entry of both decoders: the seeds and
// the stored entries (the crashers found so far among them).
func hostileCorpus(t *testing.T) []fuzzEntry {
	var out []fuzzEntry
	for i, s := range codec.ArrowFuzzSeeds() {
		out = append(out, fuzzEntry{name: "FuzzDecodeArrow/seed#" + strconv.Itoa(i), ctrl: s[0], bufs: [][]byte{s[1], s[2], s[3]}})
	}
	for i, s := range codec.ValuesFuzzSeeds() {
		out = append(out, fuzzEntry{name: "FuzzDecodeValues/seed#" + strconv.Itoa(i), ctrl: s})
	}
	out = append(out, readFuzzCorpus(t, codecCorpus, "FuzzDecodeArrow")...)
	return append(out, readFuzzCorpus(t, codecCorpus, "FuzzDecodeValues")...)
}

// rawClient is a connection to a hub that sends hand-made frames.
func rawClient(t *testing.T, path string) *comm.Conn {
	t.Helper()
	ci, err := comm.ReadConnInfo(path)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := ci.KeyBytes()
	c, err := comm.Dial(context.Background(), "unix", ci.Unix, key, comm.Options{})
	if err != nil {
		t.Fatal(err)
	}
	hello, _, _ := encodeValues("hostile", os.Getpid(), "test")
	if err := c.Send(&comm.Frame{Type: fHello, Control: hello}); err != nil {
		t.Fatal(err)
	}
	return c
}

// Every fuzz corpus entry (seeds, stored entries, the crasher) sent to a
// live hub as a request and to live engine processes as a task argument:
// nothing crashes, the crasher's task fails with an error naming the engine
// and why, and afterwards the hub and every engine serve a normal apply
// (issue 12, rows 1 and 1b).
func TestHostileCorpusToLiveHubAndEngines(t *testing.T) {
	pc := startProcs(t, 2, HubConfig{})
	corpus := hostileCorpus(t)
	head, _, _ := encodeValues(kindApply, "add3")
	asArgs := func(ctrl []byte) []byte { return slices.Concat(head, []byte{tList, 1}, ctrl) }
	var reqID uint64
	for _, e := range corpus {
		c := rawClient(t, pc.path)
		var frames []*comm.Frame
		add := func(ctrl []byte) {
			reqID++
			frames = append(frames, &comm.Frame{Type: fRequest, ID: reqID, Control: ctrl, Buffers: e.bufs})
		}
		add(e.ctrl)                                                          // the entry as a whole request
		add(append(binary.AppendVarint([]byte{tInt}, opEngines), e.ctrl...)) // as the request's arguments
		// as a task's arguments and as a whole task, on both engines
		for _, task := range [][]byte{asArgs(e.ctrl), e.ctrl} {
			req, bufs, err := encodeRequest(opSubmit, []any{true, kindApply, "add3", []int{0, 1}}, []payload{{Ctrl: task, Bufs: e.bufs}})
			if err != nil {
				t.Fatal(err)
			}
			reqID++
			frames = append(frames, &comm.Frame{Type: fRequest, ID: reqID, Control: req, Buffers: bufs})
		}
		for _, f := range frames {
			if err := c.Send(f); err != nil {
				break // the hub closed this client after a request it could not handle
			}
		}
		// Read until every request is answered or the hub closes this client.
		answered := 0
		for answered < len(frames) {
			f, err := c.Recv()
			if err != nil {
				t.Logf("%s: the hub closed the client after %d replies: %v", e.name, answered, err)
				break
			}
			if f.Type == fReply {
				answered++
			}
		}
		c.Close()
		// The same entries through the in-process hub, to see the tasks' errors.
		tasks, err := pc.hub.h.SubmitDirect(kindApply, "add3", []int{0, 1}, []payload{{Ctrl: asArgs(e.ctrl), Bufs: e.bufs}})
		if err != nil {
			t.Fatalf("%s: %v", e.name, err)
		}
		for _, tk := range tasks {
			select {
			case <-tk.Done:
			case <-time.After(10 * time.Second):
				t.Fatalf("%s: task %d never finished", e.name, tk.ID)
			}
			var re *RemoteError
			if tk.Err != nil && (!errors.As(tk.Err, &re) || re.EngineID < 0 || re.Message == "") {
				t.Fatalf("%s: task error %v does not name the engine and why", e.name, tk.Err)
			}
			if strings.Contains(e.name, "record-column-rows-mismatch") && (re == nil || re.Code != CodeBadArguments || !strings.Contains(re.Message, "record column")) {
				t.Fatalf("%s: crasher's task: %v", e.name, tk.Err)
			}
		}
	}
	// The hub and every engine still serve, in process and to a new client.
	for _, cl := range []*Client{pc.cl, pc.connect(t)} {
		dv := must[*DirectView](t)(cl.DirectView())
		ar := must[*AsyncResult](t)(dv.Apply("add3", 1, 2, 3))
		v, err := ar.Get(10 * time.Second)
		if err != nil || !reflect.DeepEqual(v, []any{6, 6}) {
			t.Fatalf("after the hostile corpus: %v %v", v, err)
		}
	}
	if ids := pc.hub.IDs(); !reflect.DeepEqual(ids, []int{0, 1}) {
		t.Fatalf("live engines %v", ids)
	}
}

// A poisoned tag stands for a decoder bug not found yet: with
// VIEWS_TEST_POISON set (in this process and the engine processes it
// starts), decoding it panics, and poisonValue encodes to it.
const (
	tPoison   byte = 0xf0
	envPoison      = "VIEWS_TEST_POISON"
)

type poisonValue struct{}

func init() {
	isPoison := func(v any) bool { _, ok := v.(poisonValue); return ok }
	codec.AddTag(tPoison, isPoison, func(d *codec.Decoder) (any, error) {
		if os.Getenv(envPoison) == "" {
			return nil, d.Corrupt(fmt.Sprintf("unknown tag %d", tPoison))
		}
		panic("poison: a decoder bug")
	})
	MustRegister("poisonresult", func() poisonValue { return poisonValue{} })
}

// A panic while handling one peer's message is contained (issue 12, row 1):
// a client's request closes that client after an error reply, a task's
// arguments fail that task with an error naming the engine, a control
// message is dropped, an engine's result closes that engine and fails its
// task; the hub, the other engine and the job go on.
func TestPanicHandlingOnePeerIsContained(t *testing.T) {
	t.Setenv(envPoison, "1")
	pc := startProcs(t, 2, HubConfig{})
	poison := []byte{tPoison}

	// A client's request.
	c := rawClient(t, pc.path)
	defer c.Close()
	req := append(binary.AppendVarint([]byte{tInt}, opEngines), poison...)
	if err := c.Send(&comm.Frame{Type: fRequest, ID: 1, Control: req}); err != nil {
		t.Fatal(err)
	}
	f, err := c.Recv()
	if err != nil || f.Type != fReply {
		t.Fatalf("no reply to the poisoned request: %v", err)
	}
	v, err := decodeValues(f.Control, f.Buffers, 4)
	if err != nil || v[0] != "error" || !strings.Contains(v[1].(string), "poison") {
		t.Fatalf("reply to the poisoned request: %v %v", v, err)
	}
	if _, err := c.Recv(); err == nil {
		t.Fatal("the hub kept the client whose request panicked")
	}

	// A task's arguments, on both engines.
	head, _, _ := encodeValues(kindApply, "add3")
	tasks, err := pc.hub.h.SubmitDirect(kindApply, "add3", []int{0, 1}, []payload{{Ctrl: slices.Concat(head, []byte{tList, 1}, poison)}})
	if err != nil {
		t.Fatal(err)
	}
	for i, tk := range tasks {
		<-tk.Done
		var re *RemoteError
		if !errors.As(tk.Err, &re) || re.EngineID != i || re.Code != CodePanic || !strings.Contains(re.Message, "poison") ||
			!strings.Contains(re.Message, fmt.Sprint("task ", tk.ID)) || re.Traceback == "" {
			t.Fatalf("poisoned task on engine %d: %#v", i, tk.Err)
		}
	}

	// A control message.
	e0 := pc.hub.h.EngineConn(0)
	if err := e0.Send(&comm.Frame{Type: fControl, Control: poison}); err != nil {
		t.Fatal(err)
	}
	dv := must[*DirectView](t)(pc.cl.DirectView())
	if v, err := must[*AsyncResult](t)(dv.Apply("add3", 1, 2, 3)).Get(10 * time.Second); err != nil || !reflect.DeepEqual(v, []any{6, 6}) {
		t.Fatalf("after poisoned tasks and control: %v %v", v, err)
	}

	// An engine's result: the hub closes engine 1 and fails its task.
	one := must[*DirectView](t)(pc.cl.View(1))
	_, err = must[*AsyncResult](t)(one.Apply("poisonresult")).Get(10 * time.Second)
	var re *RemoteError
	if !errors.As(err, &re) || re.EngineID != 1 || !strings.Contains(re.Message, "poison") {
		t.Fatalf("poisoned result: %v", err)
	}
	if ids := pc.hub.IDs(); !reflect.DeepEqual(ids, []int{0}) {
		t.Fatalf("live engines after engine 1's poisoned result: %v", ids)
	}
	for _, cl := range []*Client{pc.cl, pc.connect(t)} {
		zero := must[*DirectView](t)(cl.View(0))
		if v, err := must[*AsyncResult](t)(zero.Apply("add3", 1, 2, 3)).Get(10 * time.Second); err != nil || v != 6 {
			t.Fatalf("engine 0 after engine 1 was closed: %v %v", v, err)
		}
	}
}

// A submission whose payload descriptor overflows (start+n past the
// largest int) is a bad request answered with an error, not a panic that
// costs the client its connection.
func TestSubmitDescriptorOverflowIsABadRequest(t *testing.T) {
	pc := startProcs(t, 1, HubConfig{})
	c := rawClient(t, pc.path)
	defer c.Close()
	task, _, _ := encodeValues(kindApply, "add3", []any{1, 2, 3})
	e := codec.NewEncoder(0)
	e.Encode("op", opSubmit)
	e.Encode("args", []any{true, kindApply, "add3", []int{0}, []any{[]any{task, 1 << 62, 1 << 62}}})
	bad, _ := e.Result()
	if err := c.Send(&comm.Frame{Type: fRequest, ID: 7, Control: bad}); err != nil {
		t.Fatal(err)
	}
	f, err := c.Recv()
	if err != nil {
		t.Fatal(err)
	}
	v, err := decodeValues(f.Control, f.Buffers, 4)
	if err != nil || v[0] != "error" || !strings.Contains(v[1].(string), "bad request: payload 0 buffers") {
		t.Fatalf("reply %v %v", v, err)
	}
	// The client is still served.
	ctrl, _, _ := encodeRequest(opHistory, nil, nil)
	if err := c.Send(&comm.Frame{Type: fRequest, ID: 8, Control: ctrl}); err != nil {
		t.Fatal(err)
	}
	if f, err := c.Recv(); err != nil || f.ID != 8 {
		t.Fatalf("after the bad request: %v %v", f, err)
	}
}

func init() {
	MustRegister("bigstring", func(n int) string { return strings.Repeat("x", n) })
	MustRegister("strlen", func(s string) int { return len(s) })
}

// A command printing 70 MB (issue 12, row 7): the engine reads its output as
// a stream with a cap, keeps the head and the tail, marks what it left out,
// and answers at once; it serves the next call.
func TestExecuteHugeOutputIsCappedAndMarked(t *testing.T) {
	pc := startProcsWith(t, 1, HubConfig{}, time.Second, 0) // as rankhub px: outside clients beat every second
	for _, cl := range []*Client{pc.cl, pc.connect(t)} {
		dv := must[*DirectView](t)(cl.DirectView())
		start := time.Now()
		ar := must[*AsyncResult](t)(dv.Execute("echo first; head -c 70000000 /dev/zero | tr '\\0' x; echo; echo last; echo err >&2"))
		if !ar.Wait(20 * time.Second) {
			t.Fatalf("execute of 70 MB of output did not return within 20 s")
		}
		if _, err := ar.Get(0); err != nil {
			t.Fatal(err)
		}
		m := ar.Metadata()[0]
		omitted := int64(70000000+len("first\n\nlast\n")) - int64(len(m.Stdout)-len(omittedMark(m.StdoutOmitted, "stdout")))
		if m.StdoutOmitted <= 0 || m.StdoutOmitted != omitted || len(m.Stdout) > 2*maxOutputKeep+len(omittedMark(m.StdoutOmitted, "stdout")) ||
			!strings.HasPrefix(m.Stdout, "first\nxxx") || !strings.HasSuffix(m.Stdout, "xxx\nlast\n") ||
			!strings.Contains(m.Stdout, omittedMark(m.StdoutOmitted, "stdout")) {
			t.Fatalf("stdout of %d bytes, %d omitted (want %d): %.80q ... %q", len(m.Stdout), m.StdoutOmitted, omitted, m.Stdout, m.Stdout[max(0, len(m.Stdout)-80):])
		}
		if m.Stderr != "err\n" || m.StderrOmitted != 0 {
			t.Fatalf("stderr %q, %d omitted", m.Stderr, m.StderrOmitted)
		}
		t.Logf("70 MB of stdout: answered in %v with %d bytes, %d omitted", time.Since(start).Round(time.Millisecond), len(m.Stdout), m.StdoutOmitted)
		if v, err := must[*AsyncResult](t)(dv.Apply("add3", 1, 2, 3)).Get(10 * time.Second); err != nil || !reflect.DeepEqual(v, []any{6}) {
			t.Fatalf("after the huge output: %v %v", v, err)
		}
	}
}

// A result value larger than the largest frame reaches the caller at once
// as a RemoteError naming the engine and the reason (issue 12, row 7),
// without holding back the results sent with it; so does a task whose
// arguments are too large, and the engine lives on.
func TestTooLargeForAFrameIsAnErrorResult(t *testing.T) {
	// Frames of at most 4 MiB of control payload, to keep the test small.
	const limit = 4 << 20
	pc := startProcsWith(t, 1, HubConfig{}, time.Second, limit)
	big := limit + 1
	for _, cl := range []*Client{pc.cl, pc.connect(t)} {
		dv := must[*DirectView](t)(cl.DirectView())
		slow := must[*AsyncResult](t)(dv.Apply("sleep", 50)) // the rest queue behind it: their results go in one batch
		huge := must[*AsyncResult](t)(dv.Apply("bigstring", big))
		after := must[*AsyncResult](t)(dv.Apply("add3", 1, 2, 3))
		_, err := huge.Get(15 * time.Second)
		var re *RemoteError
		if !errors.As(err, &re) || re.EngineID != 0 || !errors.Is(err, ErrNotSendable) || !strings.Contains(re.Message, "too large") {
			t.Fatalf("result too large for a frame: %v", err)
		}
		for _, ar := range []*AsyncResult{slow, after} {
			if _, err := ar.Get(5 * time.Second); err != nil {
				t.Fatalf("a result sent with the huge one: %v", err)
			}
		}
	}
	// Arguments too large for a frame, from the driver in the hub's process.
	dv := must[*DirectView](t)(pc.cl.DirectView())
	_, err := must[*AsyncResult](t)(dv.Apply("strlen", strings.Repeat("x", big))).Get(15 * time.Second)
	var re *RemoteError
	if !errors.As(err, &re) || re.EngineID != 0 || !errors.Is(err, ErrNotSendable) || !strings.Contains(re.Message, "too large") {
		t.Fatalf("arguments too large for a frame: %v", err)
	}
	if v, err := must[*AsyncResult](t)(dv.Apply("add3", 1, 2, 3)).Get(10 * time.Second); err != nil || !reflect.DeepEqual(v, []any{6}) {
		t.Fatalf("after the huge arguments: %v %v", v, err)
	}
}

func init() {
	// vmhwm is the engine process's peak resident memory, in bytes.
	MustRegister("vmhwm", func() (int64, error) {
		b, err := os.ReadFile("/proc/self/status")
		if err != nil {
			return 0, err
		}
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
				kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
				return kb << 10, err
			}
		}
		return 0, errors.New("no VmHWM in /proc/self/status")
	})
}

// A command printing 256 MiB costs the engine a bounded amount of memory:
// its peak resident set grows by less than a quarter of that, whatever the
// output's size (issue 12, rows 6 and 7 for Execute; 2 x 1 MiB are kept).
func TestExecuteOutputMemoryIsBounded(t *testing.T) {
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Skip("no /proc: cannot measure the engine's peak memory")
	}
	pc := startProcsWith(t, 1, HubConfig{}, time.Second, 0)
	one := must[*DirectView](t)(pc.cl.View(0))
	before := must[any](t)(must[*AsyncResult](t)(one.Apply("vmhwm")).Get(10 * time.Second)).(int64)
	start := time.Now()
	ar := must[*AsyncResult](t)(one.Execute("head -c 268435456 /dev/zero"))
	if _, err := ar.Get(60 * time.Second); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	after := must[any](t)(must[*AsyncResult](t)(one.Apply("vmhwm")).Get(10 * time.Second)).(int64)
	m := ar.Metadata()[0]
	t.Logf("256 MiB of stdout in %v: engine peak RSS %d MiB -> %d MiB; %d bytes kept, %d omitted", took.Round(time.Millisecond), before>>20, after>>20, len(m.Stdout), m.StdoutOmitted)
	if after-before >= 64<<20 || m.StdoutOmitted != 1<<28-2*maxOutputKeep {
		t.Fatalf("engine peak RSS grew by %d MiB for 256 MiB of output (%d bytes omitted)", (after-before)>>20, m.StdoutOmitted)
	}
}

// An outside client survives a hub whose messages make it panic: the
// request or the task they answer fails with an error saying so, and the
// client goes on.
func TestClientSurvivesPanicOnHubMessages(t *testing.T) {
	t.Setenv(envPoison, "1")
	// A fake hub: the history request is poisoned, a fetch announces task 5
	// and then poisons its notification, other requests get an empty answer.
	path := fakeHub(t, func(op int, f *comm.Frame) []*comm.Frame {
		ok, _, _ := encodeValues("", "", nil, nil)
		switch op {
		case opHistory:
			return []*comm.Frame{{Type: fReply, ID: f.ID, Control: append(ok[:len(ok)-1:len(ok)-1], tPoison)}}
		case opFetch:
			hdr, _, _ := encodeValues("", "", nil, []any{[]any{uint64(5), 0, time.Now(), kindApply, "add3", []uint64(nil), []uint64(nil)}})
			return []*comm.Frame{{Type: fReply, ID: f.ID, Control: hdr}, {Type: fNotify, ID: 5, Control: []byte{tPoison}}}
		}
		return nil
	})
	cl, err := Connect(path)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, err := cl.History(); err == nil || !strings.Contains(err.Error(), "poison") {
		t.Fatalf("poisoned reply: %v", err)
	}
	ar, err := cl.Result(5)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ar.Get(5 * time.Second); err == nil || !strings.Contains(err.Error(), "poison") {
		t.Fatalf("poisoned notification: %v", err)
	}
	if _, err := cl.PurgeAll(); err != nil {
		t.Fatalf("after the poisoned messages: %v", err)
	}
}

// The hub decodes an outside client's task before forwarding it: a corrupt
// payload or a bulk array reference (an engine on a mesh would wait 30 s
// for an array that never comes) is refused with an error naming the
// payload, and no task is made.
func TestHubRefusesCorruptTaskFromOutsideClient(t *testing.T) {
	pc := startProcs(t, 1, HubConfig{})
	c := rawClient(t, pc.path)
	defer c.Close()
	head, _, _ := encodeValues(kindApply, "sum")
	for i, args := range [][]byte{
		{tList, 1, tArrow, arrowArray, arrowBulk, byte(arrow.FLOAT64), 0, 1}, // a bulk reference from rank 0
		{tList, 2, tInt}, // truncated
		{tList, 1, tArrow, arrowRecord, 1, 1, 0, 0, byte(arrow.INT8), 0, 0, 0, 0, 0}, // the crasher
	} {
		req, bufs, err := encodeRequest(opSubmit, []any{true, kindApply, "sum", []int{0}}, []payload{{Ctrl: slices.Concat(head, args), Bufs: [][]byte{nil}}})
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
		v, err := decodeValues(f.Control, f.Buffers, 4)
		if hdrs, _ := v[3].([]any); err != nil || v[0] != "error" || !strings.Contains(v[1].(string), "hub: bad request: payload 0: views: corrupt payload") || len(hdrs) != 0 {
			t.Fatalf("payload %d: reply %v %v", i, v, err)
		}
	}
	if h := pc.hub.h.History(); len(h) != 0 {
		t.Fatalf("tasks made of corrupt payloads: %v", h)
	}
}

// omittedMark is the line that replaces the middle of a long output.
func omittedMark(n int64, stream string) string { return engine.OmittedMark(n, stream) }

// roCopied counts the bytes the codec copied into read-only memory.
var roCopied = &codec.ROCopied
