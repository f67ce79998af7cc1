package rankhub_test

// Real-process tests of the core runtime: the test binary re-runs itself as
// every rank (TestMain), started by the real local launcher.

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rankhub/rankhub"
	"github.com/rankhub/rankhub/comm"
	"github.com/rankhub/rankhub/jobdir"
	"github.com/rankhub/rankhub/launcher"
	"github.com/rankhub/rankhub/views"
)

const roleEnv = "RANKHUB_TEST_ROLE"

// registrations run in rank processes only (functions registered by other files).
var registrations []func()

type where struct {
	Engine, Rank, PID int
	Host              string
}

func TestMain(m *testing.M) {
	role := os.Getenv(roleEnv)
	if role == "" {
		os.Exit(m.Run())
	}
	if role == "rank2missing" && os.Getenv(launcher.EnvRank) == "2" {
		os.Exit(0) // a rank its starter never really started
	}
	rankhub.Register("where", func(c *views.Context) where {
		h, _ := os.Hostname()
		return where{c.EngineID, c.Rank, os.Getpid(), h}
	})
	rankhub.Register("sleep", func(ms int) int { time.Sleep(time.Duration(ms) * time.Millisecond); return ms })
	rankhub.Register("exit", func(code int) { os.Exit(code) })
	rankhub.Register("tiny", tiny)
	for _, r := range registrations {
		r()
	}
	rankhub.Main(drivers[role])
}

// note appends a line to <jobdir>/notes, which the test reads.
func note(format string, args ...any) {
	f, err := os.OpenFile(filepath.Join(os.Getenv(launcher.EnvJobDir), "notes"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		panic(err)
	}
	fmt.Fprintf(f, format+"\n", args...)
	f.Close()
}

func waitFile(ctx context.Context, path string) error {
	for {
		if _, err := os.Stat(path); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func pids(c *views.Client) ([]where, error) {
	dv, err := c.DirectView()
	if err != nil {
		return nil, err
	}
	ar, err := dv.Apply("where")
	if err != nil {
		return nil, err
	}
	vals, err := ar.Values(20 * time.Second)
	if err != nil {
		return nil, err
	}
	out := make([]where, len(vals))
	for i, v := range vals {
		if out[i], err = views.As[where](v); err != nil {
			return nil, err
		}
	}
	return out, nil
}

var drivers = map[string]rankhub.Driver{
	// killengine: engine 0 gets a long task and is SIGKILLed; its task must
	// fail naming rank and host; the others keep working.
	"killengine": func(ctx context.Context, c *views.Client) error {
		ws, err := pids(c)
		if err != nil {
			return err
		}
		victim, _ := c.View(0)
		long, err := victim.Apply("sleep", 60000)
		if err != nil {
			return err
		}
		time.Sleep(100 * time.Millisecond)
		start := time.Now()
		syscall.Kill(ws[0].PID, syscall.SIGKILL)
		_, err = long.Get(10 * time.Second)
		note("elapsed %d", time.Since(start).Milliseconds())
		var re *views.RemoteError
		if !errors.As(err, &re) || !errors.Is(err, views.ErrEngineDied) {
			return fmt.Errorf("want an engine-died RemoteError, got %v", err)
		}
		note("error %s", re.Error())
		note("rank %d host %s", re.Rank, re.Host)
		rest, err := c.DirectView()
		if err != nil {
			return err
		}
		if got := rest.Targets(); len(got) != 2 {
			return fmt.Errorf("live engines after the kill: %v", got)
		}
		if _, err := pids(c); err != nil {
			return fmt.Errorf("survivors: %w", err)
		}
		note("survivors ok")
		return nil
	},
	// block: report pids, then wait until told to stop (the hub gets killed).
	"block": func(ctx context.Context, c *views.Client) error {
		ws, err := pids(c)
		if err != nil {
			return err
		}
		for _, w := range ws {
			note("pid %d", w.PID)
		}
		note("ready")
		<-ctx.Done()
		return nil
	},
	// serve: wait for a "go" file, then prove the engines still answer.
	"serve": func(ctx context.Context, c *views.Client) error {
		note("ready")
		if err := waitFile(ctx, filepath.Join(os.Getenv(launcher.EnvJobDir), "go")); err != nil {
			return err
		}
		ws, err := pids(c)
		if err != nil {
			return err
		}
		note("served %d", len(ws))
		return nil
	},
	// failrank: engine 1 exits with status 3 while the driver waits.
	"failrank": func(ctx context.Context, c *views.Client) error {
		v, _ := c.View(1)
		v.Apply("exit", 3)
		<-ctx.Done()
		return nil
	},
}

func readNotes(t *testing.T, dir string) []string {
	t.Helper()
	b, _ := os.ReadFile(filepath.Join(dir, "notes"))
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}

// start runs n ranks of this test binary in the given role.
func start(t *testing.T, ctx context.Context, role string, n int, abort bool) (string, chan error) {
	t.Helper()
	return startEnv(t, ctx, role, n, abort, nil)
}

// startEnv is start with more environment for the ranks.
func startEnv(t *testing.T, ctx context.Context, role string, n int, abort bool, extra map[string]string) (string, chan error) {
	t.Helper()
	dir := t.TempDir()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	_ = out
	env := map[string]string{roleEnv: role, "RANKHUB_START_TIMEOUT": "30s"}
	for k, v := range extra {
		env[k] = v
	}
	done := make(chan error, 1)
	go func() {
		done <- launcher.RunLocal(ctx, launcher.LocalConfig{
			Ranks: n, Command: []string{self, "-test.run=^$"}, JobDir: dir, Workdir: dir, JobID: "t",
			Env:          env,
			AbortOnError: abort, Heartbeat: 200 * time.Millisecond, Grace: 2 * time.Second,
			Stdout: testWriter{t}, Stderr: testWriter{t},
		})
	}()
	return dir, done
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func waitNote(t *testing.T, dir, want string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		for _, l := range readNotes(t, dir) {
			if l == want {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no note %q within %v; notes: %q", want, timeout, readNotes(t, dir))
}

func TestEngineKilledTasksFailOthersCarryOn(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dir, done := start(t, ctx, "killengine", 4, false)
	if err := <-done; err != nil {
		// The killed engine shows as a failed rank; with abort off the job
		// goes on and the driver decides the outcome.
		var re *launcher.RunError
		if !errors.As(err, &re) || re.First.Rank != 1 || re.First.Signal != "SIGKILL" {
			t.Fatalf("run: %v", err)
		}
	}
	notes := readNotes(t, dir)
	host, _ := os.Hostname()
	joined := strings.Join(notes, "\n")
	if !strings.Contains(joined, "survivors ok") || !strings.Contains(joined, "rank 1 host "+host) ||
		!strings.Contains(joined, "rank 1 on "+host) {
		t.Fatalf("notes:\n%s", joined)
	}
	ms, _ := strconv.Atoi(strings.TrimPrefix(notes[0], "elapsed "))
	if ms > 5000 {
		t.Fatalf("the dead engine's task failed after %d ms", ms)
	}
	st, _ := os.ReadFile(filepath.Join(dir, jobdir.StatusFile))
	if !strings.Contains(string(st), `"completed"`) {
		t.Fatalf("end status: %s", st)
	}
}

func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// A zombie (state Z) has exited and waits to be reaped.
	f := strings.Fields(string(b))
	return len(f) > 2 && f[2] != "Z"
}

func TestHubKilledEnginesExit(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dir, done := start(t, ctx, "block", 4, false)
	waitNote(t, dir, "ready", 30*time.Second)
	var engines []int
	for _, l := range readNotes(t, dir) {
		if p, ok := strings.CutPrefix(l, "pid "); ok {
			n, _ := strconv.Atoi(p)
			engines = append(engines, n)
		}
	}
	ci, err := comm.ReadConnInfo(filepath.Join(dir, jobdir.ConnFile))
	if err != nil {
		t.Fatal(err)
	}
	if len(engines) != 3 || !alive(ci.PID) {
		t.Fatalf("engines %v, hub %d", engines, ci.PID)
	}
	killed := time.Now()
	syscall.Kill(ci.PID, syscall.SIGKILL)
	// Heartbeat 200ms × 5 misses = 1s timeout; the engines must be gone by then
	// (on one host the closed socket tells them at once).
	deadline := killed.Add(3 * time.Second)
	for {
		var left []int
		for _, p := range engines {
			if alive(p) {
				left = append(left, p)
			}
		}
		if len(left) == 0 {
			t.Logf("all engines exited %v after the hub was killed", time.Since(killed).Round(time.Millisecond))
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("engines %v still alive %v after the hub was killed", left, time.Since(killed))
		}
		time.Sleep(20 * time.Millisecond)
	}
	err = <-done
	var re *launcher.RunError
	if !errors.As(err, &re) || re.First.Rank != 0 || re.First.Signal != "SIGKILL" {
		t.Fatalf("run: %v", err)
	}
}

func TestBadPeersRefusedHubServes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dir, done := start(t, ctx, "serve", 3, true)
	waitNote(t, dir, "ready", 30*time.Second)
	ci, err := comm.ReadConnInfo(filepath.Join(dir, jobdir.ConnFile))
	if err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(filepath.Join(dir, jobdir.ConnFile))
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("connection file mode %v", st.Mode().Perm())
	}
	// 1. wrong key
	bad, _ := comm.NewKey()
	if _, err := comm.Dial(ctx, "tcp", ci.TCP, bad, comm.Options{}); !errors.Is(err, comm.ErrAuth) {
		t.Fatalf("wrong key: %v", err)
	}
	// 2. garbage bytes
	nc, err := net.Dial("tcp", ci.TCP)
	if err != nil {
		t.Fatal(err)
	}
	nc.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n" + strings.Repeat("\x00\xff", 64)))
	nc.SetReadDeadline(time.Now().Add(15 * time.Second))
	bufio.NewReader(nc).ReadString(0)
	nc.Close()
	// 3. an authenticated peer announcing an oversized frame
	key, _ := ci.KeyBytes()
	c, err := comm.Dial(ctx, "tcp", ci.TCP, key, comm.Options{})
	if err != nil {
		t.Fatal(err)
	}
	hdr := make([]byte, 40)
	binary.LittleEndian.PutUint32(hdr[0:], 0x42554852)
	hdr[4], hdr[5] = 1, byte(comm.TypeUser)
	binary.LittleEndian.PutUint32(hdr[12:], 1)
	binary.LittleEndian.PutUint64(hdr[32:], 1<<50)
	c.NetConn().Write(hdr)
	c.NetConn().SetReadDeadline(time.Now().Add(15 * time.Second))
	if _, err := c.NetConn().Read(make([]byte, 1)); err == nil {
		t.Fatal("the hub answered an oversized frame")
	}
	c.Close()

	// The hub still serves its engines.
	os.WriteFile(filepath.Join(dir, "go"), nil, 0o644)
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
	waitNote(t, dir, "served 2", time.Second)
	log, _ := os.ReadFile(filepath.Join(dir, "rank-0.log.json"))
	var refused, oversize int
	for _, line := range strings.Split(string(log), "\n") {
		var e map[string]any
		if json.Unmarshal([]byte(line), &e) != nil {
			continue
		}
		msg, _ := e["message"].(string)
		errs, _ := e["error"].(string)
		if msg == "refused connection" {
			refused++
		}
		if strings.Contains(errs, "frame too large") {
			oversize++
		}
	}
	if refused != 2 || oversize != 1 {
		t.Fatalf("hub log: %d refused connections (want 2), %d oversize (want 1):\n%s", refused, oversize, log)
	}
}

func TestFailedRankStopsAll(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	_, done := start(t, ctx, "failrank", 3, true)
	err := <-done
	var re *launcher.RunError
	if !errors.As(err, &re) || re.First.Rank != 2 || re.First.Status != 3 || !re.Aborted {
		t.Fatalf("run: %v", err)
	}
	if !strings.Contains(err.Error(), "rank 2 exited with status 3") {
		t.Fatalf("message: %v", err)
	}
	if len(re.All) != 3 {
		t.Fatalf("ranks ended: %+v", re.All)
	}
}

func TestInterruptStopsEveryRank(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	rctx, interrupt := context.WithCancel(ctx)
	dir, done := start(t, rctx, "block", 3, true)
	waitNote(t, dir, "ready", 30*time.Second)
	interrupt() // what Ctrl-C does in `rankhub run`
	select {
	case err := <-done:
		if err == nil || !errors.Is(err, context.Canceled) {
			t.Fatalf("run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("ranks did not stop")
	}
	for _, l := range readNotes(t, dir) {
		if p, ok := strings.CutPrefix(l, "pid "); ok {
			n, _ := strconv.Atoi(p)
			if alive(n) {
				t.Fatalf("engine %d still alive", n)
			}
		}
	}
	st, _ := os.ReadFile(filepath.Join(dir, jobdir.StatusFile))
	if !strings.Contains(string(st), `"signalled"`) {
		t.Fatalf("end status: %s", st)
	}
}

// Issue 13: when ranks never reach the hub, the job fails start-failed
// naming the missing ranks and who was to start them, not only a count.
func TestMissingRanksNamed(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dir, done := startEnv(t, ctx, "rank2missing", 4, false, map[string]string{"RANKHUB_START_TIMEOUT": "2s"})
	if err := <-done; err == nil {
		t.Fatal("run succeeded with rank 2 missing")
	}
	b, err := os.ReadFile(filepath.Join(dir, jobdir.StatusFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"start-failed", "1 of 3 engine ranks never reached the hub", "missing ranks: 2;", "rankhub's local launcher"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("status.json lacks %q:\n%s", want, b)
		}
	}
}
