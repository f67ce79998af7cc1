package views

import (
	"errors"
	"fmt"
	"strings"

	"github.com/rankhub/rankhub/views/internal/hubcore"
	"github.com/rankhub/rankhub/views/internal/proto"
)

// Sentinel errors. A RemoteError matches the sentinel of its Code with errors.Is.
var (
	// ErrTimeout is returned by AsyncResult.Get when the timeout passes first.
	ErrTimeout = errors.New("views: timeout waiting for results")
	// ErrNotReady is returned by AsyncResult.Successful before the result is ready.
	ErrNotReady = errors.New("views: result not ready")
	// ErrEngineDied matches RemoteErrors of tasks whose engine died or left.
	ErrEngineDied = errors.New("views: engine died")
	// ErrAborted matches RemoteErrors of tasks aborted before they ran.
	ErrAborted = errors.New("views: task aborted")
	// ErrPanic matches RemoteErrors of tasks that panicked on the engine.
	ErrPanic = errors.New("views: task panicked")
	// ErrNoEngines is returned when a view would have no engine.
	ErrNoEngines = errors.New("views: no engines")
	// ErrNoSuchEngine is returned for a target id that is not a live engine.
	ErrNoSuchEngine = hubcore.ErrNoSuchEngine
	// ErrShutdown is returned by calls on a client or hub that shut down, and
	// matches RemoteErrors of tasks that were still waiting at shutdown.
	ErrShutdown = hubcore.ErrShutdown
	// ErrDependencyTimeout matches RemoteErrors of load-balanced tasks whose
	// dependencies were not met (or no engine was free) within their Timeout.
	ErrDependencyTimeout = errors.New("views: dependency timeout")
	// ErrImpossibleDependency matches RemoteErrors of load-balanced tasks whose
	// dependencies can no longer be met (a failed dependency, a follow on a
	// dead engine, results that ran on different engines).
	ErrImpossibleDependency = errors.New("views: impossible dependency")
	// ErrUnknownResult is returned for a message id the hub does not know
	// (never submitted, or purged).
	ErrUnknownResult = hubcore.ErrUnknownResult
	// ErrCannotGather is returned by Gather when the engines' parts cannot be
	// concatenated (different or unsupported types).
	ErrCannotGather = errors.New("views: cannot gather")
)

// Codes carried by RemoteError.
const (
	CodeError                = hubcore.CodeError                // the function returned an error
	CodePanic                = proto.CodePanic                  // the function panicked
	CodeUnknownFunction      = proto.CodeUnknownFunction        // no such registered function
	CodeBadArguments         = proto.CodeBadArguments           // arguments could not be converted
	CodeExitStatus           = proto.CodeExitStatus             // a shell command exited non-zero
	CodeEngineDied           = hubcore.CodeEngineDied           // the engine died or left with the task pending
	CodeAborted              = hubcore.CodeAborted              // aborted before it ran
	CodeNotSendable          = hubcore.CodeNotSendable          // the result could not be sent back
	CodeDependencyTimeout    = hubcore.CodeDependencyTimeout    // dependencies not met in time
	CodeImpossibleDependency = hubcore.CodeImpossibleDependency // dependencies can never be met
	CodeUnmetRequirement     = hubcore.CodeUnmetRequirement     // this engine lacks what the task requires (the hub tries another)
	CodeShutdown             = hubcore.CodeShutdown             // the hub shut down with the task waiting
)

var codeSentinels = map[string]error{
	CodeEngineDied:           ErrEngineDied,
	CodeAborted:              ErrAborted,
	CodePanic:                ErrPanic,
	CodeUnknownFunction:      ErrUnknownFunction,
	CodeNotSendable:          ErrNotSendable,
	CodeDependencyTimeout:    ErrDependencyTimeout,
	CodeImpossibleDependency: ErrImpossibleDependency,
	CodeShutdown:             ErrShutdown,
}

// RemoteError is a task's failure on an engine, with where it happened.
type RemoteError struct {
	EngineID  int
	Rank      int
	Host      string
	Code      string // one of the Code constants
	Type      string // the Go type of the remote error, e.g. "*fs.PathError"
	Message   string
	Traceback string // for panics
	MsgID     uint64
}

func (e *RemoteError) Error() string {
	if e.EngineID < 0 {
		return "hub: " + e.Message
	}
	return fmt.Sprintf("engine %d (rank %d on %s): %s", e.EngineID, e.Rank, e.Host, e.Message)
}

// Is reports whether target is the sentinel of e's code.
func (e *RemoteError) Is(target error) bool {
	s, ok := codeSentinels[e.Code]
	return ok && s == target
}

// CompositeError holds the failures of a result over several engines.
type CompositeError struct {
	Errors []*RemoteError
}

func (e *CompositeError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d of the engines failed:", len(e.Errors))
	for _, r := range e.Errors {
		b.WriteString("\n  ")
		b.WriteString(r.Error())
	}
	return b.String()
}

// Unwrap exposes the individual errors to errors.Is and errors.As.
func (e *CompositeError) Unwrap() []error {
	out := make([]error, len(e.Errors))
	for i, r := range e.Errors {
		out[i] = r
	}
	return out
}

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
