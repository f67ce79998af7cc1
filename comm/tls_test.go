package comm

import (
	"bytes"
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// recordingProxy forwards TCP connections to target and records every byte
// that passes, both ways.
type recordingProxy struct {
	ln  net.Listener
	mu  sync.Mutex
	rec bytes.Buffer
	wg  sync.WaitGroup
}

func newRecordingProxy(t *testing.T, target string) *recordingProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &recordingProxy{ln: ln}
	t.Cleanup(func() { ln.Close(); p.wg.Wait() })
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			a, err := ln.Accept()
			if err != nil {
				return
			}
			b, err := net.Dial("tcp", target)
			if err != nil {
				a.Close()
				continue
			}
			p.wg.Add(2)
			go p.pipe(a, b)
			go p.pipe(b, a)
		}
	}()
	return p
}

func (p *recordingProxy) pipe(from, to net.Conn) {
	defer p.wg.Done()
	defer to.Close()
	buf := make([]byte, 64<<10)
	for {
		n, err := from.Read(buf)
		if n > 0 {
			p.mu.Lock()
			p.rec.Write(buf[:n])
			p.mu.Unlock()
			if _, werr := to.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (p *recordingProxy) saw(s []byte) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return bytes.Contains(p.rec.Bytes(), s)
}

// With TLS a capture of the TCP stream holds no plaintext of a frame's
// control or buffers; without it, it does (so the capture works).
func TestTLSHidesPayloadFromCapture(t *testing.T) {
	secret := []byte("the pushed string 7f3a9c: energies of the Ising lattice")
	for _, tc := range []struct {
		name string
		mode TLSMode
		tls  bool // dial with the fingerprint
	}{{"plain", TLSOff, false}, {"tls", TLSRequire, true}, {"tls on a listener that allows plain", TLSAllow, true}, {"plain on a listener that allows it", TLSAllow, false}} {
		t.Run(tc.name, func(t *testing.T) {
			key, _ := NewKey()
			ln, err := Listen(ListenConfig{TCP: "127.0.0.1:0", Key: key, TLS: tc.mode})
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			if (ln.TLSFingerprint() != "") != (tc.mode != TLSOff) {
				t.Fatalf("fingerprint %q with TLS mode %v", ln.TLSFingerprint(), tc.mode)
			}
			px := newRecordingProxy(t, ln.TCPAddr())
			opts := Options{}
			if tc.tls {
				opts.TLSFingerprint = ln.TLSFingerprint()
			}
			c, s := dialAccept(t, ln, "tcp", px.ln.Addr().String(), key, opts)
			f := sendRecv(t, c, s, &Frame{Type: TypeUser, Control: secret, Buffers: [][]byte{secret}})
			defer f.Release()
			if !bytes.Equal(f.Control, secret) || !bytes.Equal(f.Buffers[0], secret) {
				t.Fatal("frame changed on the way")
			}
			if saw := px.saw(secret[:16]); saw == tc.tls {
				t.Fatalf("TLS %v: the capture holds the plaintext: %v", tc.tls, saw)
			}
		})
	}
}

// A listener that requires TLS refuses plain peers; a TLS peer checks the
// pinned fingerprint; a plain-only listener refuses TLS peers.
func TestTLSRefusals(t *testing.T) {
	key, _ := NewKey()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := Listen(ListenConfig{TCP: "127.0.0.1:0", Key: key, TLS: TLSRequire})
	if err != nil {
		t.Fatal(err)
	}
	defer req.Close()
	if _, err := Dial(ctx, "tcp", req.TCPAddr(), key, Options{}); !errors.Is(err, ErrAuth) {
		t.Fatalf("plain peer on a TLS-only listener: %v, want ErrAuth", err)
	}
	other, err := Listen(ListenConfig{TCP: "127.0.0.1:0", Key: key, TLS: TLSRequire})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	_, err = Dial(ctx, "tcp", req.TCPAddr(), key, Options{TLSFingerprint: other.TLSFingerprint()})
	if err == nil || !strings.Contains(err.Error(), "fingerprint") {
		t.Fatalf("TLS peer pinning another certificate: %v, want a fingerprint mismatch", err)
	}
	plain, err := Listen(ListenConfig{TCP: "127.0.0.1:0", Key: key})
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	if _, err := Dial(ctx, "tcp", plain.TCPAddr(), key, Options{TLSFingerprint: other.TLSFingerprint()}); err == nil {
		t.Fatal("a TLS peer authenticated on a plain-only listener")
	}
	if _, err := Dial(ctx, "tcp", req.TCPAddr(), key, Options{TLSFingerprint: "zz"}); err == nil {
		t.Fatal("a malformed fingerprint was accepted")
	}
	// the refusals did not stop the listener
	c, err := Dial(ctx, "tcp", req.TCPAddr(), key, Options{TLSFingerprint: req.TLSFingerprint()})
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	deadline := time.Now().Add(2 * time.Second)
	for req.Refused() < 2 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if req.Refused() < 2 {
		t.Fatalf("the TLS-only listener counted %d refusals, want 2", req.Refused())
	}
}
