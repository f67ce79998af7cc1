package pbs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/rankhub/rankhub/internal/batch"
	"github.com/rankhub/rankhub/jobs"
)

// DefaultCacheTTL is how long a Status answer is reused when New gets no
// WithCacheTTL option.
const DefaultCacheTTL = 5 * time.Second

// Errors returned by the Backend's methods.
var (
	// ErrNotFound is wrapped when a PBS command is not installed (any method).
	ErrNotFound = errors.New("pbs: command not found")
	// ErrCommand is wrapped when a PBS command exits with an error (any
	// method); the message carries its stderr and a hint.
	ErrCommand = errors.New("pbs: command failed")
	// ErrParse is wrapped when a command's output cannot be understood
	// (Submit, Status).
	ErrParse = errors.New("pbs: unexpected command output")
)

// Backend submits, queries and cancels PBS Pro, OpenPBS and Torque jobs
// with qsub, qstat and qdel. It satisfies the launcher's Backend interface.
// Its methods are safe for concurrent use.
type Backend struct {
	tools    batch.Tools
	cache    batch.Cache // its lock, held across a status query, guards textOnly
	textOnly bool        // qstat has no -F json / -x (Torque, Slurm's wrapper)
}

// Option configures a Backend.
type Option func(*Backend)

// WithCommand sets the path of one PBS tool ("qsub", "qstat", "qdel"); by
// default each is looked up in PATH.
func WithCommand(tool, path string) Option {
	return func(b *Backend) { b.tools.Paths[tool] = path }
}

// WithBinDir takes every PBS tool from dir.
func WithBinDir(dir string) Option {
	return func(b *Backend) { b.tools.SetBinDir(dir) }
}

// WithCacheTTL sets how long one Status query answers later calls for the
// same jobs; 0 queries every time.
func WithCacheTTL(d time.Duration) Option {
	return func(b *Backend) { b.cache.TTL = d }
}

// WithTextQstat skips `qstat -F json -x` (PBS Pro only) and parses the
// text of `qstat -f` right away, as the Backend does by itself once qstat
// rejects those options.
func WithTextQstat() Option {
	return func(b *Backend) { b.textOnly = true }
}

// New returns a PBS Backend.
func New(opts ...Option) *Backend {
	b := &Backend{tools: batch.Tools{
		Sched:    "pbs",
		Paths:    map[string]string{"qsub": "qsub", "qstat": "qstat", "qdel": "qdel", "scontrol": "scontrol"},
		Hints:    hints,
		NotFound: notFound,
	}}
	b.cache.TTL = DefaultCacheTTL
	for _, o := range opts {
		o(b)
	}
	return b
}

// Name returns "pbs".
func (b *Backend) Name() string { return jobs.SchedPBS }

// Script renders the batch script; see the package function Script.
func (b *Backend) Script(job *jobs.Job, l jobs.Launch) (string, error) { return Script(job, l) }

var hints = []batch.Hint{
	{"cannot connect to server", "is the PBS server running and PBS_SERVER (or /etc/pbs.conf) right?"},
	{"Unknown queue", "check job.queue against `qstat -Q`"},
	{"Unknown Job Id", "the job is unknown to the server (finished and purged, or a wrong id)"},
	{"Job exceeds queue resource limits", "the request (ranks, memory, walltime) exceeds the queue's limits; see `qstat -Qf`"},
	{"Unauthorized Request", "you may not act on this job, or submit from this host"},
	{"illegal -l value", "a resource in the #PBS -l lines is unknown to this PBS; check job.pbs_dialect (pro or torque)"},
	{"Unknown resource", "a resource in the #PBS -l lines is unknown to this PBS; check job.pbs_dialect (pro or torque)"},
}

// CommandError is a PBS tool that exited with an error.
type CommandError struct {
	Tool   string
	Args   []string
	Err    error  // from os/exec, usually *exec.ExitError
	Stderr string // trimmed standard error (or output)
	Hint   string
}

func (e *CommandError) Error() string { return "pbs: " + (*batch.CommandError)(e).Error() }

// Is makes errors.Is(err, ErrCommand) true.
func (e *CommandError) Is(target error) bool { return target == ErrCommand }

// Unwrap returns the os/exec error.
func (e *CommandError) Unwrap() error { return e.Err }

// run executes one tool and returns its stdout, also alongside a
// *CommandError (qstat reports unknown ids that way but prints the rest).
func (b *Backend) run(ctx context.Context, tool string, args ...string) ([]byte, error) {
	return b.runIn(ctx, "", tool, args...)
}

// runIn is run in directory dir ("" = the current one).
func (b *Backend) runIn(ctx context.Context, dir, tool string, args ...string) ([]byte, error) {
	out, err := b.tools.Run(ctx, dir, tool, args...)
	if ce, ok := err.(*batch.CommandError); ok {
		return out, (*CommandError)(ce)
	}
	return out, err
}

func notFound(tool, path string) error {
	return fmt.Errorf("%w: %s not found (%s): install the PBS client commands (or `module load pbs`); for Slurm's Torque wrappers install Debian's slurm-wlm-torque", ErrNotFound, tool, path)
}

// validID accepts "123", "123.server", "123[].server" (arrays) and the
// like, and refuses anything a shell or qstat would read as an option.
func validID(id string) bool {
	if id == "" || id[0] < '0' || id[0] > '9' {
		return false
	}
	for _, r := range id {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || strings.ContainsRune(".-_[]@", r)) {
			return false
		}
	}
	return true
}

// Submit runs qsub on scriptPath and returns the job id it prints (e.g.
// "1234.server"; Slurm's wrapper prints just "1234"). qsub runs in the
// script's directory with the file's base name: Slurm's qsub wrapper
// passes the path to sbatch unquoted, so a directory with a blank would
// break it, and it puts its default output files in the current directory.
// PBS_O_WORKDIR is therefore the job directory; the rendered script changes
// to the job's workdir itself.
func (b *Backend) Submit(ctx context.Context, scriptPath string) (string, error) {
	dir, base := filepath.Split(scriptPath)
	if strings.ContainsAny(base, " \t\n'\"") {
		return "", fmt.Errorf("pbs: submit: script file name %q: no blanks or quotes allowed (qsub wrappers split it)", base)
	}
	out, err := b.runIn(ctx, dir, "qsub", "./"+base)
	if err != nil {
		return "", err
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	id := strings.TrimSpace(lines[len(lines)-1])
	if !validID(id) {
		return "", fmt.Errorf("%w: qsub printed %q, want a job id", ErrParse, strings.TrimSpace(string(out)))
	}
	return id, nil
}

// Cancel runs `qdel id`.
func (b *Backend) Cancel(ctx context.Context, id string) error {
	if !validID(id) {
		return fmt.Errorf("pbs: cancel: %q is not a PBS job id", id)
	}
	if _, err := b.run(ctx, "qdel", id); err != nil {
		return err
	}
	b.cache.Forget(id)
	return nil
}

// Status returns the state of every id with one `qstat -f` for all of
// them: `qstat -f -F json -x` on PBS Pro (finished jobs included), the text
// form elsewhere. An answer younger than the cache TTL that covers all ids
// is returned without a query. Ids the server does not know get UNKNOWN.
func (b *Backend) Status(ctx context.Context, ids ...string) (map[string]jobs.SchedState, error) {
	for _, id := range ids {
		if !validID(id) {
			return nil, fmt.Errorf("pbs: status: %q is not a PBS job id", id)
		}
	}
	return b.cache.Status(ids, func(ids []string) (map[string]jobs.SchedState, error) {
		got, err := b.query(ctx, ids)
		if err != nil {
			return nil, err
		}
		out := make(map[string]jobs.SchedState, len(ids))
		for _, id := range ids {
			s, ok := matchID(got, id)
			if !ok {
				s = jobs.SchedState{ID: id, State: StateUnknown, ExitCode: -1, Reason: "not known to the PBS server (a wrong id, or finished and purged)"}
			}
			s.ID = id
			out[id] = s
		}
		return out, nil
	})
}

// matchID finds id among the server's ids, exactly or by the number before
// the first dot ("123" matches "123.server" and the other way round).
func matchID(got map[string]jobs.SchedState, id string) (jobs.SchedState, bool) {
	if s, ok := got[id]; ok {
		return s, true
	}
	num, _, _ := strings.Cut(id, ".")
	for k, s := range got {
		if kn, _, _ := strings.Cut(k, "."); kn == num {
			return s, true
		}
	}
	return jobs.SchedState{}, false
}

// QueryCount reports how many scheduler queries Status has run.
func (b *Backend) QueryCount() int { return b.cache.Queries() }

// query runs one qstat for ids; it runs under the cache's lock.
func (b *Backend) query(ctx context.Context, ids []string) (map[string]jobs.SchedState, error) {
	if !b.textOnly {
		out, err := b.run(ctx, "qstat", append([]string{"-f", "-F", "json", "-x"}, ids...)...)
		var ce *CommandError
		switch {
		case err == nil || (errors.As(err, &ce) && len(bytes.TrimSpace(out)) > 0 && bytes.HasPrefix(bytes.TrimSpace(out), []byte("{"))):
			return parseQstatJSON(out)
		case errors.As(err, &ce) && unsupportedOption(ce.Stderr):
			b.textOnly = true
		case errors.As(err, &ce) && strings.Contains(ce.Stderr, "Unknown Job Id"):
			return map[string]jobs.SchedState{}, nil
		default:
			return nil, err
		}
	}
	out, err := b.run(ctx, "qstat", append([]string{"-f"}, ids...)...)
	var ce *CommandError
	if err != nil && !(errors.As(err, &ce) && strings.Contains(ce.Stderr, "Unknown Job Id")) {
		return nil, err
	}
	got, err := parseQstatText(out)
	if err != nil {
		return nil, err
	}
	for id, s := range got {
		if s.State == StateCompleted && s.ExitCode == -1 {
			got[id] = b.slurmEnd(ctx, s)
		}
	}
	return got, nil
}

// slurmEnd completes s, an ended job whose exit status qstat did not
// report, from SLURM's record of it: Slurm's Torque wrappers say C for
// every ended job, failed, cancelled or timed out alike. Without scontrol
// (a real Torque), s is returned as it is.
func (b *Backend) slurmEnd(ctx context.Context, s jobs.SchedState) jobs.SchedState {
	num, _, _ := strings.Cut(s.ID, ".")
	out, err := b.run(ctx, "scontrol", "-o", "show", "job", num)
	if err != nil {
		return s
	}
	f := map[string]string{}
	for _, kv := range strings.Fields(string(out)) {
		if k, v, ok := strings.Cut(kv, "="); ok {
			f[k] = v
		}
	}
	code, sig := -1, 0
	if a, b, ok := strings.Cut(f["ExitCode"], ":"); ok {
		code, _ = strconv.Atoi(a)
		sig, _ = strconv.Atoi(b)
	}
	from := "from scontrol: qstat did not report it"
	switch st := f["JobState"]; st {
	case "COMPLETED":
		s.ExitCode, s.Reason = code, join("exit status "+strconv.Itoa(code)+" "+from, s.Reason)
	case "CANCELLED":
		s.State, s.Reason = StateCancelled, join("cancelled ("+from+")", s.Reason)
		if sig > 0 {
			s.ExitCode = 128 + sig
		}
	case "TIMEOUT":
		s.State, s.Reason = StateTimeout, join("walltime exceeded ("+from+")", s.Reason)
	case "FAILED", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE", "PREEMPTED":
		s.State, s.ExitCode = StateFailed, code
		s.Reason = join(fmt.Sprintf("SLURM state %s, exit status %d (%s)", st, code, from), s.Reason)
	}
	return s
}

func unsupportedOption(stderr string) bool {
	s := strings.ToLower(stderr)
	for _, m := range []string{"unknown option", "invalid option", "illegal option", "usage:"} {
		if strings.Contains(s, m) {
			return true
		}
	}
	return false
}
