package sweep

import (
	"context"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/rankhub/rankhub/jobdir"
	"github.com/rankhub/rankhub/jobs"
	"github.com/rankhub/rankhub/results"
	"github.com/rankhub/rankhub/views"
	"github.com/rs/zerolog"
)

// ProgressFile is the name of Drive's progress report in the job directory.
const ProgressFile = "progress.json"

// BuiltinName is the function every rank registers to run sweep chunks
// (the root package registers it with the job it loads).
const BuiltinName = "rankhub.sweep"

// Progress is what Drive reports in progress.json in the job directory
// (the `rankhub run` process draws its bar from it): the job directory's
// record, jobdir.Progress.
type Progress = jobdir.Progress

type chunkDone struct {
	res   ChunkResult
	refs  []Ref
	err   error
	took  time.Duration
	again bool // not run: its engines were stopping; the driver is not
}

// againAfter is how long Drive waits before it hands out again a chunk
// that only stopping engines took (an engine lingers up to 3 s after its
// signal).
const againAfter = 250 * time.Millisecond

// Drive runs the planner's tasks through the client's load-balanced view
// and writes every row to w as its chunk arrives, as segment of the file;
// it reports progress to progress (when not nil: the root writes
// progress.json through the job directory, with its modes) and to log. It returns
// nil when every task it was to run has a row and none failed, an
// *IncompleteError when tasks are left without a row (stopped, every engine
// dead, chunks failed after their retries, tasks interrupted by their
// engine's stop while the driver stops too: ChunkResult.Interrupted, never
// written as failed rows; while the driver goes on they run again)
// and a *TasksFailedError when rows record failures.
func Drive(ctx context.Context, c *views.Client, job *jobs.Job, w *results.Writer, pl *Planner, segment int, progress func(Progress) error, log zerolog.Logger) error {
	path := w.Path()
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
	doneCh := make(chan chunkDone, Window(0, engines))
	inflight := 0
	// Running means per task, from finished chunks: the round trip (what a
	// chunk costs the pipeline: the chunk size aims at it) and the engine's
	// own time (what decides whether tasks are slow enough for small
	// chunks and a short window, which keep groups even).
	perTask, execTask := time.Duration(0), time.Duration(0)
	submit := func() (bool, error) {
		refs := pl.Next(pl.ChunkSize(perTask, execTask, engines))
		if len(refs) == 0 {
			return false, nil
		}
		ar, err := lb.Apply(BuiltinName, Pairs(refs))
		if err != nil {
			return false, err
		}
		inflight++
		start := time.Now()
		go func() {
			v, err := ar.GetContext(ctx)
			d := chunkDone{refs: refs, err: err, took: time.Since(start)}
			if err == nil {
				d.res, d.err = views.As[ChunkResult](v)
			} else if notRunByStoppingEngine(err) && ctx.Err() == nil {
				// Its retries went to engines that are stopping (idle, so
				// the hub's scheduler picks them first; they answer at
				// once): it runs again after a short wait, by which they
				// will have left or their stop will have reached us.
				d.again = true
				t := time.NewTimer(againAfter)
				select {
				case <-ctx.Done():
				case <-t.C:
				}
				t.Stop()
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
	firstFail, interrupted := "", ""
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
		if progress != nil {
			if err := progress(prog); err != nil && force {
				log.Warn().Err(err).Msg("progress not written")
			}
		}
		if force || now.Sub(lastLog) >= 10*time.Second {
			lastLog = now
			log.Info().Int("done", prog.Done+prog.Skipped).Int("total", prog.Total).Int("failed", prog.Failed).
				Float64("rows_per_s", math.Round(prog.Rate)).Float64("eta_s", math.Round(prog.ETA)).Msg("sweep progress")
		}
	}
	fill := func() error {
		for inflight < Window(execTask, engines) && pl.Left() > 0 {
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
				return &IncompleteError{Wanted: wanted(), Done: prog.Done,
					Reason: "every engine died: " + strings.Join(why, "; ")}
			}
			continue
		case d = <-doneCh:
		case <-ctx.Done():
			// Stop: what arrived is written; the rest is left for --resume.
			report(true)
			return &IncompleteError{Wanted: wanted(), Done: prog.Done, Reason: "stopped (SIGTERM or the walltime warning)", Err: ctx.Err()}
		}
		inflight--
		if d.err != nil {
			// Retries are exhausted (or the job is stopping): these tasks
			// get no row now and run again on --resume.
			if ctx.Err() != nil {
				if notRunByStoppingEngine(d.err) {
					// Interrupted by the stop: left for --resume.
					prog.Interrupted += len(d.refs)
				}
				report(true)
				return &IncompleteError{Wanted: wanted(), Done: prog.Done, Reason: "stopped (SIGTERM or the walltime warning)", Err: ctx.Err()}
			}
			if d.again {
				pl.Again(d.refs)
				log.Warn().Err(d.err).Int("tasks", len(d.refs)).Msg("chunk not run: its engines are stopping; it runs again on the others")
				report(false)
				if err := fill(); err != nil {
					return err
				}
				continue
			}
			log.Error().Err(d.err).Int("tasks", len(d.refs)).Int("point", d.refs[0].Point).Int("replicate", d.refs[0].Replicate).
				Msg("chunk failed after retries; its tasks are left for --resume")
			if firstErr == nil {
				firstErr = fmt.Errorf("%d task(s) from point %d replicate %d could not run: %w", len(d.refs), d.refs[0].Point, d.refs[0].Replicate, d.err)
			}
		} else {
			// Tasks interrupted by their engine's stop get no row: they
			// are no answer, and --resume runs them.
			if err := WriteChunk(w, job, d.res, segment); err != nil {
				return err
			}
			ran := d.res.Ran()
			prog.Done += ran
			k, reps := len(job.Task.Outputs), int64(max(job.Sweep.Replicates, 1))
			if stopped := len(d.res.Index) - ran; stopped > 0 {
				if ctx.Err() == nil {
					// Only this engine stops (a joined engine's Ctrl-C,
					// one node's stop): the job goes on, and so do these
					// tasks, on the engines that remain.
					again := make([]Ref, 0, stopped)
					for i, ix := range d.res.Index {
						if d.res.Interrupted(i) {
							again = append(again, Ref{Point: int(ix / reps), Replicate: int(ix % reps)})
						}
					}
					pl.Again(again)
					log.Warn().Int("tasks", stopped).Int("rank", d.res.Rank).Str("host", d.res.Host).
						Msg("tasks interrupted by their engine's stop; they run again on the other engines")
				} else {
					prog.Interrupted += stopped
					log.Warn().Int("tasks", stopped).Int("rank", d.res.Rank).Str("host", d.res.Host).
						Msg("tasks interrupted by their engine's stop; they have no row and are left for --resume")
					if interrupted == "" {
						interrupted = fmt.Sprintf("the engine of rank %d on %s was stopping", d.res.Rank, d.res.Host)
					}
				}
			}
			var spent int64
			failed := false
			for i, ix := range d.res.Index {
				if d.res.Interrupted(i) {
					continue
				}
				pl.Observe(Ref{Point: int(ix / reps), Replicate: int(ix % reps)}, d.res.Out[i*k:(i+1)*k], d.res.Err[i] != "",
					time.Duration(d.res.Finished[i]-d.res.Started[i])*time.Microsecond)
				if e := d.res.Err[i]; e != "" {
					failed = true
					prog.Failed++
					if firstFail == "" {
						firstFail = e
					}
				}
				spent += d.res.Finished[i] - d.res.Started[i]
			}
			// Tasks too short for the clock count as 1 µs.
			n := time.Duration(max(ran, 1))
			took := d.took
			if failed {
				// The engine held the answer of a chunk with a recent
				// failure up to stopGrace (ExecChunk), and the chunks
				// queued behind it waited as long: that is no cost of
				// its tasks, and counted as one it would keep a failing
				// region of the grid in chunks of one task, 2 s each.
				// Such a chunk counts the engine's own time.
				took = time.Duration(spent) * time.Microsecond
			}
			perTask = runningMean(perTask, max(took/n, time.Microsecond))
			execTask = runningMean(execTask, max(time.Duration(spent)*time.Microsecond/n, time.Microsecond))
		}
		report(false)
		if err := fill(); err != nil {
			return err
		}
	}
	report(true)
	if firstErr != nil {
		return &IncompleteError{Wanted: wanted(), Done: prog.Done, Reason: "chunks failed after their retries", Err: firstErr}
	}
	if prog.Interrupted > 0 {
		return &IncompleteError{Wanted: wanted(), Done: prog.Done,
			Reason: fmt.Sprintf("%d task(s) interrupted: %s", prog.Interrupted, interrupted)}
	}
	if prog.Failed > 0 {
		return &TasksFailedError{Failed: prog.Failed, Done: prog.Done, First: firstFail}
	}
	return nil
}

func runningMean(mean, x time.Duration) time.Duration {
	if mean == 0 {
		return x
	}
	return (mean*3 + x) / 4
}
