package slurm

import (
	"context"
	"errors"
	"fmt"
	"regexp"
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
	// ErrNotFound is wrapped when a SLURM command is not installed (any
	// method).
	ErrNotFound = errors.New("slurm: command not found")
	// ErrCommand is wrapped when a SLURM command exits with an error (any
	// method); the message carries its stderr and a hint.
	ErrCommand = errors.New("slurm: command failed")
	// ErrParse is wrapped when a command's output cannot be understood
	// (Submit, Status).
	ErrParse = errors.New("slurm: unexpected command output")
)

// Backend submits, queries and cancels SLURM jobs with the SLURM command
// line tools. It satisfies the launcher's Backend interface. Its methods are
// safe for concurrent use.
type Backend struct {
	tools  batch.Tools
	cache  batch.Cache // its lock, held across a status query, guards noAcct
	noAcct bool        // sacct said accounting is disabled: use scontrol
}

// Option configures a Backend.
type Option func(*Backend)

// WithCommand sets the path of one SLURM tool ("sbatch", "squeue", "sacct",
// "scontrol", "scancel"); by default each is looked up in PATH.
func WithCommand(tool, path string) Option {
	return func(b *Backend) { b.tools.Paths[tool] = path }
}

// WithBinDir takes every SLURM tool from dir.
func WithBinDir(dir string) Option {
	return func(b *Backend) { b.tools.SetBinDir(dir) }
}

// WithCacheTTL sets how long one Status query answers later calls for the
// same jobs; 0 queries every time.
func WithCacheTTL(d time.Duration) Option {
	return func(b *Backend) { b.cache.TTL = d }
}

// WithoutAccounting skips sacct and asks slurmctld (scontrol) directly, as
// the Backend does by itself once sacct reports accounting disabled.
func WithoutAccounting() Option {
	return func(b *Backend) { b.noAcct = true }
}

// New returns a SLURM Backend.
func New(opts ...Option) *Backend {
	b := &Backend{tools: batch.Tools{
		Sched: "slurm",
		Paths: map[string]string{
			"sbatch": "sbatch", "squeue": "squeue", "sacct": "sacct",
			"scontrol": "scontrol", "scancel": "scancel",
		},
		Hints:    hints,
		NotFound: notFound,
	}}
	b.cache.TTL = DefaultCacheTTL
	for _, o := range opts {
		o(b)
	}
	return b
}

// Name returns "slurm".
func (b *Backend) Name() string { return jobs.SchedSLURM }

// Script renders the batch script; see the package function Script.
func (b *Backend) Script(job *jobs.Job, l jobs.Launch) (string, error) { return Script(job, l) }

// hints for well-known failures, matched against stderr.
var hints = []batch.Hint{
	{"Unable to contact slurm controller", "is slurmctld running and reachable? (locally: scripts/slurm-local.sh up)"},
	{"Invalid account", "check job.account against `sacctmgr show assoc user=$USER`"},
	{"invalid partition", "check job.partition against `sinfo -s`"},
	{"Invalid qos", "check job.qos against `sacctmgr show qos`"},
	{"Requested node configuration is not available", "the request (ranks, ranks_per_node, cpus_per_rank, memory) exceeds what the partition's nodes offer; see `sinfo -o '%P %c %m %D'`"},
	{"time limit", "job.walltime exceeds the partition's limit; see `sinfo -o '%P %l'`"},
	{"Invalid job id", "the job is unknown to slurmctld (finished long ago, or a wrong id)"},
	{"Munge", "munge authentication failed: is munged running with the cluster's key?"},
}

func notFound(tool, path string) error {
	if tool == "sbatch" {
		return fmt.Errorf("%w: sbatch not found: install Debian's slurm-client (or `module load slurm`)", ErrNotFound)
	}
	return fmt.Errorf("%w: %s not found (%s): install Debian's slurm-client (or `module load slurm`)", ErrNotFound, tool, path)
}

// run executes one SLURM tool and returns its stdout. Failures wrap
// ErrNotFound or ErrCommand and carry stderr and a hint.
func (b *Backend) run(ctx context.Context, tool string, args ...string) ([]byte, error) {
	out, err := b.tools.Run(ctx, "", tool, args...)
	if ce, ok := err.(*batch.CommandError); ok {
		return out, (*CommandError)(ce)
	}
	return out, err
}

// CommandError is a SLURM tool that exited with an error.
type CommandError struct {
	Tool   string
	Args   []string
	Err    error  // from os/exec, usually *exec.ExitError
	Stderr string // trimmed standard error (or output)
	Hint   string
}

func (e *CommandError) Error() string { return "slurm: " + (*batch.CommandError)(e).Error() }

// Is makes errors.Is(err, ErrCommand) true.
func (e *CommandError) Is(target error) bool { return target == ErrCommand }

// Unwrap returns the os/exec error.
func (e *CommandError) Unwrap() error { return e.Err }

var jobIDPattern = regexp.MustCompile(`^[0-9]+(_[0-9]+)?$`)

// Submit runs `sbatch --parsable scriptPath` and returns the job id. With a
// federation or multi-cluster setup sbatch prints "id;cluster"; the cluster
// is dropped.
func (b *Backend) Submit(ctx context.Context, scriptPath string) (string, error) {
	out, err := b.run(ctx, "sbatch", "--parsable", scriptPath)
	if err != nil {
		return "", err
	}
	return parseSbatch(out)
}

func parseSbatch(out []byte) (string, error) {
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	last := strings.TrimSpace(lines[len(lines)-1])
	id, _, _ := strings.Cut(last, ";")
	if !jobIDPattern.MatchString(id) {
		return "", fmt.Errorf("%w: sbatch --parsable printed %q, want a job id", ErrParse, strings.TrimSpace(string(out)))
	}
	return id, nil
}

// Cancel runs `scancel id`.
func (b *Backend) Cancel(ctx context.Context, id string) error {
	if !jobIDPattern.MatchString(id) {
		return fmt.Errorf("slurm: cancel: %q is not a SLURM job id", id)
	}
	if _, err := b.run(ctx, "scancel", id); err != nil {
		return err
	}
	b.cache.Forget(id)
	return nil
}

// Status returns the state of every id with one scheduler query: sacct
// while accounting works (then squeue for jobs sacct does not list yet),
// otherwise `scontrol show job -o`. An answer younger than the cache TTL
// that covers all ids is returned without a query. Ids the scheduler does
// not know get State UNKNOWN.
func (b *Backend) Status(ctx context.Context, ids ...string) (map[string]jobs.SchedState, error) {
	for _, id := range ids {
		if !jobIDPattern.MatchString(id) {
			return nil, fmt.Errorf("slurm: status: %q is not a SLURM job id", id)
		}
	}
	return b.cache.Status(ids, func(ids []string) (map[string]jobs.SchedState, error) {
		got, err := b.query(ctx, ids)
		if err != nil {
			return nil, err
		}
		for _, id := range ids {
			if _, ok := got[id]; !ok {
				got[id] = jobs.SchedState{ID: id, State: StateUnknown, ExitCode: -1, Reason: "not known to SLURM (a wrong id, or finished longer ago than slurmctld's MinJobAge)"}
			}
		}
		return got, nil
	})
}

// query asks the scheduler about ids; it runs under the cache's lock.
func (b *Backend) query(ctx context.Context, ids []string) (map[string]jobs.SchedState, error) {
	got := map[string]jobs.SchedState{}
	if !b.noAcct {
		out, err := b.run(ctx, "sacct", "-n", "-P", "-X", "-j", strings.Join(ids, ","),
			"-o", "JobID,State,ExitCode,Reason,NodeList")
		var ce *CommandError
		switch {
		case err == nil:
			got, err = parseSacct(out)
			if err != nil {
				return nil, err
			}
			var missing []string
			for _, id := range ids {
				if _, ok := got[id]; !ok {
					missing = append(missing, id)
				}
			}
			if len(missing) == 0 {
				return got, nil
			}
			// Just submitted jobs may not have reached the database yet.
			q, err := b.squeue(ctx, missing)
			if err != nil {
				return nil, err
			}
			for id, s := range q {
				got[id] = s
			}
			return got, nil
		case errors.As(err, &ce) && strings.Contains(strings.ToLower(ce.Stderr), "accounting storage is disabled"):
			b.noAcct = true
		default:
			return nil, err
		}
	}
	args := []string{"show", "job", "-o"}
	if len(ids) == 1 {
		args = append(args, ids[0])
	}
	out, err := b.run(ctx, "scontrol", args...)
	var ce *CommandError
	if errors.As(err, &ce) && strings.Contains(ce.Stderr, "Invalid job id") {
		return got, nil
	}
	if err != nil {
		return nil, err
	}
	return parseScontrol(out)
}

// squeue asks for jobs still known to slurmctld. It lists several ids even
// when some are unknown; a single unknown id is an error we turn into an
// empty answer.
func (b *Backend) squeue(ctx context.Context, ids []string) (map[string]jobs.SchedState, error) {
	out, err := b.run(ctx, "squeue", "-h", "-t", "all", "-j", strings.Join(ids, ","), "-o", "%i|%T|%r|%N")
	var ce *CommandError
	if errors.As(err, &ce) && strings.Contains(ce.Stderr, "Invalid job id") {
		return map[string]jobs.SchedState{}, nil
	}
	if err != nil {
		return nil, err
	}
	return parseSqueue(out)
}

// QueryCount reports how many scheduler queries Status has run.
func (b *Backend) QueryCount() int { return b.cache.Queries() }

// parseExit turns SLURM's "code:signal" into an exit code: the code, or
// 128+signal when a signal ended the job.
func parseExit(s string) (int, error) {
	code, sig, _ := strings.Cut(strings.TrimSpace(s), ":")
	c, err := strconv.Atoi(code)
	if err != nil {
		return -1, fmt.Errorf("%w: exit code %q", ErrParse, s)
	}
	if sig != "" {
		g, err := strconv.Atoi(sig)
		if err != nil {
			return -1, fmt.Errorf("%w: exit code %q", ErrParse, s)
		}
		if c == 0 && g != 0 {
			return 128 + g, nil
		}
	}
	return c, nil
}
