package views

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/rankhub/rankhub/collective"
	"github.com/rankhub/rankhub/comm"
)

// tcpMeshCluster is a hub and n engines whose bulk path is a collective
// mesh over loopback TCP (as between nodes: arrays arrive in receive
// buffers, not arenas).
func tcpMeshCluster(t testing.TB, n int) *Client {
	t.Helper()
	cl, _ := tcpMeshClusterMeshes(t, n)
	return cl
}

// tcpMeshes is a collective mesh of n ranks over loopback TCP.
func tcpMeshes(t testing.TB, n int) []*collective.Mesh {
	t.Helper()
	key, _ := comm.NewKey()
	dir := t.TempDir()
	ms := make([]*collective.Mesh, n)
	errs := make(chan error, n)
	for r := range ms {
		go func(r int) {
			m, err := collective.JoinMesh(context.Background(), collective.MeshConfig{Rank: r, Size: n, Key: key,
				Exchange: collective.FileExchange(dir), Heartbeat: -1, ForceTCP: true, Host: "h", Addr: "127.0.0.1",
				Name: fmt.Sprintf("ptcp%d", r)})
			ms[r] = m
			errs <- err
		}(r)
	}
	for range ms {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		for _, m := range ms {
			m.Close()
		}
	})
	return ms
}

// TestBulkTCPReadOnlyInPlace: arrays of 2 MiB pushed to an engine and
// pulled back over a TCP mesh are read-only where they were received, not
// copied: a write faults on the engine and for the driver, and no byte
// goes through read-only copies.
func TestBulkTCPReadOnlyInPlace(t *testing.T) {
	cl := tcpMeshCluster(t, 1)
	dv := must[*DirectView](t)(cl.View(0))
	x := roRamp(1 << 18)
	defer x.Release()
	copied := roCopied.Load()
	for i := 0; i < 3; i++ { // receive buffers reused, writable again
		if err := dv.Set("x", x); err != nil {
			t.Fatal(err)
		}
		if got := must[any](t)(dv.ApplySync("ro_write", "x")); got != "fault 1" {
			t.Fatalf("round %d: the engine writing into a pushed array of 2 MiB: %v, want a fault", i, got)
		}
		a := must[any](t)(must[*AsyncResult](t)(dv.Pull("x")).Get(5 * time.Second)).(*array.Float64)
		if !tryWrite(a.Float64Values(), -2) {
			t.Fatalf("round %d: a write into a pulled array of 2 MiB did not fault", i)
		}
		if a.Value(0) != 1 || a.Value(a.Len()-1) != float64(a.Len()) {
			t.Fatalf("round %d: the pulled array holds %g..%g", i, a.Value(0), a.Value(a.Len()-1))
		}
	}
	if n := roCopied.Load() - copied; n != 0 {
		t.Errorf("%d bytes copied into read-only memory, want none (protected in place)", n)
	}
}

// TestHubCopiesAtGet: the hub keeps an engine's result arrays in the
// result's frame; only a driver in the hub's process pays a read-only copy,
// when it gets the value. An outside client's pull of 64 KiB costs one
// copy (its own decode), not two; the driver's Get one, and its array
// faults on write while the hub's record keeps the values.
func TestHubCopiesAtGet(t *testing.T) {
	pc := startProcsNet(t, []string{"unix"})
	outside := pc.connect(t)
	x := roRamp(64 << 10 / 8)
	defer x.Release()
	if err := must[*DirectView](t)(pc.cl.View(0)).Set("x", x); err != nil {
		t.Fatal(err)
	}
	const size = 64 << 10
	copied := roCopied.Load()
	ar := must[*AsyncResult](t)(must[*DirectView](t)(outside.View(0)).Pull("x"))
	if a := must[any](t)(ar.Get(5 * time.Second)).(*array.Float64); a.Value(1) != 2 {
		t.Fatalf("the outside client pulled x[1] = %g", a.Value(1))
	}
	if n := roCopied.Load() - copied; n != size {
		t.Errorf("an outside client's pull of %d bytes copied %d bytes into read-only memory (hub and client), want %d (the client's)", size, n, size)
	}
	copied = roCopied.Load()
	ar = must[*AsyncResult](t)(must[*DirectView](t)(pc.cl.View(0)).Pull("x"))
	if !ar.Wait(5 * time.Second) {
		t.Fatal("the pull did not finish")
	}
	if n := roCopied.Load() - copied; n != 0 {
		t.Errorf("the hub copied %d bytes of a result on arrival, want none before Get", n)
	}
	a := must[any](t)(ar.Get(5 * time.Second)).(*array.Float64)
	if n := roCopied.Load() - copied; n != size {
		t.Errorf("the driver's Get copied %d bytes into read-only memory, want %d", n, size)
	}
	if !tryWrite(a.Float64Values(), -2) {
		t.Error("a write into the driver's pulled array of 64 KiB did not fault")
	}
	r := must[*AsyncResult](t)(outside.Result(ar.MsgIDs()...))
	if v := firstValue(must[any](t)(r.Get(5 * time.Second))).(*array.Float64); v.Value(0) != 1 {
		t.Errorf("another client fetches x[0] = %g", v.Value(0))
	}
}

// TestOutsideClientReadOnlyInPlace: an outside client's pulls of 2 MiB
// arrive in frames received into its pool and are made read-only there
// (no copy): a write faults, the values are what was sent, the memory is
// reused once the arrays are collected. A []float64 in such a frame is
// copied out and stays the client's to modify.
func TestOutsideClientReadOnlyInPlace(t *testing.T) {
	pc := startProcs(t, 1, HubConfig{})
	outside := pc.connect(t)
	pool := outside.b.(*remoteBackend).pool
	dv := must[*DirectView](t)(outside.View(0))
	x := roRamp(1 << 18)
	defer x.Release()
	if err := dv.Set("x", x); err != nil {
		t.Fatal(err)
	}
	copied := roCopied.Load()
	for i := 0; i < 4; i++ {
		a := must[any](t)(must[*AsyncResult](t)(dv.Pull("x")).Get(5 * time.Second)).(*array.Float64)
		if !tryWrite(a.Float64Values(), -2) {
			t.Fatalf("round %d: a write into an outside client's pulled array of 2 MiB did not fault", i)
		}
		if a.Value(0) != 1 || a.Value(a.Len()-1) != float64(a.Len()) {
			t.Fatalf("round %d: the pulled array holds %g..%g", i, a.Value(0), a.Value(a.Len()-1))
		}
		a = nil
		outside.PurgeAll()
		runtime.GC()
		runtime.GC()
	}
	if n := roCopied.Load() - copied; n != 0 {
		t.Errorf("%d bytes copied into read-only memory (hub or client), want none", n)
	}
	deadline := time.Now().Add(5 * time.Second)
	for pool.Idle() == 0 && time.Now().Before(deadline) {
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
	if pool.Idle() == 0 {
		t.Error("no receive memory went back to the client's pool once the pulled arrays were collected")
	}
	s := make([]float64, 1<<18)
	s[5] = 5
	if err := dv.Set("s", s); err != nil {
		t.Fatal(err)
	}
	got := must[any](t)(must[*AsyncResult](t)(dv.Pull("s")).Get(5 * time.Second)).([]float64)
	if tryWrite(got, 7) || got[0] != 7 || got[5] != 5 {
		t.Errorf("a pulled []float64 of 2 MiB: writable %v, [0] %g, [5] %g", got[0] == 7, got[0], got[5])
	}
}
