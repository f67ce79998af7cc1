package views

import (
	"context"
	"fmt"
	"runtime/debug"
	"sync"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/rankhub/rankhub/collective"
)

// kept holds arrays that functions of these tests stored away from the
// namespace, by key.
var kept sync.Map

func init() {
	// reuse_keep stores the namespace's array name under key (as user code
	// keeping a reference would).
	MustRegister("reuse_keep", func(c *Context, name, key string) (int, error) {
		v, ok := c.NS.Get(name)
		if !ok {
			return 0, fmt.Errorf("no %q", name)
		}
		kept.Store(key, v)
		return v.(arrow.Array).Len(), nil
	})
	// reuse_keep_arg stores its argument (a Ref to a namespace array).
	MustRegister("reuse_keep_arg", func(a arrow.Array, key string) (int, error) {
		kept.Store(key, a)
		return a.Len(), nil
	})
	// reuse_sum sums the array kept under key.
	MustRegister("reuse_sum", func(key string) (float64, error) {
		v, ok := kept.Load(key)
		if !ok {
			return 0, fmt.Errorf("nothing kept as %q", key)
		}
		s := 0.0
		for _, x := range v.(*array.Float64).Float64Values() {
			s += x
		}
		return s, nil
	})
}

// constFloat64 is n copies of v.
func constFloat64(n int, v float64) arrow.Array {
	b := array.NewFloat64Builder(memory.DefaultAllocator)
	defer b.Release()
	vs := make([]float64, n)
	for i := range vs {
		vs[i] = v
	}
	b.AppendValues(vs, nil)
	return b.NewArray()
}

// TestBulkPushReplacedGoesBackAtOnce: pushing one name again and again to
// an engine on another node (a TCP mesh: arrays land in the engine's
// receive pool) holds about one array's memory, without a garbage
// collection: the value the push replaced, which nothing but the namespace
// ever held, goes back to the pool before the push answers, and the next
// push lands in the same, already faulted-in mapping. On the emulated
// cluster the replaced value waited for a collection (started at most
// every 100 ms), so pushes of 512 MiB faulted in fresh pages each time
// (0.24-0.69 x the raw stream).
func TestBulkPushReplacedGoesBackAtOnce(t *testing.T) {
	cl, ms := tcpMeshClusterMeshes(t, 1)
	one := must[*DirectView](t)(cl.View(0))
	const n = 1 << 18 // 2 MiB: the bulk path
	pool := ms[1].Pool()
	defer debug.SetGCPercent(debug.SetGCPercent(-1)) // no collection helps
	for i := range 12 {
		x := constFloat64(n, float64(i))
		err := one.Set("y", x)
		x.Release()
		if err != nil {
			t.Fatal(err)
		}
		if live := pool.Live(); live != 1 {
			t.Fatalf("push %d: the engine's receive pool has %d buffers handed out, want 1 (the bound y)", i, live)
		}
	}
	if sum := must[any](t)(one.ApplySync("reuse_keep", "y", "last")); sum != n {
		t.Fatalf("reuse_keep: %v", sum)
	}
	if s := must[any](t)(one.ApplySync("reuse_sum", "last")); s != float64(11*n) {
		t.Fatalf("the last push's array sums to %v, want %v", s, 11*n)
	}
}

// TestBulkPushKeptReferenceSurvives: a value user code has seen (through
// Context.NS.Get or a Ref argument) and kept elsewhere is not given back
// when a push replaces it: the kept arrays still read what was pushed,
// while later pushes land in other buffers.
func TestBulkPushKeptReferenceSurvives(t *testing.T) {
	for _, how := range []string{"ns", "ref"} {
		t.Run(how, func(t *testing.T) {
			cl, ms := tcpMeshClusterMeshes(t, 1)
			one := must[*DirectView](t)(cl.View(0))
			const n = 1 << 18
			key := "kept-" + how
			defer kept.Delete(key)
			a := constFloat64(n, 3)
			defer a.Release()
			if err := one.Set("y", a); err != nil {
				t.Fatal(err)
			}
			var err error
			if how == "ns" {
				_, err = one.ApplySync("reuse_keep", "y", key)
			} else {
				_, err = one.ApplySync("reuse_keep_arg", Ref{Name: "y"}, key)
			}
			if err != nil {
				t.Fatal(err)
			}
			for i := range 6 {
				x := constFloat64(n, float64(100+i))
				err := one.Set("y", x)
				x.Release()
				if err != nil {
					t.Fatal(err)
				}
			}
			if s := must[any](t)(one.ApplySync("reuse_sum", key)); s != float64(3*n) {
				t.Fatalf("the kept array sums to %v after 6 pushes replaced it, want %v", s, 3*n)
			}
			if live := ms[1].Pool().Live(); live < 2 {
				t.Fatalf("%d receive buffers handed out, want the kept one and y's", live)
			}
		})
	}
}

// TestBulkPushPulledThenReplaced: a value the engine sent back to a pull
// and that a push then replaces goes back to the pool once that pull's
// answer was written, not after a collection; the pulled copy reads
// correctly.
func TestBulkPushPulledThenReplaced(t *testing.T) {
	cl, ms := tcpMeshClusterMeshes(t, 1)
	one := must[*DirectView](t)(cl.View(0))
	const n = 1 << 18
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	for i := range 6 {
		x := constFloat64(n, float64(i+1))
		err := one.Set("y", x)
		x.Release()
		if err != nil {
			t.Fatal(err)
		}
		got := must[any](t)(one.Get("y")).(*array.Float64)
		if got.Len() != n || got.Value(0) != float64(i+1) || got.Value(n-1) != float64(i+1) {
			t.Fatalf("push %d: pulled %d values, [0] = %v", i, got.Len(), got.Value(0))
		}
		// The pull started after the engine let go of what the push
		// replaced (the answer to the pull before it was written).
		if live := ms[1].Pool().Live(); live != 1 {
			t.Fatalf("push/pull %d: the engine's receive pool has %d buffers handed out, want 1 (y)", i, live)
		}
		if _, err := cl.PurgeAll(); err != nil {
			t.Fatal(err)
		}
	}
}

// tcpMeshClusterMeshes is tcpMeshCluster that also returns the meshes
// (rank 0 the hub's, rank i engine i-1's).
func tcpMeshClusterMeshes(t testing.TB, n int) (*Client, []*collective.Mesh) {
	t.Helper()
	ms := tcpMeshes(t, n+1)
	cl, _ := clusterWith(t, n, func(i int) func(context.Context) (*collective.Comm, error) {
		return func(context.Context) (*collective.Comm, error) { return ms[i].World(), nil }
	})
	return cl, ms
}
