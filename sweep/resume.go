package sweep

import (
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"strings"

	"github.com/rankhub/rankhub/jobs"
	"github.com/rankhub/rankhub/results"
)

// ErrChanged is returned (wrapped) by Resume when the job changed what tasks
// already in the file mean, and force was not given.
var ErrChanged = errors.New("the job changed what the tasks already in the file mean")

// Continuation is what Resume found in an existing result file.
type Continuation struct {
	Done    Done              // tasks with a row (failed ones included: they keep their row)
	Stats   map[string]*Stats // adaptive sweeps: the rows by point key (Planner.Prior)
	Segment results.Segment   // this run's segment, with Forced and Changes set
	Rows    int               // rows in the file
}

// Resume checks that the run described by job and prov may continue the
// result file at path, and returns the tasks already done there. Growth
// (more replicates, more values, a new parameter with a default, reordered
// keys, other resources) is the normal path. A change that alters what done
// tasks mean (command, function, outputs, parse, shell, program, seed, a
// parameter removed or its default changed) is refused with a message
// listing the changes (ErrChanged) unless force: then the run goes on, the
// rows are kept and the segment records the changes. A new parameter
// without a default, or a file written before task identities (version 1),
// is refused even with force.
func Resume(path string, job *jobs.Job, prov results.Provenance, force bool) (*Continuation, error) {
	return resume(path, job, prov, force, true, true)
}

// Precheck runs Resume's checks of job against the result file at path
// (when there is one) before any rank starts, all but the program's hash,
// which only the ranks know: `rankhub run --resume` reports a new parameter
// without a default, a file of an older rankhub, or a changed task without
// --force at once, with the job file's positions. With workdir (the tasks'
// working directory) it checks the input files and the script too.
func Precheck(path string, job *jobs.Job, force bool, workdir string) error {
	if job.Sweep == nil || job.Task == nil || !Exists(path) {
		return nil
	}
	prov := results.Provenance{JobText: string(job.Source), JobFile: job.File, Seed: job.Job.Seed}
	if workdir != "" {
		var err error
		if prov.Inputs, err = HashInputs(job, workdir); err != nil {
			return err
		}
		if s := CommandScript(job, workdir); s != "" {
			prov.Script = s
			if prov.ScriptSHA256, err = results.FileSHA256(s); err != nil {
				return err
			}
		}
	}
	_, err := resume(path, job, prov, force, false, workdir != "")
	return err
}

func resume(path string, job *jobs.Job, prov results.Provenance, force, checkProgram, checkFiles bool) (*Continuation, error) {
	r, err := results.Open(path)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	fp := r.Provenance()
	if fp.ResultsVersion == "1" || len(fp.Segments) == 0 {
		return nil, fmt.Errorf("%s was written by an older rankhub (results version %s) whose seeds follow the task's position: "+
			"continuing it would mix two meanings of a seed; start a new file (move it away or change [results].path)", path, fp.ResultsVersion)
	}
	last := fp.Segments[len(fp.Segments)-1]
	prev, err := jobs.Parse(last.JobFile, []byte(last.JobText))
	if err != nil {
		return nil, fmt.Errorf("%s: the job text of segment %d does not parse: %w", path, last.Index, err)
	}
	if prev.Job.Name != job.Job.Name && !force {
		return nil, job.ErrorAt([]string{"results", "path"},
			"%s holds the results of job %q (segment %d), not of %q: give this job its own results.path, or --force to continue that file",
			path, prev.Job.Name, last.Index, job.Job.Name)
	}
	if err := newParams(prev, job); err != nil {
		return nil, err
	}
	changes := Changes(prev, job)
	if checkProgram && last.ProgramSHA256 != prov.ProgramSHA256 {
		changes = append(changes, fmt.Sprintf("program SHA-256 %.12s… (segment %d) → %.12s…", last.ProgramSHA256, last.Index, prov.ProgramSHA256))
	}
	if checkFiles {
		changes = append(changes, changedFiles(last, prov)...)
	}
	seg := results.SegmentOf(prov)
	seg.Index = len(fp.Segments)
	if len(changes) > 0 {
		if !force {
			return nil, fmt.Errorf("%s: %w:\n  %s\nrun with --force to continue anyway (rows kept, the change recorded), or write a new file",
				path, ErrChanged, strings.Join(changes, "\n  "))
		}
		seg.Forced, seg.Changes = true, changes
	}
	c := &Continuation{Done: Done{}, Segment: seg, Rows: r.NumRows()}
	names, kinds := r.Params(), r.ParamKinds()
	adaptive := job.Sweep != nil && job.Sweep.Adaptive != nil
	var outIdx []int // job output j is file output outIdx[j]
	if adaptive {
		c.Stats = map[string]*Stats{}
		for _, o := range job.Task.Outputs {
			outIdx = append(outIdx, slices.Index(r.Outputs(), o))
		}
	}
	for i, row := range r.Rows() {
		key, err := job.KeyOfColumns(names, kinds, row.Values)
		if err != nil {
			return nil, fmt.Errorf("%s: row %d: %v", path, i, err)
		}
		c.Done[jobs.KeyID(key, row.Replicate)] = struct{}{}
		if adaptive {
			out := make([]float64, len(outIdx))
			for j, k := range outIdx {
				out[j] = math.NaN()
				if k >= 0 {
					out[j] = row.Outputs[k]
				}
			}
			s := c.Stats[key]
			if s == nil {
				s = &Stats{}
				c.Stats[key] = s
			}
			s.Add(out, row.Failed(), row.Finished.Sub(row.Started))
		}
	}
	return c, nil
}

// changedFiles names the input files and the script of the last segment
// whose content differs now (or that are gone); a file the last segment
// did not record is not a change.
func changedFiles(last results.Segment, prov results.Provenance) []string {
	var out []string
	for _, f := range results.ChangedInputs(last.Inputs, prov.Inputs) {
		was, ok := last.Inputs[f]
		if !ok {
			continue
		}
		now, ok := prov.Inputs[f]
		if !ok {
			out = append(out, fmt.Sprintf("input %s: gone or no longer listed (segment %d: SHA-256 %.12s…)", f, last.Index, was))
			continue
		}
		out = append(out, fmt.Sprintf("input %s: SHA-256 %.12s… (segment %d) → %.12s…", f, was, last.Index, now))
	}
	if last.ScriptSHA256 != "" && last.Script == prov.Script && last.ScriptSHA256 != prov.ScriptSHA256 {
		out = append(out, fmt.Sprintf("script %s: SHA-256 %.12s… (segment %d) → %.12s…", last.Script, last.ScriptSHA256, last.Index, prov.ScriptSHA256))
	}
	return out
}

// newParams refuses parameters of job that prev lacks and that have no
// default: the earlier tasks would have no value for them.
func newParams(prev, job *jobs.Job) error {
	if job.Sweep == nil {
		return nil
	}
	var errs []error
	for _, p := range job.Sweep.Params {
		if prev.Sweep != nil && slices.ContainsFunc(prev.Sweep.Params, func(q jobs.Param) bool { return q.Name == p.Name }) {
			continue
		}
		if p.Default == nil {
			errs = append(errs, job.ErrorAt([]string{"sweep", p.Name},
				"new parameter without a default: the tasks already in the file have no %s; write %s = { values = [...], default = <the value they had> }",
				p.Name, p.Name))
		}
	}
	return errors.Join(errs...)
}

// Changes lists what differs between prev and job in a way that alters
// tasks already done: everything but growth.
func Changes(prev, job *jobs.Job) []string {
	var out []string
	diff := func(what, a, b string) {
		if a != b {
			out = append(out, fmt.Sprintf("%s: %q → %q", what, a, b))
		}
	}
	pt, jt := prev.Task, job.Task
	if pt == nil {
		pt = &jobs.TaskSpec{}
	}
	if jt == nil {
		jt = &jobs.TaskSpec{}
	}
	diff("task.command", pt.Command, jt.Command)
	diff("task.function", pt.Function, jt.Function)
	diff("task.outputs", strings.Join(pt.Outputs, ", "), strings.Join(jt.Outputs, ", "))
	diff("task.parse", pt.Parse, jt.Parse)
	diff("task.shell", pt.Shell, jt.Shell)
	diff("task.comment", pt.CommentPrefix(), jt.CommentPrefix())
	diff("task.stdin", pt.Stdin, jt.Stdin)
	diff("job.seed", fmt.Sprint(max(prev.Job.Seed, 1)), fmt.Sprint(max(job.Job.Seed, 1)))
	if prev.Sweep == nil {
		return out
	}
	for _, q := range prev.Sweep.Params {
		i := -1
		if job.Sweep != nil {
			i = slices.IndexFunc(job.Sweep.Params, func(p jobs.Param) bool { return p.Name == q.Name })
		}
		if i < 0 {
			out = append(out, fmt.Sprintf("sweep.%s: removed", q.Name))
			continue
		}
		p := job.Sweep.Params[i]
		diff("sweep."+q.Name+".default", defaultText(q), defaultText(p))
	}
	return out
}

func defaultText(p jobs.Param) string {
	if p.Default == nil {
		return "(none)"
	}
	return jobs.ValueText(p.Kind, *p.Default)
}

// Exists reports whether a result file is at path.
func Exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// OpenFile opens the result file of a run: with resume and a file at path,
// it continues it as a new segment (Resume's checks, then results.Append)
// and plans only the tasks without a row; otherwise it creates the file
// (refusing to overwrite one) with prov as segment 0; opt go to the
// results writer (results.Mode: the job directory's file mode). The caller
// closes w.
func OpenFile(path string, job *jobs.Job, prov results.Provenance, resume, force bool, opt ...results.Option) (w *results.Writer, pl *Planner, segment int, err error) {
	opts := append([]results.Option{results.FlushRows(job.Results.FlushRows), results.FlushInterval(job.Results.FlushInterval.Duration)}, opt...)
	var done Done
	var prior map[string]*Stats
	if resume && Exists(path) {
		// Growth is the normal path: only the tasks without a row run. A
		// failed task keeps its row (exit status, stderr) and is not run
		// again.
		cont, err := Resume(path, job, prov, force)
		if err != nil {
			return nil, nil, 0, err
		}
		done, segment, prior = cont.Done, cont.Segment.Index, cont.Stats
		if w, _, err = results.Append(path, job, prov, append(opts, results.NewSegment(cont.Segment))...); err != nil {
			return nil, nil, 0, err
		}
	} else {
		if Exists(path) {
			return nil, nil, 0, fmt.Errorf("%s already exists: run with --resume to continue it, or move it away (nothing is overwritten)", path)
		}
		prov.Segments = []results.Segment{results.SegmentOf(prov)}
		if w, err = results.Create(path, job, prov, opts...); err != nil {
			return nil, nil, 0, err
		}
	}
	pl = NewPlanner(job, done)
	pl.Prior(prior)
	return w, pl, segment, nil
}
