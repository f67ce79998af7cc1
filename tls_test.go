package rankhub_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rankhub/rankhub/comm"
	"github.com/rankhub/rankhub/jobdir"
	"github.com/rankhub/rankhub/views"
)

// recorder is a TCP proxy on loopback that keeps every byte it forwards,
// both ways: what anyone on the path between a client and the hub sees.
type recorder struct {
	ln  net.Listener
	mu  sync.Mutex
	buf bytes.Buffer
	wg  sync.WaitGroup
}

func newRecorder(t *testing.T, target string) *recorder {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &recorder{ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			r.wg.Add(2)
			pipe := func(dst, src net.Conn) {
				defer r.wg.Done()
				b := make([]byte, 32<<10)
				for {
					n, err := src.Read(b)
					if n > 0 {
						r.mu.Lock()
						r.buf.Write(b[:n])
						r.mu.Unlock()
						dst.Write(b[:n])
					}
					if err != nil {
						dst.(*net.TCPConn).CloseWrite()
						return
					}
				}
			}
			go pipe(s, c)
			go pipe(c, s)
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return r
}

func (r *recorder) seen() []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return bytes.Clone(r.buf.Bytes())
}

// pushThroughRecorder connects to the job's hub as an outside client over
// TCP through a recording proxy, pushes secret to every engine, pulls it
// back, and returns what the proxy saw.
func pushThroughRecorder(t *testing.T, ctx context.Context, dir, secret string) []byte {
	t.Helper()
	ci, err := comm.ReadConnInfo(filepath.Join(dir, jobdir.ConnFile))
	if err != nil {
		t.Fatal(err)
	}
	rec := newRecorder(t, ci.TCP)
	ci.TCP, ci.Unix = rec.ln.Addr().String(), "" // TCP through the proxy only
	path := filepath.Join(t.TempDir(), "hub.json")
	if err := comm.WriteConnInfo(path, ci); err != nil {
		t.Fatal(err)
	}
	c, err := views.ConnectContext(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	dv, err := c.DirectView()
	if err != nil {
		t.Fatal(err)
	}
	ar, err := dv.Push(map[string]any{"secret": secret})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ar.Get(20 * time.Second); err != nil {
		t.Fatal(err)
	}
	ar, err = dv.Pull("secret")
	if err != nil {
		t.Fatal(err)
	}
	got, err := ar.Get(20 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(fmtAny(got), secret) {
		t.Fatalf("pulled %v, want the pushed secret", got)
	}
	c.Close()
	time.Sleep(100 * time.Millisecond) // the proxy forwards the last bytes
	return rec.seen()
}

func fmtAny(v any) string {
	var b strings.Builder
	var walk func(any)
	walk = func(v any) {
		switch x := v.(type) {
		case []any:
			for _, e := range x {
				walk(e)
			}
		case string:
			b.WriteString(x)
		}
	}
	walk(v)
	return b.String()
}

// Issue 12 row 9: an outside client's traffic to the hub is encrypted by
// default (TLS 1.3, certificate pinned in hub.json); with tls = "off" the
// same capture holds the pushed string in clear, so the check can fail.
func TestOutsideClientTrafficIsEncrypted(t *testing.T) {
	for _, mode := range []string{"clients", "off"} {
		t.Run(mode, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			dir, done := startEnv(t, ctx, "serve", 3, true, map[string]string{"RANKHUB_TLS": mode})
			waitNote(t, dir, "ready", 30*time.Second)
			ci, err := comm.ReadConnInfo(filepath.Join(dir, jobdir.ConnFile))
			if err != nil {
				t.Fatal(err)
			}
			if (ci.TLS != "") != (mode != "off") {
				t.Fatalf("tls %s: connection file pins %q", mode, ci.TLS)
			}
			secret := "rankhub-secret-" + strings.Repeat("q7", 8)
			seen := pushThroughRecorder(t, ctx, dir, secret)
			if len(seen) < 100 {
				t.Fatalf("the proxy saw %d bytes: the client did not go through it", len(seen))
			}
			leaked := bytes.Contains(seen, []byte(secret))
			if mode == "off" && !leaked {
				t.Fatal("plain mode: the capture should hold the secret (the check cannot fail otherwise)")
			}
			if mode != "off" && leaked {
				t.Fatal("the capture of the client's TCP stream holds the pushed string in clear")
			}
			os.WriteFile(filepath.Join(dir, "go"), nil, 0o600)
			if err := <-done; err != nil {
				t.Fatalf("run: %v", err)
			}
		})
	}
}

// With tls = "all" the hub refuses plain TCP peers, engines reach it over
// TLS, and the collective mesh's TCP links require TLS with certificates
// published beside each rank's address: allreduces among engines and over
// the world still give the right sums.
func TestTLSAllRankLinks(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	// Loopback only: the hub and the mesh listen and advertise there.
	env := map[string]string{"RANKHUB_TLS": "all", "RANKHUB_TRANSPORT": "tcp", "RANKHUB_NETWORK": "127.0.0.0/8"}
	dir, done := startEnv(t, ctx, "serve", 3, true, env)
	waitNote(t, dir, "ready", 30*time.Second)
	ci, err := comm.ReadConnInfo(filepath.Join(dir, jobdir.ConnFile))
	if err != nil {
		t.Fatal(err)
	}
	key, _ := ci.KeyBytes()
	if c, err := comm.Dial(ctx, "tcp", ci.TCP, key, comm.Options{}); err == nil {
		c.Close()
		t.Fatal("tls = all: the hub accepted a plain TCP peer")
	}
	c, err := comm.Dial(ctx, "tcp", ci.TCP, key, comm.Options{TLSFingerprint: ci.TLS})
	if err != nil {
		t.Fatalf("TLS peer with the pinned certificate: %v", err)
	}
	c.Close()
	os.WriteFile(filepath.Join(dir, "go"), nil, 0o600)
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
	waitNote(t, dir, "served 2", time.Second) // both engines came in over TLS

	dir, done = startEnv(t, ctx, "collectives", 4, true, env)
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
	waitNote(t, dir, "world ok", time.Second)
	for r := 0; r < 4; r++ {
		b, err := os.ReadFile(filepath.Join(dir, "mesh", fmt.Sprintf("rank-%d.json", r)))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(b, []byte(`"tls_sha256":"`)) {
			t.Fatalf("rank %d published no certificate: %s", r, b)
		}
	}
}

// An outside client pings at the hub's own heartbeat interval, which the
// connection file records: with a job heartbeat of 200 ms (the hub drops a
// peer silent for 1 s) a client that pinged every second, as Connect did,
// was dropped while idle.
func TestOutsideClientUsesTheHubsHeartbeat(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dir, done := start(t, ctx, "serve", 2, true)
	waitNote(t, dir, "ready", 30*time.Second)
	path := filepath.Join(dir, jobdir.ConnFile)
	ci, err := comm.ReadConnInfo(path)
	if err != nil {
		t.Fatal(err)
	}
	if ci.Heartbeat() != 200*time.Millisecond {
		t.Fatalf("hub.json records heartbeat %v, want the job's 200ms", ci.Heartbeat())
	}
	c, err := views.ConnectContext(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	time.Sleep(4 * time.Second) // idle: only heartbeats flow
	dv, err := c.DirectView()
	if err != nil {
		t.Fatal(err)
	}
	ar, err := dv.Apply("where")
	if err != nil {
		t.Fatalf("after 4 s idle: %v", err)
	}
	if _, err := ar.Get(20 * time.Second); err != nil {
		t.Fatalf("after 4 s idle: %v", err)
	}
	c.Close()
	os.WriteFile(filepath.Join(dir, "go"), nil, 0o600)
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
}
