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
	ErrEngineDied = proto.ErrEngineDied
	// ErrAborted matches RemoteErrors of tasks aborted before they ran.
	ErrAborted = proto.ErrAborted
	// ErrPanic matches RemoteErrors of tasks that panicked on the engine.
	ErrPanic = proto.ErrPanic
	// ErrNoEngines is returned when a view would have no engine.
	ErrNoEngines = proto.ErrNoEngines
	// ErrNoSuchEngine is returned for a target id that is not a live engine.
	ErrNoSuchEngine = hubcore.ErrNoSuchEngine
	// ErrShutdown is returned by calls on a client or hub that shut down, and
	// matches RemoteErrors of tasks that were still waiting at shutdown.
	ErrShutdown = hubcore.ErrShutdown
	// ErrDependencyTimeout matches RemoteErrors of load-balanced tasks whose
	// dependencies were not met (or no engine was free) within their Timeout.
	ErrDependencyTimeout = proto.ErrDependencyTimeout
	// ErrImpossibleDependency matches RemoteErrors of load-balanced tasks whose
	// dependencies can no longer be met (a failed dependency, a follow on a
	// dead engine, results that ran on different engines).
	ErrImpossibleDependency = proto.ErrImpossibleDependency
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

// RemoteError is a task's failure on an engine, with where it happened:
// EngineID, Rank, Host, Code (one of the Code constants), Type (the Go
// type of the remote error, e.g. "*fs.PathError"), Message, Traceback (for
// panics) and MsgID. errors.Is matches it with the sentinel of its Code.
type RemoteError = proto.RemoteError

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
