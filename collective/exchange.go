package collective

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// PeerInfo is what one rank publishes so that the others can reach it.
type PeerInfo struct {
	Rank int    `json:"rank"`
	Size int    `json:"size"`
	Host string `json:"host"` // host identity: ranks with equal Host share memory
	TCP  string `json:"tcp"`  // host:port reachable from other nodes
	Unix string `json:"unix"` // abstract Unix socket "@...", same host only
	PID  int    `json:"pid"`
	// TLS is the SHA-256 fingerprint of the rank's TLS certificate when its
	// TCP listener requires TLS (MeshConfig.TLS); dialers pin it.
	TLS string `json:"tls_sha256,omitempty"`
}

// Exchange publishes this rank's address and learns everyone's. An
// implementation must return, in rank order, one PeerInfo per rank of a
// world of size self.Size, or an error naming the ranks it did not hear from.
type Exchange interface {
	Exchange(ctx context.Context, self PeerInfo) ([]PeerInfo, error)
}

// FileExchanger is an Exchange through a directory on a file system all
// ranks share (the job directory): each rank writes <dir>/mesh/rank-N.json
// atomically and polls for the others until all are present or Timeout.
type FileExchanger struct {
	Dir     string
	Timeout time.Duration // zero: 2 minutes (bounded by the context as well)
}

// FileExchange returns a FileExchanger over dir with the default timeout.
func FileExchange(dir string) *FileExchanger { return &FileExchanger{Dir: dir} }

// Exchange implements Exchange.
func (fe *FileExchanger) Exchange(ctx context.Context, self PeerInfo) ([]PeerInfo, error) {
	if self.Size < 1 || self.Rank < 0 || self.Rank >= self.Size {
		return nil, fmt.Errorf("%w: mesh exchange: rank %d of %d", ErrArgument, self.Rank, self.Size)
	}
	dir := filepath.Join(fe.Dir, "mesh")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("collective: mesh exchange: %w", err)
	}
	if err := writeJSONAtomic(filepath.Join(dir, fmt.Sprintf("rank-%d.json", self.Rank)), self); err != nil {
		return nil, err
	}
	timeout := fe.Timeout
	if timeout <= 0 {
		timeout = 2 * time.Minute
	}
	deadline := time.Now().Add(timeout)
	out := make([]PeerInfo, self.Size)
	have := make([]bool, self.Size)
	out[self.Rank], have[self.Rank] = self, true
	// Every rank polls the directory. A scan reads every missing file, so
	// the scans of all ranks cost size² opens: 1024 ranks on 2 cores spent
	// their time failing to open files. A scan runs only when the
	// directory changed (a rank file is renamed into it) or, in case two
	// changes fell in one clock tick, every rescan polls; polls slow down
	// to 200 ms per 128 ranks.
	wait := 5 * time.Millisecond
	maxWait := 200 * time.Millisecond * time.Duration(max(1, self.Size/128))
	var seen time.Time
	const rescan = 10
	for poll := 0; ; poll++ {
		if st, err := os.Stat(dir); err == nil && st.ModTime().Equal(seen) && poll%rescan != 0 {
			if err := waitPoll(ctx, dir, have, deadline, timeout, wait); err != nil {
				return nil, err
			}
			wait = min(2*wait, maxWait)
			continue
		} else if err == nil {
			seen = st.ModTime()
		}
		missing := 0
		for r := range out {
			if have[r] {
				continue
			}
			p := filepath.Join(dir, fmt.Sprintf("rank-%d.json", r))
			data, err := os.ReadFile(p)
			if errors.Is(err, os.ErrNotExist) {
				missing++
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("collective: mesh exchange: %w", err)
			}
			var pi PeerInfo
			if err := json.Unmarshal(data, &pi); err != nil {
				return nil, fmt.Errorf("collective: mesh exchange: %s: %w", p, err)
			}
			if pi.Rank != r || pi.Size != self.Size || (pi.TCP == "" && pi.Unix == "") {
				return nil, fmt.Errorf("%w: mesh exchange: %s: rank %d of %d with tcp %q unix %q, want rank %d of %d",
					ErrProtocol, p, pi.Rank, pi.Size, pi.TCP, pi.Unix, r, self.Size)
			}
			out[r], have[r] = pi, true
		}
		if missing == 0 {
			return out, nil
		}
		if err := waitPoll(ctx, dir, have, deadline, timeout, wait); err != nil {
			return nil, err
		}
		wait = min(2*wait, maxWait)
	}
}

func missingRanks(have []bool) string {
	var s []string
	for r, ok := range have {
		if !ok {
			s = append(s, fmt.Sprint(r))
		}
		if len(s) == 16 {
			s = append(s, "...")
			break
		}
	}
	return strings.Join(s, ",")
}

// writeJSONAtomic writes v to path through a temporary file and a rename, so
// readers never see a partial file.
func writeJSONAtomic(path string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*.json")
	if err != nil {
		return fmt.Errorf("collective: mesh exchange: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("collective: mesh exchange: %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("collective: mesh exchange: %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("collective: mesh exchange: %w", err)
	}
	return nil
}

// waitPoll waits for the next poll of the exchange directory, or fails
// naming the ranks not heard from when the deadline passed or ctx ended.
func waitPoll(ctx context.Context, dir string, have []bool, deadline time.Time, timeout, wait time.Duration) error {
	if time.Now().After(deadline) {
		return fmt.Errorf("collective: mesh exchange in %s: no address from rank(s) %s after %v", dir, missingRanks(have), timeout)
	}
	select {
	case <-ctx.Done():
		return fmt.Errorf("collective: mesh exchange in %s: waiting for rank(s) %s: %w", dir, missingRanks(have), ctx.Err())
	case <-time.After(wait):
	}
	return nil
}
