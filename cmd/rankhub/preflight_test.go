package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// noJobDir fails the test when a job directory was created under dir:
// a job refused before the start leaves nothing behind.
func noJobDir(t *testing.T, dir string) {
	t.Helper()
	if jd, _ := filepath.Glob(filepath.Join(dir, ".rankhub", "*")); len(jd) > 0 {
		t.Errorf("a refused job left job directories: %v", jd)
	}
}

// Issue 12 row 10: heartbeat and timeouts below their minimums are errors
// at file:line:col, before anything starts (heartbeat = "1ns" used to warn
// and hang the run).
func TestShortHeartbeatAndTimeoutsRefused(t *testing.T) {
	dir := t.TempDir()
	job := fmt.Sprintf("[job]\nname = \"hb\"\nranks = 2\nheartbeat = \"1ns\"\nprogram = [%q]\n\n[task]\nfunction = \"f\"\ntimeout = \"1us\"\n\n[sweep]\nx = [1]\n\n[results]\nflush_interval = \"1ms\"\n",
		filepath.Join(bin, "hello"))
	os.WriteFile(filepath.Join(dir, "hb.toml"), []byte(job), 0o644)
	want := []string{
		"hb.toml:4:1: job.heartbeat: 1ns is below the minimum 100ms",
		"hb.toml:9:1: task.timeout: 1µs is below the minimum 10ms",
		"hb.toml:15:1: results.flush_interval: 1ms is below the minimum 10ms",
	}
	for _, args := range [][]string{{"validate", "hb.toml"}, {"run", "hb.toml"}} {
		r := rh(t, dir, args...)
		if r.code != 1 {
			t.Errorf("%v: exit %d, want 1\n%s", args, r.code, r.stderr)
		}
		for _, w := range want {
			if !strings.Contains(r.stderr, w) {
				t.Errorf("%v: stderr lacks %q:\n%s", args, w, r.stderr)
			}
		}
	}
	noJobDir(t, dir)
	r := rh(t, dir, "run", "--heartbeat", "1ns", "-n", "2", "--", filepath.Join(bin, "hello"))
	if r.code != 2 || !strings.Contains(r.stderr, "--heartbeat 1ns is below the minimum 100ms") {
		t.Fatalf("--heartbeat 1ns: exit %d\n%s", r.code, r.stderr)
	}
	noJobDir(t, dir)
}

// Issue 12 row 11: a local rank count beyond the user's open-file limit is
// refused naming the limit (ranks = 100000 used to write 6,662 log files,
// then die "too many open files").
func TestLocalRankCountBeyondLimitsRefused(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "many.toml"), []byte(fmt.Sprintf("[job]\nname = \"many\"\nranks = 100\nprogram = [%q]\n", filepath.Join(bin, "hello"))), 0o644)
	// ulimit -n sets the soft and the hard limit: Go cannot raise it.
	limited := func(args ...string) result { return rhShell(t, dir, "ulimit -n 256", args...) }
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"validate", "many.toml"}, "many.toml:3:1: job.ranks: 100 local ranks need about 664 open files"},
		{[]string{"run", "many.toml"}, "many.toml:3:1: job.ranks: 100 local ranks need about 664 open files"},
		{[]string{"run", "-n", "100000", "--", filepath.Join(bin, "hello")}, "--ranks: 100000 local ranks need about 600064 open files"},
	} {
		r := limited(tc.args...)
		if r.code != 1 || !strings.Contains(r.stderr, tc.want) || !strings.Contains(r.stderr, "RLIMIT_NOFILE = 256 (ulimit -n): at most 32 ranks") {
			t.Errorf("%v: exit %d, want 1 and %q naming the limit:\n%s", tc.args, r.code, tc.want, r.stderr)
		}
	}
	noJobDir(t, dir)
	// Within the limit, the same machine runs it.
	if r := limited("run", "-n", "8", "--", filepath.Join(bin, "hello")); r.code != 0 {
		t.Fatalf("8 ranks under ulimit -n 256: exit %d\n%s", r.code, r.stderr)
	}
}

// readOnlyDir makes a directory this user cannot create files in: a
// read-only tmpfs for root (whom permission bits do not stop), mode 0555
// for anyone else.
func readOnlyDir(t *testing.T, path string) bool {
	t.Helper()
	os.MkdirAll(path, 0o755)
	if os.Geteuid() != 0 {
		os.Chmod(path, 0o555)
		t.Cleanup(func() { os.Chmod(path, 0o755) })
		return true
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", path).CombinedOutput(); err != nil {
		t.Logf("SKIP of the read-only case: cannot mount a read-only tmpfs as root: %v %s", err, out)
		return false
	}
	t.Cleanup(func() { exec.Command("umount", path).Run() })
	return true
}

// Issue 12 row 12: the result file's directory is checked by validate,
// run and submit before any rank starts.
func TestResultsDirectoryCheckedBeforeStart(t *testing.T) {
	dir := t.TempDir()
	cases := []struct{ path, want string }{{"missing/out.arrow", "does not exist"}}
	if readOnlyDir(t, filepath.Join(dir, "ro")) {
		cases = append(cases, struct{ path, want string }{"ro/out.arrow", "is not writable"})
	}
	for _, tc := range cases {
		for _, sched := range []string{"local", "slurm"} {
			name := "r" + sched
			job := fmt.Sprintf("[job]\nname = %q\nscheduler = %q\nranks = 2\nwalltime = \"1h\"\n\n[task]\ncommand = \"echo {x}\"\noutputs = [\"y\"]\n\n[sweep]\nx = [1, 2]\n\n[results]\npath = %q\n",
				name, sched, tc.path)
			os.WriteFile(filepath.Join(dir, name+".toml"), []byte(job), 0o644)
			want := fmt.Sprintf("%s.toml:15:1: results.path: ", name)
			cmds := [][]string{{"validate", name + ".toml"}, {"run", name + ".toml"}}
			if sched == "slurm" {
				cmds = [][]string{{"validate", name + ".toml"}, {"submit", "--dry-run", name + ".toml"}}
			}
			for _, args := range cmds {
				r := rh(t, dir, args...)
				if r.code != 1 || !strings.Contains(r.stderr, want) || !strings.Contains(r.stderr, tc.want) {
					t.Errorf("%s %v: exit %d, want 1 and %q ... %q:\n%s%s", tc.path, args, r.code, want, tc.want, r.stdout, r.stderr)
				}
			}
		}
	}
	noJobDir(t, dir)
}
