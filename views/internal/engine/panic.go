package engine

import (
	"fmt"
	"runtime/debug"
	"strings"
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
