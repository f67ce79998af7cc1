package launcher

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/rankhub/rankhub/comm"
	"github.com/rankhub/rankhub/jobdir"
)

// ConnFile is the connection file's name inside the job directory (an
// alias of jobdir.ConnFile).
const ConnFile = jobdir.ConnFile

// HubEndpoint is rank 0's listener and the connection file it wrote.
type HubEndpoint struct {
	Listener *comm.Listener
	Info     *comm.ConnInfo
	Path     string
	Key      []byte
}

// Close stops listening and removes the connection file.
func (h *HubEndpoint) Close() error {
	err := h.Listener.Close()
	os.Remove(h.Path)
	return err
}

// ListenHub makes rank 0's endpoint: a fresh job key, TCP on all addresses
// (advertised with the address ChooseAddr picks) unless local is set, an
// abstract Unix socket for ranks on the same host, and the connection
// file, mode 0600. Under a batch scheduler (UnderScheduler) local is
// ignored: engines on other nodes could not reach 127.0.0.1. With TLS on
// (RankSettings.HubTLS) the TCP socket serves TLS 1.3 with a fresh
// self-signed certificate whose fingerprint the connection file pins.
func ListenHub(id Identity, local bool, opts comm.Options, tls comm.TLSMode) (*HubEndpoint, error) {
	if local && UnderScheduler(os.Getenv) {
		local = false
	}
	opts = Oversubscribed(opts, id.Size, os.Getenv)
	adv := "127.0.0.1"
	if !local {
		a, err := ChooseAddr(HostNet(), os.Getenv)
		if err != nil {
			return nil, err
		}
		adv = a.IP
	}
	key, err := comm.NewKey()
	if err != nil {
		return nil, err
	}
	host, _ := os.Hostname()
	tcp := "0.0.0.0:0"
	if local {
		tcp = "127.0.0.1:0"
	}
	// The abstract name is public (/proc/net/unix): a random tag, never
	// anything derived from the key.
	var tag [6]byte
	if _, err := rand.Read(tag[:]); err != nil {
		return nil, fmt.Errorf("launcher: socket name: %w", err)
	}
	unix := fmt.Sprintf("@rankhub-%d-%x", os.Getpid(), tag)
	ln, err := comm.Listen(comm.ListenConfig{TCP: tcp, Unix: unix, Key: key, Opts: opts, TLS: tls})
	if err != nil {
		return nil, err
	}
	_, port, _ := net.SplitHostPort(ln.TCPAddr())
	ci := &comm.ConnInfo{TCP: net.JoinHostPort(adv, port), Unix: ln.UnixAddr(), Host: host, PID: os.Getpid(), JobID: id.JobID, Ranks: id.Size, Created: time.Now().UTC()}
	ci.SetKey(key)
	ci.TLS = ln.TLSFingerprint()
	path := filepath.Join(id.JobDir, ConnFile)
	if err := comm.WriteConnInfo(path, ci); err != nil {
		ln.Close()
		return nil, err
	}
	return &HubEndpoint{Listener: ln, Info: ci, Path: path, Key: key}, nil
}

// UnderScheduler reports whether this process runs inside a SLURM or PBS
// job: SLURM_JOB_ID, or any of PBS_JOBID, PBS_NODEFILE, PBS_ENVIRONMENT
// (a starter such as pbs_tmrsh may pass on some of them only).
func UnderScheduler(getenv func(string) string) bool {
	for _, k := range []string{"SLURM_JOB_ID", "PBS_JOBID", "PBS_NODEFILE", "PBS_ENVIRONMENT"} {
		if getenv(k) != "" {
			return true
		}
	}
	return false
}

// WaitConnInfo waits for the connection file of the job directory, written
// after since (older files are leftovers of another run).
func WaitConnInfo(ctx context.Context, jobDir string, since time.Time) (*comm.ConnInfo, error) {
	path := filepath.Join(jobDir, ConnFile)
	delay := 5 * time.Millisecond
	var last error
	for {
		ci, err := comm.ReadConnInfo(path)
		if err == nil && !ci.Created.Before(since.Add(-time.Minute)) {
			return ci, nil
		}
		if err == nil {
			err = fmt.Errorf("%s is from %v, before this rank started", path, ci.Created)
		}
		last = err
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("launcher: waiting for the hub's connection file: %w (last: %v)", ctx.Err(), last)
		case <-time.After(delay):
		}
		if delay < 200*time.Millisecond {
			delay *= 2
		}
	}
}

// DialHub connects to the hub: by the Unix socket when on the hub's host and
// the transport allows it, by TCP otherwise, inside TLS when useTLS is set
// (RankSettings.RankTLS) and the hub serves it (a hub whose connection file
// pins no certificate is refused then: the job asked for encryption).
func DialHub(ctx context.Context, ci *comm.ConnInfo, transport string, opts comm.Options, useTLS bool) (*comm.Conn, error) {
	key, err := ci.KeyBytes()
	if err != nil {
		return nil, err
	}
	opts = Oversubscribed(opts, ci.Ranks, os.Getenv)
	host, _ := os.Hostname()
	var errs []error
	if transport != "tcp" && ci.Unix != "" && host == ci.Host {
		c, err := comm.Dial(ctx, "unix", ci.Unix, key, opts)
		if err == nil {
			return c, nil
		}
		errs = append(errs, err)
	}
	if useTLS {
		if ci.TLS == "" {
			return nil, errors.Join(append(errs, fmt.Errorf("launcher: the job asks for TLS (tls = \"all\") but the hub's connection file pins no certificate"))...)
		}
		opts.TLSFingerprint = ci.TLS
	}
	c, err := comm.Dial(ctx, "tcp", ci.TCP, key, opts)
	if err == nil {
		return c, nil
	}
	errs = append(errs, err)
	return nil, errors.Join(errs...)
}
