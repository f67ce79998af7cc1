package views

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/rankhub/rankhub/internal/faulttest"
)

// tryWrite writes v into xs[0] and reports whether the write faulted (the
// memory is read-only).
func tryWrite(xs []float64, v float64) bool { return faulttest.Faults(func() { xs[0] = v }) }

func init() {
	// ro_write writes into the values of the namespace array name and says
	// whether that faulted, and what the array holds afterwards.
	MustRegister("ro_write", func(c *Context, name string) (string, error) {
		v, ok := c.NS.Get(name)
		if !ok {
			return "", fmt.Errorf("no %q", name)
		}
		a, ok := v.(*array.Float64)
		if !ok {
			return "", fmt.Errorf("%q is a %T", name, v)
		}
		if tryWrite(a.Float64Values(), -1) {
			return fmt.Sprintf("fault %g", a.Value(0)), nil
		}
		return fmt.Sprintf("wrote %g", a.Value(0)), nil
	})
}

// roRamp is an array of n float64 1, 2, ..., n.
func roRamp(n int) *array.Float64 {
	b := array.NewFloat64Builder(memory.DefaultAllocator)
	defer b.Release()
	for i := 0; i < n; i++ {
		b.Append(float64(i + 1))
	}
	return b.NewFloat64Array()
}

// TestReceivedArraysReadOnly: an Arrow array of at least a page that
// arrives through a frame is read-only wherever it arrives: pushed to an
// engine over a Unix socket and over TCP (from the in-process driver and
// from an outside client), pulled by an outside client, returned to the
// in-process driver by Get. A write faults, and no other client sees it.
// A smaller array the in-process driver receives is its own copy.
func TestReceivedArraysReadOnly(t *testing.T) {
	pc := startProcsNet(t, []string{"unix", "tcp"})
	outside := pc.connect(t)
	big := roRamp(4096 / 8) // one page of values
	defer big.Release()
	for _, cl := range []*Client{pc.cl, outside} {
		dv := must[*DirectView](t)(cl.DirectView())
		if err := dv.Set("x", big); err != nil {
			t.Fatal(err)
		}
		got := must[any](t)(dv.ApplySync("ro_write", "x")).([]any)
		for i, g := range got {
			if g != "fault 1" {
				t.Errorf("engine %d (over %s) writing into a pushed array of 4 KiB: %v, want a fault", i, []string{"unix", "tcp"}[i], g)
			}
		}
	}
	// The hub checks an outside client's payload without copying its arrays.
	copied := roCopied.Load()
	must[any](t)(must[*AsyncResult](t)(must[*DirectView](t)(outside.View(0)).Push(map[string]any{"y": big})).Get(5 * time.Second))
	if n := roCopied.Load() - copied; n != 0 {
		t.Errorf("the hub copied %d bytes of an outside client's push", n)
	}
	for _, cl := range []*Client{pc.cl, outside} {
		name := map[*Client]string{pc.cl: "in-process driver", outside: "outside client"}[cl]
		one := must[*DirectView](t)(cl.View(1))
		ar := must[*AsyncResult](t)(one.Pull("x"))
		a := must[any](t)(ar.Get(5 * time.Second)).(*array.Float64)
		if !tryWrite(a.Float64Values(), -2) {
			t.Errorf("%s: a write into a pulled array of 4 KiB did not fault", name)
		}
		for _, other := range []*Client{NewClient(pc.hub), pc.connect(t)} {
			r := must[*AsyncResult](t)(other.Result(ar.MsgIDs()...))
			if v := firstValue(must[any](t)(r.Get(5 * time.Second))).(*array.Float64); v.Value(0) != 1 {
				t.Errorf("%s wrote -2: another client fetches x[0] = %g", name, v.Value(0))
			}
		}
	}
	// Below a page, the in-process driver gets its own copy.
	small := roRamp(16)
	defer small.Release()
	one := must[*DirectView](t)(pc.cl.View(0))
	if err := one.Set("s", small); err != nil {
		t.Fatal(err)
	}
	ar := must[*AsyncResult](t)(one.Pull("s"))
	a := must[any](t)(ar.Get(5 * time.Second)).(*array.Float64)
	a.Float64Values()[0] = -3
	for _, other := range []*Client{NewClient(pc.hub), pc.connect(t)} {
		r := must[*AsyncResult](t)(other.Result(ar.MsgIDs()...))
		if v := firstValue(must[any](t)(r.Get(5 * time.Second))).(*array.Float64); v.Value(0) != 1 {
			t.Errorf("the in-process driver wrote -3 into a small pulled array: another client fetches s[0] = %g", v.Value(0))
		}
	}
}

// TestClientKeepsNoFinishedResults: a client that waits for each pull
// before the next and purges keeps none of the pulled arrays (the
// in-process client's list of outstanding tasks held every finished task,
// value and all, until 1024 had piled up: a GiB for pulls of 1 MiB).
func TestClientKeepsNoFinishedResults(t *testing.T) {
	pc := startProcsWith(t, 1, HubConfig{}, time.Second, 0)
	x := roRamp(1 << 20 / 8)
	defer x.Release()
	if err := must[*DirectView](t)(pc.cl.View(0)).Set("x", x); err != nil {
		t.Fatal(err)
	}
	for ci, cl := range []*Client{pc.cl, pc.connect(t)} {
		one := must[*DirectView](t)(cl.View(0))
		runtime.GC()
		base := bulkLive.Load()
		for i := 0; i < 40; i++ {
			must[any](t)(one.Get("x"))
			cl.PurgeAll()
		}
		deadline := time.Now().Add(5 * time.Second)
		for bulkLive.Load()-base > 4<<20 {
			if time.Now().After(deadline) {
				t.Fatalf("client %d: %d MiB of the 40 arrays of 1 MiB pulled and purged are still held", ci, (bulkLive.Load()-base)>>20)
			}
			runtime.GC()
			time.Sleep(10 * time.Millisecond)
		}
	}
}
