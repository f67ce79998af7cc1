package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rankhub/rankhub/comm"
	"github.com/rankhub/rankhub/internal/netnstest"
	"github.com/rankhub/rankhub/launcher"
	"github.com/rankhub/rankhub/views"
)

// startHub runs rankhub start with args and returns the job directory; the
// hub is killed at the end of the test if still running.
func startHub(t *testing.T, dir string, args ...string) (string, *comm.ConnInfo) {
	t.Helper()
	r := rh(t, dir, append([]string{"start"}, args...)...)
	if r.code != 0 {
		t.Fatalf("start %v: %d\n%s", args, r.code, r.stderr)
	}
	jobDir := strings.TrimSpace(r.stdout)
	ci, err := comm.ReadConnInfo(filepath.Join(jobDir, launcher.ConnFile))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if syscall.Kill(ci.PID, syscall.SIGKILL) == nil {
			waitGone(ci.PID, 5*time.Second)
		}
	})
	return jobDir, ci
}

// bgEngines is a `rankhub engines` running in the background.
type bgEngines struct {
	cmd  *exec.Cmd
	ids  []int
	out  *syncBuffer
	done chan struct{}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var joinedLine = regexp.MustCompile(`^engines \[([0-9 ]*)\] joined the hub at `)

// startEngines runs `[wrap...] rankhub engines args...` until it reports the
// ids of its engines.
func startEngines(t *testing.T, dir string, wrap []string, args ...string) *bgEngines {
	t.Helper()
	argv := append(append(slices.Clone(wrap), filepath.Join(bin, "rankhub"), "engines"), args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = dir
	so, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	b := &bgEngines{cmd: cmd, out: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stderr = b.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.stop(t) })
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(so)
		first := true
		for sc.Scan() {
			if first {
				lines <- sc.Text()
				first = false
			}
		}
		close(lines)
		cmd.Wait()
		close(b.done)
	}()
	select {
	case line, ok := <-lines:
		m := joinedLine.FindStringSubmatch(line)
		if !ok || m == nil {
			<-b.done
			t.Fatalf("rankhub engines %v: %q, exit %v\n%s", args, line, cmd.ProcessState, b.out)
		}
		for _, f := range strings.Fields(m[1]) {
			var id int
			fmt.Sscan(f, &id)
			b.ids = append(b.ids, id)
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("rankhub engines %v did not report its engines\n%s", args, b.out)
	}
	return b
}

// stop ends the engines as Ctrl-C would and waits for them.
func (b *bgEngines) stop(t *testing.T) {
	select {
	case <-b.done:
		return
	default:
	}
	b.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-b.done:
	case <-time.After(20 * time.Second):
		b.cmd.Process.Kill()
		t.Errorf("rankhub engines did not end on SIGTERM\n%s", b.out)
	}
}

// setBack rewrites the connection file as if the hub had written it d ago
// (its created time and its mtime): a hub running for d, without waiting d.
func setBack(t *testing.T, path string, d time.Duration) {
	t.Helper()
	ci, err := comm.ReadConnInfo(path)
	if err != nil {
		t.Fatal(err)
	}
	ci.Created = ci.Created.Add(-d)
	if err := comm.WriteConnInfo(path, ci); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-d)
	if err := os.Chtimes(path, old, old); err != nil {
		t.Fatal(err)
	}
}

// pidsOf runs pid on every engine the load-balanced view reaches in a map
// of n tasks and returns the distinct pids seen.
func lbPids(t *testing.T, c *views.Client, n int) map[int]bool {
	t.Helper()
	lb, _ := c.LoadBalancedView()
	seq := make([]int, n)
	ar, err := lb.Map("pid", 1, seq)
	if err != nil {
		t.Fatal(err)
	}
	vals, err := ar.Get(30 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	pids := map[int]bool{}
	for _, v := range vals.([]any) {
		pids[v.(int)] = true
	}
	return pids
}

// TestEnginesJoinLate: engines started by `rankhub engines` join a hub that
// has run for 2 minutes (its hub.json set back by 2 minutes rather than
// waiting: the bootstrap refused a file older than one minute), get new
// ids never given before, take load-balanced work at once, and leave
// without disturbing the others. An engine with other functions is
// accepted with a warning naming the difference.
func TestEnginesJoinLate(t *testing.T) {
	dir := t.TempDir()
	prog := filepath.Join(bin, "userprog")
	jobDir, _ := startHub(t, dir, "-n", "2", "--", prog)
	hubFile := filepath.Join(jobDir, launcher.ConnFile)
	setBack(t, hubFile, 2*time.Minute)

	c, err := views.Connect(hubFile)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	a := startEngines(t, dir, nil, jobDir, "-n", "2", "--label", "gpu,big", "--", prog)
	if !slices.Equal(a.ids, []int{1, 2}) {
		t.Fatalf("joined engines got ids %v, want [1 2]", a.ids)
	}
	if err := c.WaitForEngines(t.Context(), 3); err != nil {
		t.Fatal(err)
	}
	byID := map[int]int{}
	for _, e := range c.Engines() {
		byID[e.ID] = e.PID
	}
	pids := lbPids(t, c, 200)
	for _, id := range a.ids {
		if !pids[byID[id]] {
			t.Errorf("load-balanced map of 200 tasks never reached joined engine %d (pid %d); reached %v", id, byID[id], pids)
		}
	}
	// Their label: tasks that require it go to them only.
	lb, _ := c.LoadBalancedView()
	gr, err := lb.With(views.TaskOptions{Require: []string{"gpu"}}).Map("pid", 1, make([]int, 20))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := gr.Get(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	for _, m := range gr.Metadata() {
		if !slices.Contains(a.ids, m.EngineID) {
			t.Fatalf("a task requiring gpu ran on engine %d, which has no such label", m.EngineID)
		}
	}
	dv, _ := c.View(1)
	if v, err := dv.ApplySync("add_ab", 2, 3); err != nil || v != 5 {
		t.Fatalf("add_ab on a joined engine: %v %v", v, err)
	}

	// They leave; engine 0 goes on, and the next engine gets id 3.
	a.stop(t)
	deadline := time.Now().Add(10 * time.Second)
	for len(c.IDs()) != 1 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if ids := c.IDs(); !slices.Equal(ids, []int{0}) {
		t.Fatalf("after the joined engines left: ids %v", ids)
	}
	if pids := lbPids(t, c, 10); len(pids) != 1 {
		t.Fatalf("after the joined engines left: pids %v", pids)
	}
	b := startEngines(t, dir, nil, hubFile, "-n", "1") // rankhub's own functions
	if !slices.Equal(b.ids, []int{3}) {
		t.Fatalf("the next engine got %v, want [3] (ids are never reused)", b.ids)
	}
	log, _ := os.ReadFile(filepath.Join(jobDir, "rank-0.log.json"))
	var warned bool
	for _, line := range strings.Split(string(log), "\n") {
		var rec struct {
			Level, Functions string
			Engine           int
		}
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Level == "warn" && rec.Engine == 3 {
			warned = rec.Functions == "lacks add_ab, pid, shout"
		}
	}
	if !warned {
		t.Errorf("no warning naming the functions engine 3 lacks and adds in the hub's log:\n%s", log)
	}
	if r := rh(t, dir, "stop", jobDir); r.code != 0 || !strings.Contains(r.stdout, "stopped 2 engines") {
		t.Fatalf("stop: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	select {
	case <-b.done:
	case <-time.After(10 * time.Second):
		t.Fatalf("rankhub engines still running after the hub stopped\n%s", b.out)
	}
}

// TestEnginesDeadHub: a hub.json whose hub is gone is refused at once,
// naming the file and the address that does not answer.
func TestEnginesDeadHub(t *testing.T) {
	dir := t.TempDir()
	ci := &comm.ConnInfo{TCP: "127.0.0.1:1", Host: "elsewhere", PID: 1, Created: time.Now().Add(-time.Hour)}
	ci.SetKey(make([]byte, 32))
	path := filepath.Join(dir, "hub.json")
	if err := comm.WriteConnInfo(path, ci); err != nil {
		t.Fatal(err)
	}
	r := rh(t, dir, "engines", path, "-n", "1")
	if r.code == 0 || !strings.Contains(r.stderr, path) || !strings.Contains(r.stderr, "127.0.0.1:1") || !strings.Contains(r.stderr, "does not answer") {
		t.Fatalf("engines on a dead hub: %d\n%s", r.code, r.stderr)
	}
}

// TestStartUserProgram: rankhub start -- prog runs the user's program on
// every rank, so an outside client applies functions registered only there;
// --listen makes the hub reachable on the host's address.
func TestStartUserProgram(t *testing.T) {
	dir := t.TempDir()
	jobDir, ci := startHub(t, dir, "-n", "3", "--listen", "0.0.0.0", "--", filepath.Join(bin, "userprog"))
	if strings.HasPrefix(ci.TCP, "127.") {
		t.Errorf("--listen 0.0.0.0 advertises %s, a loopback address", ci.TCP)
	}
	c, err := views.Connect(filepath.Join(jobDir, launcher.ConnFile))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	lb, _ := c.LoadBalancedView()
	v, err := lb.ApplySync("add_ab", 20, 22)
	if err != nil || v != 42 {
		t.Fatalf("add_ab through the load-balanced view: %v %v", v, err)
	}
	dv, _ := c.DirectView()
	vs, err := dv.ApplySync("add_ab", 1, 2)
	if err != nil || !slices.Equal(vs.([]any), []any{3, 3}) {
		t.Fatalf("add_ab on every engine: %v %v", vs, err)
	}
	ar, err := dv.Apply("shout", "hi")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ar.Get(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	want := "[stdout:0] out: hi\n[stdout:0] child: hi\n[stderr:0] err: hi\n[stdout:1] out: hi\n[stdout:1] child: hi\n[stderr:1] err: hi\n"
	if got := views.FormatOutputs(ar); got != want {
		t.Errorf("what shout printed:\n%s\nwant:\n%s", got, want)
	}
	if r := rh(t, dir, "stop", jobDir); r.code != 0 {
		t.Fatalf("stop: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

// TestEnginesOtherNetns: a hub started with --listen in one network
// namespace, engines joining from a second one over a veth pair (another
// host as far as the network goes: no shared Unix socket, only TCP).
func TestEnginesOtherNetns(t *testing.T) {
	p := netnstest.New(t, "rhj", "10.232.0")
	nsA, nsB, vethA, vethB := p.NSA, p.NSB, p.VethA, p.VethB
	dir := t.TempDir()
	prog := filepath.Join(bin, "userprog")
	r := rhWrapped(t, dir, p.Exec(nsA), "start", "-n", "2", "--interface", vethA, "--", prog)
	if r.code != 0 {
		t.Fatalf("start in %s: %d\n%s", nsA, r.code, r.stderr)
	}
	jobDir := strings.TrimSpace(r.stdout)
	ci, err := comm.ReadConnInfo(filepath.Join(jobDir, launcher.ConnFile))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(ci.PID, syscall.SIGKILL) })
	if !strings.HasPrefix(ci.TCP, "10.232.0.1:") {
		t.Fatalf("--interface %s advertises %s", vethA, ci.TCP)
	}
	e := startEngines(t, dir, p.Exec(nsB), jobDir, "-n", "2", "--", prog)
	if !slices.Equal(e.ids, []int{1, 2}) {
		t.Fatalf("engines from %s got ids %v", nsB, e.ids)
	}
	// px from the hub's namespace: each engine names the veth of its own.
	r = rhWrapped(t, dir, p.Exec(nsA), "px", jobDir, "--", "grep -o 'rhj[ab][0-9]*' /proc/net/dev")
	want := fmt.Sprintf("[stdout:0] %s\n[stdout:1] %s\n[stdout:2] %s\n", vethA, vethB, vethB)
	if r.code != 0 || r.stdout != want {
		t.Fatalf("px: %d\n%q, want %q\n%s", r.code, r.stdout, want, r.stderr)
	}
	if r := rhWrapped(t, dir, p.Exec(nsA), "stop", jobDir); r.code != 0 || !strings.Contains(r.stdout, "stopped 3 engines") {
		t.Fatalf("stop: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}
