package views

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestClientWaitOutstanding: Wait and Outstanding concern this client's own
// tasks; another client's long task is neither listed nor waited for.
func TestClientWaitOutstanding(t *testing.T) {
	a, _ := cluster(t, 2)
	b := NewClient(&Hub{h: a.b.(localBackend).h})
	bv, _ := b.View(1)
	long, err := bv.Apply("sleep", 3000)
	if err != nil {
		t.Fatal(err)
	}
	av, _ := a.View(0)
	short, err := av.Apply("sleep", 200)
	if err != nil {
		t.Fatal(err)
	}
	if got := a.Outstanding(); !slices.Equal(got, short.MsgIDs()) {
		t.Fatalf("a.Outstanding() = %v, want %v (b's task is %v)", got, short.MsgIDs(), long.MsgIDs())
	}
	if a.Wait(10 * time.Millisecond) {
		t.Fatal("Wait(10ms) reported done while a 200 ms task runs")
	}
	start := time.Now()
	if !a.Wait(2 * time.Second) {
		t.Fatalf("a.Wait: not done; outstanding %v", a.Outstanding())
	}
	if d := time.Since(start); d > 1500*time.Millisecond {
		t.Fatalf("a.Wait took %v: it waited for b's task", d)
	}
	if got := a.Outstanding(); len(got) != 0 {
		t.Fatalf("a.Outstanding() after Wait = %v", got)
	}
	if got := b.Outstanding(); !slices.Equal(got, long.MsgIDs()) {
		t.Fatalf("b.Outstanding() = %v, want %v", got, long.MsgIDs())
	}
	if b.Wait(10*time.Millisecond, long) {
		t.Fatal("b.Wait on its running result reported done")
	}
	long.Abort()
	b.Wait(-1, long)
}

// TestPullOneValuePerEngine: Pull of one name gives [v, v, ...] (the value
// itself on a single-engine view), of several names one list per engine.
func TestPullOneValuePerEngine(t *testing.T) {
	cl, _ := cluster(t, 2)
	dv, _ := cl.DirectView()
	if err := dv.Set("x", 7); err != nil {
		t.Fatal(err)
	}
	ar, _ := dv.Pull("x")
	if v, err := ar.Get(5 * time.Second); err != nil || !reflect.DeepEqual(v, []any{7, 7}) {
		t.Fatalf("Pull(x) = %v, %v; want [7 7]", v, err)
	}
	one, _ := cl.View(1)
	ar, _ = one.Pull("x")
	if v, err := ar.Get(5 * time.Second); err != nil || v != 7 {
		t.Fatalf("Pull(x) on one engine = %v, %v; want 7", v, err)
	}
}

// TestByEngineAndDone: ByEngine maps engine ids to values; Done closes when
// every task finished, and Unordered yields each result once.
func TestByEngineAndDone(t *testing.T) {
	cl, _ := cluster(t, 2)
	dv, _ := cl.DirectView()
	ar, err := dv.Apply("engine")
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-ar.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("Done never closed")
	}
	if !ar.Ready() {
		t.Fatal("Done closed before the result was ready")
	}
	m, err := ar.ByEngine(0)
	if err != nil || !reflect.DeepEqual(m, map[int]any{0: 0, 1: 1}) {
		t.Fatalf("ByEngine = %v, %v", m, err)
	}
	slow, _ := dv.Apply("sleep", 300)
	select {
	case <-slow.Done():
		t.Fatal("Done closed while the tasks run")
	case <-time.After(50 * time.Millisecond):
	}
	lb, _ := cl.LoadBalancedView()
	seq := make([]int, 50)
	for i := range seq {
		seq[i] = i % 3
	}
	mr, err := lb.Map("sleep", 1, seq)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, err := range mr.Unordered() {
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n != 50 {
		t.Fatalf("Unordered yielded %d of 50", n)
	}
	if _, err := mr.ByEngine(0); err == nil || !strings.Contains(err.Error(), "more than one task") {
		t.Fatalf("ByEngine of a map: %v", err)
	}
	<-slow.Done()
}

// TestSliceErrorNamesAskedBounds: the error of an empty slice names the
// bounds the caller gave, not the clamped ones.
func TestSliceErrorNamesAskedBounds(t *testing.T) {
	cl, _ := cluster(t, 2)
	_, err := cl.Slice(5, 9, 1)
	if err == nil || !strings.Contains(err.Error(), "[5:9:1]") {
		t.Fatalf("Slice(5, 9, 1): %v", err)
	}
}

func init() {
	MustRegister("vec", func(n int) []float64 {
		v := make([]float64, n)
		for i := range v {
			v[i] = float64(i + 1)
		}
		return v
	})
	MustRegister("nested", func() map[string]any { return map[string]any{"xs": []int64{1, 2}, "l": []any{[]float64{3}}} })
}

// TestReceivedValuesDetached: a driver on the hub's rank that writes into
// what it received changes neither what the hub stores nor what another
// client fetches by message id (the in-process client shared the hub's
// record's value).
func TestReceivedValuesDetached(t *testing.T) {
	pc := startProcs(t, 1, HubConfig{})
	one, _ := pc.cl.View(0)
	ar, err := one.Apply("vec", 3)
	if err != nil {
		t.Fatal(err)
	}
	v, err := ar.Get(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	v.([]float64)[0] = 99
	nr, _ := one.Apply("nested")
	nv, err := nr.Get(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	nv.(map[string]any)["xs"].([]int64)[0] = 99
	nv.(map[string]any)["l"].([]any)[0].([]float64)[0] = 99
	nv.(map[string]any)["new"] = 1
	for _, c := range []*Client{NewClient(pc.hub), pc.connect(t)} {
		r, err := c.Result(ar.MsgIDs()...)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := r.Get(5 * time.Second); err != nil || !reflect.DeepEqual(got, []float64{1, 2, 3}) {
			t.Errorf("another client fetches %v, %v; want [1 2 3]", got, err)
		}
		r, _ = c.Result(nr.MsgIDs()...)
		want := map[string]any{"xs": []int64{1, 2}, "l": []any{[]float64{3}}}
		if got, err := r.Get(5 * time.Second); err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("another client fetches %v, %v; want %v", got, err, want)
		}
	}
	if got, _ := ar.Get(0); !reflect.DeepEqual(got, []float64{1, 2, 3}) {
		t.Errorf("a second Get gives %v", got)
	}
}

func init() {
	MustRegister("shout", func(c *Context, word string) (string, error) {
		fmt.Printf("out %d: %s\n", c.EngineID, word)
		fmt.Fprintf(os.Stderr, "err %d: %s\n", c.EngineID, word)
		cmd := exec.Command("sh", "-c", "echo child: $0", word)
		cmd.Stdout = os.Stdout
		return word, cmd.Run()
	})
	MustRegister("loud", func(n int) int {
		line := strings.Repeat("x", 1023) + "\n"
		for i := 0; i < n; i++ {
			os.Stdout.WriteString(line)
		}
		return n
	})
}

// TestApplyOutputCaptured: what a function prints during apply and map (to
// os.Stdout, os.Stderr, and through a process it starts) comes back in
// Metadata and FormatOutputs, per task, and bounded like a command's.
func TestApplyOutputCaptured(t *testing.T) {
	pc := startProcs(t, 2, HubConfig{})
	for _, c := range []*Client{pc.cl, pc.connect(t)} {
		dv, _ := c.DirectView()
		ar, err := dv.Apply("shout", "hi")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ar.Get(10 * time.Second); err != nil {
			t.Fatal(err)
		}
		want := "[stdout:0] out 0: hi\n[stdout:0] child: hi\n[stderr:0] err 0: hi\n" +
			"[stdout:1] out 1: hi\n[stdout:1] child: hi\n[stderr:1] err 1: hi\n"
		if got := FormatOutputs(ar); got != want {
			t.Errorf("FormatOutputs of apply:\n%s\nwant:\n%s", got, want)
		}
	}
	lb, _ := pc.cl.LoadBalancedView()
	mr, err := lb.Map("shout", 2, []string{"a", "b", "c", "d"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mr.Get(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	md := mr.Metadata()
	for i, words := range [][2]string{{"a", "b"}, {"c", "d"}} {
		m := md[i]
		want := fmt.Sprintf("out %d: %s\nchild: %s\nout %d: %s\nchild: %s\n", m.EngineID, words[0], words[0], m.EngineID, words[1], words[1])
		if m.Stdout != want {
			t.Errorf("map chunk %d stdout %q, want %q", i, m.Stdout, want)
		}
	}
	one, _ := pc.cl.View(0)
	ar, _ := one.Apply("loud", 3<<10) // 3 MiB
	if _, err := ar.Get(20 * time.Second); err != nil {
		t.Fatal(err)
	}
	m := ar.Metadata()[0]
	if m.StdoutOmitted != 1<<20 || len(m.Stdout) > 2<<20+200 {
		t.Errorf("3 MiB printed: kept %d bytes, omitted %d; want 2 MiB kept and 1 MiB omitted", len(m.Stdout), m.StdoutOmitted)
	}
	// The next task's output is its own.
	ar, _ = one.Apply("shout", "after")
	ar.Get(10 * time.Second)
	if got := ar.Metadata()[0].Stdout; got != "out 0: after\nchild: after\n" {
		t.Errorf("next task's stdout %q", got)
	}
}

func init() {
	MustRegister("even_engine", func(c *Context) bool { return c.EngineID%2 == 0 })
	MustRegister("engine_of", func(c *Context, _ int) int { return c.EngineID })
}

// TestRequire: TaskOptions.Require sends tasks only to engines that have
// the names (here a namespace name pushed to one engine; labels are tested
// with rankhub engines --label), Depend only where the predicate holds;
// unmet on every engine is an impossible dependency naming what each
// engine lacks. From the in-process and an outside client.
func TestRequire(t *testing.T) {
	pc := startProcs(t, 3, HubConfig{})
	one, _ := pc.cl.View(1)
	if err := one.Set("model", 1); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*Client{pc.cl, pc.connect(t)} {
		lb, _ := c.LoadBalancedView()
		ar, err := lb.With(TaskOptions{Require: []string{"model", "pow10"}}).Map("engine_of", 1, make([]int, 12))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ar.Get(10 * time.Second); err != nil {
			t.Fatal(err)
		}
		for _, m := range ar.Metadata() {
			if m.EngineID != 1 {
				t.Fatalf("a task requiring model ran on engine %d", m.EngineID)
			}
		}
		ar, _ = lb.With(TaskOptions{Depend: "even_engine"}).Map("engine_of", 1, make([]int, 12))
		if _, err := ar.Get(10 * time.Second); err != nil {
			t.Fatal(err)
		}
		for _, m := range ar.Metadata() {
			if m.EngineID%2 != 0 {
				t.Fatalf("a task depending on even_engine ran on engine %d", m.EngineID)
			}
		}
		ar, _ = lb.With(TaskOptions{Require: []string{"gpu"}}).Apply("engine")
		_, err = ar.Get(10 * time.Second)
		if !errors.Is(err, ErrImpossibleDependency) {
			t.Fatalf("requiring gpu, which no engine has: %v", err)
		}
		for _, want := range []string{"engine 0 on node1 lacks gpu", "engine 1 on node2 lacks gpu", "engine 2 on node3 lacks gpu"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error lacks %q: %v", want, err)
			}
		}
	}
}
