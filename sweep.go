package rankhub

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"

	"github.com/rankhub/rankhub/jobdir"
	"github.com/rankhub/rankhub/jobs"
	"github.com/rankhub/rankhub/launcher"
	"github.com/rankhub/rankhub/results"
	"github.com/rankhub/rankhub/sweep"
	"github.com/rankhub/rankhub/views"
	"github.com/rs/zerolog"
)

// Environment that `rankhub run|submit --resume [--force]` sets for rank 0.
const (
	EnvResume      = "RANKHUB_RESUME"
	EnvResumeForce = "RANKHUB_RESUME_FORCE"
	ProgressFile   = sweep.ProgressFile
)

// Progress is what the sweep driver reports in progress.json in the job
// directory (see sweep.Progress).
type Progress = sweep.Progress

// resultsPath resolves [results].path against the ranks' working directory.
func resultsPath(job *jobs.Job) string {
	p := job.Results.Path
	if filepath.IsAbs(p) {
		return p
	}
	wd, _ := os.Getwd()
	return filepath.Join(wd, p)
}

// sweepDriver runs the job's sweep through the load-balanced view and writes
// every row to the result file as it arrives.
func sweepDriver(job *jobs.Job, id launcher.Identity, log zerolog.Logger) Driver {
	return func(ctx context.Context, c *views.Client) (err error) {
		path := resultsPath(job)
		prov, err := results.NewProvenance(job)
		if err != nil {
			return err
		}
		prov.JobID = id.JobID
		if job.Task.Command != "" {
			// For a shell sweep the program is the command's executable.
			if exe, ok := commandExecutable(job); ok {
				if sum, err := results.FileSHA256(exe); err == nil {
					prov.Program, prov.ProgramSHA256 = exe, sum
				}
			}
		}
		// The files the tasks read and the script the command runs:
		// their hashes go into this run's segment; --resume and rerun
		// check them. Paths are relative to the tasks' working directory.
		wd, _ := os.Getwd()
		if prov.Inputs, err = sweep.HashInputs(job, wd); err != nil {
			return jobdir.Fail(jobdir.BadInput, err)
		}
		if s := sweep.CommandScript(job, wd); s != "" {
			sum, err := results.FileSHA256(s)
			if err != nil {
				return jobdir.Fail(jobdir.BadInput, err)
			}
			prov.Script, prov.ScriptSHA256 = s, sum
		}
		prov.Scheduler = job.Job.Scheduler
		hosts := map[string]bool{}
		for _, e := range c.Engines() {
			hosts[e.Host] = true
		}
		prov.Hosts = prov.Hosts[:0]
		for h := range hosts {
			prov.Hosts = append(prov.Hosts, h)
		}
		sort.Strings(prov.Hosts)

		// The result file and progress.json follow the job directory's
		// modes (0600, or 0640 group-readable).
		perm := jobdir.PermOf(job)
		w, pl, segment, err := sweep.OpenFile(path, job, prov, os.Getenv(EnvResume) == "1", os.Getenv(EnvResumeForce) == "1",
			results.Mode(perm.File))
		if err != nil {
			return sweepOutcome(err)
		}
		status := "completed"
		defer func() {
			if cerr := w.Close(status); cerr != nil && err == nil {
				err = cerr
			}
		}()
		log.Info().Str("results", path).Int("tasks", pl.Total()).Int("todo", pl.Todo()).Int("present", pl.Present()).
			Int("segment", segment).Msg("sweep starts")
		var progress func(sweep.Progress) error
		if id.JobDir != "" {
			jd := jobdir.Dir{Path: id.JobDir, Perm: perm}
			progress = jd.WriteProgress
		}
		err = sweep.Drive(ctx, c, job, w, pl, segment, progress, log)
		switch {
		case err == nil, errors.As(err, new(*sweep.TasksFailedError)):
		case ctx.Err() != nil:
			status = "interrupted"
		default:
			status = "failed"
		}
		return sweepOutcome(err)
	}
}

// sweepOutcome gives the sweep's errors their outcome (jobdir/outcome.go):
// rows that record failures are tasks-failed (3), tasks left without a row
// incomplete (4), a refusal to continue a file (changed task, input file or
// script) bad-input (1); a stop by a signal keeps the signal's outcome
// (endJob).
func sweepOutcome(err error) error {
	var tf *sweep.TasksFailedError
	var ic *sweep.IncompleteError
	switch {
	case errors.As(err, &tf):
		return jobdir.Fail(jobdir.TasksFailed, err)
	case errors.As(err, &ic):
		return jobdir.Fail(jobdir.Incomplete, err)
	case errors.Is(err, sweep.ErrChanged), errors.Is(err, results.ErrMismatch):
		// Refused to continue a file (changed task, input or script).
		return jobdir.Fail(jobdir.BadInput, err)
	}
	return err
}

// commandExecutable resolves the first word of a shell task's command.
func commandExecutable(job *jobs.Job) (string, bool) {
	if len(job.Sweep.Params) == 0 && job.NumTasks() == 0 {
		return "", false
	}
	line, err := job.Command(job.TaskAt(0))
	if err != nil {
		return "", false
	}
	f := strings.Fields(line)
	if len(f) == 0 {
		return "", false
	}
	exe, err := exec.LookPath(strings.Trim(f[0], `'"`))
	if err != nil {
		return "", false
	}
	if abs, err := filepath.Abs(exe); err == nil {
		exe = abs
	}
	return exe, true
}
