package views

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rankhub/rankhub/comm"
	"github.com/rs/zerolog"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// hubGoroutines lists the stacks of goroutines running the hub's code
// (connection handlers, outboxes, its event loop and timers), leaving out
// Serve, which runs on its caller's goroutine.
func hubGoroutines() []string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "internal/hub.(*Hub).Serve(") || strings.Contains(g, "views.(*Hub).Serve(") {
			continue // the caller's accept loop
		}
		if strings.Contains(g, "internal/hub.(*Hub)") || strings.Contains(g, "internal/hub.(*outbox).run") || strings.Contains(g, "internal/hub.newOutbox") {
			out = append(out, g)
		}
	}
	return out
}

// TestShutdownWaitsForHubGoroutines: when Hub.Shutdown returns, every
// goroutine the hub started (engine readers and outboxes, an outside
// client's handler and outbox, the scheduler loop) has ended, with tasks
// still running on the engines at the time.
func TestShutdownWaitsForHubGoroutines(t *testing.T) {
	key, _ := comm.NewKey()
	ln, err := comm.Listen(comm.ListenConfig{Unix: "@rankhub-test-shutdown-" + fmt.Sprint(time.Now().UnixNano()), Key: key})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var logs lockedBuffer
	h := NewHub(HubConfig{Host: "testhost", Logger: zerolog.New(&logs)})
	go h.Serve(ln)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for i := range 2 {
		c, err := comm.Dial(ctx, "unix", ln.UnixAddr(), key, comm.Options{})
		if err != nil {
			t.Fatal(err)
		}
		go ServeEngine(ctx, c, EngineConfig{Rank: i + 1, Host: fmt.Sprintf("node%d", i+1)})
	}
	cl := NewClient(h)
	wctx, wcancel := context.WithTimeout(ctx, 5*time.Second)
	defer wcancel()
	if err := cl.WaitForEngines(wctx, 2); err != nil {
		t.Fatal(err)
	}
	// An outside client, connected through a connection file.
	host, _ := os.Hostname()
	ci := &comm.ConnInfo{Unix: ln.UnixAddr(), Host: host, Ranks: 3, Created: time.Now()}
	ci.SetKey(key)
	path := filepath.Join(t.TempDir(), "hub.json")
	if err := comm.WriteConnInfo(path, ci); err != nil {
		t.Fatal(err)
	}
	oc, err := Connect(path)
	if err != nil {
		t.Fatal(err)
	}
	defer oc.Close()
	dv, err := oc.DirectView()
	if err != nil {
		t.Fatal(err)
	}
	ar, err := dv.Apply("sleep", 200)
	if err != nil {
		t.Fatal(err)
	}
	lb, err := cl.LoadBalancedView()
	if err != nil {
		t.Fatal(err)
	}
	mr, err := lb.Map("sleep", 1, []int{300, 300, 300})
	if err != nil {
		t.Fatal(err)
	}
	// The stacks are recognised (the hub's code lives in views/internal/hub):
	// else the check below would pass whatever Shutdown left running.
	if gs := hubGoroutines(); len(gs) < 4 {
		t.Fatalf("%d goroutines of the hub before Shutdown (engine readers and outboxes, the client's), want at least 4", len(gs))
	}
	h.Shutdown(2 * time.Second)
	logged := logs.String()
	var gs []string
	for range 100 { // goroutines past their wg.Done are on their way out (the log tells if they did more)
		if gs = hubGoroutines(); len(gs) == 0 {
			break
		}
		runtime.Gosched()
		time.Sleep(time.Millisecond)
	}
	if len(gs) > 0 {
		t.Fatalf("%d hub goroutine(s) still running after Shutdown returned:\n%s", len(gs), strings.Join(gs, "\n\n"))
	}
	time.Sleep(200 * time.Millisecond)
	if after := strings.TrimPrefix(logs.String(), logged); after != "" {
		t.Fatalf("the hub went on after Shutdown returned:\n%s", after)
	}
	// The hub still answers queries: every engine it had, all gone.
	if es := cl.Engines(); len(es) != 2 || !es[0].Dead || !es[1].Dead {
		t.Fatalf("engines after Shutdown: %+v", es)
	}
	if ids := cl.IDs(); len(ids) != 0 {
		t.Fatalf("live engines after Shutdown: %v", ids)
	}
	if !mr.Ready() {
		t.Fatal("Shutdown returned with the in-process client's tasks unfinished")
	}
	if !ar.Wait(5 * time.Second) {
		t.Fatal("the outside client's task never finished after the hub shut down")
	}
}

// testListener listens on a fresh abstract Unix socket with a new key,
// closed when the test ends.
func testListener(t *testing.T, name string) (*comm.Listener, []byte) {
	t.Helper()
	key, _ := comm.NewKey()
	ln, err := comm.Listen(comm.ListenConfig{Unix: fmt.Sprintf("@views-test-%s-%d-%d", name, os.Getpid(), time.Now().UnixNano()), Key: key})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln, key
}

// applyRoundTripAllocs is the most allocations a no-op apply round trip of
// a driver in the hub's process may make, hub, engine and client together
// (81 before the core's effects and the hub's target encoding were reused,
// 71 after; 55 once the codec stopped formatting an error path for every
// value it encodes).
const applyRoundTripAllocs = 55

// TestApplyPathAllocatesNothingExtra: on the apply round trip (issue 14's
// performance rule) the outbox writes a batch with no allocation of its own
// (its queues are reused, batch after batch), a holder's look at an empty
// event queue (drive, after every result and every request) allocates
// nothing, and the whole round trip stays within applyRoundTripAllocs:
// garbage on this path made the no-op round trip slower than the
// lock-based hub's.
func TestApplyPathAllocatesNothingExtra(t *testing.T) {
	c, _ := cluster(t, 1)
	v, err := c.View(0)
	if err != nil {
		t.Fatal(err)
	}
	for range 100 { // warm up: the queues and spares grow to their size
		if _, err := v.ApplySync("noop"); err != nil {
			t.Fatal(err)
		}
	}
	rtt := testing.AllocsPerRun(300, func() {
		if _, err := v.ApplySync("noop"); err != nil {
			t.Fatal(err)
		}
	})
	t.Logf("%.0f allocations per apply round trip (%d of them the race detector's)", rtt, raceAllocs)
	if rtt > applyRoundTripAllocs+raceAllocs {
		t.Errorf("a no-op apply round trip allocates %.0f times, want at most %d", rtt-raceAllocs, applyRoundTripAllocs)
	}
}
