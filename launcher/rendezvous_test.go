package launcher

import (
	"context"
	"encoding/hex"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/rankhub/rankhub/comm"
)

// keyPieceIn returns a piece of key (4 bytes or more, raw or in hex) that
// name contains, or "".
func keyPieceIn(name string, key []byte) string {
	for i := 0; i+4 <= len(key); i++ {
		w := key[i : i+4]
		for _, s := range []string{string(w), hex.EncodeToString(w), strings.ToUpper(hex.EncodeToString(w))} {
			if strings.Contains(name, s) {
				return s
			}
		}
	}
	return ""
}

// The hub's abstract Unix socket name is public (/proc/net/unix): it must
// carry nothing derived from the job key.
func TestHubSocketNameCarriesNoKey(t *testing.T) {
	for i := 0; i < 5; i++ { // fresh keys: a leak of any part shows every time
		h, err := ListenHub(Identity{Size: 2, JobDir: t.TempDir()}, "127.0.0.1", comm.Options{}, comm.TLSAllow)
		if err != nil {
			t.Fatal(err)
		}
		name := h.Listener.UnixAddr()
		h.Close()
		if name == "" {
			t.Fatal("no Unix socket")
		}
		if p := keyPieceIn(name, h.Key); p != "" {
			t.Fatalf("socket name %q carries %q of the job key %x", name, p, h.Key)
		}
	}
}

// hubFileAged starts a hub endpoint in a fresh job directory and sets its
// connection file back by age (created time and mtime): a hub that has run
// that long, without waiting.
func hubFileAged(t *testing.T, age time.Duration) *HubEndpoint {
	t.Helper()
	ep, err := ListenHub(Identity{JobDir: t.TempDir(), Size: 2}, "127.0.0.1", comm.Options{}, comm.TLSAllow)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ep.Close() })
	ci := *ep.Info
	ci.Created = ci.Created.Add(-age)
	if err := comm.WriteConnInfo(ep.Path, &ci); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-age)
	os.Chtimes(ep.Path, old, old)
	return ep
}

// TestJoinHubOldFileOfLiveHub: an engine starting 2 minutes after the hub
// joins it (WaitConnInfo, which the bootstrap used, refuses this file as
// "before this rank started").
func TestJoinHubOldFileOfLiveHub(t *testing.T) {
	ep := hubFileAged(t, 2*time.Minute)
	accepted := make(chan error, 1)
	go func() {
		c, err := ep.Listener.Accept()
		if err == nil {
			c.Close()
		}
		accepted <- err
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ci, conn, err := JoinHub(ctx, ep.Path, time.Now(), "", comm.Options{}, false)
	if err != nil {
		t.Fatalf("JoinHub refused the file of a live hub: %v", err)
	}
	conn.Close()
	if ci.PID != os.Getpid() {
		t.Fatalf("joined pid %d", ci.PID)
	}
	if err := <-accepted; err != nil {
		t.Fatal(err)
	}
}

// TestJoinHubLeftover: an old file whose hub is gone is not taken; the
// error names the file, its hub's address and that it does not answer.
func TestJoinHubLeftover(t *testing.T) {
	ep := hubFileAged(t, 2*time.Minute)
	ep.Listener.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	_, _, err := JoinHub(ctx, ep.Path, time.Now(), "", comm.Options{}, false)
	if err == nil {
		t.Fatal("JoinHub took the file of a dead hub")
	}
	for _, want := range []string{ep.Path, ep.Info.TCP, "does not answer", "leftover"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
}

// TestListenAddr: the forms --listen accepts, and the one it refuses.
func TestListenAddr(t *testing.T) {
	for in, want := range map[string]string{"": "0.0.0.0:0", "10.1.2.3": "10.1.2.3:0", "10.1.2.3:7000": "10.1.2.3:7000", "::1": "[::1]:0", "[::1]": "[::1]:0", ":7000": ":7000"} {
		if got, err := listenAddr(in); err != nil || got != want {
			t.Errorf("listenAddr(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := listenAddr("node7"); err == nil || !strings.Contains(err.Error(), "node7") {
		t.Errorf("listenAddr(node7): %v", err)
	}
}
