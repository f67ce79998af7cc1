package comm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
	"unsafe"
)

func pair(t *testing.T, network string, opts Options) (server, client *Conn, ln *Listener) {
	t.Helper()
	key, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	cfg := ListenConfig{Key: key, Opts: opts}
	if network == "tcp" {
		cfg.TCP = "127.0.0.1:0"
	} else {
		cfg.Unix = filepath.Join(t.TempDir(), "s.sock")
	}
	ln, err = Listen(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	addr := ln.TCPAddr()
	if network == "unix" {
		addr = ln.UnixAddr()
	}
	client, server = dialAccept(t, ln, network, addr, key, opts)
	return server, client, ln
}

// dialAccept connects a client to ln within 5 s and returns both ends,
// closed at the end of the test.
func dialAccept(t *testing.T, ln *Listener, network, addr string, key []byte, opts Options) (client, server *Conn) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	client, err := Dial(ctx, network, addr, key, opts)
	if err != nil {
		t.Fatalf("dial %s %s: %v", network, addr, err)
	}
	server, err = ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

func TestRoundTrip(t *testing.T) {
	for _, network := range []string{"tcp", "unix"} {
		t.Run(network, func(t *testing.T) {
			s, c, _ := pair(t, network, Options{})
			big := make([]byte, 3<<20+7)
			for i := range big {
				big[i] = byte(i * 7)
			}
			sent := &Frame{Type: TypeUser + 3, Flags: 9, Source: -4, ID: 1 << 60,
				Control: []byte("ctrl"), Buffers: [][]byte{big, {}, []byte("x"), big[5:1000]}}
			f := sendRecv(t, c, s, sent)
			defer f.Release()
			if f.Type != sent.Type || f.Flags != 9 || f.Source != -4 || f.ID != 1<<60 || string(f.Control) != "ctrl" {
				t.Fatalf("header mismatch: %+v", f)
			}
			if len(f.Buffers) != 4 {
				t.Fatalf("got %d buffers", len(f.Buffers))
			}
			sameBuffers(t, f, sent)
		})
	}
}

// sendRecv sends a frame from c while s receives it.
func sendRecv(t *testing.T, c, s *Conn, sent *Frame) *Frame {
	t.Helper()
	errc := make(chan error, 1)
	go func() { errc <- c.Send(sent) }()
	f, err := s.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	return f
}

// sameBuffers checks that a received frame holds the sent buffers, each
// Align-aligned.
func sameBuffers(t *testing.T, got, sent *Frame) {
	t.Helper()
	for i := range sent.Buffers {
		if !bytes.Equal(got.Buffers[i], sent.Buffers[i]) {
			t.Fatalf("buffer %d (%d bytes) differs", i, len(sent.Buffers[i]))
		}
		if len(got.Buffers[i]) > 0 && uintptr(unsafe.Pointer(&got.Buffers[i][0]))%Align != 0 {
			t.Fatalf("buffer %d not %d-aligned", i, Align)
		}
	}
}

func TestManySmallFramesBothWays(t *testing.T) {
	for _, o := range []Options{{}, {Spin: 100 * time.Microsecond}, {Spin: 100 * time.Microsecond, SpinOnRecv: true}} {
		t.Run(fmt.Sprintf("spin=%v,onrecv=%v", o.Spin, o.SpinOnRecv), func(t *testing.T) { manySmallFrames(t, o) })
	}
}

func manySmallFrames(t *testing.T, opts Options) {
	s, c, _ := pair(t, "unix", opts)
	const n = 2000
	go func() {
		for i := 0; i < n; i++ {
			f, err := s.Recv()
			if err != nil {
				return
			}
			f.ID++
			s.Send(f)
		}
	}()
	for i := 0; i < n; i++ {
		if err := c.Send(&Frame{Type: TypeUser, ID: uint64(i), Control: []byte(fmt.Sprint(i))}); err != nil {
			t.Fatal(err)
		}
		f, err := c.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if f.ID != uint64(i+1) || string(f.Control) != fmt.Sprint(i) {
			t.Fatalf("frame %d: got id %d control %q", i, f.ID, f.Control)
		}
	}
}

func TestWrongKeyGarbageAndOversizeAreRefused(t *testing.T) {
	key, _ := NewKey()
	ln, err := Listen(ListenConfig{TCP: "127.0.0.1:0", Key: key, Opts: Options{HandshakeTimeout: time.Second, Limits: Limits{MaxControl: 1024, MaxBuffers: 4, MaxBytes: 1 << 20}}})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ctx := context.Background()

	// Wrong key: the dialer learns it was refused; the listener counts it.
	other, _ := NewKey()
	if _, err := Dial(ctx, "tcp", ln.TCPAddr(), other, Options{}); !errors.Is(err, ErrAuth) {
		t.Fatalf("wrong key: got %v, want ErrAuth", err)
	}
	// Garbage bytes instead of the handshake.
	nc, err := net.Dial("tcp", ln.TCPAddr())
	if err != nil {
		t.Fatal(err)
	}
	nc.Write(bytes.Repeat([]byte{0xde, 0xad}, 100))
	nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	io.Copy(io.Discard, nc) // the listener closes it
	nc.Close()

	// An authenticated peer that sends an oversized frame is cut off.
	c, err := Dial(ctx, "tcp", ln.TCPAddr(), key, Options{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	c.Send(&Frame{Type: TypeUser, Buffers: [][]byte{make([]byte, 2<<20)}})
	if _, err := s.Recv(); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("oversize: got %v, want ErrFrameTooLarge", err)
	}
	// The listener still serves good peers.
	good, err := Dial(ctx, "tcp", ln.TCPAddr(), key, Options{})
	if err != nil {
		t.Fatalf("good peer after bad ones: %v", err)
	}
	good.Close()
	gs, _ := ln.Accept()
	gs.Close()
	deadline := time.Now().Add(5 * time.Second)
	for ln.Refused() < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if ln.Refused() != 2 {
		t.Fatalf("refused %d peers, want 2", ln.Refused())
	}
}

// overTLS runs a test over plain TCP and over TLS.
func overTLS(t *testing.T, test func(t *testing.T, mode TLSMode)) {
	for _, mode := range []TLSMode{TLSOff, TLSRequire} {
		t.Run("tls="+mode.String(), func(t *testing.T) { test(t, mode) })
	}
}

func TestHeartbeatTimeout(t *testing.T) { overTLS(t, heartbeatTimeout) }

func heartbeatTimeout(t *testing.T, mode TLSMode) {
	// The client sends heartbeats; the server side has them too. We freeze the
	// client by closing its heartbeats (no heartbeat option) and never sending.
	key, _ := NewKey()
	ln, err := Listen(ListenConfig{TCP: "127.0.0.1:0", Key: key, TLS: mode, Opts: Options{Heartbeat: 20 * time.Millisecond, HeartbeatMisses: 3}})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := Dial(context.Background(), "tcp", ln.TCPAddr(), key, Options{TLSFingerprint: ln.TLSFingerprint()}) // silent peer
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, _ := ln.Accept()
	start := time.Now()
	_, err = s.Recv()
	if !errors.Is(err, ErrHeartbeat) {
		t.Fatalf("got %v, want ErrHeartbeat", err)
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Fatalf("heartbeat timeout took %v", el)
	}

	// Two peers that both heartbeat stay alive while idle.
	c2, err := Dial(context.Background(), "tcp", ln.TCPAddr(), key, Options{Heartbeat: 20 * time.Millisecond, HeartbeatMisses: 3, TLSFingerprint: ln.TLSFingerprint()})
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	go func() { c2.Recv() }() // liveness is stamped by reads: every real user has a reader
	s2, _ := ln.Accept()
	got := make(chan error, 1)
	go func() { _, err := s2.Recv(); got <- err }()
	select {
	case err := <-got:
		t.Fatalf("idle heartbeating connection ended: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	c2.Send(&Frame{Type: TypeUser})
	if err := <-got; err != nil {
		t.Fatal(err)
	}
}

func TestPeerCloseFailsRecv(t *testing.T) {
	s, c, _ := pair(t, "tcp", Options{})
	c.Close()
	if _, err := s.Recv(); !errors.Is(err, io.EOF) {
		t.Fatalf("got %v, want EOF", err)
	}
	if err := s.Send(&Frame{Type: TypeUser}); err == nil {
		t.Fatal("send on dead connection succeeded")
	}
}

// fakeConn feeds fixed bytes to a Conn's reader.
type fakeConn struct {
	net.Conn
	r io.Reader
}

func (f fakeConn) Read(p []byte) (int, error)  { return f.r.Read(p) }
func (f fakeConn) Write(p []byte) (int, error) { return len(p), nil }
func (f fakeConn) Close() error                { return nil }
func (f fakeConn) RemoteAddr() net.Addr        { return &net.UnixAddr{Name: "fuzz", Net: "unix"} }
func (f fakeConn) LocalAddr() net.Addr         { return &net.UnixAddr{Name: "fuzz", Net: "unix"} }

func encodeFrame(f *Frame) []byte {
	h := make([]byte, headerSize+8*len(f.Buffers))
	putHeader(h, f)
	out := append(h, f.Control...)
	for _, b := range f.Buffers {
		out = append(out, b...)
	}
	return out
}

func FuzzDecode(f *testing.F) {
	f.Add(encodeFrame(&Frame{Type: TypeUser, Control: []byte("hello"), Buffers: [][]byte{[]byte("abc"), {}}}))
	f.Add(encodeFrame(&Frame{Type: TypePing}))
	f.Add([]byte("RHUB"))
	f.Add(bytes.Repeat([]byte{0xff}, 64))
	f.Add(encodeFrame(&Frame{Type: TypeUser, Buffers: [][]byte{bytes.Repeat([]byte{1}, 70), {2}, bytes.Repeat([]byte{3}, 200)}}))
	lim := Limits{MaxControl: 1 << 16, MaxBuffers: 64, MaxBytes: 1 << 20}
	f.Fuzz(func(t *testing.T, data []byte) {
		c := newConn(fakeConn{r: bytes.NewReader(data)}, Options{Limits: lim})
		c.recvStep = 64 // frames above it grow as their bytes arrive
		for {
			fr, err := c.Recv()
			if err != nil {
				return
			}
			if len(fr.Control) > lim.MaxControl || len(fr.Buffers) > lim.MaxBuffers {
				t.Fatalf("frame beyond limits: %d control, %d buffers", len(fr.Control), len(fr.Buffers))
			}
			// Whatever decodes must re-encode to the same bytes: those
			// of the input (buffers grown as they arrived included).
			again := encodeFrame(fr)
			if !bytes.Contains(data, again) {
				t.Fatal("a decoded frame re-encodes to bytes that are not in the input")
			}
			c2 := newConn(fakeConn{r: bytes.NewReader(again)}, Options{Limits: lim})
			fr2, err := c2.Recv()
			if err != nil && fr.Type != TypePing {
				t.Fatalf("re-decoding failed: %v", err)
			}
			if err == nil && (fr2.ID != fr.ID || !bytes.Equal(fr2.Control, fr.Control) || len(fr2.Buffers) != len(fr.Buffers)) {
				t.Fatal("round trip changed the frame")
			}
			fr.Release()
		}
	})
}

func TestConnInfoFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "hub.json")
	key, _ := NewKey()
	ci := &ConnInfo{TCP: "127.0.0.1:1", Unix: "@x", Host: "h", PID: 7, Ranks: 4, Created: time.Now().UTC(), TLS: "ab12"}
	ci.SetKey(key)
	if err := WriteConnInfo(p, ci); err != nil {
		t.Fatal(err)
	}
	st, err := osStat(p)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, want 0600", st.Mode().Perm())
	}
	got, err := ReadConnInfo(p)
	if err != nil {
		t.Fatal(err)
	}
	k, _ := got.KeyBytes()
	if !bytes.Equal(k, key) || got.TCP != ci.TCP || got.Ranks != 4 || got.TLS != ci.TLS {
		t.Fatalf("read back %+v", got)
	}
}

func BenchmarkRoundTripUnix(b *testing.B) {
	key, _ := NewKey()
	ln, _ := Listen(ListenConfig{Unix: filepath.Join(b.TempDir(), "s"), Key: key})
	defer ln.Close()
	c, _ := Dial(context.Background(), "unix", ln.UnixAddr(), key, Options{})
	s, _ := ln.Accept()
	go func() {
		for {
			f, err := s.Recv()
			if err != nil {
				return
			}
			s.Send(f)
		}
	}()
	f := &Frame{Type: TypeUser, Control: make([]byte, 64)}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c.Send(f)
		c.Recv()
	}
}

var osStat = os.Stat

func TestSendBatchKeepsOrderAndBuffers(t *testing.T) {
	s, c, _ := pair(t, "unix", Options{})
	big := bytes.Repeat([]byte{7}, 100000)
	batch := []*Frame{
		{Type: TypeUser, ID: 1, Control: []byte("a")},
		{Type: TypeUser, ID: 2, Control: []byte("bb"), Buffers: [][]byte{big, []byte("tail")}},
		{Type: TypeUser, ID: 3},
		{Type: TypeUser, ID: 4, Buffers: [][]byte{{}, []byte("z")}},
	}
	errc := make(chan error, 1)
	go func() { errc <- c.SendBatch(batch) }()
	for i, want := range batch {
		f, err := s.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if f.ID != want.ID || !bytes.Equal(f.Control, want.Control) || len(f.Buffers) != len(want.Buffers) {
			t.Fatalf("frame %d: got id %d control %q %d buffers", i, f.ID, f.Control, len(f.Buffers))
		}
		for j := range want.Buffers {
			if !bytes.Equal(f.Buffers[j], want.Buffers[j]) {
				t.Fatalf("frame %d buffer %d differs", i, j)
			}
		}
		f.Release()
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

// A peer that stops reading and stays silent is declared dead even while a
// large write to it is blocked: the blocked write then fails instead of
// hanging until TCP gives up.
func TestHeartbeatDetectsDeathDuringBlockedWrite(t *testing.T) { overTLS(t, deathDuringBlockedWrite) }

func deathDuringBlockedWrite(t *testing.T, mode TLSMode) {
	key, _ := NewKey()
	ln, err := Listen(ListenConfig{TCP: "127.0.0.1:0", Key: key, TLS: mode, Opts: Options{Heartbeat: 20 * time.Millisecond, HeartbeatMisses: 3}})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	// The peer authenticates, then never reads and never sends.
	peer, err := Dial(context.Background(), "tcp", ln.TCPAddr(), key, Options{TLSFingerprint: ln.TLSFingerprint()})
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	s, _ := ln.Accept()
	go s.Recv() // the owner's reader, as every real user has
	sent := make(chan error, 1)
	go func() { sent <- s.Send(&Frame{Type: TypeUser, Buffers: [][]byte{make([]byte, 256<<20)}}) }()
	select {
	case err := <-sent:
		if !errors.Is(err, ErrHeartbeat) {
			t.Fatalf("blocked send ended with %v, want ErrHeartbeat", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the send to a dead peer is still blocked after 5s")
	}
}

// A flood of idle unauthenticated connections does not stop the listener
// from serving a real peer.
func TestListenerServesDuringHandshakeFlood(t *testing.T) {
	key, _ := NewKey()
	const budget = 64
	ln, err := Listen(ListenConfig{TCP: "127.0.0.1:0", Key: key, Handshakes: budget, Opts: Options{HandshakeTimeout: 300 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var idle []net.Conn
	for i := 0; i < 3*budget; i++ {
		nc, err := net.Dial("tcp", ln.TCPAddr())
		if err != nil {
			t.Fatal(err)
		}
		idle = append(idle, nc)
	}
	defer func() {
		for _, nc := range idle {
			nc.Close()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	c, err := Dial(ctx, "tcp", ln.TCPAddr(), key, Options{HandshakeTimeout: 8 * time.Second})
	if err != nil {
		t.Fatalf("good peer during the flood: %v", err)
	}
	c.Close()
	if s, err := ln.Accept(); err != nil {
		t.Fatal(err)
	} else {
		s.Close()
	}
	t.Logf("served after %v with %d idle connections in the backlog", time.Since(start).Round(time.Millisecond), len(idle))
}
