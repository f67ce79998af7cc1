package engine

import (
	"errors"
	"fmt"
	"runtime/debug"
	"strings"

	"github.com/rs/zerolog"
)

// PanicError is a panic recovered from a registered function or from the
// handling of a peer's message: its value and the first lines of its stack.
type PanicError struct {
	Value any
	Stack string
}

func (p *PanicError) Error() string { return fmt.Sprintf("panic: %v", p.Value) }

// StackTrace is the calling goroutine's stack, its first 40 lines.
func StackTrace() string {
	s := string(debug.Stack())
	// Drop the frames of the runtime and of our recover.
	lines := strings.Split(s, "\n")
	if len(lines) > 40 {
		lines = lines[:40]
	}
	return strings.Join(lines, "\n")
}

// Recovered runs fn, the handling of one peer's message, and turns a panic
// into an error with the panic value and its stack: a bug or a hostile
// input the decoders did not foresee fails that message, or closes that
// peer, instead of the rank.
func Recovered(fn func()) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = &PanicError{Value: p, Stack: StackTrace()}
		}
	}()
	fn()
	return nil
}

// WithStack adds a recovered panic (and its stack) to an error log event.
func WithStack(ev *zerolog.Event, err error) *zerolog.Event {
	ev = ev.Err(err)
	var pe *PanicError
	if errors.As(err, &pe) {
		ev = ev.Str("stack", pe.Stack)
	}
	return ev
}
