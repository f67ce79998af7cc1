package comm

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Listener accepts authenticated connections on TCP and/or a Unix socket.
// Each handshake runs in its own goroutine, so a slow or hostile peer never
// blocks the others; refused peers are logged and dropped.
type Listener struct {
	key     []byte
	opts    Options
	lns     []net.Listener
	conns   chan *Conn
	done    chan struct{}
	closed  atomic.Bool
	wg      sync.WaitGroup
	refused atomic.Int64
	// handshakes bounds the unauthenticated connections in flight, so a
	// flood of them cannot exhaust file descriptors or goroutines.
	handshakes chan struct{}

	failMu  sync.Mutex
	failed  chan struct{} // closed when an accept loop stopped on an error
	failErr error
}

// MaxHandshakes is how many unauthenticated connections may be in their
// handshake at once; more wait in the kernel's backlog.
const MaxHandshakes = 64

// ListenConfig says where to listen. Either address may be empty.
type ListenConfig struct {
	TCP  string // e.g. "0.0.0.0:0" or "127.0.0.1:0"
	Unix string // a path, or "@name" for Linux's abstract namespace
	Key  []byte
	Opts Options
}

// Listen starts listening. Close stops it.
func Listen(cfg ListenConfig) (*Listener, error) {
	if len(cfg.Key) != KeySize {
		return nil, fmt.Errorf("comm: listen: job key must be %d bytes", KeySize)
	}
	if err := cfg.Opts.check(); err != nil {
		return nil, err
	}
	cfg.Opts.fill()
	l := &Listener{key: cfg.Key, opts: cfg.Opts, conns: make(chan *Conn), done: make(chan struct{}),
		handshakes: make(chan struct{}, MaxHandshakes), failed: make(chan struct{})}
	if cfg.TCP != "" {
		ln, err := net.Listen("tcp", cfg.TCP)
		if err != nil {
			return nil, fmt.Errorf("comm: listen tcp %s: %w", cfg.TCP, err)
		}
		l.lns = append(l.lns, ln)
	}
	if cfg.Unix != "" {
		ln, err := net.Listen("unix", cfg.Unix)
		if err != nil {
			l.Close()
			return nil, fmt.Errorf("comm: listen unix %s: %w", cfg.Unix, err)
		}
		l.lns = append(l.lns, ln)
	}
	if len(l.lns) == 0 {
		return nil, errors.New("comm: listen: no address given")
	}
	for _, ln := range l.lns {
		l.wg.Add(1)
		go l.acceptLoop(ln)
	}
	return l, nil
}

// TCPAddr returns the TCP address listened on, or "".
func (l *Listener) TCPAddr() string { return l.addr("tcp") }

// UnixAddr returns the Unix socket address listened on, or "".
func (l *Listener) UnixAddr() string { return l.addr("unix") }

// Refused counts the peers refused so far (bad key, garbage, timeouts).
func (l *Listener) Refused() int64 { return l.refused.Load() }

func (l *Listener) addr(network string) string {
	for _, ln := range l.lns {
		if ln.Addr().Network() == network {
			return ln.Addr().String()
		}
	}
	return ""
}

func (l *Listener) acceptLoop(ln net.Listener) {
	defer l.wg.Done()
	var delay time.Duration
	for {
		select { // wait for a handshake slot
		case l.handshakes <- struct{}{}:
		case <-l.done:
			return
		}
		nc, err := ln.Accept()
		if err != nil {
			<-l.handshakes
			if l.closed.Load() {
				return
			}
			if temporary(err) {
				// EMFILE, ENFILE, ECONNABORTED...: back off and go on, as
				// net/http does.
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				l.opts.Logger.Warn().Err(err).Dur("retry_in", delay).Msg("accept failed; retrying")
				select {
				case <-time.After(delay):
				case <-l.done:
					return
				}
				continue
			}
			l.opts.Logger.Error().Err(err).Msg("accept failed; listener stops")
			l.failMu.Lock()
			if l.failErr == nil {
				l.failErr = fmt.Errorf("comm: accept on %s: %w", ln.Addr(), err)
				close(l.failed)
			}
			l.failMu.Unlock()
			return
		}
		delay = 0
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			defer func() { <-l.handshakes }()
			if err := serverHandshake(nc, l.key, l.opts.HandshakeTimeout); err != nil {
				l.refused.Add(1)
				l.opts.Logger.Warn().Str("peer", peerName(nc)).Err(err).Msg("refused connection")
				nc.Close()
				return
			}
			setNoDelay(nc)
			c := newConn(nc, l.opts)
			select {
			case l.conns <- c:
			case <-l.done:
				c.Close()
			}
		}()
	}
}

func peerName(nc net.Conn) string {
	if a := nc.RemoteAddr(); a != nil && a.String() != "" {
		return a.String()
	}
	return nc.LocalAddr().Network() + " peer"
}

func setNoDelay(nc net.Conn) {
	if tc, ok := nc.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
}

// Accept returns the next authenticated connection. If accepting failed
// for good, it returns that error.
func (l *Listener) Accept() (*Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, ErrClosed
	case <-l.failed:
		l.failMu.Lock()
		defer l.failMu.Unlock()
		return nil, l.failErr
	}
}

// temporary reports accept errors worth retrying.
func temporary(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) || errors.Is(err, syscall.ENOBUFS) ||
		errors.Is(err, syscall.ENOMEM) || errors.Is(err, syscall.ECONNABORTED) || errors.Is(err, syscall.EINTR)
}

// Close stops listening; connections already accepted stay open. Idempotent.
func (l *Listener) Close() error {
	if !l.closed.CompareAndSwap(false, true) {
		return nil
	}
	close(l.done)
	for _, ln := range l.lns {
		ln.Close()
	}
	l.wg.Wait()
	return nil
}

// Dial connects to a listener and proves the job key.
func Dial(ctx context.Context, network, addr string, key []byte, opts Options) (*Conn, error) {
	if err := opts.check(); err != nil {
		return nil, err
	}
	opts.fill()
	var d net.Dialer
	nc, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, fmt.Errorf("comm: dial %s %s: %w", network, addr, err)
	}
	if err := clientHandshake(nc, key, opts.HandshakeTimeout); err != nil {
		nc.Close()
		return nil, fmt.Errorf("comm: dial %s %s: %w", network, addr, err)
	}
	setNoDelay(nc)
	return newConn(nc, opts), nil
}
