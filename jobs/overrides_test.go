package jobs

import (
	"slices"
	"testing"
	"time"
)

const overridable = `[job]
scheduler = "slurm"
ranks = 8
walltime = "1h"
partition = "short"
account = "a1"
`

func TestApply(t *testing.T) {
	j := mustParse(t, overridable)
	err := j.Apply(Overrides{Ranks: 16, Walltime: "1-00:00:00", Partition: "long", Account: "a2"})
	if err != nil {
		t.Fatal(err)
	}
	s := j.Job
	if s.Ranks != 16 || s.Walltime.Duration != 24*time.Hour || s.Partition != "long" || s.Queue != "long" || s.Account != "a2" {
		t.Errorf("after Apply: %+v", s)
	}
	if err := j.Apply(Overrides{Scheduler: "pbs", Queue: "workq"}); err != nil {
		t.Fatal(err)
	}
	if j.Job.Scheduler != "pbs" || j.Job.Queue != "workq" || j.Job.Partition != "workq" {
		t.Errorf("after Apply: %+v", j.Job)
	}
	if err := j.Apply(Overrides{}); err != nil {
		t.Errorf("empty overrides: %v", err)
	}
}

func TestApplyErrors(t *testing.T) {
	tests := []struct {
		o    Overrides
		want []string
	}{
		{Overrides{Walltime: "soon"}, []string{`--walltime: duration "soon": want forms such as "2h", "90m", "1h30m", "2d", "1:30:00" or "1-00:00:00"`}},
		{Overrides{Walltime: "-5m"}, []string{`--walltime: duration "-5m" is negative`}},
		{Overrides{Ranks: 1}, []string{"--ranks: 1 is too few: a job needs at least 2 ranks (rank 0 is the hub)"}},
		{Overrides{Scheduler: "lsf"}, []string{`--scheduler: unknown scheduler "lsf" (want local, slurm, pbs)`}},
		{Overrides{Ranks: -3, Walltime: "x"}, []string{
			`--walltime: duration "x": want forms such as "2h", "90m", "1h30m", "2d", "1:30:00" or "1-00:00:00"`,
			"--ranks: -3 is too few: a job needs at least 2 ranks (rank 0 is the hub)",
		}},
	}
	for _, tc := range tests {
		j := mustParse(t, overridable)
		before := j.Job
		got := diagLines(t, j.Apply(tc.o))
		if !slices.Equal(got, tc.want) {
			t.Errorf("Apply(%+v):\n got  %q\n want %q", tc.o, got, tc.want)
		}
		if j.Job.Ranks != before.Ranks || j.Job.Walltime != before.Walltime || j.Job.Scheduler != before.Scheduler {
			t.Errorf("Apply(%+v) changed the job on error", tc.o)
		}
	}
	// Errors in the file keep their positions next to the flag's.
	j := mustParse(t, "[job]\nranks = 4\nnodes = 1\nranks_per_node = 4\n")
	got := diagLines(t, j.Apply(Overrides{Ranks: 6}))
	want := []string{"t.toml:3:1: job.nodes: 1 nodes × 4 ranks_per_node hold 4 ranks, fewer than ranks = 6"}
	if !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestDefaults(t *testing.T) {
	j := mustParse(t, "[job]\nranks = 2\n[task]\ncommand = \"true\"\n")
	s := j.Job
	if s.Name != "t" || s.Scheduler != "local" || s.Transport != "auto" || s.Heartbeat.Duration != time.Second ||
		s.SignalLead.Duration != 120*time.Second || s.Seed != 1 || s.AbortOnError == nil || *s.AbortOnError ||
		s.PBSDialect != "pro" || s.CPUsPerRank != 1 {
		t.Errorf("job defaults: %+v", s)
	}
	if j.Task.Parse != "last-line" || j.Task.Shell != "/bin/sh" {
		t.Errorf("task defaults: %+v", j.Task)
	}
	r := j.Results
	if r == nil || r.Path != "t.arrow" || r.FlushInterval.Duration != 2*time.Second || r.FlushRows != 1024 {
		t.Errorf("results defaults: %+v", r)
	}
	// A sweep's default is to go on when an engine fails; a program's is to stop.
	if p := mustParse(t, "[job]\nranks = 2\n"); p.Job.AbortOnError == nil || !*p.Job.AbortOnError {
		t.Error("a job without [task] must default to abort_on_error = true")
	}
	j = mustParse(t, "[job]\nranks = 2\nabort_on_error = false\n")
	if *j.Job.AbortOnError {
		t.Error("abort_on_error = false was overwritten")
	}
}

func TestDefaultName(t *testing.T) {
	tests := map[string]string{
		"/a/b/ising.toml":   "ising",
		"my job (v2).toml":  "my_job__v2",
		"x.y.toml":          "x_y",
		"":                  "job",
		"ü.toml":            "job",
		"dir/shell-sw.toml": "shell-sw",
	}
	for in, want := range tests {
		if got := DefaultName(in); got != want {
			t.Errorf("DefaultName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseMemory(t *testing.T) {
	tests := map[string]int64{"4G": 4 << 30, "4gb": 4 << 30, "500M": 500 << 20, "500MiB": 500 << 20, "4096": 4096 << 20, "1T": 1 << 40, "64k": 64 << 10}
	for in, want := range tests {
		if got, err := ParseMemory(in); err != nil || got != want {
			t.Errorf("ParseMemory(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "G", "4X", "-1G", "0", "1.5G", "99999999999999T"} {
		if _, err := ParseMemory(bad); err == nil {
			t.Errorf("ParseMemory(%q): no error", bad)
		}
	}
}

// An engines job (ParseEngines: submit --join) has no hub rank: 1 rank is
// enough, also through --ranks, and Apply keeps it an engines job.
func TestEnginesJobRanks(t *testing.T) {
	j, err := ParseEngines("e.toml", []byte("[job]\nranks = 1\n"))
	if err != nil || !j.Engines() {
		t.Fatalf("an engines job of 1 rank: %v", err)
	}
	if err := j.Apply(Overrides{Ranks: 1}); err != nil || !j.Engines() {
		t.Fatalf("--ranks 1 on an engines job: %v", err)
	}
	got := diagLines(t, j.Apply(Overrides{Ranks: -1}))
	if want := []string{"--ranks: -1 is too few: an engines job (--join) needs at least 1 rank (every rank is an engine of the hub it joins)"}; !slices.Equal(got, want) {
		t.Fatalf("--ranks -1: %q, want %q", got, want)
	}
	if _, err := Parse("e.toml", []byte("[job]\nranks = 1\n")); err == nil {
		t.Fatal("a job of 1 rank (rank 0 is the hub) was accepted")
	}
}
