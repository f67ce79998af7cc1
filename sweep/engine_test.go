package sweep

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"
	"testing"

	"github.com/rankhub/rankhub/jobs"
	"github.com/rankhub/rankhub/views"
)

func TestParseOutputs(t *testing.T) {
	for _, tc := range []struct {
		rule, stdout string
		want         []float64
		err          string
	}{
		{"", "noise\n1 2.5\n\n", []float64{1, 2.5}, ""},
		{"", "1,2", []float64{1, 2}, ""},
		{"", "", nil, "stdout is empty"},
		{"", "1 2 3", nil, "has 3 field(s), want 2"},
		{"", "1 x", nil, `output b: "x" on the last line of stdout is not a number`},
		{"key-value", "a=1 b=2\nb=3", []float64{1, 3}, ""},
		{"key-value", "a=1", nil, "no name=value for b"},
		{"key-value", "a=1 b=zz", nil, `output b="zz" is not a number`},
		// Comment lines are not read, wherever they are.
		{"", "# sim 1.3.0\n1 2\n# wall time 3.2s\n  # indented\n\n", []float64{1, 2}, ""},
		{"", "# only\n# comments\n", nil, "no line but blanks and comments"},
		{"key-value", "# a=9 b=9\na=1 b=2\n  #b=8\n", []float64{1, 2}, ""},
	} {
		out := make([]float64, 2)
		err := ParseOutputs(tc.rule, "#", tc.stdout, []string{"a", "b"}, out)
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%s %q: error %v, want %q", tc.rule, tc.stdout, err, tc.err)
		case tc.err == "" && (err != nil || out[0] != tc.want[0] || out[1] != tc.want[1]):
			t.Errorf("%s %q: %v, %v, want %v", tc.rule, tc.stdout, out, err, tc.want)
		}
	}
}

// FuzzParseOutputs: any stdout gives outputs or an error, never a panic, and
// a parse that succeeds writes every output.
func FuzzParseOutputs(f *testing.F) {
	for _, s := range []string{"1 2", "a=1 b=2", "", "\n\n", "1,,2", "a==1 b=2=3", "nan inf", "1e999 -0"} {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, stdout string, kv bool) {
		rule := ""
		if kv {
			rule = "key-value"
		}
		out := []float64{-7, -7}
		if err := ParseOutputs(rule, "#", stdout, []string{"a", "b"}, out); err == nil {
			for _, v := range out {
				if v == -7 && !strings.Contains(stdout, "-7") {
					t.Fatalf("%q: success without writing every output: %v", stdout, out)
				}
			}
		}
	})
}

func engineJob(t *testing.T, task string) *jobs.Job {
	t.Helper()
	j, err := jobs.Parse("e.toml", []byte("[job]\nranks = 2\nseed = 5\nprogram = [\"./p\"]\n[task]\n"+task+"\noutputs = [\"y\"]\n[sweep]\nx = [1.5, 2.5]\nreplicates = 2\n"))
	if err != nil {
		t.Fatal(err)
	}
	return j
}

// TestExecChunkUsesTheViewsRegistry: a function registered with
// views.Register runs as a sweep task; its seed is the task's identity seed.
func TestExecChunkUsesTheViewsRegistry(t *testing.T) {
	views.MustRegister("sweep_test.double", func(p map[string]any) (map[string]float64, error) {
		return map[string]float64{"y": 2 * p["x"].(float64)}, nil
	})
	job := engineJob(t, `function = "sweep_test.double"`)
	res := ExecChunk(nil, job, []int64{1, 1, 0, 0, 2, 0, 0, -1})
	if res.Err[0] != "" || res.Out[0] != 5 || res.Index[0] != 3 || res.Err[1] != "" || res.Out[1] != 3 {
		t.Fatalf("results %+v", res)
	}
	for _, i := range []int{2, 3} {
		if !strings.Contains(res.Err[i], "outside the sweep") || !math.IsNaN(res.Out[i]) {
			t.Errorf("pair %d: %q %v", i, res.Err[i], res.Out[i])
		}
	}
	if _, err := RunChunk(nil, job, []int64{1}); err == nil {
		t.Error("an odd number of pair elements was accepted")
	}
	res = ExecChunk(nil, engineJob(t, `function = "nope"`), []int64{0, 0})
	if !strings.Contains(res.Err[0], `function "nope" is not registered`) {
		t.Errorf("unknown function: %q", res.Err[0])
	}
}

func TestExecChunkShell(t *testing.T) {
	job := engineJob(t, `command = "echo {x}; echo {seed} >&2; exit {replicate}"`)
	res := ExecChunk(nil, job, []int64{1, 0, 1, 1})
	if res.Err[0] != "" || res.Out[0] != 2.5 || res.Exit[0] != 0 {
		t.Fatalf("task 0: %+v", res)
	}
	seed := job.PointTask(1, 1).Seed
	if res.Exit[1] != 1 || !strings.Contains(res.Err[1], "exit status 1") || !strings.Contains(res.Err[1], strconv.FormatUint(seed, 10)) {
		t.Fatalf("task 1: exit %d error %q", res.Exit[1], res.Err[1])
	}
}

func TestParseTable(t *testing.T) {
	lists, err := ParseTable("#", "# head\n1 2\n  # mid\n3,4\n\n5\t6\n# tail", []string{"a", "b"})
	if err != nil || len(lists) != 2 || len(lists[0]) != 3 || lists[0][2] != 5 || lists[1][1] != 4 {
		t.Fatalf("%v %v", lists, err)
	}
	for stdout, want := range map[string]string{
		"1 2\n3\n":   "line 2 of stdout has 1 field(s), want 2",
		"1 2\n3 x\n": `line 2 of stdout: output b: "x" is not a number`,
		"# only\n":   "no table line",
	} {
		if _, err := ParseTable("#", stdout, []string{"a", "b"}); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", stdout, err, want)
		}
	}
}

// TestTableChunkWithTasksThatDidNotRun: a table job's chunk whose tasks
// did not run (the engine is stopping) still has a list length per task
// and output, and WriteChunk writes the rows of the tasks that ran only.
func TestTableChunkWithTasksThatDidNotRun(t *testing.T) {
	job := engineJob(t, "command = \"echo {x}; echo 1\"\nparse = \"table\"")
	res := ExecChunk(nil, job, []int64{1, 0})
	if res.Err[0] != "" || fmt.Sprint(res.Table) != "[2.5 1]" || fmt.Sprint(res.TableLen) != "[2]" {
		t.Fatalf("%+v", res)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	stopped := ExecChunk(&views.Context{Context: ctx}, job, []int64{0, 0, 1, 1})
	if !stopped.Interrupted(0) || !stopped.Interrupted(1) || len(stopped.TableLen) != 2 {
		t.Fatalf("%+v", stopped)
	}
	w := newTestWriter(t, job)
	for _, r := range []ChunkResult{stopped, res} {
		if err := WriteChunk(w, job, r, 0); err != nil {
			t.Fatal(err)
		}
	}
	if n := closeTestWriter(t, w); n != 1 {
		t.Fatalf("%d rows, want the one task that ran", n)
	}
}
