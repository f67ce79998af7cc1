package views

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/rankhub/rankhub/collective"
	"github.com/rankhub/rankhub/comm"
)

func init() {
	MustRegister("add3", func(a, b, x int) int { return a + b + x })
	MustRegister("whoami", func(c *Context) (map[string]any, error) {
		return map[string]any{"engine": c.EngineID, "rank": c.Rank, "host": c.Host}, nil
	})
	MustRegister("boom", func() int { panic("kaboom") })
	MustRegister("fail", func(msg string) error { return errors.New(msg) })
	MustRegister("sleep", func(ms int) int { time.Sleep(time.Duration(ms) * time.Millisecond); return ms })
	MustRegister("sum", func(xs []float64) float64 {
		s := 0.0
		for _, x := range xs {
			s += x
		}
		return s
	})
	MustRegister("noop", func() {})
}

// cluster starts an in-process hub and n engines over real Unix sockets.
func cluster(t *testing.T, n int) (*Client, []context.CancelFunc) {
	return clusterWith(t, n, nil)
}

// clusterWith is cluster with a collective world (world(rank); the hub is
// rank 0), or none when world is nil.
func clusterWith(t testing.TB, n int, world func(rank int) func(context.Context) (*collective.Comm, error)) (*Client, []context.CancelFunc) {
	t.Helper()
	key, _ := comm.NewKey()
	ln, err := comm.Listen(comm.ListenConfig{Unix: "@rankhub-test-" + fmt.Sprint(time.Now().UnixNano()), Key: key})
	if err != nil {
		t.Fatal(err)
	}
	worldOf := func(rank int) func(context.Context) (*collective.Comm, error) {
		if world == nil {
			return nil
		}
		return world(rank)
	}
	h := NewHub(HubConfig{Host: "testhost", World: worldOf(0)})
	go h.Serve(ln)
	cancels := make([]context.CancelFunc, n)
	for i := 0; i < n; i++ {
		ctx, cancel := context.WithCancel(context.Background())
		cancels[i] = cancel
		c, err := comm.Dial(ctx, "unix", ln.UnixAddr(), key, comm.Options{})
		if err != nil {
			t.Fatal(err)
		}
		go ServeEngine(ctx, c, EngineConfig{Rank: i + 1, Host: fmt.Sprintf("node%d", i+1), World: worldOf(i + 1)})
	}
	cl := NewClient(h)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := cl.WaitForEngines(ctx, n); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		h.Shutdown(2 * time.Second)
		ln.Close()
		for _, c := range cancels {
			c()
		}
	})
	return cl, cancels
}

func TestApplyPushPullExecute(t *testing.T) {
	cl, _ := cluster(t, 2)
	if got := cl.IDs(); !reflect.DeepEqual(got, []int{0, 1}) {
		t.Fatalf("ids %v", got)
	}
	dv, _ := cl.DirectView()
	if _, err := dv.Push(map[string]any{"a": 5, "b": 10}); err != nil {
		t.Fatal(err)
	}
	ar, err := dv.Apply("add3", Ref{Name: "a"}, Ref{Name: "b"}, 27)
	if err != nil {
		t.Fatal(err)
	}
	v, err := ar.Get(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(v, []any{42, 42}) {
		t.Fatalf("got %v, want [42 42]", v)
	}
	pr, _ := dv.Pull("a", "b")
	pv, err := pr.Get(5 * time.Second)
	if err != nil || !reflect.DeepEqual(pv, []any{[]any{5, 10}, []any{5, 10}}) {
		t.Fatalf("pull: %v %v", pv, err)
	}
	one, _ := cl.View(-1)
	w, err := one.ApplySync("whoami")
	if err != nil {
		t.Fatal(err)
	}
	if m := w.(map[string]any); m["engine"] != 1 || m["rank"] != 2 || m["host"] != "node2" {
		t.Fatalf("whoami %v", m)
	}
	xr, _ := dv.Execute("echo hello from $((40+2)); echo err >&2")
	if !xr.Wait(5 * time.Second) {
		t.Fatal("execute did not finish")
	}
	out := FormatOutputs(xr)
	if !strings.Contains(out, "[stdout:0] hello from 42") || !strings.Contains(out, "[stdout:1] hello from 42") || !strings.Contains(out, "[stderr:1] err") {
		t.Fatalf("outputs:\n%s", out)
	}
	big := make([]float64, 1<<20)
	for i := range big {
		big[i] = float64(i)
	}
	s, err := one.ApplySync("sum", big)
	if err != nil || s.(float64) != float64(len(big))*float64(len(big)-1)/2 {
		t.Fatalf("sum %v %v", s, err)
	}
}

func TestRemoteErrors(t *testing.T) {
	cl, _ := cluster(t, 2)
	dv, _ := cl.DirectView()
	_, err := dv.ApplySync("boom")
	var ce *CompositeError
	if !errors.As(err, &ce) || len(ce.Errors) != 2 || !errors.Is(err, ErrPanic) {
		t.Fatalf("panic: got %v", err)
	}
	if !strings.Contains(ce.Errors[0].Message, "kaboom") || ce.Errors[0].Traceback == "" {
		t.Fatalf("panic error lacks message or traceback: %+v", ce.Errors[0])
	}
	// The engines live on.
	one, _ := cl.View(0)
	if v, err := one.ApplySync("add3", 1, 2, 3); err != nil || v != 6 {
		t.Fatalf("after panic: %v %v", v, err)
	}
	_, err = one.ApplySync("nosuch")
	var re *RemoteError
	if !errors.As(err, &re) || !errors.Is(err, ErrUnknownFunction) || !strings.Contains(re.Message, "add3") {
		t.Fatalf("unknown function: %v", err)
	}
	if re.EngineID != 0 || re.Rank != 1 || re.Host != "node1" {
		t.Fatalf("remote error location: %+v", re)
	}
	_, err = one.ApplySync("fail", "custom failure")
	if !errors.As(err, &re) || re.Message != "custom failure" || re.Code != CodeError {
		t.Fatalf("fail: %v", err)
	}
	_, err = one.ApplySync("add3", "x", 2, 3)
	if err == nil || !strings.Contains(err.Error(), "argument 1 of add3") {
		t.Fatalf("bad argument: %v", err)
	}
	if _, err := one.Apply("add3", func() {}, 1, 2); !errors.Is(err, ErrNotSendable) {
		t.Fatalf("func argument: %v", err)
	}
	xr, _ := one.Execute("exit 3")
	if _, err := xr.Get(5 * time.Second); err == nil || xr.Metadata()[0].ExitCode != 3 {
		t.Fatalf("exit status: %v %+v", err, xr.Metadata()[0])
	}
}

func TestTimeoutAbortAndEngineDeath(t *testing.T) {
	cl, cancels := cluster(t, 2)
	one, _ := cl.View(1)
	slow, _ := one.Apply("sleep", 300)
	queued, _ := one.Apply("sleep", 1)
	if _, err := slow.Get(10 * time.Millisecond); !errors.Is(err, ErrTimeout) {
		t.Fatalf("want timeout, got %v", err)
	}
	if ok, err := slow.Successful(); ok || !errors.Is(err, ErrNotReady) {
		t.Fatalf("Successful before ready: %v %v", ok, err)
	}
	one.Abort(queued)
	if _, err := queued.Get(5 * time.Second); !errors.Is(err, ErrAborted) {
		t.Fatalf("aborted: %v", err)
	}
	if v, err := slow.Get(5 * time.Second); err != nil || v != 300 {
		t.Fatalf("slow: %v %v", v, err)
	}
	// Engine 0 dies with a task pending: the task fails naming rank and host.
	zero, _ := cl.View(0)
	pending, _ := zero.Apply("sleep", 5000)
	time.Sleep(50 * time.Millisecond)
	cancels[0]()
	_, err := pending.Get(5 * time.Second)
	var re *RemoteError
	if !errors.As(err, &re) || !errors.Is(err, ErrEngineDied) || re.Rank != 1 || re.Host != "node1" {
		t.Fatalf("engine death: %v", err)
	}
	if ids := cl.IDs(); !reflect.DeepEqual(ids, []int{1}) {
		t.Fatalf("ids after death: %v", ids)
	}
	if v, err := one.ApplySync("add3", 1, 1, 1); err != nil || v != 3 {
		t.Fatalf("survivor: %v %v", v, err)
	}
}

func init() {
	MustRegister("waitctx", func(c *Context) string {
		<-c.Done()
		return "cancelled"
	})
}

// A result is not held back behind a long task that follows it.
func TestQuickResultNotHeldBehindLongTask(t *testing.T) {
	cl, _ := cluster(t, 1)
	one, _ := cl.View(0)
	quick, _ := one.Apply("add3", 1, 2, 3)
	slow, _ := one.Apply("sleep", 1500)
	if v, err := quick.Get(500 * time.Millisecond); err != nil || v != 6 {
		t.Fatalf("the quick result waited behind the slow task: %v %v", v, err)
	}
	if _, err := slow.Get(5 * time.Second); err != nil {
		t.Fatal(err)
	}
}

// An engine whose hub goes away stops the function it is running (through
// the Context) and returns, instead of waiting for the function to end.
func TestEngineStopsRunningFunctionWhenHubIsGone(t *testing.T) {
	key, _ := comm.NewKey()
	ln, err := comm.Listen(comm.ListenConfig{Unix: "@rankhub-test-ctx-" + fmt.Sprint(time.Now().UnixNano()), Key: key})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	h := NewHub(HubConfig{Host: "testhost"})
	go h.Serve(ln)
	c, err := comm.Dial(context.Background(), "unix", ln.UnixAddr(), key, comm.Options{})
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- ServeEngine(context.Background(), c, EngineConfig{Rank: 1, Host: "n1"}) }()
	cl := NewClient(h)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := cl.WaitForEngines(ctx, 1); err != nil {
		t.Fatal(err)
	}
	v, _ := cl.View(0)
	v.Apply("waitctx")
	time.Sleep(50 * time.Millisecond)
	// The hub dies: its side of every connection closes.
	for _, id := range h.IDs() {
		h.h.EngineConn(id).Close()
	}
	select {
	case err := <-served:
		if err == nil {
			t.Fatal("ServeEngine returned nil after losing the hub")
		}
	case <-time.After(3 * time.Second):
		t.Fatal("the engine kept waiting for its running function after the hub was gone")
	}
	h.Shutdown(time.Second)
}
