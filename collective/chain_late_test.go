package collective

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// lastSent is the root's transport in the late-placement tests: it keeps a
// copy of the header of the chain's first segment and closes sent once the
// last one went out, having counted them in n.
type lastSent struct {
	Transport
	first *[]byte
	n     *atomic.Int64
	sent  chan struct{}
}

func (t lastSent) Send(ctx context.Context, to int, tag uint64, hdr []byte, bufs [][]byte) error {
	if err := t.Transport.Send(ctx, to, tag, hdr, bufs); err != nil {
		return err
	}
	h, at, ok := sentSegment(hdr, bufs)
	if !ok {
		return nil
	}
	t.n.Add(1)
	if at == 0 {
		*t.first = append([]byte(nil), hdr...)
	}
	if at+h.cols[0].n == h.aux {
		close(t.sent)
	}
	return nil
}

// sentSegment parses a sent message as a chain segment: its header and
// the element it starts at.
func sentSegment(hdr []byte, bufs [][]byte) (*header, int64, bool) {
	h, err := parseHeader(hdr)
	if err != nil || h.kind != kindArray || (len(h.fields) != 1 && len(h.fields) != 2) || len(h.cols) != 1 || len(bufs) != 1 {
		return nil, -1, false
	}
	return h, segmentAt(h.fields), true
}

// latePlace is the relay's transport: it asks for placement only once the
// root's segments wait in its queue, and at its second receive of a segment
// (the first already copied into the assembly) a stale copy of segment 0
// arrives from the root, all zeros, and is fully in (queued) before the
// receive goes on.
type latePlace struct {
	Transport
	root   Transport // the root's own transport, which sends the stale segment
	first  *[]byte
	n      *atomic.Int64 // segments the root sent
	sent   chan struct{}
	queued func(tag uint64) int // messages from the root with tag in the relay's queue
	seg    *atomic.Uint64       // the placed tag
	recvs  *atomic.Int64
}

func (t latePlace) wait(fn PlaceFunc, tag uint64) {
	if fn == nil || t.seg.Swap(tag) == tag {
		return // only the relay's first request waits
	}
	deadline := time.Now().Add(5 * time.Second)
	select {
	case <-t.sent:
	case <-time.After(5 * time.Second):
	}
	for t.queued(tag) < int(t.n.Load()) && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
}

func (t latePlace) SetPlace(peer int, tag uint64, fn PlaceFunc) {
	t.wait(fn, tag)
	t.Transport.(placer).SetPlace(peer, tag, fn)
}

func (t latePlace) TrySetPlace(peer int, tag uint64, fn PlaceFunc) bool {
	t.wait(fn, tag)
	return t.Transport.(placer).TrySetPlace(peer, tag, fn)
}

func (t latePlace) Recv(ctx context.Context, from int, tag uint64) (*Message, error) {
	if tag == t.seg.Load() && t.recvs.Add(1) == 2 {
		h, err := parseHeader(*t.first)
		if err != nil {
			return nil, err
		}
		before := t.queued(tag)
		if err := t.root.Send(ctx, t.Rank(), tag, *t.first, [][]byte{make([]byte, h.cols[0].n*8)}); err != nil {
			return nil, err
		}
		for deadline := time.Now().Add(5 * time.Second); t.queued(tag) <= before && time.Now().Before(deadline); {
			time.Sleep(time.Millisecond)
		}
	}
	return t.Transport.Recv(ctx, from, tag)
}

// bcastLateStale runs a chain Bcast of 2 MiB from rank 0 over root to
// relay, whose transports are wrapped as above, and checks the relay's
// result.
func bcastLateStale(t *testing.T, root, relay Transport, queued func(tag uint64) int) {
	t.Helper()
	var first []byte
	var n atomic.Int64
	sent := make(chan struct{})
	c0, err := New(lastSent{root, &first, &n, sent}, WithAlgorithm("bcast:chain"))
	if err != nil {
		t.Fatal(err)
	}
	defer c0.Close()
	c1, err := New(latePlace{Transport: relay, root: root, first: &first, n: &n, sent: sent, queued: queued,
		seg: new(atomic.Uint64), recvs: new(atomic.Int64)}, WithAlgorithm("bcast:chain"))
	if err != nil {
		t.Fatal(err)
	}
	defer c1.Close()
	src := randArray(rand.New(rand.NewSource(9)), memory.DefaultAllocator, arrow.PrimitiveTypes.Float64, 1<<18, 0, 0)
	defer src.Release()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { _, err := c0.Bcast(ctx, 0, src); done <- err }()
	got, err := c1.Bcast(ctx, 0, nil)
	if serr := <-done; serr != nil {
		t.Fatalf("root: %v", serr)
	}
	if err != nil {
		t.Fatalf("relay: %v", err)
	}
	defer got.Release()
	if d := sameFloats(got, src); d != nil {
		t.Fatalf("a stale segment 0 arriving after the relay asked for placement, its segments already queued, rewrote the result: %v", d)
	}
}

// TestChainPlaceLateStaleSegmentLocal: the root's segments arrive before
// the relay asks its transport to place them (they are queued and copied by
// the relay); a stale segment 0 arriving afterwards must not be written
// into the assembly (it was: placement only knew of what it had placed).
func TestChainPlaceLateStaleSegmentLocal(t *testing.T) {
	ts := NewLocalNetwork(2, LocalOptions{Nodes: []int{0, 1}})
	defer ts[0].Close()
	defer ts[1].Close()
	ln := ts[1].net
	bcastLateStale(t, ts[0], ts[1], func(tag uint64) int {
		ln.mu.Lock()
		defer ln.mu.Unlock()
		return len(ln.queue(localKey{0, 1, tag}).msgs)
	})
}

// TestChainPlaceLateStaleSegmentMesh: the same over a mesh on loopback TCP.
func TestChainPlaceLateStaleSegmentMesh(t *testing.T) {
	ms := loopbackMeshes(t, 2)
	l := ms[1].links[0]
	bcastLateStale(t, ms[0], ms[1], func(tag uint64) int {
		l.mu.Lock()
		defer l.mu.Unlock()
		if q := l.qs[tag]; q != nil {
			return len(q.msgs)
		}
		return 0
	})
}

// loopbackMeshes joins n meshes of one process on loopback TCP, one host
// each, closed at the test's end.
func loopbackMeshes(t *testing.T, n int) []*Mesh {
	t.Helper()
	dir := t.TempDir()
	key := make([]byte, 32)
	ms := make([]*Mesh, n)
	errs := make(chan error, n)
	for r := range ms {
		go func() {
			m, err := JoinMesh(context.Background(), MeshConfig{Rank: r, Size: n, Key: key, Exchange: FileExchange(dir),
				Heartbeat: -1, ArenaDir: dir, ArenaSize: 8 << 20, Name: fmt.Sprintf("lp%d", r), Host: fmt.Sprintf("h%d", r), Addr: "127.0.0.1"})
			ms[r] = m
			errs <- err
		}()
	}
	for range ms {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	for _, m := range ms {
		t.Cleanup(func() { m.Close() })
	}
	return ms
}

// gateAlloc blocks every Allocate once armed until free is closed,
// announcing it on entered: a LocalTransport Send held between looking up
// the placement and queueing its message.
type gateAlloc struct {
	memory.Allocator
	armed   *atomic.Bool
	entered chan struct{}
	free    chan struct{}
}

func (a gateAlloc) Allocate(n int) []byte {
	if a.armed.CompareAndSwap(true, false) {
		close(a.entered)
		<-a.free
	}
	return a.Allocator.Allocate(n)
}

// heldPlace is a PlaceFunc that announces its call on entered and declines
// once free is closed: the transport is receiving a message meanwhile.
func heldPlace(entered, free chan struct{}) PlaceFunc {
	return func([]byte, []uint64) ([][]byte, func()) {
		close(entered)
		<-free
		return nil, nil
	}
}

func noPlace([]byte, []uint64) ([][]byte, func()) { return nil, nil }

// trySetPlaceCases checks TrySetPlace of rank 1 for messages from rank 0
// with tag: refused while one is queued, while one is being received
// (placed or not: hold holds a Send until the returned release is called),
// installed when none is.
func trySetPlaceCases(t *testing.T, send func(tag uint64) error, relay interface {
	Transport
	placer
}, queued func(tag uint64) int, hold func() (wait, release func())) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	recvOne := func(tag uint64) {
		t.Helper()
		m, err := relay.Recv(ctx, 0, tag)
		if err != nil {
			t.Fatal(err)
		}
		m.Release()
	}
	if !relay.TrySetPlace(0, 7, noPlace) {
		t.Fatal("nothing sent: placement refused")
	}
	relay.SetPlace(0, 7, nil)

	if err := send(8); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); queued(8) == 0 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	if relay.TrySetPlace(0, 8, noPlace) {
		t.Error("a message of the tag is queued: placement installed")
	}
	recvOne(8)
	if !relay.TrySetPlace(0, 8, noPlace) {
		t.Error("the queued message was received: placement refused")
	}
	relay.SetPlace(0, 8, nil)

	// Being received while placed (by another placement of the tag).
	entered, free := make(chan struct{}), make(chan struct{})
	relay.SetPlace(0, 9, heldPlace(entered, free))
	errc := make(chan error, 1)
	go func() { errc <- send(9) }()
	<-entered
	if relay.TrySetPlace(0, 9, noPlace) {
		t.Error("a message of the tag is being placed: placement installed")
	}
	close(free)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	recvOne(9)
	relay.SetPlace(0, 9, nil)

	// Being received without placement.
	if hold != nil {
		wait, release := hold()
		go func() { errc <- send(10) }()
		wait()
		if relay.TrySetPlace(0, 10, noPlace) {
			t.Error("a message of the tag is on its way in: placement installed")
		}
		release()
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
		recvOne(10)
	}
}

// TestTrySetPlaceLocal: LocalTransport installs a placement only when no
// message of (peer, tag) is queued or in a Send.
func TestTrySetPlaceLocal(t *testing.T) {
	armed := new(atomic.Bool)
	ga := gateAlloc{Allocator: memory.DefaultAllocator, armed: armed}
	ts := NewLocalNetwork(2, LocalOptions{Alloc: &ga})
	defer ts[0].Close()
	defer ts[1].Close()
	ln := ts[1].net
	trySetPlaceCases(t, func(tag uint64) error {
		return ts[0].Send(context.Background(), 1, tag, []byte("h"), [][]byte{make([]byte, 64)})
	}, ts[1], func(tag uint64) int {
		ln.mu.Lock()
		defer ln.mu.Unlock()
		return len(ln.queue(localKey{0, 1, tag}).msgs)
	}, func() (func(), func()) {
		ga.entered, ga.free = make(chan struct{}), make(chan struct{})
		armed.Store(true)
		entered, free := ga.entered, ga.free
		return func() { <-entered }, func() { close(free) }
	})
}

// TestTrySetPlaceMesh: the same for the mesh over loopback TCP (a frame
// being read is held in the placement function of the previous test case).
func TestTrySetPlaceMesh(t *testing.T) {
	ms := loopbackMeshes(t, 2)
	l := ms[1].links[0]
	trySetPlaceCases(t, func(tag uint64) error {
		return ms[0].Send(context.Background(), 1, tag, []byte("h"), [][]byte{make([]byte, 64)})
	}, ms[1], func(tag uint64) int {
		l.mu.Lock()
		defer l.mu.Unlock()
		if q := l.qs[tag]; q != nil {
			return len(q.msgs)
		}
		return 0
	}, nil)
}

// TestChainPlaceOnlyNextSegment: the relay's placement places segments
// only one after the other from element 0, and nothing after a segment it
// declined (which the relay copies itself).
func TestChainPlaceOnlyNextSegment(t *testing.T) {
	seg := func(at, n, total int64) ([]byte, []uint64) {
		col := column{dt: arrow.PrimitiveTypes.Float64, n: n, data: make([]byte, n*8)}
		v := segmentValue(col, at, total)
		h := header{kind: v.kind, aux: v.aux, fields: v.fields, cols: []colMeta{{typ: arrow.FLOAT64, n: n}}, refs: []bufRef{{n: n * 8}}}
		return h.marshal(), []uint64{uint64(n * 8)}
	}
	for _, tc := range []struct {
		name  string
		segs  [][2]int64 // at, n of a chain of 12
		place []bool
	}{
		{"in order", [][2]int64{{0, 4}, {4, 4}, {8, 4}}, []bool{true, true, true}},
		{"duplicate first", [][2]int64{{0, 4}, {0, 4}, {4, 4}}, []bool{true, false, false}},
		{"stale after the last", [][2]int64{{0, 4}, {4, 4}, {8, 4}, {0, 4}}, []bool{true, true, true, false}},
		{"later place first", [][2]int64{{4, 4}, {0, 4}}, []bool{false, false}},
		{"gap", [][2]int64{{0, 4}, {8, 4}, {4, 4}}, []bool{true, false, false}},
	} {
		d := &chainDest{mem: memory.DefaultAllocator}
		for i, s := range tc.segs {
			hdr, lens := seg(s[0], s[1], 12)
			bufs, rel := d.place(hdr, lens)
			if (bufs != nil) != tc.place[i] {
				t.Errorf("%s: segment %d (at %d): placed %v, want %v", tc.name, i, s[0], bufs != nil, tc.place[i])
			}
			if rel != nil {
				rel()
			}
		}
		if a := d.close(); a != nil {
			a.release()
		}
	}
}

// aheadRoot is a root that ran ahead: its first segment is queued at the
// relay before the relay asks for placement; the others are sent once the
// relay's placement is on (resumed closed). With dup, a zeroed copy of
// segment 0 follows segment 1.
type aheadRoot struct {
	Transport
	firstSent, resumed chan struct{}
	firstN             *atomic.Int64
	dup                bool
}

func (t aheadRoot) Send(ctx context.Context, to int, tag uint64, hdr []byte, bufs [][]byte) error {
	if err := t.Transport.Send(ctx, to, tag, hdr, bufs); err != nil {
		return err
	}
	h, at, ok := sentSegment(hdr, bufs)
	if !ok {
		return nil
	}
	switch {
	case at == 0:
		t.firstN.Store(h.cols[0].n)
		close(t.firstSent)
		select {
		case <-t.resumed:
		case <-time.After(5 * time.Second):
		}
	case at == t.firstN.Load() && t.dup:
		h.fields = []fieldMeta{{name: "0"}}
		return t.Transport.Send(ctx, to, tag, h.marshal(), [][]byte{make([]byte, len(bufs[0]))})
	}
	return nil
}

// aheadRelay asks for placement first once the root's first segment is
// queued (refused), and closes resumed when a later request is granted.
type aheadRelay struct {
	Transport
	firstSent, resumed chan struct{}
	queued             func(tag uint64) int
	asked              *atomic.Int64
}

func (t aheadRelay) SetPlace(peer int, tag uint64, fn PlaceFunc) {
	t.Transport.(placer).SetPlace(peer, tag, fn)
}

func (t aheadRelay) TrySetPlace(peer int, tag uint64, fn PlaceFunc) bool {
	if t.asked.Add(1) == 1 {
		<-t.firstSent
		for deadline := time.Now().Add(5 * time.Second); t.queued(tag) == 0 && time.Now().Before(deadline); {
			time.Sleep(time.Millisecond)
		}
	}
	ok := t.Transport.(placer).TrySetPlace(peer, tag, fn)
	if ok && !isClosed(t.resumed) {
		close(t.resumed)
	}
	return ok
}

// TestChainPlaceResumesAfterQueuedSegments: a relay whose root ran ahead
// copies the segment that was queued before it asked for placement, then
// reads the others in place (placement is not lost for the whole chain);
// a duplicate of segment 0 arriving later is refused, naming the root.
func TestChainPlaceResumesAfterQueuedSegments(t *testing.T) {
	for _, dup := range []bool{false, true} {
		ts := NewLocalNetwork(2, LocalOptions{Nodes: []int{0, 1}})
		firstSent, resumed := make(chan struct{}), make(chan struct{})
		var firstN atomic.Int64
		c0, err := New(aheadRoot{ts[0], firstSent, resumed, &firstN, dup}, WithAlgorithm("bcast:chain"))
		if err != nil {
			t.Fatal(err)
		}
		ln := ts[1].net
		c1, err := New(aheadRelay{ts[1], firstSent, resumed, func(tag uint64) int {
			ln.mu.Lock()
			defer ln.mu.Unlock()
			return len(ln.queue(localKey{0, 1, tag}).msgs)
		}, new(atomic.Int64)}, WithAlgorithm("bcast:chain"))
		if err != nil {
			t.Fatal(err)
		}
		// 4 MiB: four segments (minChainSegment), so that the duplicate
		// of segment 0 comes after segment 1 and before the last
		src := randArray(rand.New(rand.NewSource(9)), memory.DefaultAllocator, arrow.PrimitiveTypes.Float64, 1<<19, 0, 0)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		done := make(chan error, 1)
		go func() { _, err := c0.Bcast(ctx, 0, src); done <- err }()
		got, err := c1.Bcast(ctx, 0, nil)
		serr := <-done
		switch {
		case dup:
			var pe *PeerError
			if !errors.As(err, &pe) || pe.Peer != 0 || !errors.Is(err, ErrProtocol) {
				t.Errorf("a duplicate segment 0 after segment 1: relay got %v, want a protocol error naming rank 0", err)
			}
		case serr != nil || err != nil:
			t.Errorf("root: %v, relay: %v", serr, err)
		default:
			if d := sameFloats(got, src); d != nil {
				t.Errorf("result: %v", d)
			}
			if cp, want := c1.w.relayCopied.Load(), firstN.Load()*8; cp != want {
				t.Errorf("the relay copied %d bytes, want %d (the segment queued before it asked for placement; the others placed)", cp, want)
			}
		}
		if got != nil {
			got.Release()
		}
		cancel()
		src.Release()
		c0.Close()
		c1.Close()
		ts[0].Close()
		ts[1].Close()
	}
}
