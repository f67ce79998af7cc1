package launcher

import (
	"encoding/hex"
	"strings"
	"testing"

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
		h, err := ListenHub(Identity{Size: 2, JobDir: t.TempDir()}, true, comm.Options{}, comm.TLSAllow)
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
