package collective

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/rankhub/rankhub/comm"
)

// mapped is the memory the pool has handed out and not yet taken back.
func (p *RecvPool) mapped() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	var n int64
	for _, s := range p.live {
		n += s.size
	}
	return n
}

// twoMeshes joins two in-process ranks on loopback, over TCP unless edit
// changes their config.
func twoMeshes(t *testing.T, key []byte, edit func(*MeshConfig)) []*Mesh {
	t.Helper()
	dir := t.TempDir()
	ms := make([]*Mesh, 2)
	errs := make(chan error, 2)
	for r := 0; r < 2; r++ {
		cfg := MeshConfig{Rank: r, Size: 2, Key: key, Exchange: FileExchange(dir),
			Heartbeat: -1, ForceTCP: true, Host: "h", Addr: "127.0.0.1"}
		if edit != nil {
			edit(&cfg)
		}
		go func(r int) {
			m, err := JoinMesh(context.Background(), cfg)
			ms[r] = m
			errs <- err
		}(r)
	}
	for i := 0; i < 2; i++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { ms[1].Close(); ms[0].Close() })
	return ms
}

// An authenticated peer that announces a huge buffer to a mesh listener
// costs the rank what it sends, not what it announces; the ranks go on
// exchanging data afterwards.
func TestMeshListenerMemoryFollowsBytesReceived(t *testing.T) {
	key, _ := comm.NewKey()
	ms := twoMeshes(t, key, nil)
	limit, err := comm.DefaultMaxFrame()
	if err != nil {
		t.Fatal(err)
	}
	for _, announced := range []int64{60 << 30, limit} {
		t.Run(fmt.Sprintf("%dMiB", announced>>20), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			c, err := comm.Dial(ctx, "tcp", ms[0].self.TCP, key, comm.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			h := make([]byte, 40)
			binary.LittleEndian.PutUint32(h[0:], 0x42554852)
			h[4], h[5] = 1, byte(frameHello)
			binary.LittleEndian.PutUint32(h[12:], 1)
			binary.LittleEndian.PutUint64(h[32:], uint64(announced))
			c.NetConn().Write(h)
			c.NetConn().Write(make([]byte, 1<<20))
			var most int64
			for end := time.Now().Add(200 * time.Millisecond); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
				most = max(most, ms[0].pool.mapped())
			}
			t.Logf("announced %d MiB, sent 1 MiB: the rank's pool held at most %d MiB", announced>>20, most>>20)
			if most >= 64<<20 {
				t.Fatalf("the rank holds %d bytes for 1 MiB received", most)
			}
		})
	}
	// the two ranks still exchange data
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	b := array.NewFloat64Builder(memory.DefaultAllocator)
	b.AppendValues([]float64{1, 2, 3}, nil)
	arr := b.NewArray()
	defer arr.Release()
	if _, err := ms[0].World().Send(ctx, 1, 5, arr); err != nil {
		t.Fatal(err)
	}
	got, err := ms[1].World().Recv(ctx, 0, 5)
	if err != nil {
		t.Fatal(err)
	}
	defer got.Release()
	if !array.Equal(got, arr) {
		t.Fatalf("got %v", got)
	}
}

// A message header claiming 2^40 elements with an 8-byte buffer is refused
// before anything is allocated for the elements.
func TestHugeElementCountAllocatesNothing(t *testing.T) {
	ts := NewLocalNetwork(1, LocalOptions{})
	defer ts[0].Close()
	c, err := New(ts[0])
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	h := header{kind: kindArray, cols: []colMeta{{typ: arrow.FLOAT64, n: 1 << 40}}, refs: []bufRef{{n: 8}}}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, err = c.decode(NewMessage(h.marshal(), [][]byte{make([]byte, 8)}, nil), 0)
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrProtocol) {
		t.Fatalf("decode: %v, want ErrProtocol", err)
	}
	if d := int64(after.TotalAlloc - before.TotalAlloc); d >= 64<<20 {
		t.Fatalf("decoding allocated %d bytes", d)
	}
}

// Frames larger than comm.RecvStep grow in a RecvPool by mremap and arrive
// intact; a second frame of the size reuses the idle mapping whole.
func TestRecvPoolGrowsLargeFrames(t *testing.T) {
	key, _ := comm.NewKey()
	pool := NewRecvPool(1 << 30)
	defer pool.Close()
	ln, err := comm.Listen(comm.ListenConfig{Unix: t.TempDir() + "/s", Key: key, Opts: comm.Options{Allocator: pool}})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := comm.Dial(context.Background(), "unix", ln.UnixAddr(), key, comm.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var bufs [][]byte
	for i, n := range []int{comm.RecvStep + 3, 5, 3*comm.RecvStep + 1} {
		b := make([]byte, n)
		for j := range b {
			b[j] = byte(j>>12 + i)
		}
		bufs = append(bufs, b)
	}
	for round := 0; round < 2; round++ {
		go c.Send(&comm.Frame{Type: comm.TypeUser, Buffers: bufs})
		f, err := s.Recv()
		if err != nil {
			t.Fatal(err)
		}
		for i := range bufs {
			if !bytes.Equal(f.Buffers[i], bufs[i]) {
				t.Fatalf("round %d: buffer %d differs", round, i)
			}
		}
		f.Release()
		if pool.Live() != 0 || pool.Idle() < 4*comm.RecvStep {
			t.Fatalf("round %d: %d live buffers, %d idle bytes after release", round, pool.Live(), pool.Idle())
		}
	}
}

// The mesh's public names (abstract Unix socket in /proc/net/unix, arena
// file in /dev/shm) carry nothing derived from the job key.
func TestMeshNamesCarryNoKey(t *testing.T) {
	key, _ := comm.NewKey()
	dir := t.TempDir()
	ms := twoMeshes(t, key, func(c *MeshConfig) { c.ForceTCP, c.ArenaDir, c.ArenaSize = false, dir, 4<<20 })
	for _, m := range ms {
		if m.Arena() == nil || m.ln.UnixAddr() == "" {
			t.Fatal("same-node ranks without an arena or a Unix socket")
		}
		for _, name := range []string{m.ln.UnixAddr(), m.Arena().Path()} {
			for i := 0; i+4 <= len(key); i++ {
				w := key[i : i+4]
				if strings.Contains(name, string(w)) || strings.Contains(strings.ToLower(name), hex.EncodeToString(w)) {
					t.Fatalf("%q carries bytes %d-%d of the job key", name, i, i+3)
				}
			}
		}
	}
}
