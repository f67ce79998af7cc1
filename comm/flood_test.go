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

// Under pressure the oldest silent connection is dropped first; one that
// has spoken is dropped only when none is silent.
func TestGateDropsOldestSilentFirst(t *testing.T) {
	g := &gate{}
	ps := make([]*pending, MaxHandshakes)
	for i := range ps {
		a, b := net.Pipe()
		defer a.Close()
		defer b.Close()
		ps[i] = &pending{Conn: a}
		if v := g.admit(ps[i]); v != nil {
			t.Fatalf("dropped a connection with %d of %d in their handshake", i, MaxHandshakes)
		}
	}
	ps[0].spoke.Store(true)
	ps[2].spoke.Store(true)
	late := &pending{}
	if v := g.admit(late); v != ps[1] {
		t.Fatal("the oldest silent connection was not the one dropped")
	}
	if g.done(ps[1]) {
		t.Fatal("a dropped connection is still pending")
	}
	for _, p := range append(ps[3:], late) {
		p.spoke.Store(true)
	}
	if v := g.admit(&pending{}); v != ps[0] {
		t.Fatal("with none silent, the oldest was not the one dropped")
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
