package rankhub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

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
	ProgressFile   = "progress.json"
)

// Progress is what the sweep driver reports in progress.json in the job
// directory (the `rankhub run` process draws its bar from it).
type Progress struct {
	Done    int       `json:"done"`
	Failed  int       `json:"failed"`
	Total   int       `json:"total"`
	Skipped int       `json:"skipped"` // already in the file when resuming
	Rate    float64   `json:"rate"`    // rows per second since the start
	ETA     float64   `json:"eta_seconds"`
	Updated time.Time `json:"updated"`
	Results string    `json:"results"`
	// Adaptive sweeps: Total is done plus the estimate of what remains;
	// Active counts the groups that have not stopped.
	Adaptive bool `json:"adaptive,omitempty"`
	Active   int  `json:"active_groups,omitempty"`
}

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

		opts := []results.Option{results.FlushRows(job.Results.FlushRows), results.FlushInterval(job.Results.FlushInterval.Duration)}
		var w *results.Writer
		var done sweep.Done
		var prior map[string]*sweep.Stats
		segment := 0
		if os.Getenv(EnvResume) == "1" && sweep.Exists(path) {
			// Growth is the normal path: only the tasks without a row run.
			// A failed task keeps its row (exit status, stderr) and is not
			// run again.
			cont, err := sweep.Resume(path, job, prov, os.Getenv(EnvResumeForce) == "1")
			if err != nil {
				return err
			}
			done, segment, prior = cont.Done, cont.Segment.Index, cont.Stats
			if w, _, err = results.Append(path, job, prov, append(opts, results.NewSegment(cont.Segment))...); err != nil {
				return err
			}
		} else {
			if sweep.Exists(path) {
				return fmt.Errorf("%s already exists: run with --resume to continue it, or move it away (nothing is overwritten)", path)
			}
			prov.Segments = []results.Segment{results.SegmentOf(prov)}
			if w, err = results.Create(path, job, prov, opts...); err != nil {
				return err
			}
		}
		status := "completed"
		defer func() {
			if cerr := w.Close(status); cerr != nil && err == nil {
				err = cerr
			}
		}()

		pl := sweep.NewPlanner(job, done)
		pl.Prior(prior)
		log.Info().Str("results", path).Int("tasks", pl.Total()).Int("todo", pl.Todo()).Int("present", pl.Present()).
			Int("segment", segment).Msg("sweep starts")
		err = runSweep(ctx, c, job, w, pl, segment, id.JobDir, path, log)
		var inc *sweep.IncompleteError
		switch {
		case err == nil:
		case ctx.Err() != nil:
			status = "interrupted"
		case errors.As(err, &inc):
			status = "failed"
		case errors.As(err, new(*sweep.TasksFailedError)):
		default:
			status = "failed"
		}
		return err
	}
}

type chunkDone struct {
	res  sweep.ChunkResult
	refs []sweep.Ref
	err  error
	took time.Duration
}

func runSweep(ctx context.Context, c *views.Client, job *jobs.Job, w *results.Writer, pl *sweep.Planner, segment int, jobDir, path string, log zerolog.Logger) error {
	engines := len(c.IDs())
	if engines == 0 {
		return views.ErrNoEngines
	}
	// A chunk fails only when its engine dies (task failures are rows), so
	// engine failures get retries beyond the task's own.
	lb, err := c.LoadBalancedView()
	if err != nil {
		return err
	}
	lb = lb.With(views.TaskOptions{Retries: 3 + job.Task.Retries})
	doneCh := make(chan chunkDone, sweep.Window(0, engines))
	inflight := 0
	perTask := time.Duration(0) // running mean of a task's cost, from finished chunks
	submit := func() (bool, error) {
		refs := pl.Next(pl.ChunkSize(perTask, engines))
		if len(refs) == 0 {
			return false, nil
		}
		ar, err := lb.Apply(sweepFn, sweep.Pairs(refs))
		if err != nil {
			return false, err
		}
		inflight++
		start := time.Now()
		go func() {
			v, err := ar.GetContext(ctx)
			d := chunkDone{refs: refs, err: err, took: time.Since(start)}
			if err == nil {
				d.res, d.err = views.As[sweep.ChunkResult](v)
			}
			// The rows go to the result file: the hub need not keep them.
			if ar.Ready() {
				c.Purge(ar.MsgIDs()...)
			}
			doneCh <- d
		}()
		return true, nil
	}
	started := time.Now()
	prog := Progress{Total: pl.Total(), Skipped: pl.Present(), Results: path}
	todo := pl.Todo()
	wanted := func() int { return todo }
	if job.Sweep.Adaptive != nil {
		// Open-ended: what this run is to do is what is done plus what
		// the planner estimates the groups still need.
		wanted = func() int { return prog.Done + pl.Estimate() }
		prog.Skipped = pl.Observed()
		prog.Total = prog.Skipped + pl.Estimate()
	}
	firstFail := ""
	lastProg, lastLog := time.Time{}, time.Now()
	report := func(force bool) {
		now := time.Now()
		if !force && now.Sub(lastProg) < 250*time.Millisecond {
			return
		}
		lastProg = now
		el := now.Sub(started).Seconds()
		prog.Rate = float64(prog.Done) / math.Max(el, 1e-9)
		// The ETA sums each group's remaining tasks at its own measured
		// cost; an adaptive sweep's total is what is done plus the
		// planner's estimate of what remains.
		prog.ETA = pl.ETA(engines).Seconds()
		if job.Sweep.Adaptive != nil {
			prog.Adaptive, prog.Active = true, pl.Active()
			prog.Total = prog.Skipped + prog.Done + pl.Estimate()
		}
		prog.Updated = now.UTC()
		if jobDir != "" {
			b, _ := json.Marshal(prog)
			tmp := filepath.Join(jobDir, "."+ProgressFile)
			if os.WriteFile(tmp, b, 0o644) == nil {
				os.Rename(tmp, filepath.Join(jobDir, ProgressFile))
			}
		}
		if force || now.Sub(lastLog) >= 10*time.Second {
			lastLog = now
			log.Info().Int("done", prog.Done+prog.Skipped).Int("total", prog.Total).Int("failed", prog.Failed).
				Float64("rows_per_s", math.Round(prog.Rate)).Float64("eta_s", math.Round(prog.ETA)).Msg("sweep progress")
		}
	}
	fill := func() error {
		for inflight < sweep.Window(perTask, engines) && pl.Left() > 0 {
			// An adaptive sweep may have nothing to hand out while results
			// that decide whether groups stop are still on their way.
			if sent, err := submit(); err != nil || !sent {
				return err
			}
		}
		return nil
	}
	if err := fill(); err != nil {
		return err
	}
	var firstErr error
	watch := time.NewTicker(time.Second)
	defer watch.Stop()
	for inflight > 0 {
		var d chunkDone
		select {
		case <-watch.C:
			if len(c.IDs()) == 0 {
				// Every engine is gone: nothing can run the rest. What
				// arrived is in the file; --resume runs the remainder.
				var why []string
				for _, e := range c.Engines() {
					why = append(why, fmt.Sprintf("engine %d (rank %d on %s): %s", e.ID, e.Rank, e.Host, e.DeadWhy))
				}
				report(true)
				return &sweep.IncompleteError{Wanted: wanted(), Done: prog.Done,
					Reason: "every engine died: " + strings.Join(why, "; ")}
			}
			continue
		case d = <-doneCh:
		case <-ctx.Done():
			// Stop: what arrived is written; the rest is left for --resume.
			report(true)
			return &sweep.IncompleteError{Wanted: wanted(), Done: prog.Done, Reason: "stopped (SIGTERM or the walltime warning)", Err: ctx.Err()}
		}
		inflight--
		if d.err != nil {
			// Retries are exhausted (or the job is stopping): these tasks
			// get no row now and run again on --resume.
			if ctx.Err() != nil {
				return &sweep.IncompleteError{Wanted: wanted(), Done: prog.Done, Reason: "stopped (SIGTERM or the walltime warning)", Err: ctx.Err()}
			}
			log.Error().Err(d.err).Int("tasks", len(d.refs)).Int("point", d.refs[0].Point).Int("replicate", d.refs[0].Replicate).
				Msg("chunk failed after retries; its tasks are left for --resume")
			if firstErr == nil {
				firstErr = fmt.Errorf("%d task(s) from point %d replicate %d could not run: %w", len(d.refs), d.refs[0].Point, d.refs[0].Replicate, d.err)
			}
		} else {
			if err := sweep.WriteChunk(w, job, d.res, segment); err != nil {
				return err
			}
			prog.Done += len(d.res.Index)
			k, reps := len(job.Task.Outputs), int64(max(job.Sweep.Replicates, 1))
			for i, ix := range d.res.Index {
				pl.Observe(sweep.Ref{Point: int(ix / reps), Replicate: int(ix % reps)}, d.res.Out[i*k:(i+1)*k], d.res.Err[i] != "",
					time.Duration(d.res.Finished[i]-d.res.Started[i])*time.Microsecond)
			}
			for _, e := range d.res.Err {
				if e != "" {
					prog.Failed++
					if firstFail == "" {
						firstFail = e
					}
				}
			}
			// A task's cost is what the engine spent running it (not the
			// round trip, which includes the wait behind other chunks);
			// tasks too short for the clock count as 1 µs.
			var spent int64
			for i := range d.res.Index {
				spent += d.res.Finished[i] - d.res.Started[i]
			}
			cost := max(time.Duration(spent)*time.Microsecond/time.Duration(max(len(d.res.Index), 1)), time.Microsecond)
			if perTask == 0 {
				perTask = cost
			} else {
				perTask = (perTask*3 + cost) / 4
			}
		}
		report(false)
		if err := fill(); err != nil {
			return err
		}
	}
	report(true)
	if firstErr != nil {
		return &sweep.IncompleteError{Wanted: wanted(), Done: prog.Done, Reason: "chunks failed after their retries", Err: firstErr}
	}
	if prog.Failed > 0 {
		return &sweep.TasksFailedError{Failed: prog.Failed, Done: prog.Done, First: firstFail}
	}
	return nil
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
