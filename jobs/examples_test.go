package jobs

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestExamples loads every embedded example and checks what it promises.
func TestExamples(t *testing.T) {
	names, err := fs.Glob(Examples, "examples/*.toml")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"examples/hello.toml", "examples/ising-adaptive.toml", "examples/ising.toml", "examples/pbs-hello.toml", "examples/shell-sweep.toml", "examples/slurm-hello.toml"}
	if !slices.Equal(names, want) {
		t.Fatalf("examples %v, want %v", names, want)
	}
	jobs := map[string]*Job{}
	for _, name := range names {
		data, err := fs.ReadFile(Examples, name)
		if err != nil {
			t.Fatal(err)
		}
		j, err := Parse(name, data)
		if err != nil {
			t.Errorf("%s:\n%v", name, err)
			continue
		}
		if len(j.Warnings) > 0 {
			t.Errorf("%s: warnings %v", name, j.Warnings)
		}
		// The embedded copy and the file on disk must agree.
		if _, err := Load(name); err != nil {
			t.Errorf("Load(%s): %v", name, err)
		}
		jobs[filepath.Base(name)] = j
	}
	if j := jobs["hello.toml"]; j != nil {
		if j.Job.Name != "hello" || j.Job.Ranks != 4 || j.NumTasks() != 0 || j.Path(j.Job.Program[0]) != filepath.Join("examples", "../../bin/hello") {
			t.Errorf("hello: %+v", j.Job)
		}
	}
	if j := jobs["ising.toml"]; j != nil {
		if j.NumTasks() != 2*9*8 || j.Task.Function != "ising" || j.Results.Path != "ising.arrow" || !slices.Equal(j.Results.GroupBy, []string{"L", "T"}) {
			t.Errorf("ising: %d tasks, %+v %+v", j.NumTasks(), j.Task, j.Results)
		}
	}
	if j := jobs["shell-sweep.toml"]; j != nil {
		if j.Job.Ranks != 3 || j.Sweep.Replicates != 4 || len(j.Sweep.Params) < 2 {
			t.Errorf("shell-sweep: %+v %+v", j.Job, j.Sweep)
		}
		for _, task := range j.Expand() {
			if _, err := j.Command(task); err != nil {
				t.Errorf("shell-sweep task %d: %v", task.Index, err)
			}
		}
	}
	if j := jobs["slurm-hello.toml"]; j != nil && (j.Job.Scheduler != SchedSLURM || j.Job.Walltime.SlurmTime() != "00:10:00") {
		t.Errorf("slurm-hello: %+v", j.Job)
	}
	if j := jobs["pbs-hello.toml"]; j != nil && (j.Job.Scheduler != SchedPBS || j.Job.Walltime.HMS() != "00:10:00" || j.Job.Queue != "workq") {
		t.Errorf("pbs-hello: %+v", j.Job)
	}
}

func TestLoadMissing(t *testing.T) {
	if _, err := Load(filepath.Join(t.TempDir(), "nope.toml")); err == nil || !os.IsNotExist(unwrapAll(err)) {
		t.Errorf("Load of a missing file: %v", err)
	}
}

func unwrapAll(err error) error {
	for {
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return err
		}
		err = u.Unwrap()
	}
}

func Example() {
	src := `
[job]
ranks = 3

[task]
command = "./sim --L {L} --T {T} --seed {seed}"
outputs = ["energy"]

[sweep]
L = [8, 16]
T = { start = 2.0, stop = 2.5, num = 3 }
`
	job, err := Parse("sim.toml", []byte(src))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(job.Job.Name, job.NumTasks(), "tasks, results in", job.Results.Path)
	for _, t := range job.Expand()[:4] {
		cmd, _ := job.Command(t)
		fmt.Println(t.Index, cmd)
	}

	_, err = Parse("bad.toml", []byte("[job]\nranks = 1\nwalltime = \"soon\"\n"))
	fmt.Println(err)
	// Output:
	// sim 6 tasks, results in sim.arrow
	// 0 ./sim --L 8 --T 2 --seed 1479064177658120539
	// 1 ./sim --L 8 --T 2.25 --seed 4955008728087613491
	// 2 ./sim --L 8 --T 2.5 --seed 16031783517457508740
	// 3 ./sim --L 16 --T 2 --seed 15425620236803372150
	// bad.toml:2:1: job.ranks: 1 is too few: a job needs at least 2 ranks (rank 0 is the hub)
	// bad.toml:3:1: job.walltime: duration "soon": want forms such as "2h", "90m", "1h30m", "2d", "1:30:00" or "1-00:00:00"
}
