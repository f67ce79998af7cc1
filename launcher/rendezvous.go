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

// ListenHub makes rank 0's endpoint: a fresh job key, TCP on all interfaces
// (advertised with the node's address) unless local is set, an abstract Unix
// socket for ranks on the same host, and the connection file, mode 0600.
func ListenHub(id Identity, local bool, opts comm.Options) (*HubEndpoint, error) {
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
	ln, err := comm.Listen(comm.ListenConfig{TCP: tcp, Unix: unix, Key: key, Opts: opts})
	if err != nil {
		return nil, err
	}
	adv := ln.TCPAddr()
	if !local {
		_, port, _ := net.SplitHostPort(adv)
		adv = net.JoinHostPort(advertiseAddr(host), port)
	}
	ci := &comm.ConnInfo{TCP: adv, Unix: ln.UnixAddr(), Host: host, PID: os.Getpid(), JobID: id.JobID, Ranks: id.Size, Created: time.Now().UTC()}
	ci.SetKey(key)
	path := filepath.Join(id.JobDir, ConnFile)
	if err := comm.WriteConnInfo(path, ci); err != nil {
		ln.Close()
		return nil, err
	}
	return &HubEndpoint{Listener: ln, Info: ci, Path: path, Key: key}, nil
}

// advertiseAddr picks the address other nodes use: the host name's first
// non-loopback address, else the first non-loopback interface address.
func advertiseAddr(host string) string {
	if addrs, err := net.LookupHost(host); err == nil {
		for _, a := range addrs {
			if ip := net.ParseIP(a); ip != nil && !ip.IsLoopback() && ip.To4() != nil {
				return a
			}
		}
	}
	if ifs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range ifs {
			if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && n.IP.To4() != nil {
				return n.IP.String()
			}
		}
	}
	return "127.0.0.1"
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
// the transport allows it, by TCP otherwise.
func DialHub(ctx context.Context, ci *comm.ConnInfo, transport string, opts comm.Options) (*comm.Conn, error) {
	key, err := ci.KeyBytes()
	if err != nil {
		return nil, err
	}
	host, _ := os.Hostname()
	var errs []error
	if transport != "tcp" && ci.Unix != "" && host == ci.Host {
		c, err := comm.Dial(ctx, "unix", ci.Unix, key, opts)
		if err == nil {
			return c, nil
		}
		errs = append(errs, err)
	}
	c, err := comm.Dial(ctx, "tcp", ci.TCP, key, opts)
	if err == nil {
		return c, nil
	}
	errs = append(errs, err)
	return nil, errors.Join(errs...)
}
