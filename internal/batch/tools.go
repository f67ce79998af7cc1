package batch

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os/exec"
	"path/filepath"
	"strings"
)

// Hint is advice for a failed tool whose output contains Match (compared
// without regard to case). It is an alias of an unnamed struct so that hint
// tables can list bare pairs.
type Hint = struct{ Match, Hint string }

// Tools runs the command line tools of one scheduler. Set its fields before
// the first Run; Run itself is safe for concurrent use.
type Tools struct {
	Sched    string                        // "slurm", "pbs": starts the messages Run makes itself
	Paths    map[string]string             // tool name -> path, or name to look up in PATH
	Hints    []Hint                        // the first that matches a failure's output is used
	NotFound func(tool, path string) error // the error for a tool that is not installed
}

// SetBinDir takes every tool in Paths from dir.
func (t *Tools) SetBinDir(dir string) {
	for name := range t.Paths {
		t.Paths[name] = filepath.Join(dir, name)
	}
}

// Run executes tool with args in directory dir ("" = the current one) and
// returns its stdout. A tool that is not installed gives NotFound's error; a
// tool that exits with an error gives its stdout alongside a *CommandError
// with its stderr (or output) and a hint.
func (t *Tools) Run(ctx context.Context, dir, tool string, args ...string) ([]byte, error) {
	path := t.Paths[tool]
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Dir = dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err == nil {
		return stdout.Bytes(), nil
	}
	if errors.Is(err, exec.ErrNotFound) || errors.Is(err, fs.ErrNotExist) {
		return nil, t.NotFound(tool, path)
	}
	if ctx.Err() != nil {
		return nil, fmt.Errorf("%s: %s %s: %w", t.Sched, tool, strings.Join(args, " "), ctx.Err())
	}
	msg := strings.TrimSpace(stderr.String())
	if msg == "" {
		msg = strings.TrimSpace(stdout.String())
	}
	hint := "run the command by hand to see more"
	for _, h := range t.Hints {
		if strings.Contains(strings.ToLower(msg), strings.ToLower(h.Match)) {
			hint = h.Hint
			break
		}
	}
	return stdout.Bytes(), &CommandError{Tool: tool, Args: args, Err: err, Stderr: msg, Hint: hint}
}

// CommandError is a tool that exited with an error. slurm and pbs convert it
// to their own CommandError, which has the same fields.
type CommandError struct {
	Tool   string
	Args   []string
	Err    error  // from os/exec, usually *exec.ExitError
	Stderr string // trimmed standard error (or output)
	Hint   string
}

// Error names the tool and its arguments, the exit error, the output and
// the hint; the scheduler's name is left to the caller.
func (e *CommandError) Error() string {
	return fmt.Sprintf("%s %s: %v: %s (hint: %s)", e.Tool, strings.Join(e.Args, " "), e.Err, e.Stderr, e.Hint)
}

// Unwrap returns the os/exec error.
func (e *CommandError) Unwrap() error { return e.Err }
