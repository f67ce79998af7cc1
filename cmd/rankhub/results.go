package main

import (
	"flag"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/rankhub/rankhub/results"
	"github.com/rankhub/rankhub/results/export"
)

type resultsFlags struct {
	format, columns, out string
	row                  int
}

func newResultsFlags(fl *resultsFlags) *flag.FlagSet {
	fs := flag.NewFlagSet("results", flag.ContinueOnError)
	fs.StringVar(&fl.format, "format", "tsv", "export: "+strings.Join(export.Formats, ", "))
	fs.StringVar(&fl.columns, "columns", "", "export: only these columns, comma separated, in this order (default: all)")
	fs.StringVar(&fl.out, "o", "", "export: write to this file instead of stdout")
	fs.IntVar(&fl.row, "row", -1, "show: the row number in the file (0-based)")
	return fs
}

func init() {
	register(&command{name: "results", summary: "result files: export rows for other tools, show one row in full, recover a killed writer's file",
		usage: "export FILE... [--format tsv|csv|json|parquet] [--columns a,b] [-o OUT] | show FILE --row N | recover FILE",
		run:   runResults})
	flagSets["results"] = func() *flag.FlagSet { return newResultsFlags(&resultsFlags{}) }
}

// parseMixed parses flags given before, between or after the positional
// arguments, which it returns.
func parseMixed(name string, fs *flag.FlagSet, args []string, stdout io.Writer) ([]string, error) {
	var pos []string
	for {
		if err := parseFlags(name, fs, args, stdout); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// openAll opens result files and prints what each leaves out to stderr.
func openAll(cmd string, files []string, stderr io.Writer) ([]*results.Reader, func(), error) {
	var rs []*results.Reader
	closeAll := func() {
		for _, r := range rs {
			r.Close()
		}
	}
	for _, f := range files {
		r, err := results.Open(f)
		if err != nil {
			closeAll()
			return nil, nil, err
		}
		for _, p := range r.Problems() {
			fmt.Fprintf(stderr, "rankhub %s: warning: %s\n", cmd, p)
		}
		rs = append(rs, r)
	}
	return rs, closeAll, nil
}

func runResults(args []string, stdout, stderr io.Writer) error {
	var fl resultsFlags
	fs := newResultsFlags(&fl)
	pos, err := parseMixed("results", fs, args, stdout)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		return &usageError{msg: "want: rankhub results export|show|recover FILE..."}
	}
	switch sub, files := pos[0], pos[1:]; sub {
	case "recover":
		if len(files) != 1 {
			return &usageError{msg: "want: rankhub results recover FILE"}
		}
		return recoverFile(files[0], stdout, stderr)
	case "export":
		if len(files) == 0 {
			return &usageError{msg: "want: rankhub results export FILE... [--format tsv|csv|json|parquet] [--columns a,b] [-o OUT]"}
		}
		return exportFiles(files, fl, stdout, stderr)
	case "show":
		if len(files) != 1 || fl.row < 0 {
			return &usageError{msg: "want: rankhub results show FILE --row N"}
		}
		return showRow(files[0], fl.row, stdout, stderr)
	default:
		return &usageError{msg: fmt.Sprintf("unknown results command %q: use export, show or recover", sub)}
	}
}

func recoverFile(path string, stdout, stderr io.Writer) error {
	r, err := results.Open(path)
	if err != nil {
		return err
	}
	problems := r.Problems()
	r.Close()
	for _, p := range problems {
		fmt.Fprintf(stderr, "rankhub results recover: dropping: %s\n", p)
	}
	kept, err := results.Recover(path)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: recovered, %d rows kept\n", path, kept)
	return nil
}

func exportFiles(files []string, fl resultsFlags, stdout, stderr io.Writer) (err error) {
	var cols []string
	for _, c := range strings.Split(fl.columns, ",") {
		if c = strings.TrimSpace(c); c != "" {
			cols = append(cols, c)
		}
	}
	rs, closeAll, err := openAll("results export", files, stderr)
	if err != nil {
		return err
	}
	defer closeAll()
	out := stdout
	if fl.out != "" {
		// Written next to the target and renamed, so a failed export
		// leaves no partial file under the name asked for.
		f, err := os.CreateTemp(filepath.Dir(fl.out), "."+filepath.Base(fl.out)+".tmp-*")
		if err != nil {
			return err
		}
		defer func() {
			if err != nil {
				f.Close()
				os.Remove(f.Name())
				return
			}
			if err = f.Close(); err == nil {
				err = os.Rename(f.Name(), fl.out)
			}
		}()
		if err := f.Chmod(0o644); err != nil {
			return err
		}
		out = f
	}
	if err := export.Write(out, rs, fl.format, cols); err != nil {
		if strings.HasPrefix(err.Error(), "export: format") {
			return &usageError{msg: err.Error()}
		}
		return err
	}
	return nil
}

func showRow(path string, row int, stdout, stderr io.Writer) error {
	rs, closeAll, err := openAll("results show", []string{path}, stderr)
	if err != nil {
		return err
	}
	defer closeAll()
	r := rs[0]
	rows := r.Rows()
	if row >= len(rows) {
		return fmt.Errorf("%s: row %d: the file has %d rows", path, row, len(rows))
	}
	x := rows[row]
	w := &errWriter{w: stdout}
	w.printf("row %d of %s\n", row, path)
	w.printf("  task         %d\n", x.Task)
	kinds := r.ParamKinds()
	for i, p := range r.Params() {
		w.printf("  %-12s %s\n", p, x.Values[i].Format(kinds[i]))
	}
	w.printf("  replicate    %d\n  seed         %d\n  rank         %d on %s\n", x.Replicate, x.Seed, x.Rank, x.Host)
	w.printf("  started      %s\n  finished     %s (%s)\n", x.Started.Format("2006-01-02T15:04:05.000000Z07:00"),
		x.Finished.Format("2006-01-02T15:04:05.000000Z07:00"), x.Finished.Sub(x.Started))
	w.printf("  attempt      %d\n  exit status  %d\n", x.Attempt, x.ExitStatus)
	if x.Err != "" {
		w.printf("  error        %s\n", indent(x.Err))
	}
	w.printf("outputs\n")
	for i, o := range r.Outputs() {
		v := "missing"
		switch {
		case i < len(x.Lists) && x.Lists[i] != nil: // parse = "table"
			v = strings.Trim(fmt.Sprint(x.Lists[i]), "[]")
		case !math.IsNaN(x.Outputs[i]):
			v = fmt.Sprint(x.Outputs[i])
		}
		w.printf("  %-12s %s\n", o, v)
	}
	for _, t := range []struct{ name, text string }{{"stdout", x.Stdout}, {"stderr", x.Stderr}} {
		if t.text != "" {
			w.printf("%s\n%s", t.name, indentBlock(t.text))
		}
	}
	p := r.Provenance()
	run, resumed := r.RunOf(row)
	w.printf("run\n")
	if resumed {
		w.printf("  a resume of the file (after %d rows), started %s\n", run.RowsBefore, run.Started.Format("2006-01-02T15:04:05Z07:00"))
		w.printf("  job id       %s (%s)\n  hosts        %s\n", orDash(run.JobID), orDash(run.Scheduler), strings.Join(run.Hosts, " "))
		w.printf("  rankhub      %s, revision %s\n  program      %s (SHA-256 %s)\n", orDash(run.Version), orDash(run.Revision), p.Program, orDash(run.ProgramSHA256))
		if run.Forced {
			w.printf("  forced       the job text or the program differed from the file's\n")
		}
	} else {
		w.printf("  started      %s\n", p.Started.Format("2006-01-02T15:04:05Z07:00"))
		w.printf("  job id       %s (%s)\n  hosts        %s\n", orDash(p.JobID), orDash(p.Scheduler), strings.Join(p.Hosts, " "))
		w.printf("  rankhub      %s, revision %s, %s\n  program      %s (SHA-256 %s)\n", orDash(p.Version), orDash(p.Revision), p.GoVersion, p.Program, orDash(p.ProgramSHA256))
	}
	jobFile, seed, jobText, script, scriptSum, inputs := p.JobFile, p.Seed, p.JobText, p.Script, p.ScriptSHA256, p.Inputs
	if resumed && run.Inputs != nil {
		inputs = run.Inputs
	}
	if len(p.Segments) > 0 {
		// The row's own run: its job text, script and input files.
		if seg, err := p.Segment(x.Segment); err == nil {
			w.printf("  segment      %d of %d, started %s\n", seg.Index, len(p.Segments), seg.Started.Format("2006-01-02T15:04:05Z07:00"))
			if seg.Forced {
				w.printf("  forced       %s\n", indent(strings.Join(seg.Changes, "\n")))
			}
			jobFile, seed, jobText, script, scriptSum, inputs = seg.JobFile, seg.Seed, seg.JobText, seg.Script, seg.ScriptSHA256, seg.Inputs
		}
	}
	w.printf("  job file     %s; seed %d\n", orDash(jobFile), seed)
	if script != "" {
		w.printf("  script       %s (SHA-256 %s)\n", script, orDash(scriptSum))
	}
	for _, k := range slices.Sorted(maps.Keys(inputs)) {
		w.printf("  input        %s (SHA-256 %s)\n", k, inputs[k])
	}
	w.printf("job text\n%s", indentBlock(jobText))
	return w.err
}

// errWriter keeps the first write error.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) printf(format string, a ...any) {
	if e.err == nil {
		_, e.err = fmt.Fprintf(e.w, format, a...)
	}
}

// indent puts the continuation lines of s under its first.
func indent(s string) string {
	return strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n               ")
}

// indentBlock indents every line of s by four spaces.
func indentBlock(s string) string {
	if s == "" {
		return "    -\n"
	}
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return "    " + strings.Join(lines, "\n    ") + "\n"
}
