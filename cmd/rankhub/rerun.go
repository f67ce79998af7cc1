package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	"github.com/rankhub/rankhub"
	"github.com/rankhub/rankhub/jobs"
	"github.com/rankhub/rankhub/launcher"
	"github.com/rankhub/rankhub/results"
)

func init() {
	register(&command{name: "rerun", summary: "re-execute rows of a result file from its provenance alone and check every output bit for bit",
		usage: "results.arrow (--row N [--row M ...] | --sample K)", run: runRerun})
	flagSets["rerun"] = func() *flag.FlagSet {
		fs := flag.NewFlagSet("rerun", flag.ContinueOnError)
		fs.Var(&intList{}, "row", "row number in the file (0-based); repeatable")
		fs.Int("sample", 0, "re-execute this many rows chosen at random")
		fs.String("program", "", "the program to run function tasks with (default: the one in the provenance)")
		return fs
	}
}

type intList []int

func (l *intList) String() string { return fmt.Sprint(*l) }
func (l *intList) Set(s string) error {
	var n int
	if _, err := fmt.Sscan(s, &n); err != nil || n < 0 {
		return fmt.Errorf("%q is not a row number", s)
	}
	*l = append(*l, n)
	return nil
}

func runRerun(args []string, stdout, stderr io.Writer) error {
	fs := flagSets["rerun"]()
	if err := parseFlags("rerun", fs, reorder(args), stdout); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return &usageError{msg: "give one result file"}
	}
	rows := *fs.Lookup("row").Value.(*intList)
	sample := fs.Lookup("sample").Value.(flag.Getter).Get().(int)
	if len(rows) == 0 && sample <= 0 {
		return &usageError{msg: "give --row N or --sample K"}
	}
	r, err := results.Open(fs.Arg(0))
	if err != nil {
		return err
	}
	defer r.Close()
	prov := r.Provenance()
	all := r.Rows()
	if sample > 0 {
		for _, i := range rand.Perm(len(all))[:min(sample, len(all))] {
			rows = append(rows, i)
		}
	}
	tmp, err := os.MkdirTemp("", "rankhub-rerun-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	// Each row runs with the job of the segment (run) that wrote it.
	segs := map[int]*rerunSegment{}
	segment := func(i int) (*rerunSegment, error) {
		if s, ok := segs[i]; ok {
			return s, nil
		}
		s, err := newRerunSegment(prov, i, tmp, fs.Lookup("program").Value.String(), fs.Arg(0), stderr)
		if err != nil {
			return nil, err
		}
		segs[i] = s
		return s, nil
	}
	bad := 0
	for _, i := range rows {
		if i >= len(all) {
			return fmt.Errorf("row %d: the file has %d rows", i, len(all))
		}
		row := all[i]
		seg, err := segment(row.Segment)
		if err != nil {
			return fmt.Errorf("row %d: %w", i, err)
		}
		job, program := seg.job, seg.program
		cmd := exec.Command(program, seg.args...)
		cmd.Dir = seg.workdir
		cmd.Env = append(os.Environ(), rankhub.EnvCall+"="+fmt.Sprint(row.Task), launcher.EnvJobFile+"="+seg.jobFile)
		var so, se bytes.Buffer
		cmd.Stdout, cmd.Stderr = &so, &se
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("row %d (task %d): %s: %v\n%s", i, row.Task, program, err, se.String())
		}
		var out rankhub.CallOutcome
		if err := json.Unmarshal(so.Bytes(), &out); err != nil {
			return fmt.Errorf("row %d: %s printed no outcome: %v\n%s%s", i, program, err, so.String(), se.String())
		}
		desc := describe(job, row)
		if len(prov.Segments) > 1 {
			desc += fmt.Sprintf(" segment %d", row.Segment)
		}
		var diffs []string
		if (out.Err != "") != (row.Err != "") || out.ExitStatus != row.ExitStatus {
			diffs = append(diffs, fmt.Sprintf("exit status %d (%q) now, %d (%q) in the file", out.ExitStatus, out.Err, row.ExitStatus, row.Err))
		} else if row.Err == "" && job.Task.Table() {
			for j, name := range job.Task.Outputs {
				if j >= len(out.Lists) || j >= len(row.Lists) || !sameBits(out.Lists[j], row.Lists[j]) {
					diffs = append(diffs, fmt.Sprintf("%s differs: %d value(s) now, %d in the file", name, listLen(out.Lists, j), listLen(row.Lists, j)))
				}
			}
		} else if row.Err == "" {
			for j, name := range job.Task.Outputs {
				was := math.Float64bits(row.Outputs[j])
				if j >= len(out.Outputs) || out.Outputs[j] != was {
					now := math.NaN()
					if j < len(out.Outputs) {
						now = math.Float64frombits(out.Outputs[j])
					}
					diffs = append(diffs, fmt.Sprintf("%s = %v now, %v in the file", name, now, row.Outputs[j]))
				}
			}
		}
		if len(diffs) > 0 && len(seg.changed) > 0 {
			diffs = append(diffs, "changed since segment "+fmt.Sprint(row.Segment)+" ran: "+strings.Join(seg.changed, ", "))
		}
		if len(diffs) == 0 {
			fmt.Fprintf(stdout, "row %d (%s): match, %d outputs bit for bit\n", i, desc, len(job.Task.Outputs))
		} else {
			bad++
			fmt.Fprintf(stdout, "row %d (%s): MISMATCH: %s\n", i, desc, strings.Join(diffs, "; "))
		}
	}
	if bad > 0 {
		return &exitError{code: 1, err: fmt.Errorf("%d of %d rows do not reproduce", bad, len(rows))}
	}
	return nil
}

// rerunSegment is what re-executing rows of one segment needs.
type rerunSegment struct {
	job              *jobs.Job
	jobFile, program string
	args             []string
	workdir          string
	changed          []string // input files and script whose content differs from the record
}

func newRerunSegment(prov results.Provenance, i int, tmp, program, file string, stderr io.Writer) (*rerunSegment, error) {
	seg, err := prov.Segment(i)
	if err != nil {
		return nil, err
	}
	job, err := jobs.Parse(seg.JobFile, []byte(seg.JobText))
	if err != nil {
		return nil, fmt.Errorf("the job text of segment %d in %s does not parse: %w", i, file, err)
	}
	s := &rerunSegment{job: job, jobFile: filepath.Join(tmp, fmt.Sprintf("job-%d.toml", i)), program: program, workdir: "."}
	if err := os.WriteFile(s.jobFile, []byte(seg.JobText), 0o644); err != nil {
		return nil, err
	}
	if s.program == "" {
		s.program = seg.Program
	}
	if job.Task.Command != "" {
		// Shell tasks run through rankhub itself; the provenance names the
		// command's executable, checked below.
		if s.program, err = os.Executable(); err != nil {
			return nil, err
		}
		s.args = []string{"rank"}
	}
	if sum, err := results.FileSHA256(seg.Program); err != nil {
		fmt.Fprintf(stderr, "warning: the program of segment %d, %s, cannot be read (%v): results may differ\n", i, seg.Program, err)
	} else if sum != seg.ProgramSHA256 {
		fmt.Fprintf(stderr, "warning: %s changed since segment %d ran (SHA-256 %.12s, recorded %.12s): results may differ\n", seg.Program, i, sum, seg.ProgramSHA256)
	}
	if seg.JobFile != "" {
		if st, err := os.Stat(filepath.Dir(filepath.Dir(filepath.Dir(seg.JobFile)))); err == nil && st.IsDir() && strings.Contains(seg.JobFile, launcher.JobDirRoot) {
			s.workdir = filepath.Dir(filepath.Dir(filepath.Dir(seg.JobFile)))
		}
	}
	// The files the tasks read and the script, checked first: a changed
	// one explains a mismatch before any row runs.
	s.changed = changedSince(seg, s.workdir)
	if len(s.changed) > 0 {
		fmt.Fprintf(stderr, "warning: changed since segment %d ran (results may differ): %s\n", i, strings.Join(s.changed, "; "))
	}
	return s, nil
}

// changedSince names the input files (relative to workdir) and the script
// of seg whose SHA-256 differs now, or that cannot be read.
func changedSince(seg results.Segment, workdir string) []string {
	var out []string
	check := func(what, path, recorded string) {
		p := path
		if !filepath.IsAbs(p) {
			p = filepath.Join(workdir, p)
		}
		sum, err := results.FileSHA256(p)
		switch {
		case err != nil:
			out = append(out, fmt.Sprintf("%s %s (cannot be read: %v)", what, path, err))
		case sum != recorded:
			out = append(out, fmt.Sprintf("%s %s (SHA-256 %.12s…, recorded %.12s…)", what, path, sum, recorded))
		}
	}
	names := make([]string, 0, len(seg.Inputs))
	for f := range seg.Inputs {
		names = append(names, f)
	}
	slices.Sort(names)
	for _, f := range names {
		check("input", f, seg.Inputs[f])
	}
	if seg.Script != "" && seg.ScriptSHA256 != "" {
		check("script", seg.Script, seg.ScriptSHA256)
	}
	return out
}

func describe(job *jobs.Job, row results.Row) string {
	parts := []string{fmt.Sprintf("task %d", row.Task)}
	for i, p := range job.Sweep.Params {
		if i < len(row.Values) {
			parts = append(parts, p.Name+"="+row.Values[i].Format(p.Kind))
		}
	}
	parts = append(parts, fmt.Sprintf("replicate %d", row.Replicate), fmt.Sprintf("seed %d", row.Seed))
	return strings.Join(parts, " ")
}

// sameBits tells whether a list of bit patterns is the list of numbers.
func sameBits(bits []uint64, vals []float64) bool {
	if len(bits) != len(vals) {
		return false
	}
	for i, b := range bits {
		if b != math.Float64bits(vals[i]) {
			return false
		}
	}
	return true
}

func listLen[T any](l [][]T, j int) int {
	if j < len(l) {
		return len(l[j])
	}
	return 0
}
