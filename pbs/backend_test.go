package pbs

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/rankhub/rankhub/internal/batch/batchtest"
	"github.com/rankhub/rankhub/jobs"
)

func TestSubmit(t *testing.T) {
	dir, calls := batchtest.FakeTools(t, map[string]string{"qsub": "echo 1234.pbs01"})
	id, err := New(WithBinDir(dir)).Submit(context.Background(), filepath.Join(dir, "job.pbs"))
	if err != nil || id != "1234.pbs01" {
		t.Fatalf("id %q, err %v", id, err)
	}
	if c := calls(); len(c) != 1 || c[0] != "qsub ./job.pbs" {
		t.Errorf("calls %q", c)
	}
	dir, _ = batchtest.FakeTools(t, map[string]string{"qsub": "echo 'qsub: Unknown queue' >&2; exit 170"})
	if _, err := New(WithBinDir(dir)).Submit(context.Background(), "j"); !errors.Is(err, ErrCommand) || !strings.Contains(err.Error(), "qstat -Q") {
		t.Errorf("err = %v", err)
	}
	dir, _ = batchtest.FakeTools(t, map[string]string{"qsub": "echo 'job submitted'"})
	if _, err := New(WithBinDir(dir)).Submit(context.Background(), "j"); !errors.Is(err, ErrParse) {
		t.Errorf("err = %v", err)
	}
	if _, err := New(WithCommand("qsub", filepath.Join(t.TempDir(), "qsub"))).Submit(context.Background(), "j"); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "qsub not found") {
		t.Errorf("err = %v", err)
	}
}

const proJSON = `{
  "timestamp": 1700000000, "pbs_version": "2022.1", "pbs_server": "pbs01",
  "Jobs": {
    "10.pbs01": {"Job_Name": "a", "job_state": "R", "exec_host": "n1/0*32+n2/0*32"},
    "11.pbs01": {"Job_Name": "b", "job_state": "Q", "comment": "Not Running: Insufficient amount of resource: ncpus"},
    "12.pbs01": {"Job_Name": "c", "job_state": "F", "Exit_status": 0, "exec_host": "n3/0"},
    "13.pbs01": {"Job_Name": "d", "job_state": "F", "Exit_status": -29, "comment": "Job run at ... and exceeded resource walltime"},
    "14.pbs01": {"Job_Name": "e", "job_state": "F", "Exit_status": 271, "comment": "Job run at ... and terminated"},
    "15.pbs01": {"Job_Name": "f", "job_state": "F", "Exit_status": "2"},
    "16.pbs01": {"Job_Name": "g", "job_state": "H"}
  }
}`

func TestStatusJSONAndCache(t *testing.T) {
	dir, calls := batchtest.FakeTools(t, map[string]string{
		"qstat": "cat <<'X'\n" + proJSON + "\nX\necho 'qstat: Unknown Job Id 99.pbs01' >&2; exit 153",
	})
	b := New(WithBinDir(dir), WithCacheTTL(time.Hour))
	ids := []string{"10.pbs01", "11", "12.pbs01", "13.pbs01", "14.pbs01", "15.pbs01", "16.pbs01", "99.pbs01"}
	got, err := b.Status(context.Background(), ids...)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"10.pbs01": StateRunning, "11": StatePending, "12.pbs01": StateCompleted, "13.pbs01": StateTimeout,
		"14.pbs01": StateCancelled, "15.pbs01": StateFailed, "16.pbs01": StatePending, "99.pbs01": StateUnknown,
	}
	for id, w := range want {
		if got[id].State != w || got[id].ID != id {
			t.Errorf("%s: %+v, want %s", id, got[id], w)
		}
	}
	if got["10.pbs01"].Nodes != "n1,n2" || got["12.pbs01"].ExitCode != 0 || got["15.pbs01"].ExitCode != 2 || got["14.pbs01"].ExitCode != 143 {
		t.Errorf("details wrong: %+v", got)
	}
	if !strings.Contains(got["11"].Reason, "Insufficient") {
		t.Errorf("reason lost: %+v", got["11"])
	}
	if _, err := b.Status(context.Background(), "12.pbs01", "10.pbs01"); err != nil {
		t.Fatal(err)
	}
	c := calls()
	if len(c) != 1 || c[0] != "qstat -f -F json -x "+strings.Join(ids, " ") {
		t.Errorf("calls = %q, want one qstat for all ids", c)
	}
}

const torqueText = `Job Id: 20.torque01
    Job_Name = a long name
    job_state = C
    exec_host = n1/0-3+n2/0-3
    Exit_status = 0
    comment = a comment that PBS wraps
	at eighty columns
Job Id: 21.torque01
    job_state = R
Job Id: 22.torque01
    job_state = C
    Exit_status = -10
`

func TestStatusTextFallback(t *testing.T) {
	dir, calls := batchtest.FakeTools(t, map[string]string{
		"qstat": `if [ "$2" = -F ]; then echo "qstat: invalid option -- 'F'" >&2; echo 'usage: qstat ...' >&2; exit 2; fi
cat <<'X'
` + torqueText + `X`,
	})
	b := New(WithBinDir(dir), WithCacheTTL(0))
	got, err := b.Status(context.Background(), "20.torque01", "21.torque01", "22.torque01")
	if err != nil {
		t.Fatal(err)
	}
	if got["20.torque01"].State != StateCompleted || got["20.torque01"].Nodes != "n1,n2" ||
		got["20.torque01"].Reason != "a comment that PBS wrapsat eighty columns" ||
		got["21.torque01"].State != StateRunning || got["22.torque01"].State != StateFailed {
		t.Errorf("got %+v", got)
	}
	if _, err := b.Status(context.Background(), "21.torque01"); err != nil {
		t.Fatal(err)
	}
	c := calls()
	if len(c) != 3 || !strings.HasPrefix(c[0], "qstat -f -F json") || c[1] != "qstat -f 20.torque01 21.torque01 22.torque01" || c[2] != "qstat -f 21.torque01" {
		t.Errorf("calls = %q", c)
	}
}

func TestStatusErrors(t *testing.T) {
	dir, _ := batchtest.FakeTools(t, map[string]string{"qstat": "echo 'qstat: cannot connect to server pbs01 (errno=111)' >&2; exit 2"})
	_, err := New(WithBinDir(dir)).Status(context.Background(), "1")
	if !errors.Is(err, ErrCommand) || !strings.Contains(err.Error(), "PBS_SERVER") {
		t.Errorf("err = %v", err)
	}
	dir, _ = batchtest.FakeTools(t, map[string]string{"qstat": "echo '{not json'"})
	if _, err := New(WithBinDir(dir)).Status(context.Background(), "1"); !errors.Is(err, ErrParse) {
		t.Errorf("err = %v", err)
	}
	dir, _ = batchtest.FakeTools(t, map[string]string{"qstat": "echo 'job_state = R'"})
	if _, err := New(WithBinDir(dir), WithTextQstat()).Status(context.Background(), "1"); !errors.Is(err, ErrParse) {
		t.Errorf("err = %v", err)
	}
	if _, err := New().Status(context.Background(), "-u"); err == nil {
		t.Errorf("option-like id accepted")
	}
}

func TestCancel(t *testing.T) {
	dir, calls := batchtest.FakeTools(t, map[string]string{"qdel": "exit 0"})
	if err := New(WithBinDir(dir)).Cancel(context.Background(), "7.s"); err != nil {
		t.Fatal(err)
	}
	if c := calls(); len(c) != 1 || c[0] != "qdel 7.s" {
		t.Errorf("calls %q", c)
	}
	if err := New(WithBinDir(dir)).Cancel(context.Background(), "all"); err == nil {
		t.Errorf("bad id accepted")
	}
}

func TestMapStateLetters(t *testing.T) {
	zero := 0
	for letter, want := range map[string]string{
		"Q": StatePending, "H": StatePending, "W": StatePending, "T": StatePending, "R": StateRunning,
		"E": StateRunning, "S": StateRunning, "C": StateCompleted, "F": StateCompleted, "Z": StateUnknown,
	} {
		if got := MapState("1", letter, &zero, "", ""); got.State != want {
			t.Errorf("MapState(%s) = %s, want %s", letter, got.State, want)
		}
	}
}

func TestReadNodefile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	hosts, err := ReadNodefile(write("ok", "n1\nn1\n\nn2\n# comment\nn2\n"))
	if err != nil || !reflect.DeepEqual(hosts, []string{"n1", "n1", "n2", "n2"}) {
		t.Errorf("hosts %q, err %v", hosts, err)
	}
	if _, err := ReadNodefile(write("empty", "\n\n")); err == nil || !strings.Contains(err.Error(), "no hosts") {
		t.Errorf("empty: %v", err)
	}
	if _, err := ReadNodefile(write("bad", "n1\nn2 n3\n")); err == nil || !strings.Contains(err.Error(), "bad:2") {
		t.Errorf("bad: %v", err)
	}
	if _, err := ReadNodefile(filepath.Join(dir, "missing")); err == nil {
		t.Error("missing file accepted")
	}
}

func TestName(t *testing.T) {
	if New().Name() != "pbs" {
		t.Error("Name")
	}
	var _ interface {
		Name() string
		Script(*jobs.Job, jobs.Launch) (string, error)
		Submit(context.Context, string) (string, error)
		Status(context.Context, ...string) (map[string]jobs.SchedState, error)
		Cancel(context.Context, string) error
	} = New()
}

// TestStatusSlurmWrapperExit: Slurm's qstat wrapper says C for every ended
// job and no exit status; a job whose script failed was COMPLETED. When
// qstat does not report it, SLURM's own record (scontrol) gives the exit
// status and the end.
func TestStatusSlurmWrapperExit(t *testing.T) {
	dir, _ := batchtest.FakeTools(t, map[string]string{
		"qstat": `if [ "$2" = -F ]; then echo "qstat: invalid option -- 'F'" >&2; exit 2; fi
for id in "$@"; do [ "$id" = -f ] && continue; printf 'Job Id:\t%s\n\tjob_state = C\n\texec_host = n1/4\n\n' "$id"; done`,
		"scontrol": `case "$4" in
12) echo "JobId=12 JobName=a JobState=FAILED Reason=NonZeroExitCode ExitCode=1:0 NodeList=n[1-3]" ;;
13) echo "JobId=13 JobName=b JobState=COMPLETED Reason=None ExitCode=0:0" ;;
14) echo "JobId=14 JobName=c JobState=CANCELLED Reason=None ExitCode=0:15" ;;
15) echo "JobId=15 JobName=d JobState=TIMEOUT Reason=TimeLimit ExitCode=0:1" ;;
esac`,
	})
	got, err := New(WithBinDir(dir), WithCacheTTL(0)).Status(context.Background(), "12", "13", "14", "15")
	if err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string]struct {
		state string
		exit  int
	}{"12": {StateFailed, 1}, "13": {StateCompleted, 0}, "14": {StateCancelled, 128 + 15}, "15": {StateTimeout, -1}} {
		if s := got[id]; s.State != want.state || s.ExitCode != want.exit {
			t.Errorf("job %s: %+v, want %s with exit code %d", id, s, want.state, want.exit)
		}
	}
}
