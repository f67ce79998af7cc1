package comm

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// ConnInfo is the connection file (hub.json) that rank 0 writes into the job
// directory with mode 0600: everything a rank or an outside client needs to
// reach and authenticate to the hub.
type ConnInfo struct {
	TCP     string    `json:"tcp"`            // host:port reachable from other nodes
	Unix    string    `json:"unix,omitempty"` // Unix socket (abstract "@..." or a path), same host only
	Key     string    `json:"key"`            // hex job key
	Host    string    `json:"host"`           // hub's host name
	PID     int       `json:"pid"`
	JobID   string    `json:"job_id,omitempty"`
	Ranks   int       `json:"ranks"`
	Created time.Time `json:"created"`
	// TLS is the hex SHA-256 fingerprint of the hub's TLS certificate
	// (Listener.TLSFingerprint) when its TCP socket speaks TLS; dialers over
	// TCP pass it as Options.TLSFingerprint.
	TLS string `json:"tls_sha256,omitempty"`
	// HeartbeatMS is the hub's heartbeat interval in milliseconds: a peer
	// silent for HeartbeatMisses (default 5) of them is dropped, so a
	// client must ping at least as often. 0: not recorded (1 s).
	HeartbeatMS int64 `json:"heartbeat_ms,omitempty"`
}

// Heartbeat is the hub's heartbeat interval, 1 s when not recorded.
func (ci *ConnInfo) Heartbeat() time.Duration {
	if ci.HeartbeatMS <= 0 {
		return time.Second
	}
	return time.Duration(ci.HeartbeatMS) * time.Millisecond
}

// KeyBytes decodes the key.
func (ci *ConnInfo) KeyBytes() ([]byte, error) { return ParseKey(ci.Key) }

// SetKey stores key in hex.
func (ci *ConnInfo) SetKey(key []byte) { ci.Key = hex.EncodeToString(key) }

// WriteConnInfo writes the file atomically with mode 0600.
func WriteConnInfo(path string, ci *ConnInfo) error {
	data, err := json.MarshalIndent(ci, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".hub-*.json")
	if err != nil {
		return fmt.Errorf("comm: connection file: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(append(data, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("comm: connection file: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// ReadConnInfo reads and checks a connection file.
func ReadConnInfo(path string) (*ConnInfo, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("comm: connection file: %w", err)
	}
	var ci ConnInfo
	if err := json.Unmarshal(data, &ci); err != nil {
		return nil, fmt.Errorf("comm: connection file %s: %w", path, err)
	}
	if _, err := ci.KeyBytes(); err != nil {
		return nil, fmt.Errorf("comm: connection file %s: %w", path, err)
	}
	if ci.TCP == "" && ci.Unix == "" {
		return nil, fmt.Errorf("comm: connection file %s: no address", path)
	}
	return &ci, nil
}
