package comm

import (
	"bytes"
	"context"
	"io"
	"net"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// needFiles raises the soft limit of open files to n if it is lower, and
// skips loudly when the hard limit does not allow it.
func needFiles(t *testing.T, n uint64) {
	t.Helper()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Skipf("SKIP: cannot read the open-file limit: %v", err)
	}
	if lim.Cur >= n {
		return
	}
	if lim.Max < n {
		t.Skipf("SKIP: this test holds %d files open; the hard limit is %d", n, lim.Max)
	}
	old := lim.Cur
	lim.Cur = n
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Skipf("SKIP: cannot raise the open-file limit to %d: %v", n, err)
	}
	t.Cleanup(func() { lim.Cur = old; syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim) })
}

// roundTrip dials, is accepted, and exchanges one frame each way.
func roundTrip(t *testing.T, ln *Listener, network, addr string, key []byte) time.Duration {
	t.Helper()
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	c, err := Dial(ctx, network, addr, key, Options{HandshakeTimeout: time.Second})
	if err != nil {
		t.Fatalf("%s peer during the flood: %v", network, err)
	}
	defer c.Close()
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	go func() {
		if f, err := s.Recv(); err == nil {
			s.Send(f)
		}
	}()
	if err := c.Send(&Frame{Type: TypeUser, Control: []byte("ping")}); err != nil {
		t.Fatal(err)
	}
	c.NetConn().SetReadDeadline(time.Now().Add(time.Second))
	f, err := c.Recv()
	if err != nil || !bytes.Equal(f.Control, []byte("ping")) {
		t.Fatalf("%s round trip during the flood: %v", network, err)
	}
	el := time.Since(start)
	if el > time.Second {
		t.Fatalf("%s round trip took %v during the flood, want < 1s", network, el)
	}
	return el
}

// 1,000 TCP connections that open and never speak (no key needed) do not
// keep a real TCP client, a late TCP peer or a Unix-socket peer from
// connecting and completing a round trip within 1 s.
func TestSilentFloodDoesNotStarveAuthenticated(t *testing.T) {
	const silent = 1000
	needFiles(t, 2*silent+256)
	key, _ := NewKey()
	ln, err := Listen(ListenConfig{TCP: "127.0.0.1:0", Unix: filepath.Join(t.TempDir(), "s"), Key: key})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var idle []net.Conn
	defer func() {
		for _, nc := range idle {
			nc.Close()
		}
	}()
	flood := func(n int) {
		for i := 0; i < n; i++ {
			nc, err := net.DialTimeout("tcp", ln.TCPAddr(), time.Second)
			if err != nil {
				t.Fatalf("silent connection %d: %v", len(idle), err)
			}
			idle = append(idle, nc)
		}
	}
	flood(silent)
	t.Logf("tcp client: round trip in %v with %d silent connections", roundTrip(t, ln, "tcp", ln.TCPAddr(), key), len(idle))
	t.Logf("unix peer: round trip in %v", roundTrip(t, ln, "unix", ln.UnixAddr(), key))
	time.Sleep(300 * time.Millisecond)
	t.Logf("late tcp peer: round trip in %v", roundTrip(t, ln, "tcp", ln.TCPAddr(), key))
}

// Under pressure the oldest silent connection is dropped first, one that
// has spoken only when none is silent, and none before EvictAfter: then
// accepting waits instead.
func TestGateDropsOldestSilentFirst(t *testing.T) {
	g := newGate(64)
	old := time.Now().Add(-time.Second)
	ps := make([]*pending, g.budget)
	for i := range ps {
		if v, ok := g.room(nil); v != nil || !ok {
			t.Fatalf("no room with %d of %d in their handshake", i, g.budget)
		}
		ps[i] = &pending{since: old}
		g.add(ps[i])
	}
	ps[0].spoke.Store(true)
	ps[2].spoke.Store(true)
	if v, _ := g.room(nil); v != ps[1] {
		t.Fatal("the oldest silent connection was not the one dropped")
	}
	if g.done(ps[1]) {
		t.Fatal("a dropped connection is still pending")
	}
	young := &pending{since: time.Now()}
	g.add(young)
	for _, p := range ps[3:] {
		p.spoke.Store(true)
	}
	if v, _ := g.room(nil); v != ps[0] {
		t.Fatal("with none silent, the oldest was not the one dropped")
	}
	// only young connections left: room waits until one is old enough
	g = newGate(64)
	for range g.budget {
		g.add(&pending{since: time.Now()})
	}
	start := time.Now()
	v, _ := g.room(nil)
	if el := time.Since(start); v == nil || el < EvictAfter-5*time.Millisecond {
		t.Fatalf("dropped %v after %v, want one after %v", v != nil, el, EvictAfter)
	}
	// a handshake that ends makes room at once
	g = newGate(64)
	for range g.budget {
		g.add(&pending{since: time.Now()})
	}
	first := g.pending[0]
	go func() { time.Sleep(5 * time.Millisecond); g.done(first) }()
	if v, ok := g.room(nil); v != nil || !ok {
		t.Fatal("an ended handshake did not make room without a drop")
	}
}

// A burst of real peers (many ranks starting at once, on a machine so
// loaded that their handshakes take longer than EvictAfter) all get in
// while they fit the default budget: none is dropped for being many.
func TestHandshakeBurstWithinBudget(t *testing.T) {
	const peers = 500
	needFiles(t, 8*peers) // the default budget is an eighth of the limit
	if b := defaultHandshakes(); b < peers {
		t.Skipf("SKIP: the default handshake budget here is %d, under %d", b, peers)
	}
	key, _ := NewKey()
	ln, err := Listen(ListenConfig{TCP: "127.0.0.1:0", Key: key})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	errs := make(chan error, peers)
	for range peers {
		go func() {
			c, err := Dial(context.Background(), "tcp", ln.TCPAddr(), key, Options{})
			if err == nil {
				defer c.Close()
			}
			errs <- err
		}()
	}
	failed := 0
	for range peers {
		if err := <-errs; err != nil {
			failed++
			t.Log(err)
		}
	}
	if failed > 0 || ln.Refused() > 0 {
		t.Fatalf("%d of %d peers starting at once failed (%d refused)", failed, peers, ln.Refused())
	}
}

// A connection that never proves the key is dropped after the listener's
// default pre-authentication deadline.
func TestPreAuthDeadline(t *testing.T) {
	t.Parallel()
	key, _ := NewKey()
	ln, err := Listen(ListenConfig{TCP: "127.0.0.1:0", Key: key})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	nc, err := net.Dial("tcp", ln.TCPAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	start := time.Now()
	nc.SetReadDeadline(start.Add(5 * time.Second))
	if _, err := io.Copy(io.Discard, nc); err != nil {
		t.Fatalf("the listener did not close the silent connection: %v", err)
	}
	if el := time.Since(start); el < DefaultHandshakeTimeout-100*time.Millisecond || el > DefaultHandshakeTimeout+time.Second {
		t.Fatalf("silent connection closed after %v, want about %v", el, DefaultHandshakeTimeout)
	}
}
