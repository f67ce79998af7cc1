package comm

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
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
	tls     *tls.Config // nil: plain only
	tlsMode TLSMode
	tlsFP   string
	// handshakes is each socket's budget of connections in their handshake
	handshakes int

	failMu  sync.Mutex
	failed  chan struct{} // closed when an accept loop stopped on an error
	failErr error
}

// MaxHandshakes caps how many unauthenticated connections each listening
// socket (TCP, Unix) keeps in their handshake at once: its budget,
// ListenConfig.Handshakes, defaults to an eighth of the open-file limit
// within [64, MaxHandshakes]. When the budget is spent, the oldest
// connection that has been there EvictAfter or longer without sending a
// byte (else the oldest one there that long) is dropped to make room for
// the next; when all are younger, accepting waits for the first to finish
// or to come of age. A flood of silent connections thus cannot keep a real
// peer waiting, and a burst of real peers (many ranks starting at once) is
// not dropped for being many.
const MaxHandshakes = 1024

// EvictAfter is how long a connection may stay in its handshake before it
// can be dropped to make room for another (a real peer answers the
// challenge within a round trip, but a loaded machine may take a while).
const EvictAfter = 100 * time.Millisecond

// defaultHandshakes is the budget of a socket: an eighth of the open-file
// limit, within [64, MaxHandshakes].
func defaultHandshakes() int {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 64
	}
	return int(min(max(lim.Cur/8, 64), MaxHandshakes))
}

// DefaultHandshakeTimeout is the listener's pre-authentication deadline
// (as NATS's auth timeout): a peer that has not proved the key by then is
// dropped. Dial waits DefaultDialHandshakeTimeout for the listener.
const (
	DefaultHandshakeTimeout     = 2 * time.Second
	DefaultDialHandshakeTimeout = 10 * time.Second
)

// gate holds one listening socket's connections in their handshake.
type gate struct {
	budget  int
	mu      sync.Mutex
	pending []*pending    // in arrival order
	freed   chan struct{} // a handshake ended (capacity 1)
}

func newGate(budget int) *gate { return &gate{budget: budget, freed: make(chan struct{}, 1)} }

// pending is a connection in its handshake; spoke is set by its first byte.
type pending struct {
	net.Conn
	since   time.Time
	spoke   atomic.Bool
	evicted atomic.Bool // set before it is closed to make room
}

func (p *pending) Read(b []byte) (int, error) {
	n, err := p.Conn.Read(b)
	if n > 0 {
		p.spoke.Store(true)
	}
	return n, err
}

// room waits until the socket may take one more connection into its
// handshake and returns the connection to drop for it, if any; ok is false
// when stop closed first.
func (g *gate) room(stop <-chan struct{}) (victim *pending, ok bool) {
	for {
		g.mu.Lock()
		if len(g.pending) < g.budget {
			g.mu.Unlock()
			return nil, true
		}
		now := time.Now()
		pick := -1
		for k, q := range g.pending {
			if now.Sub(q.since) < EvictAfter {
				break // arrival order: the rest are younger
			}
			if !q.spoke.Load() {
				pick = k
				break
			}
			if pick < 0 {
				pick = k
			}
		}
		if pick >= 0 {
			victim = g.pending[pick]
			g.pending = append(g.pending[:pick], g.pending[pick+1:]...)
			g.mu.Unlock()
			return victim, true
		}
		wait := EvictAfter - now.Sub(g.pending[0].since)
		g.mu.Unlock()
		t := time.NewTimer(wait)
		select {
		case <-stop:
			t.Stop()
			return nil, false
		case <-g.freed:
		case <-t.C:
		}
		t.Stop()
	}
}

// add puts p in its handshake.
func (g *gate) add(p *pending) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.pending = append(g.pending, p)
}

// done removes p; false means p was dropped to make room (its handshake
// may still have succeeded, but its connection is closed).
func (g *gate) done(p *pending) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	for i, q := range g.pending {
		if q == p {
			g.pending = append(g.pending[:i], g.pending[i+1:]...)
			select {
			case g.freed <- struct{}{}:
			default:
			}
			return true
		}
	}
	return false
}

// ListenConfig says where to listen. Either address may be empty.
type ListenConfig struct {
	TCP  string // e.g. "0.0.0.0:0" or "127.0.0.1:0"
	Unix string // a path, or "@name" for Linux's abstract namespace
	Key  []byte
	Opts Options
	// TLS serves TLS 1.3 on the TCP socket besides (TLSAllow) or instead of
	// (TLSRequire) plain connections. The HMAC handshake runs inside it.
	TLS TLSMode
	// Handshakes is each socket's budget of connections in their handshake
	// (see MaxHandshakes); zero: an eighth of the open-file limit.
	Handshakes int
	// Certificate is served with TLS; nil: a fresh self-signed one
	// (NewCertificate). Its fingerprint is Listener.TLSFingerprint.
	Certificate *tls.Certificate
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
	if cfg.Opts.HandshakeTimeout <= 0 {
		cfg.Opts.HandshakeTimeout = DefaultHandshakeTimeout
	}
	l := &Listener{key: cfg.Key, opts: cfg.Opts, conns: make(chan *Conn), done: make(chan struct{}),
		failed: make(chan struct{}), tlsMode: cfg.TLS, handshakes: cfg.Handshakes}
	if l.handshakes <= 0 {
		l.handshakes = defaultHandshakes()
	}
	switch cfg.TLS {
	case TLSOff:
	case TLSAllow, TLSRequire:
		if cfg.Certificate == nil {
			cert, _, err := NewCertificate()
			if err != nil {
				return nil, err
			}
			cfg.Certificate = &cert
		}
		if len(cfg.Certificate.Certificate) == 0 {
			return nil, errors.New("comm: listen: the TLS certificate is empty")
		}
		l.tls = serverTLSConfig(*cfg.Certificate)
		l.tlsFP = Fingerprint(cfg.Certificate.Certificate[0])
	default:
		return nil, fmt.Errorf("comm: listen: unknown TLS mode %d", cfg.TLS)
	}
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

// TLSFingerprint is the hex SHA-256 of the certificate served with TLS, for
// the connection file and Options.TLSFingerprint; "" when TLS is off.
func (l *Listener) TLSFingerprint() string { return l.tlsFP }

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
	g := newGate(l.handshakes) // this socket's own handshake budget
	tcp := ln.Addr().Network() == "tcp"
	for {
		v, ok := g.room(l.done)
		if !ok {
			return
		}
		if v != nil {
			v.evicted.Store(true)
			v.Close() // its handshake fails and logs it
		}
		nc, err := ln.Accept()
		if err != nil {
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
		p := &pending{Conn: nc, since: time.Now()}
		g.add(p)
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			fc, err := l.handshake(p, tcp)
			if !g.done(p) || err != nil {
				l.refused.Add(1)
				ev := l.opts.Logger.Warn()
				if p.evicted.Load() || err == nil {
					err = fmt.Errorf("%w: dropped to make room: %d connections in their handshake on %s, this one the oldest (silent ones first)", ErrAuth, g.budget, ln.Addr())
					ev = l.opts.Logger.Info() // a flood: one line per connection at warning level would drown the log
				}
				ev.Str("peer", peerName(nc)).Err(err).Msg("refused connection")
				nc.Close()
				return
			}
			setNoDelay(nc)
			c := newConn(fc, l.opts)
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

// Dial connects to a listener and proves the job key; over TCP with
// opts.TLSFingerprint, inside TLS 1.3 with the listener's certificate
// pinned.
func Dial(ctx context.Context, network, addr string, key []byte, opts Options) (*Conn, error) {
	if err := opts.check(); err != nil {
		return nil, err
	}
	opts.fill()
	if opts.HandshakeTimeout <= 0 {
		opts.HandshakeTimeout = DefaultDialHandshakeTimeout
	}
	var d net.Dialer
	nc, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, fmt.Errorf("comm: dial %s %s: %w", network, addr, err)
	}
	if opts.TLSFingerprint != "" && strings.HasPrefix(network, "tcp") {
		tc, err := startTLS(ctx, nc, opts.TLSFingerprint, opts.HandshakeTimeout)
		if err != nil {
			nc.Close()
			return nil, fmt.Errorf("comm: dial %s %s: %w", network, addr, err)
		}
		setNoDelay(nc)
		nc = tc
	}
	if err := clientHandshake(nc, key, opts.HandshakeTimeout); err != nil {
		nc.Close()
		return nil, fmt.Errorf("comm: dial %s %s: %w", network, addr, err)
	}
	setNoDelay(nc)
	return newConn(nc, opts), nil
}
