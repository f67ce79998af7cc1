package collective

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// gatedTransport holds user-tag sends to rank `to` until gate is closed
// (a send in flight - dialing, or writing - when the peer dies).
type gatedTransport struct {
	*LocalTransport
	to      int
	entered chan struct{}
	gate    chan struct{}
}

func (g *gatedTransport) Send(ctx context.Context, to int, tag uint64, h []byte, bufs [][]byte) error {
	if to == g.to && tag>>62 == classUser {
		close(g.entered)
		<-g.gate
	}
	return g.LocalTransport.Send(ctx, to, tag, h, bufs)
}

// A send in flight when its receiver dies: the reclaim and the send's
// error path must drop the descriptor's reference once between them, or
// the owner's range is handed out again while the owner still uses it.
// (Found by a review.)
func TestSendInFlightWhenPeerDiesUnrefsOnce(t *testing.T) {
	ts := NewLocalNetwork(2, LocalOptions{SameNode: true})
	dir := t.TempDir()
	a0, err := NewArena(dir, "r0", 16<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer a0.Close()
	g := &gatedTransport{LocalTransport: ts[0], to: 1, entered: make(chan struct{}), gate: make(chan struct{})}
	c0, err := New(g, WithArena(a0))
	if err != nil {
		t.Fatal(err)
	}
	defer c0.Close()
	const n = 1 << 16
	buf, err := a0.Alloc(n * 8) // the owner's allocation: refs 1
	if err != nil {
		t.Fatal(err)
	}
	arr := array.NewFloat64Data(array.NewData(arrow.PrimitiveTypes.Float64, n,
		[]*memory.Buffer{nil, memory.NewBufferBytes(buf)}, nil, 0, 0))
	done := make(chan error, 1)
	go func() { _, err := c0.Send(context.Background(), 1, 7, arr); done <- err }()
	<-g.entered // held[1][tok] recorded, descriptor ref taken: refs 2
	ts[1].Close()
	time.Sleep(100 * time.Millisecond) // rank 0's release loop reclaims: refs 1
	close(g.gate)
	if err := <-done; err == nil {
		t.Fatal("send to a closed peer succeeded")
	}
	if u := a0.InUse(); u < n*8 {
		t.Errorf("the owner still holds its allocation, but the arena has %d bytes in use (double unref)", u)
	}
	other, err := a0.Alloc(n * 8)
	if err == nil && a0.offsetOf(other) == a0.offsetOf(buf) {
		other[0] = 42
		t.Errorf("a new allocation got the owner's live range: owner's [0] is now %v", arr.Value(0))
	}
	if err := a0.unref(a0.offsetOf(buf)); err != nil { // the owner frees its allocation
		t.Logf("owner's free: %v", err)
	}
	if a0.InUse() == 0 && err == nil {
		t.Errorf("the owner's free released the other allocation")
	}
}

// A link that fails while both processes live (here: rank 0's side of the
// connection fails, as on a heartbeat timeout after a stall) must not make
// rank 0 reclaim what rank 1 still maps and reads. (Found by a review.)
func TestLinkFailureOfLivePeerKeepsItsViews(t *testing.T) {
	dir := t.TempDir()
	key := make([]byte, 32)
	ms := make([]*Mesh, 2)
	errs := make(chan error, 2)
	for r := 0; r < 2; r++ {
		go func(r int) {
			m, err := JoinMesh(context.Background(), MeshConfig{Rank: r, Size: 2, Key: key, Exchange: FileExchange(dir),
				Heartbeat: -1, ArenaDir: dir, ArenaSize: 64 << 20, Name: fmt.Sprintf("lf%d", r), Host: "h", Addr: "127.0.0.1"})
			ms[r] = m
			errs <- err
		}(r)
	}
	for i := 0; i < 2; i++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	defer ms[1].Close()
	defer ms[0].Close()
	const n = 1 << 16
	buf, _ := ms[0].Arena().Alloc(n * 8)
	for i := range buf {
		buf[i] = 0
	}
	arr := array.NewFloat64Data(array.NewData(arrow.PrimitiveTypes.Float64, n,
		[]*memory.Buffer{nil, memory.NewBufferBytes(buf)}, nil, 0, 0))
	ctx := context.Background()
	if _, err := ms[0].World().Send(ctx, 1, 3, arr); err != nil {
		t.Fatal(err)
	}
	_ = ms[0].Arena().unref(ms[0].Arena().offsetOf(buf)) // the sender is done with it
	got, err := ms[1].World().Recv(ctx, 0, 3)
	if err != nil {
		t.Fatal(err)
	}
	// rank 0 sees the link fail (heartbeat timeout, write error, ...).
	l := ms[0].links[1]
	l.mu.Lock()
	c := l.conn
	l.mu.Unlock()
	c.Close()
	deadline := time.Now().Add(2 * time.Second) // the release loop checks every 500 ms
	for ms[0].Arena().InUse() != 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if ms[0].Arena().InUse() == 0 {
		nb, _ := ms[0].Arena().Alloc(n * 8)
		for i := range nb {
			nb[i] = 0xff
		}
	}
	if v := got.(*array.Float64).Value(0); v != 0 {
		t.Errorf("rank 1 still holds its received array (alive, link lost), and reads %v instead of 0", v)
	}
	got.Release()
}
