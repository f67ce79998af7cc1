package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// needSLURM skips loudly without a reachable SLURM, and fails instead when
// CI requires one (RANKHUB_REQUIRE_SLURM=1).
func needSLURM(t *testing.T) {
	t.Helper()
	out, err := exec.Command("sinfo", "-h", "-o", "%t").CombinedOutput()
	if err == nil && len(strings.TrimSpace(string(out))) > 0 {
		return
	}
	msg := fmt.Sprintf("SLURM NOT REACHABLE (sinfo: %v %s): start it with `make slurm-up`", err, strings.TrimSpace(string(out)))
	if os.Getenv("RANKHUB_REQUIRE_SLURM") == "1" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

func slurmJob(t *testing.T, dir, name, extra string) string {
	t.Helper()
	job := fmt.Sprintf("[job]\nname = %q\nscheduler = \"slurm\"\nranks = 4\npartition = \"debug\"\nwalltime = \"5m\"\n%s", name, extra)
	p := filepath.Join(dir, name+".toml")
	os.WriteFile(p, []byte(job), 0o644)
	return p
}

func TestScriptAndDryRun(t *testing.T) {
	dir := t.TempDir()
	p := slurmJob(t, dir, "hello", fmt.Sprintf("program = [%q]\n", filepath.Join(bin, "hello")))
	r := rh(t, dir, "script", p, "--ranks", "6", "--account", "proj9")
	for _, want := range []string{"#SBATCH --ntasks=6", "#SBATCH --account=proj9", "#SBATCH --signal=B:USR1@120", "srun --kill-on-bad-exit=1 " + filepath.Join(bin, "hello"), "export RANKHUB_SIZE=6"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("script lacks %q:\n%s", want, r.stdout)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, ".rankhub")); err == nil {
		t.Error("script wrote a job directory")
	}
	if strings.Contains(r.stdout, "RANKHUB_RESUME") {
		t.Error("a plain script asks for a resume")
	}
	r = rh(t, dir, "script", "--resume", "--force", p)
	if !strings.Contains(r.stdout, "export RANKHUB_RESUME=1") || !strings.Contains(r.stdout, "export RANKHUB_RESUME_FORCE=1") {
		t.Errorf("script --resume --force does not export the request:\n%s", r.stdout)
	}
	r = rh(t, dir, "submit", "--dry-run", p)
	jd := strings.TrimSpace(r.stdout)
	if r.code != 0 {
		t.Fatalf("dry run: %+v", r)
	}
	if _, err := os.Stat(filepath.Join(jd, "job.sbatch")); err != nil {
		t.Fatalf("dry run wrote no script: %v", err)
	}
	if _, err := os.Stat(filepath.Join(jd, "scheduler-id")); err == nil {
		t.Fatal("dry run submitted")
	}
	local := filepath.Join(dir, "local.toml")
	os.WriteFile(local, []byte("[job]\nranks = 2\n"), 0o644)
	if r := rh(t, dir, "submit", local); r.code == 0 || !strings.Contains(r.stderr, "use `rankhub run`") {
		t.Fatalf("submitting a local job: %+v", r)
	}
}

func TestSubmitHelloToSLURM(t *testing.T) {
	needSLURM(t)
	dir := t.TempDir()
	p := slurmJob(t, dir, "hello", fmt.Sprintf("program = [%q]\n", filepath.Join(bin, "hello")))
	r := rh(t, dir, "submit", p)
	if r.code != 0 {
		t.Fatalf("submit: %+v", r)
	}
	id := strings.TrimSpace(r.stdout)
	r = rh(t, dir, "wait", "--timeout", "50s", id)
	if r.code != 0 || !strings.Contains(r.stdout, "COMPLETED") {
		t.Fatalf("wait: %+v", r)
	}
	dirs, _ := filepath.Glob(filepath.Join(dir, ".rankhub", "hello-*"))
	if len(dirs) != 1 {
		t.Fatalf("job directories %v", dirs)
	}
	out, _ := os.ReadFile(filepath.Join(dirs[0], "slurm-"+id+".out"))
	for _, want := range []string{"engine ids: [0 1 2]", "[stdout:0] hello from", "[stdout:2] hello from"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("job output lacks %q:\n%s", want, out)
		}
	}
	r = rh(t, dir, "status", id)
	if !strings.Contains(r.stdout, "slurm job "+id+": COMPLETED") || !strings.Contains(r.stdout, "ended      completed (completed, exit 0)") {
		t.Errorf("status:\n%s%s", r.stdout, r.stderr)
	}
	r = rh(t, dir, "jobs")
	if !strings.Contains(r.stdout, id) || !strings.Contains(r.stdout, "COMPLETED") {
		t.Errorf("jobs:\n%s%s", r.stdout, r.stderr)
	}
}

func TestCancelRunningJob(t *testing.T) {
	needSLURM(t)
	dir := t.TempDir()
	// No program and no task: the ranks run rankhub itself and wait for
	// clients until stopped, as `rankhub start` does.
	p := slurmJob(t, dir, "idle", "")
	r := rh(t, dir, "submit", p)
	if r.code != 0 {
		t.Fatalf("submit: %+v", r)
	}
	id := strings.TrimSpace(r.stdout)
	deadline := time.Now().Add(40 * time.Second)
	for {
		r = rh(t, dir, "status", id)
		if strings.Contains(r.stdout, "RUNNING") {
			dirs, _ := filepath.Glob(filepath.Join(dir, ".rankhub", "idle-*", "hub.json"))
			if len(dirs) == 1 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("job never ran with its hub up:\n%s", r.stdout)
		}
		time.Sleep(500 * time.Millisecond)
	}
	time.Sleep(time.Second) // let every engine register
	if r := rh(t, dir, "cancel", id); r.code != 0 {
		t.Fatalf("cancel: %+v", r)
	}
	r = rh(t, dir, "wait", "--timeout", "40s", id)
	if r.code == 0 || !strings.Contains(r.stdout, "CANCELLED") {
		t.Fatalf("wait after cancel: %+v", r)
	}
	dirs, _ := filepath.Glob(filepath.Join(dir, ".rankhub", "idle-*"))
	deadline = time.Now().Add(10 * time.Second)
	for endStatus(dirs[0]) == "" && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if s := endStatus(dirs[0]); !strings.Contains(s, `"signalled"`) || !strings.Contains(s, "SIGTERM") && !strings.Contains(s, "terminated") {
		t.Fatalf("the hub did not record the cancel: %q", s)
	}
}
