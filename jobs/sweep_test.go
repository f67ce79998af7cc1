package jobs

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
)

func mustParse(t *testing.T, src string) *Job {
	t.Helper()
	j, err := Parse("t.toml", []byte(src))
	if err != nil {
		t.Fatalf("Parse:\n%v", err)
	}
	return j
}

const sweepHead = "[job]\nranks = 2\nprogram = [\"./sim\"]\n[task]\nfunction = \"f\"\n[sweep]\n"

// describe renders a task as "name=value ... r=replicate".
func describe(j *Job, task Task) string {
	var parts []string
	for i, p := range j.Sweep.Params {
		parts = append(parts, p.Name+"="+task.Values[i].Format(p.Kind))
	}
	return strings.Join(append(parts, fmt.Sprintf("r=%d", task.Replicate)), " ")
}

func TestExpandOrder(t *testing.T) {
	j := mustParse(t, sweepHead+"L = [8, 16]\nT = [1.0, 2.5]\nreplicates = 2\n")
	want := []string{
		"L=8 T=1 r=0", "L=8 T=1 r=1", "L=8 T=2.5 r=0", "L=8 T=2.5 r=1",
		"L=16 T=1 r=0", "L=16 T=1 r=1", "L=16 T=2.5 r=0", "L=16 T=2.5 r=1",
	}
	tasks := j.Expand()
	if j.NumTasks() != len(want) || len(tasks) != len(want) {
		t.Fatalf("NumTasks %d, Expand %d tasks, want %d", j.NumTasks(), len(tasks), len(want))
	}
	for i, task := range tasks {
		if task.Index != i {
			t.Errorf("task %d has Index %d", i, task.Index)
		}
		if got := describe(j, task); got != want[i] {
			t.Errorf("task %d = %s, want %s", i, got, want[i])
		}
	}
	// The file order decides: swapping the keys swaps the fastest axis.
	j2 := mustParse(t, sweepHead+"T = [1.0, 2.5]\nL = [8, 16]\n")
	if got := describe(j2, j2.TaskAt(1)); got != "T=1 L=16 r=0" {
		t.Errorf("with T first, task 1 = %s", got)
	}
}

func TestExpandZip(t *testing.T) {
	j := mustParse(t, sweepHead+"a = [1, 2, 3]\nb = [\"x\", \"y\"]\nc = [10, 20, 30]\nzip = [[\"c\", \"a\"]]\n")
	want := []string{
		"a=1 b=x c=10 r=0", "a=1 b=y c=10 r=0",
		"a=2 b=x c=20 r=0", "a=2 b=y c=20 r=0",
		"a=3 b=x c=30 r=0", "a=3 b=y c=30 r=0",
	}
	if j.NumTasks() != 6 {
		t.Fatalf("NumTasks = %d, want 6", j.NumTasks())
	}
	for i, task := range j.Expand() {
		if got := describe(j, task); got != want[i] {
			t.Errorf("task %d = %s, want %s", i, got, want[i])
		}
	}
}

func TestNumTasksCounts(t *testing.T) {
	tests := []struct {
		sweep string
		want  int
	}{
		{"a = [1, 2, 3]\n", 3},
		{"a = [1, 2, 3]\nreplicates = 5\n", 15},
		{"a = [1, 2]\nb = [true, false]\nc = {start=0, stop=1, num=5}\n", 20},
		{"a = [1, 2]\nb = [3, 4]\nc = [5, 6]\nzip = [[\"a\", \"b\", \"c\"]]\nreplicates = 3\n", 6},
		{"a = [1, 2]\nb = [3, 4]\nc = [5, 6, 7]\nd = [8, 9, 10]\nzip = [[\"a\", \"b\"], [\"c\", \"d\"]]\n", 6},
		{"a = 7\n", 1},
	}
	for _, tc := range tests {
		j := mustParse(t, sweepHead+tc.sweep)
		if got := j.NumTasks(); got != tc.want {
			t.Errorf("%q: NumTasks = %d, want %d", tc.sweep, got, tc.want)
		}
		if got := len(j.Expand()); got != tc.want {
			t.Errorf("%q: len(Expand) = %d, want %d", tc.sweep, got, tc.want)
		}
	}
	// No sweep: one task with a [task], none without.
	if n := mustParse(t, "[job]\nranks = 2\n[task]\ncommand = \"true\"\n").NumTasks(); n != 1 {
		t.Errorf("task without sweep: NumTasks = %d, want 1", n)
	}
	if n := mustParse(t, "[job]\nranks = 2\n").NumTasks(); n != 0 {
		t.Errorf("no task: NumTasks = %d, want 0", n)
	}
}

func values(j *Job, name string) string {
	for _, p := range j.Sweep.Params {
		if p.Name == name {
			var out []string
			for _, v := range p.Values {
				out = append(out, v.Format(p.Kind))
			}
			return p.Kind.String() + " " + strings.Join(out, " ")
		}
	}
	return "missing"
}

func TestRanges(t *testing.T) {
	tests := []struct {
		def, want string
		warn      bool
	}{
		{"{start = 1.5, stop = 3.5, num = 9}", "float 1.5 1.75 2 2.25 2.5 2.75 3 3.25 3.5", false},
		{"{start = 0, stop = 1, num = 11}", "float 0 0.1 0.2 0.3 0.4 0.5 0.6 0.7 0.8 0.9 1", false},
		{"{start = 2, stop = 2, num = 1}", "float 2", false},
		{"{start = 3, stop = 1, num = 3}", "float 3 2 1", false},
		{"{start = 1e-3, stop = 1, num = 4, log = true}", "float 0.001 0.01 0.1 1", false},
		{"{start = 1, stop = 1000, num = 4, log = true}", "float 1 10 100 1000", false},
		{"{start = 1, stop = 16, num = 5, log = true}", "float 1 2 4 8 16", false},
		{"{start = 8, stop = 64, step = 8}", "int 8 16 24 32 40 48 56 64", false},
		{"{start = 10, stop = 0, step = -5}", "int 10 5 0", false},
		{"{start = 0, stop = 10, step = 4}", "int 0 4 8 12", true}, // 10 is half a step from 12
		{"{start = 0, stop = 9, step = 4}", "int 0 4 8", true},
		{"{start = 0, stop = 1, step = 0.1}", "float 0 0.1 0.2 0.3 0.4 0.5 0.6 0.7 0.8 0.9 1", false},
		{"{start = 0.0, stop = 0.3, step = 0.1}", "float 0 0.1 0.2 0.3", false},
		{"{start = 0, stop = 1, step = 0.3}", "float 0 0.3 0.6 0.9", true},
		{"{start = 1, stop = 2, step = 1.0}", "float 1 2", false},
		{"[1, 2.5, 3]", "float 1 2.5 3", false},
		{"[\"a b\", \"c\"]", "string a b c", false},
		{"[true, false]", "bool true false", false},
		{"42", "int 42", false},
	}
	for _, tc := range tests {
		j := mustParse(t, sweepHead+"x = "+tc.def+"\n")
		if got := values(j, "x"); got != tc.want {
			t.Errorf("x = %s: got %s, want %s", tc.def, got, tc.want)
		}
		if warned := len(j.Warnings) > 0; warned != tc.warn {
			t.Errorf("x = %s: warnings %v, want a warning: %v", tc.def, j.Warnings, tc.warn)
		}
	}
	// The end points are exactly start and stop, and a log range is geometric.
	j := mustParse(t, sweepHead+"x = {start = 0.1, stop = 0.7, num = 7}\ny = {start = 2, stop = 2048, num = 11, log = true}\n")
	xs, ys := j.Sweep.Params[0].Values, j.Sweep.Params[1].Values
	if xs[0].Float != 0.1 || xs[6].Float != 0.7 {
		t.Errorf("end points %v, %v", xs[0].Float, xs[6].Float)
	}
	for i := 1; i < len(ys); i++ {
		if r := ys[i].Float / ys[i-1].Float; math.Abs(r-2) > 1e-12 {
			t.Errorf("log range ratio %d = %v, want 2", i, r)
		}
	}
}

func TestWarnings(t *testing.T) {
	j := mustParse(t, "[job]\nranks = 4\nranks_per_node = 8\n")
	want := []string{"t.toml:3:1: job.ranks_per_node: 8 is more than ranks (4): only 4 rank(s) will run per node"}
	var got []string
	for _, w := range j.Warnings {
		got = append(got, w.String())
	}
	if !slices.Equal(got, want) {
		t.Errorf("warnings %q, want %q", got, want)
	}
	j = mustParse(t, sweepHead+"x = {start = 0, stop = 1, step = 0.3}\n")
	if len(j.Warnings) != 1 || j.Warnings[0].String() != "t.toml:7:1: sweep.x: stop 1 is not on the grid start + k·step; the last value is 0.9" {
		t.Errorf("step warning: %v", j.Warnings)
	}
}

func TestArgs(t *testing.T) {
	j := mustParse(t, sweepHead+"L = [8]\nT = [2.5]\nm = [\"a\"]\nok = [true]\n")
	args := j.Args(j.TaskAt(0))
	want := map[string]any{"L": int64(8), "T": 2.5, "m": "a", "ok": true, "seed": TaskSeed(1, KeyID(`L=8;T=2.5;m="a";ok=true;`, 0)), "replicate": 0, "index": 0}
	if fmt.Sprint(args) != fmt.Sprint(want) {
		t.Errorf("Args = %v, want %v", args, want)
	}
}

// TestInMemoryJob checks that a job built in Go validates and expands
// without a file.
func TestInMemoryJob(t *testing.T) {
	j := &Job{
		Job:  JobSpec{Ranks: 3},
		Task: &TaskSpec{Command: "run {n}"},
		Sweep: &SweepSpec{Params: []Param{{Name: "n", Kind: KindInt, Values: []Value{{Int: 1}, {Int: 2}}}},
			Replicates: 2},
	}
	if n := j.NumTasks(); n != 4 {
		t.Errorf("before Validate: NumTasks = %d, want 4", n)
	}
	j.Defaults()
	if err := j.Validate(); err != nil {
		t.Fatal(err)
	}
	if j.Job.Name != "job" || j.Results.Path != "job.arrow" {
		t.Errorf("defaults: name %q, results %q", j.Job.Name, j.Results.Path)
	}
	cmd, err := j.Command(j.TaskAt(3))
	if err != nil || cmd != "run 2" {
		t.Errorf("Command = %q, %v", cmd, err)
	}
	j.Job.Ranks = 1
	err = j.Validate()
	if got := diagLines(t, err); !slices.Equal(got, []string{"job.ranks: 1 is too few: a job needs at least 2 ranks (rank 0 is the hub)"}) {
		t.Errorf("in-memory error: %q", got)
	}
}
