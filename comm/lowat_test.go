package comm

import (
	"bytes"
	"context"
	"net"
	"runtime"
	"testing"
	"time"
)

// recvWithin receives one frame on c, failing the test after d.
func recvWithin(t *testing.T, c *Conn, d time.Duration, what string) *Frame {
	t.Helper()
	type res struct {
		f   *Frame
		err error
	}
	ch := make(chan res, 1)
	go func() {
		f, err := c.Recv()
		ch <- res{f, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatalf("%s: %v", what, r.err)
		}
		return r.f
	case <-time.After(d):
		t.Fatalf("%s: nothing within %v", what, d)
	}
	return nil
}

func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7) + seed
	}
	return b
}

// TestLargeReadOverTCPWakesForItsTail: a buffer read under a receive
// low-water mark (readLarge) arrives whole although its sender sends
// nothing after it, its last bytes coming after a pause (the mark never
// exceeds the bytes still to come), and the mark is back at 1 afterwards:
// the next, small frame is not held back either.
func TestLargeReadOverTCPWakesForItsTail(t *testing.T) {
	server, client, _ := pair(t, "tcp", Options{})
	if runtime.GOOS == "linux" && server.tcp == nil {
		t.Fatal("a plain TCP connection on Linux reads large buffers without the low-water mark")
	}
	nc := client.NetConn()
	// Not a multiple of wakeBytes, and more than one of them: the last
	// read waits for less than wakeBytes.
	// Placed: read into memory the receiver names (RecvInto), as chain
	// relays and Bcast's receivers do.
	for _, placed := range []bool{false, true} {
		for _, n := range []int{wakeBytes, 3*wakeBytes + 4321} {
			big := pattern(n, byte(n))
			wire := frameBytes(t, &Frame{Type: TypeUser, ID: 1, Buffers: [][]byte{big}})
			got := make(chan error, 1)
			var f *Frame
			var place Place
			if placed {
				place = func(_ *Frame, lens []uint64) ([][]byte, func()) {
					return [][]byte{make([]byte, lens[0])}, nil
				}
			}
			go func() {
				var err error
				f, err = server.RecvInto(place)
				got <- err
			}()
			// All but the last 100 KiB; once the reader waits for them, the rest.
			if _, err := nc.Write(wire[:len(wire)-100<<10]); err != nil {
				t.Fatal(err)
			}
			time.Sleep(100 * time.Millisecond)
			// The reader sleeps under a mark of the bytes still to come.
			if lw := server.lowat.Load(); runtime.GOOS == "linux" && lw <= 1 {
				t.Errorf("placed=%v, %d bytes: low-water mark %d while the last 100 KiB are awaited, want > 1", placed, n, lw)
			}
			if _, err := nc.Write(wire[len(wire)-100<<10:]); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-got:
				if err != nil {
					t.Fatalf("large frame of %d bytes: %v", n, err)
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("large frame of %d bytes: its last 100 KiB not read within 5 s", n)
			}
			if len(f.Buffers) != 1 || !bytes.Equal(f.Buffers[0], big) {
				t.Fatalf("large frame of %d bytes: got %d buffers, content differs", n, len(f.Buffers))
			}
			f.Release()
			if got := server.lowat.Load(); got != 1 {
				t.Fatalf("low-water mark after the frame: %d, want 1", got)
			}
			small := pattern(100, 3)
			if err := client.Send(&Frame{Type: TypeUser, ID: 2, Buffers: [][]byte{small}}); err != nil {
				t.Fatal(err)
			}
			f = recvWithin(t, server, 5*time.Second, "small frame after the large one")
			if !bytes.Equal(f.Buffers[0], small) {
				t.Fatal("small frame: content differs")
			}
			f.Release()
		}
	}
}

// frameBytes returns f as a Conn writes it.
func frameBytes(t *testing.T, f *Frame) []byte {
	t.Helper()
	rec := &recordConn{}
	if err := newConn(rec, Options{}).Send(f); err != nil {
		t.Fatal(err)
	}
	return rec.buf.Bytes()
}

// recordConn keeps what a Conn writes (the bytes of a frame on the wire).
type recordConn struct {
	net.Conn
	buf bytes.Buffer
}

func (r *recordConn) Write(p []byte) (int, error) { return r.buf.Write(p) }

// TestHeartbeatCountsBytesQueuedForLargeRead: while the reader sleeps
// under a low-water mark, the bytes that reach the socket are the peer's
// traffic: a sender that trickles a large buffer for many heartbeat
// timeouts, always short of the mark, is not declared dead, and the frame
// arrives whole.
func TestHeartbeatCountsBytesQueuedForLargeRead(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the low-water mark is set on Linux only")
	}
	key, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	// Made before connecting: the server's heartbeat clock starts then.
	big := pattern(2*wakeBytes, 9)
	wire := frameBytes(t, &Frame{Type: TypeUser, ID: 1, Buffers: [][]byte{big}})
	sopts := Options{Heartbeat: 20 * time.Millisecond, HeartbeatMisses: 5} // dead after 100 ms of silence
	ln, err := Listen(ListenConfig{TCP: "127.0.0.1:0", Key: key, Opts: sopts})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	client, err := Dial(ctx, "tcp", ln.TCPAddr(), key, Options{}) // no heartbeat: it reads nothing
	if err != nil {
		t.Fatal(err)
	}
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close(); server.Close() })

	got := make(chan error, 1)
	var f *Frame
	go func() {
		var err error
		f, err = server.Recv()
		got <- err
	}()
	nc := client.NetConn()
	// The header and 64 KiB, then 8 KiB every 10 ms for 600 ms (six
	// heartbeat timeouts; 480 KiB, never wakeBytes), then the rest.
	sent := len(wire) - len(big) + 64<<10
	if _, err := nc.Write(wire[:sent]); err != nil {
		t.Fatal(err)
	}
	for end := time.Now().Add(600 * time.Millisecond); time.Now().Before(end); {
		time.Sleep(10 * time.Millisecond)
		if _, err := nc.Write(wire[sent : sent+8<<10]); err != nil {
			t.Fatalf("%v (the receiver: %v)", err, server.Err())
		}
		sent += 8 << 10
		select {
		case err := <-got:
			t.Fatalf("receive ended while the frame trickled in (%d of %d bytes sent): %v", sent, len(wire), err)
		default:
		}
	}
	if _, err := nc.Write(wire[sent:]); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-got:
		if err != nil {
			t.Fatalf("trickled frame: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("trickled frame: nothing within 10 s")
	}
	defer f.Release()
	if len(f.Buffers) != 1 || !bytes.Equal(f.Buffers[0], big) {
		t.Fatal("trickled frame: content differs")
	}
}
