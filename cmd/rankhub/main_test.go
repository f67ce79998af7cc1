package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// bin holds rankhub and the example programs, built once for the package.
var bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "rankhub-cli-")
	if err != nil {
		panic(err)
	}
	bin = dir
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	for name, pkg := range map[string]string{"rankhub": "./cmd/rankhub", "hello": "./examples/hello", "userprog": "./cmd/rankhub/testdata/userprog"} {
		cmd := exec.Command("go", "build", "-o", filepath.Join(dir, name), pkg)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "building %s: %v\n%s", pkg, err, out)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type result struct {
	stdout, stderr string
	code           int
}

func rh(t *testing.T, dir string, args ...string) result {
	t.Helper()
	return rhWrapped(t, dir, nil, args...)
}

// rhLimit is how long rh lets rankhub run before it fails the test.
const rhLimit = 60 * time.Second

// rhWrapped runs rankhub under the command wrap (such as ip netns exec NS).
func rhWrapped(t *testing.T, dir string, wrap []string, args ...string) result {
	t.Helper()
	return rhFor(t, dir, rhLimit, wrap, args...)
}

// rhFor is rhWrapped with its own limit, for commands that wait longer
// than rhLimit (rankhub wait --timeout).
func rhFor(t *testing.T, dir string, limit time.Duration, wrap []string, args ...string) result {
	t.Helper()
	argv := append(append(append([]string{}, wrap...), filepath.Join(bin, "rankhub")), args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = dir
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(limit):
		cmd.Process.Kill()
		<-done // the output copiers have ended: se is ours to read
		t.Fatalf("rankhub %v did not finish; stderr:\n%s", args, se.String())
	}
	return result{so.String(), se.String(), cmd.ProcessState.ExitCode()}
}

func TestRunHelloJobFile(t *testing.T) {
	dir := t.TempDir()
	job := fmt.Sprintf("[job]\nname = \"hello\"\nranks = 4\nprogram = [%q]\n", filepath.Join(bin, "hello"))
	os.WriteFile(filepath.Join(dir, "hello.toml"), []byte(job), 0o644)
	r := rh(t, dir, "run", "hello.toml")
	if r.code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{"[rank 0] engine ids: [0 1 2]", "[rank 0] engine 2: rank 3, pid ", "[rank 0] [stdout:0] hello from ", "[rank 0] [stdout:2] hello from "} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, r.stdout)
		}
	}
	jd, _ := filepath.Glob(filepath.Join(dir, ".rankhub", "hello-*"))
	if len(jd) != 1 {
		t.Fatalf("job directories: %v", jd)
	}
	for _, f := range []string{"job.toml", "rank-0.out", "rank-3.err", "rank-1.log.json", "status.json"} {
		if _, err := os.Stat(filepath.Join(jd[0], f)); err != nil {
			t.Errorf("job directory lacks %s", f)
		}
	}
	out0, _ := os.ReadFile(filepath.Join(jd[0], "rank-0.out"))
	if !strings.Contains(string(out0), "[stdout:1] hello from") || strings.Contains(string(out0), "[rank 0]") {
		t.Errorf("rank-0.out holds the raw output of rank 0:\n%s", out0)
	}
}

func TestRunProgramLikeMpirun(t *testing.T) {
	dir := t.TempDir()
	r := rh(t, dir, "run", "-n", "3", "--", filepath.Join(bin, "hello"))
	if r.code != 0 || !strings.Contains(r.stdout, "engine ids: [0 1]") {
		t.Fatalf("exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
}

func TestRunFailingRankExitsNonZeroNamingIt(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "prog.sh")
	os.WriteFile(script, []byte("#!/bin/sh\nif [ \"$RANKHUB_RANK\" = 2 ]; then echo dying >&2; exit 7; fi\nsleep 30\n"), 0o755)
	start := time.Now()
	r := rh(t, dir, "run", "-n", "3", "--", script)
	if r.code == 0 || !strings.Contains(r.stderr, "rank 2 exited with status 7; the other ranks were stopped") ||
		!strings.Contains(r.stderr, "[rank 2] dying") {
		t.Fatalf("exit %d\nstderr:\n%s", r.code, r.stderr)
	}
	if time.Since(start) > 20*time.Second {
		t.Fatalf("the other ranks were not stopped promptly (%v)", time.Since(start))
	}
}

func TestValidateReportsEveryError(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "bad.toml"), []byte("[job]\nranks = 1\nwalltime = \"soon\"\nfoo = 3\n"), 0o644)
	r := rh(t, dir, "validate", "bad.toml")
	if r.code != 1 {
		t.Fatalf("exit %d", r.code)
	}
	for _, want := range []string{"bad.toml:2:1: job.ranks:", "bad.toml:3:1: job.walltime:", "bad.toml:4:1: job.foo: unknown key"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
		}
	}
	_, file, _, _ := runtime.Caller(0)
	ex := filepath.Join(filepath.Dir(file), "..", "..", "jobs", "examples", "hello.toml")
	if r := rh(t, dir, "validate", ex); r.code != 0 || !strings.Contains(r.stdout, "ok (job \"hello\", 4 ranks") {
		t.Fatalf("valid example: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

func TestVersionHelpAndUsage(t *testing.T) {
	dir := t.TempDir()
	r := rh(t, dir, "version")
	if r.code != 0 || !strings.Contains(r.stdout, "rankhub ") || !strings.Contains(r.stdout, runtime.Version()) || !strings.Contains(r.stdout, "revision ") {
		t.Fatalf("version: %+v", r)
	}
	if r := rh(t, dir, "help"); r.code != 0 || !strings.Contains(r.stdout, "run ") || !strings.Contains(r.stdout, "validate") {
		t.Fatalf("help: %+v", r)
	}
	if r := rh(t, dir, "run", "-h"); r.code != 0 || !strings.Contains(r.stdout, "-ranks") || !strings.Contains(r.stdout, "-tcp") {
		t.Fatalf("run -h: %+v", r)
	}
	if r := rh(t, dir, "frobnicate"); r.code != 2 || !strings.Contains(r.stderr, `unknown command "frobnicate"`) {
		t.Fatalf("unknown command: %+v", r)
	}
	if r := rh(t, dir, "run", "--", "x"); r.code != 2 || !strings.Contains(r.stderr, "-n N is required") {
		t.Fatalf("usage error: %+v", r)
	}
}

// TestCtrlCStopsEveryRank sends SIGINT to `rankhub run`, as a terminal's
// Ctrl-C does: every rank must be gone and the exit status is 130.
func TestCtrlCStopsEveryRank(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "prog.sh")
	os.WriteFile(script, []byte("#!/bin/sh\necho $$ > pid-$RANKHUB_RANK\nexec sleep 60\n"), 0o755)
	cmd := exec.Command(filepath.Join(bin, "rankhub"), "run", "-n", "3", "--", script)
	cmd.Dir = dir
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var pids []int
	deadline := time.Now().Add(20 * time.Second)
	for len(pids) < 3 && time.Now().Before(deadline) {
		pids = pids[:0]
		for r := 0; r < 3; r++ {
			b, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("pid-%d", r)))
			var p int
			if err == nil && len(b) > 0 {
				fmt.Sscan(string(b), &p)
			}
			if p > 0 {
				pids = append(pids, p)
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(pids) != 3 {
		cmd.Process.Kill()
		t.Fatalf("ranks did not start: %v", pids)
	}
	cmd.Process.Signal(os.Interrupt)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		cmd.Process.Kill()
		t.Fatal("rankhub run did not stop on SIGINT")
	}
	if code := cmd.ProcessState.ExitCode(); code != 130 {
		t.Fatalf("exit status %d, want 130", code)
	}
	for _, p := range pids {
		if err := syscall.Kill(p, 0); err == nil {
			t.Errorf("rank pid %d still alive", p)
		}
	}
}

// The local launcher gives each rank an equal share of the cores as
// GOMAXPROCS, unless the user set GOMAXPROCS.
func TestRunSharesCoresAmongRanks(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "prog.sh")
	os.WriteFile(script, []byte("#!/bin/sh\necho \"gomaxprocs=$GOMAXPROCS\"\n"), 0o755)
	for _, tc := range []struct{ user, want string }{
		{"", strconv.Itoa(max(1, runtime.NumCPU()/4))}, {"3", "3"},
	} {
		cmd := exec.Command(filepath.Join(bin, "rankhub"), "run", "-n", "4", "--", script)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GOMAXPROCS="+tc.user)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		if n := strings.Count(string(out), "gomaxprocs="+tc.want+"\n"); n != 4 {
			t.Errorf("GOMAXPROCS=%q: %d of 4 ranks got %s:\n%s", tc.user, n, tc.want, out)
		}
	}
}
