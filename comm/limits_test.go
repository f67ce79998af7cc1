package comm

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// syncBuffer is a log sink safe for the listener's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// memNow is the Go heap in use and the process's resident set, in bytes.
func memNow(t *testing.T) (heap, rss int64) {
	t.Helper()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	data, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return int64(ms.HeapAlloc), 0
	}
	f := strings.Fields(string(data))
	pages, _ := strconv.ParseInt(f[1], 10, 64)
	return int64(ms.HeapAlloc), pages * int64(os.Getpagesize())
}

// announce writes a raw frame header announcing one buffer of n bytes.
func announce(t *testing.T, c *Conn, n uint64) {
	t.Helper()
	h := make([]byte, headerSize+8)
	putHeader(h, &Frame{Type: TypeUser, Buffers: [][]byte{nil}})
	binary.LittleEndian.PutUint64(h[headerSize:], n)
	if _, err := c.NetConn().Write(h); err != nil {
		t.Fatal(err)
	}
}

// An authenticated peer announcing a 60 GiB buffer costs the receiver the
// bytes it really sends, not the bytes it announces; it is dropped with a
// logged reason and the listener goes on serving the others.
func TestAnnouncedBytesCostOnlyWhatArrives(t *testing.T) {
	const announced = 60 << 30
	for _, tc := range []struct {
		name string
		lim  Limits // zero: the machine's default
		want error
	}{
		// the default limit is a fraction of this machine's memory: refused at once
		{"default limit", Limits{}, ErrFrameTooLarge},
		// a limit above the announcement: the receiver reads what comes and
		// drops the peer when it falls silent
		{"limit 64 GiB", Limits{MaxBytes: 64 << 30}, ErrHeartbeat},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.lim == (Limits{}) && physicalMemory() >= 2*announced {
				t.Skipf("this machine has %d bytes of memory: 60 GiB is under the default limit", physicalMemory())
			}
			var logs syncBuffer
			key, _ := NewKey()
			// The refusal comes on the header, at once; a heartbeat of a
			// second keeps a slow start (CI: dial to announce > 200 ms under
			// -race) from ending it first. The silence case needs a short one.
			hb := 50 * time.Millisecond
			if tc.want == ErrFrameTooLarge {
				hb = time.Second
			}
			ln, err := Listen(ListenConfig{TCP: "127.0.0.1:0", Key: key, Opts: Options{Limits: tc.lim,
				Heartbeat: hb, HeartbeatMisses: 4, Logger: zerolog.New(&logs)}})
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			bad, s := dialAccept(t, ln, "tcp", ln.TCPAddr(), key, Options{})
			heap0, rss0 := memNow(t)
			got := make(chan error, 1)
			go func() {
				f, err := s.Recv()
				if f != nil {
					f.Release()
				}
				got <- err
			}()
			announce(t, bad, announced)
			bad.NetConn().Write(make([]byte, 1<<20)) // the first MiB, then silence
			var heap1, rss1 int64
			select {
			case err = <-got:
				heap1, rss1 = memNow(t)
			case <-time.After(100 * time.Millisecond):
				heap1, rss1 = memNow(t) // while the receiver waits for the rest
				err = <-got
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("Recv: %v, want %v", err, tc.want)
			}
			t.Logf("announced %d GiB: heap +%d MiB, RSS +%d MiB; %v", announced>>30, (heap1-heap0)>>20, (rss1-rss0)>>20, err)
			if heap1-heap0 >= 64<<20 || rss1-rss0 >= 64<<20 {
				t.Fatalf("receiver grew by heap %d, RSS %d bytes for 1 MiB received", heap1-heap0, rss1-rss0)
			}
			// the owner of the connection logs the error: it names the peer
			if peer := bad.NetConn().LocalAddr().String(); !strings.Contains(err.Error(), peer) {
				t.Fatalf("the error %q does not name the dropped peer %s", err, peer)
			}
			// the listener serves a good peer: a round trip of a real frame
			good, gs := dialAccept(t, ln, "tcp", ln.TCPAddr(), key, Options{})
			payload := bytes.Repeat([]byte("ok"), 1000)
			go good.Send(&Frame{Type: TypeUser, Buffers: [][]byte{payload}})
			f, err := gs.Recv()
			if err != nil || !bytes.Equal(f.Buffers[0], payload) {
				t.Fatalf("good peer after the bad one: %v", err)
			}
			f.Release()
		})
	}
}

// countingGrower is a Grower over the heap that counts its calls.
type countingGrower struct {
	mu           sync.Mutex
	upTo, grows  int
	allocs, free int
}

func (g *countingGrower) Alloc(n int64) []byte {
	g.mu.Lock()
	g.allocs++
	g.mu.Unlock()
	return HeapAllocator.Alloc(n)
}
func (g *countingGrower) Free([]byte) { g.mu.Lock(); g.free++; g.mu.Unlock() }
func (g *countingGrower) AllocUpTo(min, want int64) []byte {
	g.mu.Lock()
	g.upTo++
	g.mu.Unlock()
	return HeapAllocator.Alloc(min)
}
func (g *countingGrower) Grow(b []byte, keep, n int64) []byte {
	g.mu.Lock()
	g.grows++
	g.mu.Unlock()
	nb := HeapAllocator.Alloc(n)
	copy(nb, b[:keep])
	return nb
}

// Frames larger than RecvStep arrive intact and aligned through growing
// buffers, with the heap allocator (grown by copies) and with a Grower.
func TestLargeFramesGrowAsBytesArrive(t *testing.T) {
	sizes := []int{RecvStep - 10, 100, 0, 2*RecvStep + 5, 7}
	sent := &Frame{Type: TypeUser, ID: 42, Control: []byte("big")}
	for i, n := range sizes {
		b := make([]byte, n)
		for j := range b {
			b[j] = byte(j*31 + i)
		}
		sent.Buffers = append(sent.Buffers, b)
	}
	g := &countingGrower{}
	for _, alloc := range []Allocator{HeapAllocator, g} {
		t.Run(fmt.Sprintf("%T", alloc), func(t *testing.T) {
			s, c, _ := pair(t, "unix", Options{Allocator: alloc})
			f := sendRecv(t, c, s, sent)
			defer f.Release()
			sameBuffers(t, f, sent)
		})
	}
	if g.upTo != 1 || g.grows != 2 {
		t.Fatalf("the Grower saw %d AllocUpTo and %d Grow calls, want 1 and 2 (32 MiB, 64, 96+)", g.upTo, g.grows)
	}
}

// $RANKHUB_MAX_FRAME sets the default frame limit; a bad value is an error
// of Listen and Dial that names it.
func TestMaxFrameFromEnv(t *testing.T) {
	t.Setenv(EnvMaxFrame, "1MiB")
	if n, err := DefaultMaxFrame(); err != nil || n != 1<<20 {
		t.Fatalf("DefaultMaxFrame() = %d, %v; want 1 MiB", n, err)
	}
	s, c, _ := pair(t, "tcp", Options{})
	announce(t, c, 1<<20+1)
	if _, err := s.Recv(); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("1 MiB + 1 with RANKHUB_MAX_FRAME=1MiB: %v, want ErrFrameTooLarge", err)
	}
	for _, bad := range []string{"lots", "-3G", "12XB", "99999999999T"} {
		t.Setenv(EnvMaxFrame, bad)
		key, _ := NewKey()
		if _, err := Listen(ListenConfig{TCP: "127.0.0.1:0", Key: key}); err == nil || !strings.Contains(err.Error(), EnvMaxFrame) {
			t.Fatalf("%s=%q: Listen error %v, want one naming %s", EnvMaxFrame, bad, err, EnvMaxFrame)
		}
	}
	if n, _ := ParseSize("8GiB"); n != 8<<30 {
		t.Fatalf("ParseSize(8GiB) = %d", n)
	}
}
