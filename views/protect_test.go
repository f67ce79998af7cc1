package views

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/rankhub/rankhub/collective"
	"github.com/rankhub/rankhub/comm"
)

// tcpMeshCluster is a hub and n engines whose bulk path is a collective
// mesh over loopback TCP (as between nodes: arrays arrive in receive
// buffers, not arenas).
func tcpMeshCluster(t *testing.T, n int) *Client {
	t.Helper()
	key, _ := comm.NewKey()
	dir := t.TempDir()
	ms := make([]*collective.Mesh, n+1)
	errs := make(chan error, n+1)
	for r := range ms {
		go func(r int) {
			m, err := collective.JoinMesh(context.Background(), collective.MeshConfig{Rank: r, Size: n + 1, Key: key,
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
	cl, _ := clusterWith(t, n, func(i int) func(context.Context) (*collective.Comm, error) {
		return func(context.Context) (*collective.Comm, error) { return ms[i].World(), nil }
	})
	return cl
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
