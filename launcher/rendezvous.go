package launcher

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
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

// ListenHub makes rank 0's endpoint: a fresh job key, TCP on listen (host:port;
// "" or an unspecified host such as "0.0.0.0:0" means every address,
// advertised with the address ChooseAddr picks; a port may be left out), an
// abstract Unix socket for ranks on the same host, and the connection file,
// mode 0600. Under a batch scheduler (UnderScheduler) a loopback listen
// address is widened to every address: engines on other nodes could not
// reach 127.0.0.1. With TLS on (RankSettings.HubTLS) the TCP socket serves
// TLS 1.3 with a fresh self-signed certificate whose fingerprint the
// connection file pins.
func ListenHub(id Identity, listen string, opts comm.Options, tls comm.TLSMode) (*HubEndpoint, error) {
	tcp, err := listenAddr(listen)
	if err != nil {
		return nil, err
	}
	h, _, _ := net.SplitHostPort(tcp)
	if ip := net.ParseIP(h); ip != nil && ip.IsLoopback() && UnderScheduler(os.Getenv) {
		tcp, h = "0.0.0.0:0", "0.0.0.0"
	}
	opts = Oversubscribed(opts, id.Size)
	adv := h
	if ip := net.ParseIP(h); ip == nil || ip.IsUnspecified() {
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
	// The abstract name is public (/proc/net/unix): a random tag, never
	// anything derived from the key.
	var tag [6]byte
	if _, err := rand.Read(tag[:]); err != nil {
		return nil, fmt.Errorf("launcher: socket name: %w", err)
	}
	unix := fmt.Sprintf("@rankhub-%d-%x", os.Getpid(), tag)
	ln, err := comm.Listen(comm.ListenConfig{TCP: tcp, Unix: unix, Key: key, Opts: opts, TLS: tls})
	if err != nil {
		return nil, fmt.Errorf("launcher: listening on %s: %w", tcp, err)
	}
	_, port, _ := net.SplitHostPort(ln.TCPAddr())
	ci := &comm.ConnInfo{TCP: net.JoinHostPort(adv, port), Unix: ln.UnixAddr(), Host: host, PID: os.Getpid(), JobID: id.JobID, Ranks: id.Size, Created: time.Now().UTC()}
	ci.SetKey(key)
	ci.TLS = ln.TLSFingerprint()
	ci.HeartbeatMS = opts.Heartbeat.Milliseconds()
	path := filepath.Join(id.JobDir, ConnFile)
	if err := comm.WriteConnInfo(path, ci); err != nil {
		ln.Close()
		return nil, err
	}
	return &HubEndpoint{Listener: ln, Info: ci, Path: path, Key: key}, nil
}

// listenAddr completes a listen address: "" is every interface, a missing
// port is 0 (any free port).
func listenAddr(listen string) (string, error) {
	if listen == "" {
		return "0.0.0.0:0", nil
	}
	if _, _, err := net.SplitHostPort(listen); err != nil {
		if ip := net.ParseIP(strings.Trim(listen, "[]")); ip == nil {
			return "", fmt.Errorf("launcher: listen address %q: neither host:port nor an IP address", listen)
		}
		return net.JoinHostPort(strings.Trim(listen, "[]"), "0"), nil
	}
	return listen, nil
}

// InterfaceAddr is the first IPv4 address (else IPv6) of the network
// interface named name, for a hub that listens on one interface.
func InterfaceAddr(name string) (string, error) {
	ifc, err := net.InterfaceByName(name)
	if err != nil {
		names := []string{}
		if all, err := net.Interfaces(); err == nil {
			for _, i := range all {
				names = append(names, i.Name)
			}
		}
		return "", fmt.Errorf("launcher: interface %q: %v (this host has: %s)", name, err, strings.Join(names, ", "))
	}
	addrs, err := ifc.Addrs()
	if err != nil {
		return "", fmt.Errorf("launcher: interface %q: %w", name, err)
	}
	var v6 string
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			if n.IP.To4() != nil {
				return n.IP.String(), nil
			}
			if v6 == "" && !n.IP.IsLinkLocalUnicast() {
				v6 = n.IP.String()
			}
		}
	}
	if v6 == "" {
		return "", fmt.Errorf("launcher: interface %q has no usable address", name)
	}
	return v6, nil
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

// Fresh is how old a connection file may be, against the time a rank
// started, and still be taken for its hub's without asking the hub: a job's
// ranks start together. An older file may belong to a hub that has been
// running for hours (engines joining late) or to a dead one (a leftover):
// JoinHub tells them apart by connecting.
const Fresh = time.Minute

// probeTimeout bounds the connection attempt to the hub of an old file.
const probeTimeout = 5 * time.Second

// JoinHub waits for the connection file at path and connects to its hub.
// A file written more than Fresh before since is taken when its hub answers
// (completes the authenticated handshake); until one does, JoinHub keeps
// waiting for a new file and its error says which file did not answer.
func JoinHub(ctx context.Context, path string, since time.Time, transport string, opts comm.Options, useTLS bool) (*comm.ConnInfo, *comm.Conn, error) {
	delay := 5 * time.Millisecond
	var last error
	var tried time.Time // the Created of the old file whose hub did not answer
	for {
		ci, err := comm.ReadConnInfo(path)
		switch {
		case err != nil:
			last = err
		case !ci.Created.Before(since.Add(-Fresh)):
			conn, err := DialHub(ctx, ci, transport, opts, useTLS)
			if err != nil {
				return nil, nil, fmt.Errorf("launcher: connecting to the hub of %s (%s, pid %d on %s): %w", path, ci.TCP, ci.PID, ci.Host, err)
			}
			return ci, conn, nil
		case !ci.Created.Equal(tried):
			pctx, cancel := context.WithTimeout(ctx, probeTimeout)
			conn, err := DialHub(pctx, ci, transport, opts, useTLS)
			cancel()
			if err == nil {
				return ci, conn, nil
			}
			tried = ci.Created
			last = fmt.Errorf("%s was written at %s by pid %d on %s, and that hub does not answer at %s (%v): a leftover of an earlier run? waiting for a new one",
				path, ci.Created.Format(time.RFC3339), ci.PID, ci.Host, ci.TCP, err)
		}
		select {
		case <-ctx.Done():
			return nil, nil, fmt.Errorf("launcher: waiting for the hub's connection file: %w (last: %v)", ctx.Err(), last)
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
	opts = Oversubscribed(opts, ci.Ranks)
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
