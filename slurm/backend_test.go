package slurm

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rankhub/rankhub/internal/batch/batchtest"
	"github.com/rankhub/rankhub/jobs"
)

func TestSubmit(t *testing.T) {
	for _, tc := range []struct {
		out, want string
	}{
		{"123", "123"},
		{"4567;cluster2", "4567"},
		{"sbatch: warning: something\n89", "89"},
		{"12_3", "12_3"},
	} {
		dir, calls := batchtest.FakeTools(t, map[string]string{"sbatch": "printf '%s\\n' '" + tc.out + "'"})
		b := New(WithBinDir(dir))
		id, err := b.Submit(context.Background(), "/x/job.sbatch")
		if err != nil {
			t.Fatalf("%q: %v", tc.out, err)
		}
		if id != tc.want {
			t.Errorf("%q: id %q, want %q", tc.out, id, tc.want)
		}
		if c := calls(); len(c) != 1 || c[0] != "sbatch --parsable /x/job.sbatch" {
			t.Errorf("calls %q", c)
		}
	}
}

func TestSubmitErrors(t *testing.T) {
	dir, _ := batchtest.FakeTools(t, map[string]string{
		"sbatch": "echo 'sbatch: error: Batch job submission failed: Invalid account or account/partition combination specified' >&2; exit 1",
	})
	_, err := New(WithBinDir(dir)).Submit(context.Background(), "job.sbatch")
	if !errors.Is(err, ErrCommand) || !strings.Contains(err.Error(), "Invalid account") || !strings.Contains(err.Error(), "hint: check job.account") {
		t.Errorf("err = %v", err)
	}
	var ce *CommandError
	if !errors.As(err, &ce) || ce.Tool != "sbatch" {
		t.Errorf("not a *CommandError from sbatch: %v", err)
	}

	dir, _ = batchtest.FakeTools(t, map[string]string{"sbatch": "echo 'Submitted batch job 5'"})
	if _, err := New(WithBinDir(dir)).Submit(context.Background(), "job.sbatch"); !errors.Is(err, ErrParse) {
		t.Errorf("non-parsable output: err = %v", err)
	}

	_, err = New(WithCommand("sbatch", filepath.Join(t.TempDir(), "sbatch"))).Submit(context.Background(), "job.sbatch")
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "sbatch not found: install Debian's slurm-client (or `module load slurm`)") {
		t.Errorf("missing sbatch: err = %v", err)
	}
	t.Setenv("PATH", t.TempDir())
	_, err = New().Submit(context.Background(), "job.sbatch")
	if !errors.Is(err, ErrNotFound) {
		t.Errorf("sbatch not on PATH: err = %v", err)
	}
}

const sacctOut = `101|COMPLETED|0:0|None|n[001-002]
102|RUNNING|0:0|None|n003
103|PENDING|0:0|Priority|None assigned
104|CANCELLED by 1000|0:15|None|n004
105|TIMEOUT|0:0|None|n005
106|OUT_OF_MEMORY|0:125|None|n006
107|FAILED|3:0|NonZeroExitCode|n007`

func TestStatusSacctAndCache(t *testing.T) {
	dir, calls := batchtest.FakeTools(t, map[string]string{"sacct": "cat <<'X'\n" + sacctOut + "\nX", "squeue": "exit 0"})
	b := New(WithBinDir(dir), WithCacheTTL(time.Hour))
	ids := []string{"101", "102", "103", "104", "105", "106", "107"}
	got, err := b.Status(context.Background(), ids...)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]jobs.SchedState{
		"101": {ID: "101", State: StateCompleted, ExitCode: 0, Nodes: "n[001-002]"},
		"102": {ID: "102", State: StateRunning, ExitCode: -1, Nodes: "n003"},
		"103": {ID: "103", State: StatePending, ExitCode: -1, Reason: "Priority"},
		"104": {ID: "104", State: StateCancelled, ExitCode: 143, Reason: "by 1000", Nodes: "n004"},
		"105": {ID: "105", State: StateTimeout, ExitCode: 0, Reason: "walltime exceeded", Nodes: "n005"},
		"106": {ID: "106", State: StateFailed, ExitCode: 253, Reason: "out of memory", Nodes: "n006"},
		"107": {ID: "107", State: StateFailed, ExitCode: 3, Reason: "NonZeroExitCode", Nodes: "n007"},
	}
	for id, w := range want {
		if got[id] != w {
			t.Errorf("%s: got %+v, want %+v", id, got[id], w)
		}
	}
	// A second call for a subset within the TTL is answered from the cache.
	if _, err := b.Status(context.Background(), "102", "101"); err != nil {
		t.Fatal(err)
	}
	c := calls()
	if len(c) != 1 || !strings.HasPrefix(c[0], "sacct -n -P -X -j 101,102,103,104,105,106,107 -o JobID,State,ExitCode") {
		t.Errorf("calls = %q, want one sacct for all ids", c)
	}
	if b.QueryCount() != 1 {
		t.Errorf("QueryCount = %d", b.QueryCount())
	}
	// An id outside the cached answer needs a new query.
	got, err = b.Status(context.Background(), "101", "999")
	if err != nil {
		t.Fatal(err)
	}
	if b.QueryCount() != 2 || got["999"].State != StateUnknown {
		t.Errorf("QueryCount = %d, 999: %+v; want a second query and UNKNOWN", b.QueryCount(), got["999"])
	}
}

func TestStatusNoCache(t *testing.T) {
	dir, calls := batchtest.FakeTools(t, map[string]string{"sacct": "cat <<'X'\n" + sacctOut + "\nX"})
	b := New(WithBinDir(dir), WithCacheTTL(0))
	for range 3 {
		if _, err := b.Status(context.Background(), "101"); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(calls()); n != 3 {
		t.Errorf("%d queries with TTL 0, want 3", n)
	}
}

func TestStatusSacctLagFallsBackToSqueue(t *testing.T) {
	dir, calls := batchtest.FakeTools(t, map[string]string{
		"sacct":  "echo '101|COMPLETED|0:0|None|n1'",
		"squeue": "echo '102|PENDING|Resources|'",
	})
	got, err := New(WithBinDir(dir)).Status(context.Background(), "101", "102")
	if err != nil {
		t.Fatal(err)
	}
	if got["102"].State != StatePending || got["102"].Reason != "Resources" || got["101"].State != StateCompleted {
		t.Errorf("got %+v", got)
	}
	if c := calls(); len(c) != 2 || !strings.HasPrefix(c[1], "squeue -h -t all -j 102 ") {
		t.Errorf("calls = %q", c)
	}
}

const scontrolOut = `JobId=7 JobName=my job UserId==x JobState=RUNNING Reason=None ExitCode=0:0 NodeList=vm
JobId=8 JobName=JobState=FAKE UserId=root(0) GroupId=root(0) JobState=COMPLETED Reason=None Dependency=(null) ExitCode=0:0 NodeList=vm
JobId=9 JobName=x UserId=root(0) JobState=FAILED Reason=NonZeroExitCode ExitCode=2:0 NodeList=vm BatchHost=vm`

func TestStatusWithoutAccounting(t *testing.T) {
	dir, calls := batchtest.FakeTools(t, map[string]string{
		"sacct":    "echo 'Slurm accounting storage is disabled' >&2; exit 1",
		"scontrol": "cat <<'X'\n" + scontrolOut + "\nX",
	})
	b := New(WithBinDir(dir), WithCacheTTL(0))
	got, err := b.Status(context.Background(), "7", "8", "9", "10")
	if err != nil {
		t.Fatal(err)
	}
	if got["7"].State != StateRunning || got["8"].State != StateCompleted || got["8"].ExitCode != 0 ||
		got["9"].State != StateFailed || got["9"].ExitCode != 2 || got["10"].State != StateUnknown {
		t.Errorf("got %+v", got)
	}
	// Later calls skip sacct.
	if _, err := b.Status(context.Background(), "7", "8"); err != nil {
		t.Fatal(err)
	}
	c := calls()
	if len(c) != 3 || !strings.HasPrefix(c[0], "sacct") || c[1] != "scontrol show job -o" || c[2] != "scontrol show job -o" {
		t.Errorf("calls = %q", c)
	}
}

func TestStatusErrors(t *testing.T) {
	dir, _ := batchtest.FakeTools(t, map[string]string{
		"sacct": "echo 'sacct: error: Problem talking to the database: Connection refused' >&2; exit 1",
	})
	if _, err := New(WithBinDir(dir)).Status(context.Background(), "1"); !errors.Is(err, ErrCommand) || !strings.Contains(err.Error(), "Connection refused") {
		t.Errorf("err = %v", err)
	}
	dir, _ = batchtest.FakeTools(t, map[string]string{"sacct": "echo 'garbage'"})
	if _, err := New(WithBinDir(dir)).Status(context.Background(), "1"); !errors.Is(err, ErrParse) {
		t.Errorf("err = %v", err)
	}
	if _, err := New(WithBinDir(dir)).Status(context.Background(), "1; rm -rf /"); err == nil {
		t.Errorf("bad id accepted")
	}
}

func TestCancel(t *testing.T) {
	dir, calls := batchtest.FakeTools(t, map[string]string{"scancel": "exit 0"})
	b := New(WithBinDir(dir))
	if err := b.Cancel(context.Background(), "42"); err != nil {
		t.Fatal(err)
	}
	if c := calls(); len(c) != 1 || c[0] != "scancel 42" {
		t.Errorf("calls = %q", c)
	}
	if err := b.Cancel(context.Background(), "-u root"); err == nil {
		t.Errorf("bad id accepted")
	}
	dir, _ = batchtest.FakeTools(t, map[string]string{"scancel": "echo 'scancel: error: Kill job error on job id 42: Invalid job id specified' >&2; exit 1"})
	if err := New(WithBinDir(dir)).Cancel(context.Background(), "42"); !errors.Is(err, ErrCommand) || !strings.Contains(err.Error(), "unknown to slurmctld") {
		t.Errorf("err = %v", err)
	}
}

func TestMapState(t *testing.T) {
	for in, want := range map[string]string{
		"PENDING": StatePending, "PD": StatePending, "RUNNING": StateRunning, "R": StateRunning,
		"COMPLETING": StateRunning, "COMPLETED": StateCompleted, "CD": StateCompleted,
		"FAILED": StateFailed, "NODE_FAIL": StateFailed, "OUT_OF_MEMORY": StateFailed, "BOOT_FAIL": StateFailed,
		"CANCELLED by 0": StateCancelled, "CA": StateCancelled, "TIMEOUT": StateTimeout, "TO": StateTimeout,
		"PREEMPTED": StateCancelled, "REQUEUED": StatePending, "SUSPENDED": StateRunning, "": StateUnknown, "WEIRD": StateUnknown,
	} {
		if got, _ := MapState(in); got != want {
			t.Errorf("MapState(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestName(t *testing.T) {
	if New().Name() != "slurm" {
		t.Error("Name")
	}
}
