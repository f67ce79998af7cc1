package views

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rankhub/rankhub/comm"
	"github.com/rankhub/rankhub/views/internal/hub"
)

// Real-process tests: TestMain re-runs this test binary as an engine when
// VIEWS_TEST_ENGINE is set; the hub runs in the test process and writes a
// connection file, so tests use both the in-process client and Connect.

const envEngine = "VIEWS_TEST_ENGINE" // connection file path
const envEngineRank = "VIEWS_TEST_RANK"
const envHeartbeat = "VIEWS_TEST_HEARTBEAT"    // the engines' heartbeat interval (default 200ms)
const envMaxControl = "VIEWS_TEST_MAX_CONTROL" // the engines' largest control payload (default comm's)
const envEngineNet = "VIEWS_TEST_NET"          // how the engine dials the hub: "unix" (default) or "tcp"

func TestMain(m *testing.M) {
	if path := os.Getenv(envEngine); path != "" {
		os.Exit(engineMain(path))
	}
	os.Exit(m.Run())
}

func engineMain(path string) int {
	rank, _ := strconv.Atoi(os.Getenv(envEngineRank))
	ci, err := comm.ReadConnInfo(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	key, _ := ci.KeyBytes()
	ctx := context.Background()
	hb, err := time.ParseDuration(os.Getenv(envHeartbeat))
	if err != nil {
		hb = 200 * time.Millisecond
	}
	opts := comm.Options{Heartbeat: hb}
	if n, err := strconv.Atoi(os.Getenv(envMaxControl)); err == nil {
		opts.Limits = comm.DefaultLimits
		opts.Limits.MaxControl = n
	}
	network, addr := "unix", ci.Unix
	if os.Getenv(envEngineNet) == "tcp" {
		network, addr = "tcp", ci.TCP
	}
	c, err := comm.Dial(ctx, network, addr, key, opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := ServeEngine(ctx, c, EngineConfig{Rank: rank, Host: fmt.Sprintf("node%d", rank), CaptureOutput: true}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

func init() {
	MustRegister("pow10", func(x int) int {
		r := 1
		for i := 0; i < 10; i++ {
			r *= x
		}
		return r
	})
	// The seed recipe: load a random matrix into a name, take its 2-norm
	// from a reference, clean up.
	MustRegister("load_matrix", func(c *Context, name string, n int) int {
		m := make([]float64, n*n)
		for i := range m {
			m[i] = rand.Float64()
		}
		c.NS.Set(name, m)
		return c.EngineID
	})
	MustRegister("norm2", func(c *Context, m []float64) float64 {
		s := 0.0
		for _, x := range m {
			s += x * x
		}
		return math.Sqrt(s)
	})
	MustRegister("cleanup", func(c *Context, name string) int { c.NS.Delete(name); return c.EngineID })
	MustRegister("names", func(c *Context) []string { return c.NS.Names() })
	MustRegister("engine", func(c *Context) int { return c.EngineID })
	MustRegister("flaky", func(c *Context, failOn int) (int, error) {
		if c.EngineID == failOn {
			return 0, fmt.Errorf("engine %d refuses", failOn)
		}
		return c.EngineID, nil
	})
	MustRegister("exitnow", func() { os.Exit(3) })
}

type procCluster struct {
	hub   *Hub
	cl    *Client
	path  string
	procs []*exec.Cmd
}

// startProcs starts a hub here and n engine processes; ranks are 1..n.
// Hub and engines use 200 ms heartbeats.
func startProcs(t testing.TB, n int, cfg HubConfig) *procCluster {
	t.Helper()
	return startProcsWith(t, n, cfg, 200*time.Millisecond, 0)
}

// startProcsWith is startProcs with heartbeats every hb and, if maxControl
// is not 0, control payloads of at most maxControl bytes on the hub's and
// the engines' connections. A test whose outside clients (1 s, as
// Connect's) wait long on the hub needs hb of 1 s, or the hub takes their
// silence for death.
func startProcsWith(t testing.TB, n int, cfg HubConfig, hb time.Duration, maxControl int) *procCluster {
	t.Helper()
	return startProcsOver(t, make([]string, n), cfg, hb, maxControl)
}

// startProcsNet is startProcs with one engine per entry of nets, which
// dials the hub over that network ("unix" or "tcp").
func startProcsNet(t testing.TB, nets []string) *procCluster {
	t.Helper()
	return startProcsOver(t, nets, HubConfig{}, 200*time.Millisecond, 0)
}

// startProcsOver starts len(nets) engines, engine r-1 dialing over nets[r-1]
// ("": unix).
func startProcsOver(t testing.TB, nets []string, cfg HubConfig, hb time.Duration, maxControl int) *procCluster {
	t.Helper()
	n := len(nets)
	key, _ := comm.NewKey()
	opts := comm.Options{Heartbeat: hb}
	if maxControl > 0 {
		opts.Limits = comm.DefaultLimits
		opts.Limits.MaxControl = maxControl
	}
	ln, err := comm.Listen(comm.ListenConfig{TCP: "127.0.0.1:0", Unix: fmt.Sprintf("@views-test-%d-%d", os.Getpid(), time.Now().UnixNano()), Key: key, Opts: opts})
	if err != nil {
		t.Fatal(err)
	}
	host, _ := os.Hostname()
	ci := &comm.ConnInfo{TCP: ln.TCPAddr(), Unix: ln.UnixAddr(), Host: host, PID: os.Getpid(), Ranks: n + 1, Created: time.Now()}
	ci.SetKey(key)
	path := filepath.Join(t.TempDir(), "hub.json")
	if err := comm.WriteConnInfo(path, ci); err != nil {
		t.Fatal(err)
	}
	if cfg.Host == "" {
		cfg.Host = "hubhost"
	}
	h := NewHub(cfg)
	go h.Serve(ln)
	pc := &procCluster{hub: h, cl: NewClient(h), path: path}
	for r := 1; r <= n; r++ {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), envEngine+"="+path, envEngineRank+"="+strconv.Itoa(r), envHeartbeat+"="+hb.String(), envEngineNet+"="+nets[r-1])
		if maxControl > 0 {
			cmd.Env = append(cmd.Env, envMaxControl+"="+strconv.Itoa(maxControl))
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		pc.procs = append(pc.procs, cmd)
		go cmd.Wait()
	}
	t.Cleanup(func() {
		h.Shutdown(3 * time.Second)
		ln.Close()
		for _, p := range pc.procs {
			p.Process.Kill()
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := pc.cl.WaitForEngines(ctx, n); err != nil {
		t.Fatal(err)
	}
	return pc
}

func (pc *procCluster) connect(t testing.TB) *Client {
	t.Helper()
	c, err := Connect(pc.path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func must[T any](t testing.TB) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

// TestSeedExamples runs the examples on real engine processes, from
// the in-process client and from an outside client.
func TestSeedExamples(t *testing.T) {
	pc := startProcs(t, 2, HubConfig{})
	for _, tc := range []struct {
		name string
		cl   *Client
	}{{"local", pc.cl}, {"remote", pc.connect(t)}} {
		t.Run(tc.name, func(t *testing.T) {
			cl := tc.cl
			dv := must[*DirectView](t)(cl.DirectView())
			if !reflect.DeepEqual(dv.Targets(), []int{0, 1}) {
				t.Fatalf("targets %v", dv.Targets())
			}
			// push a=5, b=10; apply a+b+x for x=27 → [42, 42]
			must[any](t)(must[*AsyncResult](t)(dv.Push(map[string]any{"a": 5, "b": 10})).Get(5 * time.Second))
			v := must[any](t)(dv.ApplySync("add3", Ref{Name: "a"}, Ref{Name: "b"}, 27))
			if !reflect.DeepEqual(v, []any{42, 42}) {
				t.Fatalf("apply: %v", v)
			}
			// scatter 0..15 → [0..7], [8..15]; gather → 0..15
			seq := make([]int, 16)
			for i := range seq {
				seq[i] = i
			}
			must[any](t)(must[*AsyncResult](t)(dv.Scatter("x", seq)).Get(5 * time.Second))
			parts := must[any](t)(dv.Get("x"))
			if !reflect.DeepEqual(parts, []any{seq[:8], seq[8:]}) {
				t.Fatalf("scatter parts %v", parts)
			}
			all := must[any](t)(must[*AsyncResult](t)(dv.Gather("x")).Get(5 * time.Second))
			if !reflect.DeepEqual(all, seq) {
				t.Fatalf("gather %v", all)
			}
			// parallel map of x^10 over 0..31 equals the serial result
			xs := make([]int, 32)
			want := make([]any, 32)
			for i := range xs {
				xs[i] = i
				r := 1
				for k := 0; k < 10; k++ {
					r *= i
				}
				want[i] = r
			}
			got := must[[]any](t)(dv.MapSync("pow10", xs))
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("direct map %v", got)
			}
			lb := must[*LoadBalancedView](t)(cl.LoadBalancedView())
			got = must[[]any](t)(lb.MapSync("pow10", 3, xs))
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("load-balanced map %v", got)
			}
			// switching targets between calls
			for _, id := range []int{0, 1, -1, -2} {
				one := must[*DirectView](t)(dv.On(id))
				e := must[any](t)(one.ApplySync("engine"))
				wantID := id
				if id < 0 {
					wantID = 2 + id
				}
				if e != wantID {
					t.Fatalf("On(%d) ran on %v", id, e)
				}
			}
			sl := must[*DirectView](t)(cl.Slice(-1, -3, -1))
			if !reflect.DeepEqual(sl.Targets(), []int{1, 0}) {
				t.Fatalf("slice: %v", sl.Targets())
			}
			if err := dv.Clear(); err != nil {
				t.Fatal(err)
			}
			// Clear goes through the control channel: wait until both are empty.
			deadline := time.Now().Add(5 * time.Second)
			for {
				n := must[any](t)(dv.ApplySync("names"))
				if reflect.DeepEqual(n, []any{[]string{}, []string{}}) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("names after clear: %v", n)
				}
				time.Sleep(10 * time.Millisecond)
			}
		})
	}
}

// TestSeedRecipe: a random matrix loaded on whatever engine the scheduler
// picks, its 2-norm computed there from a reference, then a cleanup; no
// name is left anywhere.
func TestSeedRecipe(t *testing.T) {
	pc := startProcs(t, 2, HubConfig{})
	for _, cl := range []*Client{pc.cl, pc.connect(t)} {
		lb := must[*LoadBalancedView](t)(cl.LoadBalancedView())
		load := must[*AsyncResult](t)(lb.Apply("load_matrix", "A", 50))
		norm := must[*AsyncResult](t)(lb.With(TaskOptions{Follow: On(load)}).Apply("norm2", Ref{Name: "A"}))
		clean := must[*AsyncResult](t)(lb.With(TaskOptions{Follow: On(load), After: On(norm)}).Apply("cleanup", "A"))
		where := must[any](t)(load.Get(5 * time.Second))
		nv := must[any](t)(norm.Get(5 * time.Second)).(float64)
		if nv <= 0 || nv > 50 {
			t.Fatalf("norm %v", nv)
		}
		if c := must[any](t)(clean.Get(5 * time.Second)); c != where {
			t.Fatalf("cleanup ran on %v, matrix on %v", c, where)
		}
		if e := norm.Metadata()[0].EngineID; e != where {
			t.Fatalf("norm ran on %d, matrix on %v", e, where)
		}
		md := clean.Metadata()[0]
		if !reflect.DeepEqual(md.Follow, load.MsgIDs()) || !reflect.DeepEqual(md.After, norm.MsgIDs()) {
			t.Fatalf("metadata after/follow: %+v", md)
		}
		dv := must[*DirectView](t)(cl.DirectView())
		if n := must[any](t)(dv.ApplySync("names")); !reflect.DeepEqual(n, []any{[]string{}, []string{}}) {
			t.Fatalf("names left: %v", n)
		}
	}
}

func TestAsyncResultAndMetadata(t *testing.T) {
	pc := startProcs(t, 2, HubConfig{})
	cl := pc.connect(t)
	dv := must[*DirectView](t)(cl.DirectView())
	ar := must[*AsyncResult](t)(dv.Apply("sleep", 50))
	if ar.Ready() {
		t.Fatal("ready at once")
	}
	if _, err := ar.Successful(); !errors.Is(err, ErrNotReady) {
		t.Fatalf("Successful before ready: %v", err)
	}
	if _, err := ar.Get(time.Millisecond); !errors.Is(err, ErrTimeout) {
		t.Fatalf("Get timeout: %v", err)
	}
	if ar.Wait(time.Millisecond) {
		t.Fatal("Wait reported ready")
	}
	if !ar.Wait(5 * time.Second) {
		t.Fatal("not ready")
	}
	if ok, err := ar.Successful(); !ok || err != nil {
		t.Fatalf("Successful %v %v", ok, err)
	}
	if v, err := ar.GetEngine(1, 0); err != nil || v != 50 {
		t.Fatalf("GetEngine %v %v", v, err)
	}
	for _, m := range ar.Metadata() {
		if m.Status != "ok" || m.MsgID == 0 || m.Submitted.After(m.Started) || m.Started.After(m.Completed) || m.Completed.After(m.Received) {
			t.Fatalf("metadata order: %+v", m)
		}
	}
	if ar.WallTime() < 50*time.Millisecond || ar.SerialTime() < 100*time.Millisecond || ar.Elapsed() != ar.WallTime() {
		t.Fatalf("times: wall %v serial %v", ar.WallTime(), ar.SerialTime())
	}
	// Remote failures: a panic caught on the engine, several → CompositeError.
	_, err := dv.ApplySync("boom")
	var ce *CompositeError
	if !errors.As(err, &ce) || len(ce.Errors) != 2 || !errors.Is(err, ErrPanic) {
		t.Fatalf("panic: %v", err)
	}
	if re := ce.Errors[1]; re.EngineID != 1 || re.Host != "node2" || re.Rank != 2 || !strings.Contains(re.Message, "kaboom") || re.Traceback == "" {
		t.Fatalf("remote error: %+v", re)
	}
	one := must[*DirectView](t)(dv.On(0))
	_, err = one.ApplySync("fail", "bad input")
	var re *RemoteError
	if !errors.As(err, &re) || re.Message != "bad input" || re.Type != "*errors.errorString" {
		t.Fatalf("remote error: %#v", err)
	}
	// The engines live on after the panic; ordered and unordered iteration.
	lb := must[*LoadBalancedView](t)(cl.LoadBalancedView())
	m := must[*AsyncResult](t)(lb.Map("sleep", 1, []int{40, 1, 20, 2}))
	var ord []any
	for v, err := range m.Ordered() {
		if err != nil {
			t.Fatal(err)
		}
		ord = append(ord, v)
	}
	if !reflect.DeepEqual(ord, []any{40, 1, 20, 2}) || m.Progress() != 4 {
		t.Fatalf("ordered %v progress %d", ord, m.Progress())
	}
	m = must[*AsyncResult](t)(lb.Map("sleep", 1, []int{60, 1}))
	var un []any
	for v, err := range m.Unordered() {
		if err != nil {
			t.Fatal(err)
		}
		un = append(un, v)
	}
	if !reflect.DeepEqual(un, []any{1, 60}) {
		t.Fatalf("unordered %v", un)
	}
	// Execute and run: per-engine output and exit status.
	xr := must[*AsyncResult](t)(dv.Execute("echo out-$((6*7)); echo err >&2; exit 4"))
	if _, err := xr.Get(5 * time.Second); err == nil {
		t.Fatal("exit 4 succeeded")
	}
	for _, md := range xr.Metadata() {
		if md.Stdout != "out-42\n" || md.Stderr != "err\n" || md.ExitCode != 4 || md.Status != "error" {
			t.Fatalf("execute metadata %+v", md)
		}
	}
	script := filepath.Join(t.TempDir(), "s.sh")
	os.WriteFile(script, []byte("#!/bin/sh\necho script on $(( 1 + 1 ))\n"), 0o644)
	rr := must[*AsyncResult](t)(dv.Run(script))
	must[any](t)(rr.Get(5 * time.Second))
	if out := FormatOutputs(rr); out != "[stdout:0] script on 2\n[stdout:1] script on 2\n" {
		t.Fatalf("run output %q", out)
	}
}

func TestDependenciesRetriesAndDeath(t *testing.T) {
	pc := startProcs(t, 3, HubConfig{})
	cl := pc.cl
	lb := must[*LoadBalancedView](t)(cl.LoadBalancedView())
	// Timeout: a dependency that is not met in time.
	slow := must[*AsyncResult](t)(lb.Apply("sleep", 400))
	dep := must[*AsyncResult](t)(lb.With(TaskOptions{After: On(slow), Timeout: 50 * time.Millisecond}).Apply("engine"))
	if _, err := dep.Get(5 * time.Second); !errors.Is(err, ErrDependencyTimeout) {
		t.Fatalf("want DependencyTimeout, got %v", err)
	}
	// A failed dependency: impossible, unless failures are accepted.
	bad := must[*AsyncResult](t)(lb.Apply("fail", "no"))
	imp := must[*AsyncResult](t)(lb.With(TaskOptions{After: On(bad)}).Apply("engine"))
	if _, err := imp.Get(5 * time.Second); !errors.Is(err, ErrImpossibleDependency) {
		t.Fatalf("want ImpossibleDependency, got %v", err)
	}
	d := On(bad)
	d.Failure = true
	okr := must[*AsyncResult](t)(lb.With(TaskOptions{After: d}).Apply("engine"))
	must[any](t)(okr.Get(5 * time.Second))
	// Retry on task failure: flaky fails on engine 0 only.
	on0 := must[*LoadBalancedView](t)(cl.LoadBalancedView(0))
	r := must[*AsyncResult](t)(on0.With(TaskOptions{Retries: 1}).Apply("flaky", 0))
	if _, err := r.Get(5 * time.Second); err == nil {
		t.Fatal("flaky on engine 0 alone succeeded")
	}
	// With every engine idle, least-load picks engine 0 first: the task
	// fails there and the retry runs elsewhere.
	must[any](t)(slow.Get(5 * time.Second))
	r = must[*AsyncResult](t)(lb.With(TaskOptions{Retries: 2}).Apply("flaky", 0))
	if v, err := r.Get(5 * time.Second); err != nil || v == 0 {
		t.Fatalf("retry on failure: %v %v", v, err)
	}
	// A follow on an engine that dies: impossible.
	where := must[*AsyncResult](t)(lb.Apply("engine"))
	eid := must[any](t)(where.Get(5 * time.Second)).(int)
	longer := must[*AsyncResult](t)(must[*DirectView](t)(cl.View(eid)).Apply("sleep", 5000))
	follow := must[*AsyncResult](t)(lb.With(TaskOptions{Follow: On(where), After: On(longer)}).Apply("engine"))
	pc.procs[eid].Process.Kill()
	if _, err := follow.Get(5 * time.Second); !errors.Is(err, ErrImpossibleDependency) {
		t.Fatalf("follow on dead engine: %v", err)
	}
	if _, err := longer.Get(5 * time.Second); !errors.Is(err, ErrEngineDied) {
		t.Fatalf("task on dead engine: %v", err)
	}
	// Retry on engine death: the task moves to a live engine.
	left := cl.IDs()
	if len(left) != 2 || containsInt(left, eid) {
		t.Fatalf("ids after death %v", left)
	}
	victim := left[0]
	dies := must[*AsyncResult](t)(must[*LoadBalancedView](t)(cl.LoadBalancedView(victim)).Apply("exitnow"))
	if _, err := dies.Get(5 * time.Second); !errors.Is(err, ErrEngineDied) {
		t.Fatalf("exit on engine: %v", err)
	}
	// Ids are never reused: the live ones are what is left.
	if ids := cl.IDs(); len(ids) != 1 || ids[0] != left[1] {
		t.Fatalf("ids %v", ids)
	}
	if v := must[any](t)(lb.ApplySync("engine")); v != left[1] {
		t.Fatalf("survivor %v", v)
	}
}

func TestRetryOnEngineDeath(t *testing.T) {
	pc := startProcs(t, 2, HubConfig{})
	lb := must[*LoadBalancedView](t)(pc.cl.LoadBalancedView())
	busy := must[*AsyncResult](t)(must[*DirectView](t)(pc.cl.View(1)).Apply("sleep", 300))
	_ = busy
	// least-load puts it on engine 0 (idle); kill engine 0 while it runs.
	r := must[*AsyncResult](t)(lb.With(TaskOptions{Retries: 1}).Apply("sleep", 2000))
	for r.EngineIDs()[0] != 0 {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	pc.procs[0].Process.Kill()
	if v, err := r.Get(10 * time.Second); err != nil || v != 2000 {
		t.Fatalf("retried task: %v %v", v, err)
	}
	if e := r.Metadata()[0].EngineID; e != 1 {
		t.Fatalf("retried on %d", e)
	}
}

func TestSchemesAndHWM(t *testing.T) {
	pc := startProcs(t, 2, HubConfig{Scheme: RoundRobin, Seed: 42})
	lb := must[*LoadBalancedView](t)(pc.cl.LoadBalancedView())
	run := func(n int) []*AsyncResult {
		var rs []*AsyncResult
		for i := 0; i < n; i++ {
			rs = append(rs, must[*AsyncResult](t)(lb.Apply("sleep", 30)))
		}
		return rs
	}
	engines := func(rs []*AsyncResult) []int {
		var out []int
		for _, r := range rs {
			must[any](t)(r.Get(5 * time.Second))
			out = append(out, r.EngineIDs()[0])
		}
		return out
	}
	if e := engines(run(6)); !reflect.DeepEqual(e, []int{0, 1, 0, 1, 0, 1}) {
		t.Fatalf("round robin engines %v", e)
	}
	pc.hub.SetScheduler(LeastLoad, 1)
	rs := run(6)
	time.Sleep(10 * time.Millisecond)
	q, waiting, err := pc.cl.QueueStatus()
	if err != nil || waiting != 4 {
		t.Fatalf("hwm 1 on 2 engines: %d tasks wait in the hub (%v)", waiting, err)
	}
	for _, s := range q {
		if s.Queued != 1 {
			t.Fatalf("hwm 1: queues %+v", q)
		}
	}
	e := engines(rs)
	n0 := 0
	for _, x := range e {
		if x == 0 {
			n0++
		}
	}
	if n0 < 2 || n0 > 4 {
		t.Fatalf("least load with hwm 1: engines %v", e)
	}
	pc.hub.SetScheduler(Random, 0)
	seen := map[int]bool{}
	for _, x := range engines(run(12)) {
		seen[x] = true
	}
	if len(seen) != 2 {
		t.Fatalf("random used %v", seen)
	}
}

func TestHubQueriesAndOutsideClients(t *testing.T) {
	pc := startProcs(t, 2, HubConfig{})
	a, b := pc.connect(t), pc.connect(t)
	dva := must[*DirectView](t)(a.DirectView())
	long := must[*AsyncResult](t)(must[*DirectView](t)(dva.On(0)).Apply("sleep", 400))
	quick := must[*AsyncResult](t)(must[*DirectView](t)(dva.On(1)).Apply("add3", 1, 2, 3))
	must[any](t)(quick.Get(5 * time.Second))
	// Another client fetches a result it did not submit, by message id.
	other := must[*AsyncResult](t)(b.Result(quick.MsgIDs()...))
	if v := must[any](t)(other.Get(5 * time.Second)); v != 6 {
		t.Fatalf("fetched %v", v)
	}
	pend, done, err := b.ResultStatus(append(long.MsgIDs(), quick.MsgIDs()...)...)
	if err != nil || !reflect.DeepEqual(pend, long.MsgIDs()) || !reflect.DeepEqual(done, quick.MsgIDs()) {
		t.Fatalf("result status %v %v %v", pend, done, err)
	}
	q, _, err := b.QueueStatus()
	if err != nil || len(q) != 2 || q[0].Queued != 1 || q[1].Queued != 0 || q[1].Completed != 1 {
		t.Fatalf("queue status %+v %v", q, err)
	}
	hist := must[[]uint64](t)(b.History())
	if len(hist) != 2 {
		t.Fatalf("history %v", hist)
	}
	// Purge while tasks are outstanding: only finished ones go.
	n, err := b.PurgeAll()
	if err != nil || n != 1 {
		t.Fatalf("purge %d %v", n, err)
	}
	if _, err := b.Result(quick.MsgIDs()...); !errors.Is(err, ErrUnknownResult) {
		t.Fatalf("purged result: %v", err)
	}
	// Control bypasses queued work: abort a queued task and clear while busy.
	queued := must[*AsyncResult](t)(must[*DirectView](t)(dva.On(0)).Apply("sleep", 1))
	must[*AsyncResult](t)(dva.Push(map[string]any{"k": 1}))
	if err := queued.Abort(); err != nil {
		t.Fatal(err)
	}
	if _, err := queued.Get(5 * time.Second); !errors.Is(err, ErrAborted) {
		t.Fatalf("abort: %v", err)
	}
	if long.Ready() {
		t.Fatal("abort waited for the long task")
	}
	must[any](t)(long.Get(5 * time.Second))
	if v := must[any](t)(must[*DirectView](t)(b.DirectView()).Get("k")); !reflect.DeepEqual(v, []any{1, 1}) {
		t.Fatalf("push after abort %v", v)
	}
	// Clear bypasses queued work too: a names task queued behind a long one
	// sees the namespace already cleared.
	zero := must[*DirectView](t)(dva.On(0))
	must[*AsyncResult](t)(zero.Apply("sleep", 200))
	names := must[*AsyncResult](t)(zero.Apply("names"))
	if err := zero.Clear(); err != nil {
		t.Fatal(err)
	}
	if n := must[any](t)(names.Get(5 * time.Second)); !reflect.DeepEqual(n, []string{}) {
		t.Fatalf("names queued before clear: %v", n)
	}
	// Shutdown from an outside client while an engine is busy.
	must[*AsyncResult](t)(dva.Apply("sleep", 5000))
	start := time.Now()
	if err := b.Shutdown(3 * time.Second); err != nil {
		t.Fatal(err)
	}
	if time.Since(start) > 2*time.Second {
		t.Fatalf("shutdown waited %v behind queued work", time.Since(start))
	}
	select {
	case <-pc.hub.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("hub still running")
	}
}

func TestSendErrors(t *testing.T) {
	pc := startProcs(t, 1, HubConfig{})
	for _, cl := range []*Client{pc.cl, pc.connect(t)} {
		dv := must[*DirectView](t)(cl.DirectView())
		var sent atomic.Int32
		hook := func([][]byte) { sent.Add(1) }
		hub.SendHook.Store(&hook)
		_, err := dv.Apply("add3", make(chan int), 1, 2)
		hub.SendHook.Store(nil)
		if !errors.Is(err, ErrNotSendable) || !strings.Contains(err.Error(), "channels cannot be sent") || sent.Load() != 0 {
			t.Fatalf("unsendable: %v (sent %d)", err, sent.Load())
		}
		if _, err := cl.View(7); !errors.Is(err, ErrNoSuchEngine) {
			t.Fatalf("bad id: %v", err)
		}
	}
}
