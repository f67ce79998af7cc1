package proto

import (
	"errors"
	"fmt"

	"github.com/rankhub/rankhub/views/internal/codec"
	"github.com/rankhub/rankhub/views/internal/hubcore"
)

// The errors the wire's codes stand for. Package views re-exports each as
// the same variable (var ErrPanic = proto.ErrPanic), so errors.Is holds
// whichever package made the error.
var (
	// ErrEngineDied matches RemoteErrors of tasks whose engine died or left.
	ErrEngineDied = errors.New("views: engine died")
	// ErrAborted matches RemoteErrors of tasks aborted before they ran.
	ErrAborted = errors.New("views: task aborted")
	// ErrPanic matches RemoteErrors of tasks that panicked on the engine.
	ErrPanic = errors.New("views: task panicked")
	// ErrNoEngines is returned when a view would have no engine.
	ErrNoEngines = errors.New("views: no engines")
	// ErrDependencyTimeout matches RemoteErrors of load-balanced tasks whose
	// dependencies were not met (or no engine was free) within their Timeout.
	ErrDependencyTimeout = errors.New("views: dependency timeout")
	// ErrImpossibleDependency matches RemoteErrors of load-balanced tasks whose
	// dependencies can no longer be met.
	ErrImpossibleDependency = errors.New("views: impossible dependency")
	// ErrUnknownFunction is returned (wrapped in a RemoteError) when a task
	// names a function that the engine's program did not register.
	ErrUnknownFunction = errors.New("views: unknown function")
)

// codeSentinels maps a RemoteError's code to the sentinel it matches.
var codeSentinels = map[string]error{
	hubcore.CodeEngineDied:           ErrEngineDied,
	hubcore.CodeAborted:              ErrAborted,
	CodePanic:                        ErrPanic,
	CodeUnknownFunction:              ErrUnknownFunction,
	hubcore.CodeNotSendable:          codec.ErrNotSendable,
	hubcore.CodeDependencyTimeout:    ErrDependencyTimeout,
	hubcore.CodeImpossibleDependency: ErrImpossibleDependency,
	hubcore.CodeShutdown:             hubcore.ErrShutdown,
}

// RemoteError is a task's failure on an engine, with where it happened
// (views.RemoteError).
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

// HubError is an error answered by the hub to an outside client's request;
// Is matches the sentinel of its code.
type HubError struct {
	Code, Msg string
}

func (e *HubError) Error() string { return e.Msg }

// hubErrCodes are the codes of a reply's error and their sentinels.
var hubErrCodes = map[string]error{
	"no-such-engine": hubcore.ErrNoSuchEngine, "shutdown": hubcore.ErrShutdown, "unknown-result": hubcore.ErrUnknownResult,
	"no-engines": ErrNoEngines, "not-sendable": codec.ErrNotSendable,
}

func (e *HubError) Is(target error) bool { return hubErrCodes[e.Code] == target && target != nil }

// HubErrCode is the code a reply gives err ("error" for none of the sentinels).
func HubErrCode(err error) string {
	for code, s := range hubErrCodes {
		if errors.Is(err, s) {
			return code
		}
	}
	return "error"
}
