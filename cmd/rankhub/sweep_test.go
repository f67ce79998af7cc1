package main

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rankhub/rankhub/jobdir"
	"github.com/rankhub/rankhub/results"
)

const shellSweep = `[job]
name = "sh"
ranks = 3
seed = 5

[task]
# x = 3 fails with exit status 3; x = 5 prints no numbers.
command = '''if [ {x} -eq 3 ]; then echo boom >&2; exit 3; fi; if [ {x} -eq 5 ]; then echo oops; exit 0; fi; echo "seed {seed}" >&2; echo {x} $(( {x} * {k} ))'''
outputs = ["xo", "y"]

[sweep]
x = [1, 2, 3, 4, 5, 6]
k = [10, 20]
replicates = 2

[results]
path = "sh.arrow"
group_by = ["k"]
`

func TestShellSweepRowsPeekRerunResume(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "sh.toml"), []byte(shellSweep), 0o644)
	r := rh(t, dir, "run", "sh.toml")
	// Every task has a row, 8 of them failed: the driver says so, and the
	// run ends tasks-failed (3), in status.json too.
	if r.code != 3 || !strings.Contains(r.stderr, "8 of 24 tasks failed") {
		t.Fatalf("run: %+v", r)
	}
	jd := onlyJobDir(t, dir)
	if st, err := jd.ReadStatus(); err != nil || st.Outcome != jobdir.TasksFailed {
		t.Fatalf("status.json: %+v %v", st, err)
	}
	// The result file and progress.json follow the job directory's modes.
	for _, p := range []string{filepath.Join(dir, "sh.arrow"), jd.File(jobdir.ProgressFile)} {
		if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v %v, want mode 0600", p, fi.Mode(), err)
		}
	}
	f, err := results.Open(filepath.Join(dir, "sh.arrow"))
	if err != nil {
		t.Fatal(err)
	}
	rows := f.Rows()
	f.Close()
	if len(rows) != 24 {
		t.Fatalf("%d rows, want 24", len(rows))
	}
	failed := 0
	for _, row := range rows {
		x := row.Values[0].Int
		switch x {
		case 3:
			failed++
			if row.ExitStatus != 3 || !strings.Contains(row.Err, "boom") {
				t.Errorf("x=3: exit %d, error %q", row.ExitStatus, row.Err)
			}
		case 5:
			failed++
			if row.ExitStatus != 0 || !strings.Contains(row.Err, "last line of stdout has 1 field(s), want 2") {
				t.Errorf("x=5: exit %d, error %q", row.ExitStatus, row.Err)
			}
		default:
			if row.Err != "" || row.Outputs[0] != float64(x) || row.Outputs[1] != float64(x*row.Values[1].Int) {
				t.Errorf("x=%d k=%d: %+v", x, row.Values[1].Int, row)
			}
			// The task's own words are in its row.
			if row.Stdout != fmt.Sprintf("%d %d\n", x, x*row.Values[1].Int) || row.Stderr != fmt.Sprintf("seed %d\n", row.Seed) {
				t.Errorf("x=%d: stdout %q, stderr %q", x, row.Stdout, row.Stderr)
			}
		}
	}
	if failed != 8 {
		t.Fatalf("%d failed rows, want 8", failed)
	}
	// peek groups by the job's group_by and counts failures per group.
	r = rh(t, dir, "peek", "sh.arrow", "--plot", "y.svg", "--x", "x", "--y", "y")
	if r.code != 0 || !strings.Contains(r.stdout, "rows") || !strings.Contains(r.stdout, "failed") {
		t.Fatalf("peek: %+v", r)
	}
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 3 || !strings.HasPrefix(strings.Fields(lines[1])[0], "10") || strings.Fields(lines[1])[2] != "4" {
		t.Fatalf("peek table:\n%s", r.stdout)
	}
	svg, err := os.ReadFile(filepath.Join(dir, "y.svg"))
	if err != nil || xml.Unmarshal(svg, new(struct{ XMLName xml.Name })) != nil || strings.Count(string(svg), "k=") < 2 {
		t.Fatalf("plot: %v, %d bytes, %d series labels", err, len(svg), strings.Count(string(svg), "k="))
	}
	if r := rh(t, dir, "peek", "sh.arrow", "--format", "csv", "--by", "x"); r.code != 0 || !strings.HasPrefix(r.stdout, "x,") {
		t.Fatalf("csv: %+v", r)
	}
	if r := rh(t, dir, "peek", "sh.arrow", "--by", "nope"); r.code == 0 || !strings.Contains(r.stderr, "nope") {
		t.Fatalf("bad --by: %+v", r)
	}
	// Re-executing rows from the file alone reproduces them bit for bit.
	if r := rh(t, dir, "rerun", "sh.arrow", "--row", "0", "--sample", "4"); r.code != 0 || strings.Count(r.stdout, "match") != 5 {
		t.Fatalf("rerun: %+v", r)
	}
	// Nothing is overwritten; --resume with nothing missing runs nothing.
	if r := rh(t, dir, "run", "sh.toml"); r.code == 0 || !strings.Contains(r.stderr, "already exists") {
		t.Fatalf("second run: %+v", r)
	}
	if r := rh(t, dir, "run", "--resume", "sh.toml"); r.code != 0 {
		t.Fatalf("resume: %+v", r)
	}
	f, _ = results.Open(filepath.Join(dir, "sh.arrow"))
	if n := f.NumRows(); n != 24 {
		t.Fatalf("%d rows after an empty resume", n)
	}
	f.Close()
	// Growth: a value added in front and one more replicate run the 16 new
	// tasks only, without --force; rows of every segment reproduce.
	grown := strings.Replace(strings.Replace(shellSweep, "x = [1, 2, 3, 4, 5, 6]", "x = [7, 1, 2, 3, 4, 5, 6]", 1), "replicates = 2", "replicates = 3", 1)
	os.WriteFile(filepath.Join(dir, "sh.toml"), []byte(grown), 0o644)
	if r := rh(t, dir, "run", "--resume", "sh.toml"); r.code != 3 || !strings.Contains(r.stderr, "4 of 18 tasks failed") {
		t.Fatalf("grown resume: %+v", r)
	}
	f, _ = results.Open(filepath.Join(dir, "sh.arrow"))
	rows = f.Rows()
	f.Close()
	if len(rows) != 42 || rows[0].Segment != 0 || rows[41].Segment != 2 {
		t.Fatalf("%d rows after growth (first segment %d, last %d), want 42", len(rows), rows[0].Segment, rows[len(rows)-1].Segment)
	}
	last := "41"
	for i, row := range rows {
		if row.Segment == 2 && row.Err == "" {
			last = strconv.Itoa(i)
		}
	}
	if r := rh(t, dir, "rerun", "sh.arrow", "--row", "0", "--row", last, "--row", "25"); r.code != 0 || strings.Count(r.stdout, "match") != 3 ||
		!strings.Contains(r.stdout, "segment 2") {
		t.Fatalf("rerun across segments: %+v", r)
	}
	// A new parameter without a default is refused before any rank starts.
	os.WriteFile(filepath.Join(dir, "sh.toml"), []byte(strings.Replace(grown, "replicates = 3", "q = [1]\nreplicates = 3", 1)), 0o644)
	if r := rh(t, dir, "run", "--resume", "sh.toml"); r.code == 0 || !strings.Contains(r.stderr, "sh.toml:14:1: sweep.q: new parameter without a default") ||
		strings.Contains(r.stderr, "[rank") {
		t.Fatalf("resume with a new parameter without a default: %+v", r)
	}
	if r := rh(t, dir, "results", "recover", "sh.arrow"); r.code != 0 || !strings.Contains(r.stdout, "42 rows kept") {
		t.Fatalf("recover: %+v", r)
	}
}

// The walltime warning closes a sweep's file with the rows done so far.
// SLURM may send it up to 60 s early (sbatch(1)): the walltime leaves a
// minute more than the lead, so it comes 5 to 65 s in, after some rows and
// before the 1000 tasks (250 s on 2 engines) are done.
func TestSweepOnSLURMWalltimeWarningClosesResults(t *testing.T) {
	needSLURM(t)
	dir := t.TempDir()
	job := `[job]
name = "longsweep"
scheduler = "slurm"
partition = "debug"
ranks = 3
walltime = "2m"
signal_lead = "55s"

[task]
command = "sleep 0.5; echo {i}"
outputs = ["v"]

[sweep]
i = { start = 0, stop = 999, step = 1 }

[results]
path = "long.arrow"
flush_rows = 4
`
	os.WriteFile(filepath.Join(dir, "long.toml"), []byte(job), 0o644)
	r := rh(t, dir, "submit", "long.toml")
	if r.code != 0 {
		t.Fatalf("submit: %+v", r)
	}
	id := strings.TrimSpace(r.stdout)
	r = rhFor(t, dir, 160*time.Second, nil, "wait", "--timeout", "150s", id)
	dirs, _ := filepath.Glob(filepath.Join(dir, ".rankhub", "longsweep-*"))
	if len(dirs) != 1 {
		t.Fatalf("job directories %v", dirs)
	}
	end := endStatus(dirs[0])
	if !strings.Contains(end, `"signalled"`) || !strings.Contains(end, "walltime warning") {
		out, _ := os.ReadFile(filepath.Join(dirs[0], "slurm-"+id+".out"))
		t.Fatalf("wait: %+v\nend status %q\njob output:\n%s", r, end, out)
	}
	f, err := results.Open(filepath.Join(dir, "long.arrow"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, ok := f.Status()
	if !f.Complete() || !ok || st.State != "interrupted" || f.NumRows() == 0 || f.NumRows() >= 1000 {
		t.Fatalf("results: complete %v, status %+v, %d rows", f.Complete(), st, f.NumRows())
	}
	if r := rh(t, dir, "status", id); !strings.Contains(r.stdout, "walltime warning") {
		t.Fatalf("status does not show why the job ended:\n%s", r.stdout)
	}
	t.Logf("%d rows written and the file closed before the walltime; scheduler: %s", f.NumRows(), strings.TrimSpace(r.stdout))
}

// A sweep whose every engine dies (here each task from i = 20 on kills the
// engine that runs it) stops early: the rows that arrived are kept, the
// run ends incomplete (4), in status.json too, and --resume would run the
// rest.
func TestSweepEveryEngineKilledExits4(t *testing.T) {
	dir := t.TempDir()
	job := strings.NewReplacer(`name = "slow"`, `name = "doomed"`, `slow.arrow`, `doomed.arrow`,
		`command = "sleep 0.05; echo {i}"`, `command = "sleep 0.05; if [ {i} -ge 20 ]; then kill -9 $PPID; sleep 5; fi; echo {i}"`).Replace(slowSweep)
	os.WriteFile(filepath.Join(dir, "doomed.toml"), []byte(job), 0o644)
	r := rh(t, dir, "run", "doomed.toml")
	if r.code != 4 || !strings.Contains(r.stderr, "incomplete") {
		t.Fatalf("run: %+v", r)
	}
	jd := onlyJobDir(t, dir)
	if st, err := jd.ReadStatus(); err != nil || st.Outcome != jobdir.Incomplete || !strings.Contains(st.Reason, "every engine died") {
		t.Fatalf("status.json: %+v %v", st, err)
	}
	f, err := results.Open(filepath.Join(dir, "doomed.arrow"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if n := f.NumRows(); n < 20 || n >= 400 {
		t.Fatalf("%d rows, want the first 20 at least and not all 400", n)
	}
}

// onlyJobDir is the one job directory under dir.
func onlyJobDir(t *testing.T, dir string) jobdir.Dir {
	t.Helper()
	jds, _ := filepath.Glob(filepath.Join(dir, ".rankhub", "*"))
	if len(jds) != 1 {
		t.Fatalf("job directories %v", jds)
	}
	jd, err := jobdir.Open(jds[0])
	if err != nil {
		t.Fatal(err)
	}
	return jd
}

// A simulation as physicists write them: a comment header (version,
// parameters, seed), the result line, a trailing comment. Issue 11 point 1.
const simScript = `#!/bin/sh
echo "# sim 1.3.0"
echo "# params L=$1 T=$2"
echo "# seed $3"
echo "$1 $(( $1 * 2 ))"
echo "# wall time 3.2s"
echo "% note energy=7" >&2
`

const simSweep = `[job]
name = "sim"
ranks = 2

[task]
command = "sh sim.sh {L} {T} {seed}"
outputs = ["lo", "energy"]

[sweep]
L = [4, 8]
T = [1, 2]

[results]
path = "sim.arrow"
`

func TestShellSweepCommentsKeptAndIgnored(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "sim.sh"), []byte(simScript), 0o644)
	rows := runRows(t, dir, "sim", simSweep, 4)
	for _, row := range rows {
		L := row.Values[0].Int
		if row.Err != "" || row.Outputs[0] != float64(L) || row.Outputs[1] != float64(2*L) {
			t.Errorf("L=%d: error %q, outputs %v", L, row.Err, row.Outputs)
		}
		for _, want := range []string{"# sim 1.3.0\n", fmt.Sprintf("# seed %d\n", row.Seed), "# wall time 3.2s\n"} {
			if !strings.Contains(row.Stdout, want) {
				t.Errorf("L=%d: stdout %q lacks %q", L, row.Stdout, want)
			}
		}
	}
	// [results] text_limit bounds what a row keeps, head and tail.
	short := strings.Replace(strings.Replace(simSweep, "sim.arrow", "short.arrow", 1), "[results]\n", "[results]\ntext_limit = 64\n", 1)
	for _, row := range runRows(t, dir, "short", short, 4) {
		if len(row.Stdout) > 64 || !strings.HasPrefix(row.Stdout, "# sim") || !strings.HasSuffix(row.Stdout, "3.2s\n") || !strings.Contains(row.Stdout, "bytes cut]") {
			t.Errorf("text_limit 64: stdout %q", row.Stdout)
		}
	}
	// results show prints the simulation's own words with the row.
	r := rh(t, dir, "results", "show", "sim.arrow", "--row", "1")
	if r.code != 0 || !strings.Contains(r.stdout, "# sim 1.3.0") || !strings.Contains(r.stdout, "# wall time 3.2s") || !strings.Contains(r.stdout, "% note energy=7") {
		t.Fatalf("results show: %+v", r)
	}
	// Another comment prefix, and the key-value rule: a pair inside a
	// comment line is not an output.
	kv := strings.Replace(strings.Replace(simSweep, `outputs = ["lo", "energy"]`, "outputs = [\"energy\"]\nparse = \"key-value\"\ncomment = \"%\"", 1),
		`command = "sh sim.sh {L} {T} {seed}"`, `command = "echo '% energy=99'; echo energy={L}; echo '  %energy=98'"`, 1)
	os.WriteFile(filepath.Join(dir, "kv.toml"), []byte(strings.Replace(kv, "sim.arrow", "kv.arrow", 1)), 0o644)
	if r := rh(t, dir, "run", "kv.toml"); r.code != 0 {
		t.Fatalf("run: %+v", r)
	}
	for _, row := range fileRows(t, filepath.Join(dir, "kv.arrow")) {
		if row.Err != "" || row.Outputs[0] != float64(row.Values[0].Int) {
			t.Errorf("key-value with comments: L=%d: error %q, outputs %v", row.Values[0].Int, row.Err, row.Outputs)
		}
	}
}

// fileRows is every row of the result file at path.
func fileRows(t *testing.T, path string) []results.Row {
	t.Helper()
	f, err := results.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	return f.Rows()
}

// Issue 11 point 2: the files a task reads (stdin, inputs) and the script
// its command runs are hashed into the run's segment; rerun names every
// file that changed; --resume refuses changed inputs unless --force.
func TestShellSweepInputsAndScriptInProvenance(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "tables"), 0o755)
	write := func(name, text string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("input.txt", "3\n")
	write("tables/a.dat", "10\n")
	write("tables/b.dat", "20\n")
	write("sim.sh", "read k\necho \"# k $k\"\necho $(( $1 * k + $(cat tables/a.dat) + $(cat tables/b.dat) ))\n")
	job := `[job]
name = "inputs"
ranks = 2

[task]
command = "sh sim.sh {L}"
stdin = "input.txt"
inputs = ["tables/*.dat"]
outputs = ["e"]

[sweep]
L = [1, 2]

[results]
path = "in.arrow"
`
	// A missing input is refused at its key before any rank starts.
	write("in.toml", strings.Replace(job, `"tables/*.dat"`, `"tables/*.dat", "nope/*.dat"`, 1))
	if r := rh(t, dir, "run", "in.toml"); r.code != 1 || !strings.Contains(r.stderr, "in.toml:8:1: task.inputs: ") ||
		!strings.Contains(r.stderr, `"nope/*.dat": no file matches`) || strings.Contains(r.stderr, "[rank") {
		t.Fatalf("missing input: %+v", r)
	}
	write("in.toml", job)
	if r := rh(t, dir, "run", "in.toml"); r.code != 0 {
		t.Fatalf("run: %+v", r)
	}
	f, err := results.Open(filepath.Join(dir, "in.arrow"))
	if err != nil {
		t.Fatal(err)
	}
	rows, prov := f.Rows(), f.Provenance()
	f.Close()
	for _, row := range rows {
		if want := float64(3*row.Values[0].Int + 30); row.Err != "" || row.Outputs[0] != want {
			t.Fatalf("L=%d: %q %v, want %v (stdin and inputs read)", row.Values[0].Int, row.Err, row.Outputs, want)
		}
	}
	seg, _ := prov.Segment(0)
	sum := func(name string) string {
		s, err := results.FileSHA256(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	if len(seg.Inputs) != 3 || seg.Inputs["input.txt"] != sum("input.txt") || seg.Inputs["tables/b.dat"] != sum("tables/b.dat") {
		t.Fatalf("segment inputs %v", seg.Inputs)
	}
	if filepath.Base(seg.Script) != "sim.sh" || seg.ScriptSHA256 != sum("sim.sh") || prov.ScriptSHA256 != seg.ScriptSHA256 {
		t.Fatalf("script %q %q", seg.Script, seg.ScriptSHA256)
	}
	if r := rh(t, dir, "rerun", "in.arrow", "--row", "0", "--row", "1"); r.code != 0 || strings.Count(r.stdout, "match") != 2 {
		t.Fatalf("rerun: %+v", r)
	}
	// A changed input and an edited script: rerun names both before the
	// mismatch.
	write("input.txt", "4\n")
	write("sim.sh", "# edited\nread k\necho $(( $1 * k + $(cat tables/a.dat) + $(cat tables/b.dat) ))\n")
	r := rh(t, dir, "rerun", "in.arrow", "--row", "0")
	if r.code == 0 || !strings.Contains(r.stdout, "MISMATCH") || !strings.Contains(r.stdout+r.stderr, "input.txt") ||
		!strings.Contains(r.stdout+r.stderr, "sim.sh") || strings.Contains(r.stdout+r.stderr, "a.dat") {
		t.Fatalf("rerun after edits: %+v", r)
	}
	// Growing the sweep with a changed input is refused, naming it;
	// --force goes on and records the change in the segment.
	write("in.toml", strings.Replace(job, "L = [1, 2]", "L = [1, 2, 3]", 1))
	r = rh(t, dir, "run", "--resume", "in.toml")
	if r.code != 1 || !strings.Contains(r.stderr, "input input.txt") || !strings.Contains(r.stderr, "script ") || strings.Contains(r.stderr, "[rank") {
		t.Fatalf("resume with changed inputs: %+v", r)
	}
	if r := rh(t, dir, "run", "--resume", "--force", "in.toml"); r.code != 0 {
		t.Fatalf("forced resume: %+v", r)
	}
	f, _ = results.Open(filepath.Join(dir, "in.arrow"))
	defer f.Close()
	seg1, err := f.Provenance().Segment(1)
	if err != nil || f.NumRows() != 3 || !seg1.Forced || seg1.Inputs["input.txt"] != sum("input.txt") || !strings.Contains(strings.Join(seg1.Changes, ";"), "input.txt") {
		t.Fatalf("segment 1 %+v %v, %d rows", seg1, err, f.NumRows())
	}
	// results show gives a row's own run: segment, script, inputs.
	for row, want := range map[string][]string{"0": {"segment      0 of 2", "input        input.txt (SHA-256 " + seg.Inputs["input.txt"], "script       " + seg.Script + " (SHA-256 " + seg.ScriptSHA256},
		"2": {"segment      1 of 2", "forced       ", "input        input.txt (SHA-256 " + sum("input.txt"), "L = [1, 2, 3]"}} {
		r := rh(t, dir, "results", "show", "in.arrow", "--row", row)
		for _, w := range want {
			if r.code != 0 || !strings.Contains(r.stdout, w) {
				t.Errorf("results show --row %s lacks %q: %+v", row, w, r)
			}
		}
	}
}

// parse = "table": a task printing a 4-line `r C(r)` table (with comment
// lines around it) gets list columns; peek averages them element-wise,
// export and rerun see every element. Issue 11 point 1.
func TestShellSweepTableOutputs(t *testing.T) {
	dir := t.TempDir()
	job := `[job]
name = "corr"
ranks = 2

[task]
command = '''echo "# corr 0.1 L={L}"; for r in 1 2 3 4; do echo "$r $(( {L} * r + {replicate} ))"; done; echo "# done"'''
parse = "table"
outputs = ["r", "C"]

[sweep]
L = [10, 20]
replicates = 3

[results]
path = "corr.arrow"
group_by = ["L"]
`
	rows := runRows(t, dir, "corr", job, 6)
	for _, row := range rows {
		L, rep := int(row.Values[0].Int), row.Replicate
		if row.Err != "" || len(row.Lists) != 2 || fmt.Sprint(row.Lists[0]) != "[1 2 3 4]" ||
			fmt.Sprint(row.Lists[1]) != fmt.Sprint([]int{L + rep, 2*L + rep, 3*L + rep, 4*L + rep}) {
			t.Fatalf("L=%d replicate %d: %q %v", L, rep, row.Err, row.Lists)
		}
	}
	// Element-wise means over the 3 replicates: C[e] = (e+1)·L + 1.
	r := rh(t, dir, "peek", "corr.arrow", "--format", "json")
	var got struct {
		Groups []struct {
			Key   []any `json:"key"`
			Stats map[string]struct {
				N    int     `json:"n"`
				Mean float64 `json:"mean"`
			} `json:"stats"`
		} `json:"groups"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil || r.code != 0 || len(got.Groups) != 2 {
		t.Fatalf("peek: %v %+v", err, r)
	}
	for _, g := range got.Groups {
		L := g.Key[0].(float64)
		for e := range 4 {
			c, rr := g.Stats[fmt.Sprintf("C[%d]", e)], g.Stats[fmt.Sprintf("r[%d]", e)]
			if c.N != 3 || c.Mean != float64(e+1)*L+1 || rr.Mean != float64(e+1) {
				t.Fatalf("L=%v element %d: C %+v, r %+v\n%s", L, e, c, rr, r.stdout)
			}
		}
	}
	if r := rh(t, dir, "results", "export", "corr.arrow", "--columns", "L,replicate,C"); r.code != 0 || !strings.Contains(r.stdout, "10\t0\t10,20,30,40\n") {
		t.Fatalf("export: %+v", r)
	}
	if r := rh(t, dir, "rerun", "corr.arrow", "--sample", "3"); r.code != 0 || strings.Count(r.stdout, "match, 2 outputs") != 3 {
		t.Fatalf("rerun: %+v", r)
	}
	if r := rh(t, dir, "results", "show", "corr.arrow", "--row", "0"); r.code != 0 || !strings.Contains(r.stdout, "# corr 0.1") ||
		!strings.Contains(r.stdout, "  r            1 2 3 4\n") {
		t.Fatalf("show: %+v", r)
	}
}

// runRows runs the job text as name.toml in dir, which must succeed, and
// returns the n rows of its result file name.arrow.
func runRows(t *testing.T, dir, name, text string, n int) []results.Row {
	t.Helper()
	os.WriteFile(filepath.Join(dir, name+".toml"), []byte(text), 0o644)
	if r := rh(t, dir, "run", name+".toml"); r.code != 0 {
		t.Fatalf("run: %+v", r)
	}
	rows := fileRows(t, filepath.Join(dir, name+".arrow"))
	if len(rows) != n {
		t.Fatalf("%d rows, want %d", len(rows), n)
	}
	return rows
}
