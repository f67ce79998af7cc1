package proto

import (
	"errors"
	"fmt"
	"time"

	"github.com/rankhub/rankhub/comm"
	"github.com/rankhub/rankhub/views/internal/codec"
	"github.com/rankhub/rankhub/views/internal/hubcore"
)

// Frame types of the views protocol.
const (
	FRegister comm.Type = comm.TypeUser + iota // engine → hub: rank, host, pid
	FWelcome                                   // hub → engine: engine id, the hub's world rank for bulk arrays (-1: none)
	FTask                                      // hub → engine: kind, name, args (ID = message id)
	FResult                                    // engine → hub: outcome (ID = message id)
	FControl                                   // hub → engine: abort, clear, shutdown; bypasses the queue
	FReject                                    // hub → peer: registration refused, with reason
	FHello                                     // client → hub: first frame of an outside client
	FRequest                                   // client → hub: one request (ID = request id)
	FReply                                     // hub → client: the answer to a request (ID = request id)
	FNotify                                    // hub → client: a finished task it watches (ID = message id)
)

// Task kinds.
const (
	KindApply   = 1 // call a registered function
	KindExecute = 2 // run a shell command
	KindPush    = 3 // bind names in the namespace
	KindPull    = 4 // read names from the namespace
	KindMap     = 5 // call a registered function on each element of a chunk
	KindRun     = 6 // run a script's text as an executable file
	KindDelete  = 7 // remove names from the namespace
)

// Client request operations (FRequest).
const (
	OpEngines      = 1  // → []hubcore.EngineInfo as maps
	OpSubmit       = 2  // direct or load-balanced submission
	OpFetch        = 3  // watch tasks by message id
	OpAbort        = 4  // abort tasks by message id
	OpControl      = 5  // clear or shutdown engines
	OpQueueStatus  = 6  // per-engine queues
	OpResultStatus = 7  // pending / completed ids
	OpPurge        = 8  // drop finished results from the history
	OpHistory      = 9  // every message id in the history
	OpShutdown     = 10 // stop the engines and the hub
)

// Control operations.
const (
	CtlAbort    = hubcore.CtlAbort
	CtlClear    = hubcore.CtlClear
	CtlShutdown = hubcore.CtlShutdown
)

// Codes of a failed result (views.RemoteError.Code; the hub's own are
// hubcore's).
const (
	CodeError            = hubcore.CodeError            // the function returned an error
	CodePanic            = "panic"                      // the function panicked
	CodeUnknownFunction  = "unknown-function"           // no such registered function
	CodeBadArguments     = "bad-arguments"              // arguments could not be converted
	CodeExitStatus       = "exit-status"                // a shell command exited non-zero
	CodeAborted          = hubcore.CodeAborted          // aborted before it ran
	CodeNotSendable      = hubcore.CodeNotSendable      // the result could not be sent back
	CodeUnmetRequirement = hubcore.CodeUnmetRequirement // this engine lacks what the task requires
)

// Result statuses.
const (
	StatusOK    = 0
	StatusError = 1
)

type Register struct {
	Rank   int
	Host   string
	PID    int
	Mesh   bool     // the engine is on the job's collective mesh (bulk path)
	Funcs  []string // the functions registered in the engine's program, sorted
	Labels []string // labels given at its start (TaskOptions.Require)
}

func (m *Register) Frame() (*comm.Frame, error) {
	ctrl, _, err := codec.EncodeValues(m.Rank, m.Host, m.PID, m.Mesh, m.Funcs, m.Labels)
	return &comm.Frame{Type: FRegister, Control: ctrl}, err
}

func ParseRegister(f *comm.Frame) (*Register, error) {
	v, err := codec.DecodeValues(f.Control, f.Buffers, 6)
	if err != nil {
		return nil, err
	}
	m := &Register{}
	var ok1, ok2, ok3, ok4, ok5, ok6 bool
	m.Rank, ok1 = v[0].(int)
	m.Host, ok2 = v[1].(string)
	m.PID, ok3 = v[2].(int)
	m.Mesh, ok4 = v[3].(bool)
	m.Funcs, ok5 = stringList(v[4])
	m.Labels, ok6 = stringList(v[5])
	if !ok1 || !ok2 || !ok3 || !ok4 || !ok5 || !ok6 {
		return nil, fmt.Errorf("%w: bad registration (want rank, host, pid, mesh, functions, labels)", codec.ErrCorrupt)
	}
	return m, nil
}

// stringList reads a decoded []string; nil (an empty list) is one.
func stringList(v any) ([]string, bool) {
	switch x := v.(type) {
	case nil:
		return nil, true
	case []string:
		return x, true
	}
	return nil, false
}

// Result is an engine's answer to one task.
type Result struct {
	Status    int
	Value     any
	Code      string
	ErrType   string
	ErrMsg    string
	Traceback string
	Started   time.Time
	Completed time.Time
	Stdout    string
	Stderr    string
	Exit      int
	// StdoutOmitted and StderrOmitted count the bytes of output left out
	// of Stdout and Stderr (see maxOutputKeep).
	StdoutOmitted int64
	StderrOmitted int64
	// bulk, when set, sends the value's large arrays on the bulk path
	// (pulls from a hub with a mesh); not encoded.
	Bulk codec.BulkSender
	// bulkBytes is how much of a parsed value came on the bulk path.
	BulkBytes int64
}

func (r *Result) Encode() ([]byte, [][]byte, error) {
	return codec.EncodeBulk(r.Bulk, r.Status, r.Value, r.Code, r.ErrType, r.ErrMsg, r.Traceback,
		r.Started, r.Completed, r.Stdout, r.Stderr, r.Exit, r.StdoutOmitted, r.StderrOmitted)
}

// ParseResult decodes an engine's result at the hub. Its arrays stay in
// the frame (the hub's record, which no client can write: outside clients
// and engines get it encoded, a driver in the hub's process a copy, see
// detach).
func ParseResult(f *comm.Frame, b codec.BulkReceiver) (*Result, error) {
	d := codec.NewDecoder(f.Control, f.Buffers, b).KeepInFrame()
	v, err := d.Values(13)
	if err != nil {
		return nil, err
	}
	r := &Result{Value: v[1], BulkBytes: d.BulkBytes()}
	ok := true
	get := func(i int, dst *string) {
		s, k := v[i].(string)
		ok = ok && k
		*dst = s
	}
	r.Status, _ = v[0].(int)
	get(2, &r.Code)
	get(3, &r.ErrType)
	get(4, &r.ErrMsg)
	get(5, &r.Traceback)
	r.Started, _ = v[6].(time.Time)
	r.Completed, _ = v[7].(time.Time)
	get(8, &r.Stdout)
	get(9, &r.Stderr)
	r.Exit, _ = v[10].(int)
	r.StdoutOmitted, _ = v[11].(int64)
	r.StderrOmitted, _ = v[12].(int64)
	if !ok {
		return nil, fmt.Errorf("%w: bad result", codec.ErrCorrupt)
	}
	return r, nil
}

// DecodeTask decodes a task frame: kind, name and arguments, and for
// DirectView tasks a fourth value the hub appends, the target ranks.
func DecodeTask(f *comm.Frame, r codec.BulkReceiver) (v []any, targets []int, err error) {
	v, targets, _, err = DecodeTaskReq(f, r)
	return v, targets, err
}

// Requirements are what a load-balanced task requires of its engine
// (TaskOptions.Require and Depend).
type Requirements struct {
	Require []string
	Depend  string
}

// EncodeRequirements is the suffix of a load-balanced task's control
// payload that carries its requirements: an empty target list, then
// [depend, require...].
func EncodeRequirements(require []string, depend string) []byte {
	l := make([]any, 0, 1+len(require))
	l = append(l, depend)
	for _, r := range require {
		l = append(l, r)
	}
	b, _, _ := codec.EncodeValues([]any{}, l)
	return b
}

// DecodeTaskReq is DecodeTask that also returns the task's requirements
// (nil: none).
func DecodeTaskReq(f *comm.Frame, r codec.BulkReceiver) (v []any, targets []int, req *Requirements, err error) {
	d := codec.NewDecoder(f.Control, f.Buffers, r)
	v = make([]any, 3)
	for i := range v {
		if v[i], err = d.Decode(); err != nil {
			return nil, nil, nil, err
		}
	}
	if d.More() {
		t, err := d.Decode()
		if err != nil {
			return nil, nil, nil, err
		}
		l, ok := t.([]any)
		if !ok && t != nil {
			return nil, nil, nil, fmt.Errorf("%w: bad task targets", codec.ErrCorrupt)
		}
		targets = make([]int, len(l))
		for i, x := range l {
			if targets[i], ok = x.(int); !ok {
				return nil, nil, nil, fmt.Errorf("%w: bad task target", codec.ErrCorrupt)
			}
		}
	}
	if d.More() {
		t, err := d.Decode()
		if err != nil {
			return nil, nil, nil, err
		}
		l, _ := t.([]any)
		if len(l) == 0 {
			return nil, nil, nil, fmt.Errorf("%w: bad task requirements", codec.ErrCorrupt)
		}
		req = &Requirements{}
		var ok bool
		if req.Depend, ok = l[0].(string); !ok {
			return nil, nil, nil, fmt.Errorf("%w: bad task predicate", codec.ErrCorrupt)
		}
		for _, x := range l[1:] {
			s, ok := x.(string)
			if !ok {
				return nil, nil, nil, fmt.Errorf("%w: bad task requirement", codec.ErrCorrupt)
			}
			req.Require = append(req.Require, s)
		}
	}
	if d.More() {
		return nil, nil, nil, d.Corrupt("trailing bytes")
	}
	return v, targets, req, nil
}

// EncodeTargets encodes target ranks as a list, which always travels
// inline in the control payload.
func EncodeTargets(ranks []int) []byte {
	l := make([]any, len(ranks))
	for i, r := range ranks {
		l[i] = r
	}
	b, _, _ := codec.EncodeValues(l)
	return b
}

// SendEach sends fs with one write. When one of them is larger than a frame
// may be (then nothing was written), it sends them one at a time and, for
// each frame too large, what tooLarge returns instead (nil: nothing), so
// that one oversized frame neither holds back the others nor vanishes
// without an answer. It returns the first other error.
func SendEach(c *comm.Conn, fs []*comm.Frame, tooLarge func(i int, err error) *comm.Frame) error {
	err := c.SendBatch(fs)
	if !errors.Is(err, comm.ErrFrameTooLarge) {
		return err
	}
	for i, f := range fs {
		err := c.Send(f)
		if errors.Is(err, comm.ErrFrameTooLarge) {
			alt := tooLarge(i, err)
			err = nil
			if alt != nil {
				err = c.Send(alt)
			}
		}
		if err != nil {
			return err
		}
	}
	return nil
}
