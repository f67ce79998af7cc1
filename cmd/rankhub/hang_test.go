package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rankhub/rankhub/comm"
	"github.com/rankhub/rankhub/jobdir"
)

// waitHub waits for the connection file of the only job directory under
// dir and returns the directory and the hub's pid.
func waitHub(t *testing.T, dir string) (jobdir.Dir, int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if jds, _ := filepath.Glob(filepath.Join(dir, ".rankhub", "*")); len(jds) == 1 {
			jd, _ := jobdir.Open(jds[0])
			if ci, err := comm.ReadConnInfo(jd.File(jobdir.ConnFile)); err == nil {
				return jd, ci.PID
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("no hub.json within 30s")
	return jobdir.Dir{}, 0
}

// waitStopped waits until every thread of pid is stopped (state T).
func waitStopped(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		stats, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/stat", pid))
		stopped := len(stats) > 0
		for _, f := range stats {
			b, _ := os.ReadFile(f)
			// pid (comm) state ...: the state follows the last ')'.
			if i := strings.LastIndexByte(string(b), ')'); i < 0 || i+2 >= len(b) || b[i+2] != 'T' && b[i+2] != 't' {
				stopped = false
			}
		}
		if stopped {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("pid %d did not stop", pid)
}

// Issue 13 point 3: an engine that hangs (SIGSTOP, as a hung node) is
// declared dead by the hub, its tasks run elsewhere, and when the sweep is
// over the launcher stops it within the heartbeat timeout plus the grace
// period: `rankhub run` returns (it used to wait for SIGCONT), with the
// node-lost status.
func TestHungEngineDoesNotHoldTheRun(t *testing.T) {
	dir := t.TempDir()
	job := strings.Replace(slowSweep, "ranks = 3\n", "ranks = 3\nheartbeat = \"200ms\"\n", 1)
	job = strings.Replace(job, "stop = 399", "stop = 79", 1)
	os.WriteFile(filepath.Join(dir, "slow.toml"), []byte(job), 0o644)
	cmd, se, done := startRun(t, dir, "slow.toml")
	jd := waitProgressOr(t, dir, 6, 30*time.Second, se)
	_, hub := waitHub(t, dir)
	var engine int
	for _, p := range children(cmd.Process.Pid) {
		if p != hub {
			engine = p
		}
	}
	if engine == 0 {
		t.Fatal("no engine found")
	}
	syscall.Kill(engine, syscall.SIGSTOP)
	waitStopped(t, engine)
	stopped := time.Now()
	code := waitExit(t, cmd, done, se, 30*time.Second)
	t.Logf("rankhub run returned %v after the SIGSTOP, exit %d", time.Since(stopped).Round(time.Millisecond), code)
	if code != jobdir.NodeLost.ExitCode() {
		t.Fatalf("exit status %d, want %d (node-lost); stderr:\n%s", code, jobdir.NodeLost.ExitCode(), se)
	}
	if err := syscall.Kill(engine, 0); err == nil {
		t.Errorf("the stopped engine (pid %d) is still there", engine)
	}
	st, err := jd.ReadStatus()
	if err != nil || st.Outcome != jobdir.NodeLost || len(st.Attempts) != 1 {
		t.Fatalf("status.json: %+v %v", st, err)
	}
	if p, err := jd.ReadProgress(); err != nil || p.Done+p.Failed != p.Total {
		t.Fatalf("progress %+v %v: the sweep did not finish on the other engine", p, err)
	}
}

// `rankhub status` of a job whose hub is gone answers within 2 s from the
// files: a stopped hub (hung, or on a lost node) used to hold it 30 s
// before "i/o timeout".
func TestStatusOfGoneHubAnswersFast(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "idle.toml"), []byte("[job]\nname = \"idle\"\nranks = 2\n"), 0o644)
	cmd, _, _ := startRun(t, dir, "idle.toml")
	_ = cmd
	jd, hub := waitHub(t, dir)
	for i := 0; ; i++ { // the engine registers after hub.json is written
		r := rh(t, dir, "status", jd.Path)
		if strings.Contains(r.stdout, "engines    1 live of 1") {
			break
		}
		if i == 50 {
			t.Fatalf("status of the live hub:\n%s%s", r.stdout, r.stderr)
		}
		time.Sleep(100 * time.Millisecond)
	}
	syscall.Kill(hub, syscall.SIGSTOP)
	waitStopped(t, hub)
	t0 := time.Now()
	r := rh(t, dir, "status", jd.Path)
	// 2 s for the hub, the rest for starting the process (race detector,
	// a loaded machine).
	el := time.Since(t0)
	t.Logf("status of a stopped hub: %v", el.Round(time.Millisecond))
	if el > 4*time.Second || !strings.Contains(r.stdout, "no answer within 2s") {
		t.Fatalf("status of a stopped hub took %v:\n%s%s", el, r.stdout, r.stderr)
	}
	syscall.Kill(hub, syscall.SIGKILL)
	syscall.Kill(hub, syscall.SIGCONT)
	for syscall.Kill(hub, 0) == nil && time.Since(t0) < 10*time.Second {
		time.Sleep(20 * time.Millisecond)
	}
	t0 = time.Now()
	r = rh(t, dir, "status", jd.Path)
	// Either the files say the hub is gone, or rankhub run has recorded
	// how the job ended by then.
	if el := time.Since(t0); el > 2*time.Second || !strings.Contains(r.stdout, "hub        gone: pid") && !strings.Contains(r.stdout, "(rank-failed, exit 5)") {
		t.Fatalf("status of a killed hub took %v:\n%s%s", el, r.stdout, r.stderr)
	}
}

// The connection file of a hub whose process no longer exists is answered
// from the files alone.
func TestStatusOfDeadHubFromFiles(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "idle.toml"), []byte("[job]\nname = \"idle\"\nranks = 2\n"), 0o644)
	// A local walltime ends the run with the walltime status.
	r := rh(t, dir, "run", "--walltime", "1s", "idle.toml")
	jds, _ := filepath.Glob(filepath.Join(dir, ".rankhub", "*"))
	if len(jds) != 1 || r.code != jobdir.Walltime.ExitCode() {
		t.Fatalf("run: %+v", r)
	}
	jd, _ := jobdir.Open(jds[0])
	if st, err := jd.ReadStatus(); err != nil || st.Outcome != jobdir.Walltime {
		t.Fatalf("status.json after the walltime: %+v %v", st, err)
	}
	os.Remove(jd.File(jobdir.StatusFile))
	gone := exec.Command("true")
	gone.Run()
	host, _ := os.Hostname()
	ci := &comm.ConnInfo{TCP: "127.0.0.1:9", Unix: "@rankhub-gone-test", Host: host, PID: gone.Process.Pid, Ranks: 2, Created: time.Now()}
	ci.SetKey(make([]byte, 32))
	if err := comm.WriteConnInfo(jd.File(jobdir.ConnFile), ci); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	r = rh(t, dir, "status", jd.Path)
	if el := time.Since(t0); el > 2*time.Second || !strings.Contains(r.stdout, "hub        gone: pid") {
		t.Fatalf("status took %v:\n%s%s", el, r.stdout, r.stderr)
	}
}

// Ranks of a program not built with rankhub owe rank 0 nothing: they may
// run on after it ended, and are not stopped as hung.
func TestPlainProgramRanksOutliveRankZero(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "prog.sh")
	os.WriteFile(script, []byte("#!/bin/sh\nif [ \"$RANKHUB_RANK\" = 1 ]; then sleep 1.5; echo late; fi\n"), 0o755)
	r := rh(t, dir, "run", "--heartbeat", "100ms", "-n", "2", "--", script)
	if r.code != 0 || !strings.Contains(r.stdout, "[rank 1] late") {
		t.Fatalf("exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

// rankPid finds the process of a rank of a batch job by its environment
// (RANKHUB_JOBDIR and SLURM_PROCID).
func rankPid(jobDir string, rank int) int {
	procs, _ := filepath.Glob("/proc/[0-9]*/environ")
	want := []string{"RANKHUB_JOBDIR=" + jobDir, fmt.Sprintf("SLURM_PROCID=%d", rank)}
	for _, p := range procs {
		b, _ := os.ReadFile(p)
		vars := strings.Split(string(b), "\x00")
		found := 0
		for _, v := range vars {
			for _, w := range want {
				if v == w {
					found++
				}
			}
		}
		if found == len(want) {
			var pid int
			fmt.Sscan(strings.Split(p, "/")[2], &pid)
			if b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); strings.TrimSpace(string(b)) == "rankhub" {
				return pid
			}
		}
	}
	return 0
}

// Issue 13 point 3 under SLURM: a hung engine (SIGSTOP) does not hold the
// step: rank 0 ends node-lost (non-zero), srun stops the other tasks, and
// `rankhub wait` exits with the node-lost status.
func TestHungEngineOnSLURM(t *testing.T) {
	needSLURM(t)
	dir := t.TempDir()
	job := strings.Replace(slowSweep, "ranks = 3\n", "ranks = 3\nscheduler = \"slurm\"\npartition = \"debug\"\nwalltime = \"5m\"\nheartbeat = \"200ms\"\n", 1)
	job = strings.Replace(job, "stop = 399", "stop = 79", 1)
	os.WriteFile(filepath.Join(dir, "slow.toml"), []byte(job), 0o644)
	r := rh(t, dir, "submit", "slow.toml")
	if r.code != 0 {
		t.Fatalf("submit: %+v", r)
	}
	id := strings.TrimSpace(r.stdout)
	t.Cleanup(func() { exec.Command("scancel", id).Run() })
	jd := waitProgress(t, dir, 6, 40*time.Second)
	engine := rankPid(jd.Path, 2)
	if engine == 0 {
		t.Fatal("engine rank 2 not found")
	}
	syscall.Kill(engine, syscall.SIGSTOP)
	t.Cleanup(func() { syscall.Kill(engine, syscall.SIGKILL); syscall.Kill(engine, syscall.SIGCONT) })
	stopped := time.Now()
	r = rh(t, dir, "wait", "--timeout", "45s", id)
	t.Logf("wait returned %v after the SIGSTOP: exit %d\n%s", time.Since(stopped).Round(time.Millisecond), r.code, r.stdout)
	if r.code != jobdir.NodeLost.ExitCode() {
		out, _ := os.ReadFile(jd.File("slurm-" + id + ".out"))
		ps, _ := exec.Command("ps", "-o", "pid,stat,args", "--ppid", "1", "-e").Output()
		t.Fatalf("wait: exit %d, want %d (node-lost)\n%s%s\nstatus.json: %s\njob output:\n%s\nprocesses:\n%s", r.code, jobdir.NodeLost.ExitCode(),
			r.stdout, r.stderr, endStatus(jd.Path), out, grepLines(string(ps), "rankhub"))
	}
	if p, err := jd.ReadProgress(); err != nil || p.Done+p.Failed != p.Total {
		t.Fatalf("progress %+v %v: the sweep did not finish on the other engine", p, err)
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
