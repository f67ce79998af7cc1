package collective

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// queuedColl counts the collective messages carrying arrays, and their
// bytes (inline or in an arena), that m has received and nobody has taken
// yet.
func queuedColl(m *Mesh) (msgs int, bytes int64) {
	for _, l := range m.links {
		if l == nil {
			continue
		}
		l.mu.Lock()
		for tag, q := range l.qs {
			if !isCollTag(tag) {
				continue
			}
			for _, msg := range q.msgs {
				h, err := parseHeader(msg.Header)
				if err != nil || h.kind != kindArray {
					continue
				}
				msgs++
				for _, r := range h.refs {
					bytes += r.n
				}
			}
		}
		l.mu.Unlock()
	}
	return msgs, bytes
}

// joinMeshes starts p in-process ranks of a Mesh over loopback: TCP only
// (tcp), or one host whose ranks share memory.
func joinMeshes(t *testing.T, p int, tcp bool, opts ...Option) []*Mesh {
	t.Helper()
	dir := t.TempDir()
	key := make([]byte, 32)
	ms := make([]*Mesh, p)
	errs := make(chan error, p)
	for r := 0; r < p; r++ {
		go func(r int) {
			m, err := JoinMesh(context.Background(), MeshConfig{Rank: r, Size: p, Key: key, Exchange: FileExchange(dir),
				Heartbeat: -1, ArenaDir: dir, ArenaSize: 256 << 20, Name: fmt.Sprintf("fl%d", r), Host: "h", Addr: "127.0.0.1",
				ForceTCP: tcp, Spin: -1, Options: opts})
			ms[r] = m
			errs <- err
		}(r)
	}
	for i := 0; i < p; i++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		for _, m := range ms {
			if m != nil {
				m.Close()
			}
		}
	})
	return ms
}

// TestReduceTreeSlowRootBoundsQueue: in a loop of tree Reduces whose root
// is slower than the other ranks (it sleeps between calls, as one that
// writes its result would), a rank may not run ahead by more than one
// Reduce per link: what waits at root, received and not yet taken, stays
// within one Reduce's segments per child, over TCP and over shared memory
// (there it pins the senders' arenas). Payloads of at most treeWindow
// segments exchanged no credit, so without the parent's acknowledgement
// of the last segment the others ran ahead without bound.
func TestReduceTreeSlowRootBoundsQueue(t *testing.T) {
	const (
		p     = 4
		n     = 1 << 17 // 1 MiB of float64: two segments of 512 KiB
		iters = 16
		segs  = 2
	)
	_, rootChildren := reduceTree(p, 0)
	for _, tcp := range []bool{true, false} {
		t.Run(map[bool]string{true: "tcp", false: "shm"}[tcp], func(t *testing.T) {
			ms := joinMeshes(t, p, tcp, WithAlgorithm("reduce:tree"))
			rng := rand.New(rand.NewSource(9))
			xs := make([]arrow.Array, p)
			for r := range xs {
				xs[r] = randArray(rng, memory.DefaultAllocator, arrow.PrimitiveTypes.Float64, n, 0, 0)
			}
			defer release(xs)
			want := refReduce(xs, Sum, memory.DefaultAllocator)
			defer want.Release()
			if d := ms[0].World().decide(opReduce, n*8, true); d.alg != AlgTree || d.segment*segs != n*8 {
				t.Fatalf("decision %v segment %d, want the tree in %d segments", d.alg, d.segment, segs)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			worst, worstBytes := 0, int64(0)
			var wg sync.WaitGroup
			errs := make([]error, p)
			for r := range ms {
				wg.Add(1)
				go func() {
					defer wg.Done()
					c := ms[r].World()
					for i := 0; i < iters; i++ {
						red, err := c.Reduce(ctx, 0, xs[r], Sum)
						if err != nil {
							errs[r] = fmt.Errorf("reduce %d: %w", i, err)
							return
						}
						if r != 0 {
							continue
						}
						if err := sameFloats(red, want); err != nil {
							t.Errorf("reduce %d: root's result: %v", i, err)
						}
						red.Release()
						time.Sleep(20 * time.Millisecond) // root writes its result
						q, b := queuedColl(ms[0])
						worst, worstBytes = max(worst, q), max(worstBytes, b)
					}
					// The last acknowledgements are taken by a later tree
					// collective; this one ends the loop on every rank.
					if err := c.Barrier(ctx); err != nil {
						errs[r] = err
					}
				}()
			}
			wg.Wait()
			for r, err := range errs {
				if err != nil {
					t.Fatalf("rank %d: %v", r, err)
				}
			}
			t.Logf("at most %d messages (%d bytes) waited at root; one Reduce is %d segments of %d bytes per child",
				worst, worstBytes, segs, n*8/segs)
			if bound := len(rootChildren) * segs; worst > bound {
				t.Errorf("%d messages (%d bytes) waited at the slow root, want at most %d (one Reduce per child): the other ranks ran ahead",
					worst, worstBytes, bound)
			}
		})
	}
}

// TestReduceTreeInputReusableOnReturn: MPI's promise, that a rank may write
// its input once its Reduce returned, holds also when the input lies in
// the rank's arena and went to its parent by reference: here root 0 holds
// its combination of rank 2's last segment until rank 2 has returned and
// overwritten its input (or 0.5 s passed), and root's result must still be
// the reduction of the inputs as they were passed.
func TestReduceTreeInputReusableOnReturn(t *testing.T) {
	defer func(old int64) { treeSegmentBytes = old }(treeSegmentBytes)
	defer func() { treeRecvHook = nil }()
	treeSegmentBytes = 4096
	const n = 8 * 512 // 8 segments
	for _, root := range []int{0, 1} {
		t.Run(fmt.Sprintf("root%d", root), func(t *testing.T) {
			wrote := make(chan struct{})
			treeRecvHook = func(rank, peer, k int) {
				if rank == 0 && peer == 2 && k == n/512-1 {
					select {
					case <-wrote:
					case <-time.After(500 * time.Millisecond):
					}
				}
			}
			w := newTestWorld(t, 3, worldOpts{shm: true, arenaMem: true, alg: "reduce:tree"})
			rng := rand.New(rand.NewSource(11))
			xs := make([]arrow.Array, 3)
			for r := range xs {
				xs[r] = randArray(rng, w.arenas[r].Allocator(), arrow.PrimitiveTypes.Float64, n, 0, 0)
			}
			want := refReduce(xs, Sum, memory.DefaultAllocator)
			defer want.Release()
			if !w.arenas[2].Contains(xs[2].Data().Buffers()[1].Bytes()) {
				t.Fatal("rank 2's input is not in its arena")
			}
			mustRun(t, w, func(ctx context.Context, c *Comm) error {
				red, err := c.Reduce(ctx, root, xs[c.Rank()], Sum)
				if c.Rank() == 2 {
					b := xs[2].Data().Buffers()[1].Bytes()
					for i := range b {
						b[i] = 0 // the buffer is reused
					}
					close(wrote)
				}
				if red != nil {
					if err := sameFloats(red, want); err != nil {
						t.Errorf("root %d's result: %v", root, err)
					}
					red.Release()
				}
				if err != nil {
					return err
				}
				return c.Barrier(ctx)
			})
			release(xs)
			w.close(t)
		})
	}
}

// TestReduceTreeFailureReachesSenderNextCall: a rank of the pipelined
// Reduce that only sends may return nil before its parent finds a
// mismatch; its next tree collective then fails, on every rank, naming
// the earlier failure, and no rank hangs. The one after works again.
func TestReduceTreeFailureReachesSenderNextCall(t *testing.T) {
	defer func(old int64) { treeSegmentBytes = old }(treeSegmentBytes)
	defer func() { treeRecvHook = nil }()
	treeSegmentBytes = 4096
	// Root holds its first combination until rank 2 has returned (or 0.5
	// s passed), so that rank 2 surely returns before the mismatch.
	leafDone := make(chan struct{})
	treeRecvHook = func(rank, peer, k int) {
		if rank == 0 && k == 0 {
			select {
			case <-leafDone:
			case <-time.After(500 * time.Millisecond):
			}
		}
	}
	rng := rand.New(rand.NewSource(2))
	bad := make([]arrow.Array, 3)
	good := make([]arrow.Array, 3)
	for r := range bad {
		bad[r] = randArray(rng, memory.DefaultAllocator, arrow.PrimitiveTypes.Float64, 1500+r/2*400, 0, 0) // at most 4 segments: no credit
		good[r] = randArray(rng, memory.DefaultAllocator, arrow.PrimitiveTypes.Float64, 1500, 0, 0)
	}
	defer release(bad)
	defer release(good)
	want := refReduce(good, Sum, memory.DefaultAllocator)
	defer want.Release()
	w := newTestWorld(t, 3, worldOpts{nodes: []int{0, 1, 2}, alg: "reduce:tree"})
	first, second := make([]error, 3), make([]error, 3)
	errs := w.run(10*time.Second, func(ctx context.Context, c *Comm) error {
		r := c.Rank()
		first[r] = reduceOp(ctx, c, "reduce:0", bad[r])
		if r == 2 {
			close(leafDone)
		}
		second[r] = reduceOp(ctx, c, "reduce:0", good[r])
		red, err := c.Reduce(ctx, 0, good[r], Sum)
		if red != nil {
			if err := sameFloats(red, want); err != nil {
				t.Errorf("the Reduce after: root's result: %v", err)
			}
			red.Release()
		}
		return err
	})
	w.close(t)
	wantMismatch(t, "the mismatched Reduce", "reduce:0", first)
	if first[2] != nil {
		t.Errorf("rank 2 returned %v from the mismatched Reduce, want nil (it returns before root looks)", first[2])
	}
	for r, err := range second {
		var pe *PeerError
		if first[r] == nil && (err == nil || !strings.Contains(err.Error(), "mismatched") || !errors.As(err, &pe)) {
			t.Errorf("rank %d: the Reduce after the one it left without an error: %v, want the earlier mismatch", r, err)
		}
		if err != nil && (errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)) {
			t.Errorf("rank %d hung in the Reduce after the mismatch: %v", r, err)
		}
	}
	for r, err := range errs {
		if err != nil {
			t.Errorf("rank %d: the third Reduce: %v", r, err)
		}
	}
	t.Logf("after the mismatch: %v", second)
}
