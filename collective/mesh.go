package collective

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/rankhub/rankhub/comm"
)

// Environment variables read by JoinMesh when the config leaves the field
// empty.
const (
	// EnvMeshHost overrides the advertised host identity (SameNode compares
	// it): two network namespaces on one machine then look like two nodes.
	EnvMeshHost = "RANKHUB_MESH_HOST"
	// EnvMeshAddr is the IP address to listen on and advertise for TCP.
	EnvMeshAddr = "RANKHUB_MESH_ADDR"
	// EnvSpin is the spin window (a Go duration, "0" turns spinning off),
	// the variable the hub and engines read too.
	EnvSpin = "RANKHUB_SPIN"
)

// DefaultSpin is the spin window when neither MeshConfig.Spin nor
// $RANKHUB_SPIN sets one.
const DefaultSpin = 100 * time.Microsecond

// MeshConfig configures JoinMesh.
type MeshConfig struct {
	Rank, Size int
	Key        []byte   // the job key (comm.KeySize bytes), from hub.json
	Exchange   Exchange // how addresses are published and learned
	// ForceTCP makes every peer "not on this node": TCP only, no arenas and
	// no Unix sockets (the forced socket path).
	ForceTCP bool
	// Heartbeat is the ping interval on idle links; a peer silent for five
	// intervals is dead. Zero: 1s. Negative: no heartbeats.
	Heartbeat time.Duration
	// ArenaDir holds this rank's shared memory arena. Empty: /dev/shm (or
	// the temporary directory when /dev/shm is missing).
	ArenaDir string
	// ArenaSize is the arena's size (a sparse file: pages cost only when
	// used). Zero: half of the free space of ArenaDir, at most 16 GiB.
	ArenaSize int64
	// Name distinguishes this job's arenas; empty: a random tag.
	Name string
	// Host is the advertised host identity; empty: $RANKHUB_MESH_HOST, else
	// os.Hostname.
	Host string
	// Addr is the IP to advertise; empty: $RANKHUB_MESH_ADDR, else the host
	// name's first non-loopback address, else any interface's. The mesh
	// listens on every address (a multi-homed node is reached on any of
	// its networks), on loopback only when Addr is a loopback address.
	Addr string
	// PoolBytes bounds the idle receive buffers kept for reuse. Zero: 2 GiB.
	PoolBytes int64
	// Spin is how long after sending on a connection its reader polls the
	// socket instead of sleeping (comm.Options.Spin): collectives wait for
	// peers in tight sequences, and a sleeping reader costs 10-50 µs to
	// wake on virtual machines. Zero: $RANKHUB_SPIN, else DefaultSpin when
	// the ranks' Go schedulers fit the cores (Size * GOMAXPROCS <=
	// runtime.NumCPU(); the spinning reader yields to its rank's other
	// goroutines), and no spinning otherwise: a spinning rank would take
	// CPU time from the peer it waits for. Size counts every rank, on
	// every node: a job of many nodes does not spin unless told. With the
	// local launcher's share of the cores (GOMAXPROCS 1 each) 2 ranks on
	// the 2-core project machine spin: their 8-byte round trip went from
	// 39-58 µs to 12-13 µs and an 8 MiB allreduce from 0.51 to 0.26-0.30
	// ms. Negative: never spin.
	Spin time.Duration
	// TLS makes the mesh's TCP links speak TLS 1.3 ([job] tls = "all"):
	// each rank's listener requires it with a fresh self-signed
	// certificate whose fingerprint travels in its PeerInfo (through the
	// job directory, 0700), and dialers pin it. Unix sockets and arenas
	// stay as they are: they never leave the node.
	TLS bool
	// Options are passed to the world communicator (WithAllocator,
	// WithLargeThreshold). The arena is added by JoinMesh.
	Options []Option
	Logger  zerolog.Logger
}

// Mesh is a Transport between rank processes over comm: one authenticated
// connection per pair of ranks that talk, dialed on first use (TCP, or an
// abstract Unix socket between ranks of one host), with incoming frames
// demultiplexed by (peer, tag) into ordered queues. It owns this rank's
// arena and the world communicator.
type Mesh struct {
	cfg   MeshConfig
	self  PeerInfo
	peers []PeerInfo
	ln    *comm.Listener
	opts  comm.Options
	pool  *RecvPool
	links []*link

	arena *Arena
	world *Comm

	drop   atomic.Pointer[func(from int, tag uint64, m *Message) bool]
	done   chan struct{}
	closed atomic.Bool
	wg     sync.WaitGroup
}

// link is the connection to one peer and its receive queues.
type link struct {
	peer int

	mu      sync.Mutex
	conn    *comm.Conn
	dialing bool
	ready   chan struct{} // closed and replaced when conn or err is set
	err     error         // the link failed: the peer is gone
	dead    chan struct{} // closed when err is set
	qs      map[uint64]*tagQueue
	place   map[uint64]PlaceFunc // SetPlace, by tag
	// arriving is the tag of the data frame whose buffers the reader is
	// receiving (it asked for their place) until it is queued, when
	// isArriving (TrySetPlace).
	arriving   uint64
	isArriving bool
}

type tagQueue struct {
	msgs    []*Message
	waiters int
	notify  chan struct{} // closed and replaced when a message arrives
}

// Frame types of the mesh protocol.
const (
	frameHello = comm.TypeUser     // dialer -> acceptor: rank, size
	frameAck   = comm.TypeUser + 1 // acceptor -> dialer: 1 accepted, 0 refused
	frameData  = comm.TypeUser + 2 // ID = tag, Control = header
	frameBye   = comm.TypeUser + 3 // the sender closes its mesh
)

// JoinMesh starts this rank's listener, publishes its addresses through
// cfg.Exchange, learns the others', creates the arena (removing stale ones
// of dead processes first) and the world communicator. No connection is
// made until a peer is first used.
func JoinMesh(ctx context.Context, cfg MeshConfig) (*Mesh, error) {
	if cfg.Size < 1 || cfg.Rank < 0 || cfg.Rank >= cfg.Size {
		return nil, fmt.Errorf("%w: mesh rank %d of %d", ErrArgument, cfg.Rank, cfg.Size)
	}
	if len(cfg.Key) != comm.KeySize {
		return nil, fmt.Errorf("%w: mesh job key has %d bytes, want %d", ErrArgument, len(cfg.Key), comm.KeySize)
	}
	if cfg.Exchange == nil {
		return nil, fmt.Errorf("%w: mesh needs an Exchange", ErrArgument)
	}
	if cfg.Heartbeat == 0 {
		cfg.Heartbeat = time.Second
	}
	if cfg.PoolBytes <= 0 {
		cfg.PoolBytes = 2 << 30
	}
	if cfg.Spin == 0 {
		cfg.Spin = spinFromEnv(cfg.Size, runtime.GOMAXPROCS(0))
	}
	if cfg.Host == "" {
		cfg.Host = os.Getenv(EnvMeshHost)
	}
	if cfg.Host == "" {
		h, err := os.Hostname()
		if err != nil {
			return nil, fmt.Errorf("collective: mesh: host name: %w", err)
		}
		cfg.Host = h
	}
	if cfg.Addr == "" {
		cfg.Addr = os.Getenv(EnvMeshAddr)
	}
	if cfg.Addr == "" {
		cfg.Addr = nodeAddr(cfg.Host)
	}
	if cfg.Name == "" {
		var b [4]byte
		_, _ = rand.Read(b[:])
		cfg.Name = hex.EncodeToString(b[:])
	}
	m := &Mesh{cfg: cfg, pool: NewRecvPool(cfg.PoolBytes), done: make(chan struct{})}
	m.opts = comm.Options{Allocator: m.pool, Logger: cfg.Logger, Spin: max(cfg.Spin, 0), SpinOnRecv: true}
	if cfg.Heartbeat > 0 {
		m.opts.Heartbeat = cfg.Heartbeat
	}
	listen := ":0"
	if ip := net.ParseIP(cfg.Addr); ip != nil && ip.IsLoopback() {
		listen = net.JoinHostPort(cfg.Addr, "0")
	}
	lc := comm.ListenConfig{TCP: listen, Key: cfg.Key, Opts: m.opts}
	if cfg.TLS {
		lc.TLS = comm.TLSRequire
	}
	if !cfg.ForceTCP {
		var b [6]byte
		_, _ = rand.Read(b[:])
		lc.Unix = fmt.Sprintf("@rankhub-mesh-%d-%d-%x", os.Getpid(), cfg.Rank, b)
	}
	ln, err := comm.Listen(lc)
	if err != nil {
		m.pool.Close()
		return nil, fmt.Errorf("collective: mesh rank %d: %w", cfg.Rank, err)
	}
	m.ln = ln
	_, port, _ := net.SplitHostPort(ln.TCPAddr())
	m.self = PeerInfo{Rank: cfg.Rank, Size: cfg.Size, Host: cfg.Host, TCP: net.JoinHostPort(cfg.Addr, port), Unix: ln.UnixAddr(), PID: os.Getpid(), TLS: ln.TLSFingerprint()}
	m.links = make([]*link, cfg.Size)
	for p := range m.links {
		m.links[p] = &link{peer: p, ready: make(chan struct{}), dead: make(chan struct{}), qs: map[uint64]*tagQueue{}}
	}
	m.wg.Add(1)
	go m.acceptLoop()
	peers, err := cfg.Exchange.Exchange(ctx, m.self)
	if err != nil {
		m.shutdown()
		return nil, fmt.Errorf("collective: mesh rank %d: %w", cfg.Rank, err)
	}
	if len(peers) != cfg.Size {
		m.shutdown()
		return nil, fmt.Errorf("%w: mesh exchange returned %d peers for %d ranks", ErrProtocol, len(peers), cfg.Size)
	}
	m.peers = peers
	opts := append(algorithmsFromEnv(), cfg.Options...)
	if !cfg.ForceTCP && m.anySameNode() {
		dir := cfg.ArenaDir
		if dir == "" {
			dir = "/dev/shm"
			if st, err := os.Stat(dir); err != nil || !st.IsDir() {
				dir = os.TempDir()
			}
		}
		if removed, err := CleanStale(dir); err == nil && len(removed) > 0 {
			cfg.Logger.Info().Strs("arenas", removed).Msg("removed stale arenas of dead processes")
		}
		size := cfg.ArenaSize
		if size <= 0 {
			size = defaultArenaSize(dir)
		}
		a, err := NewArena(dir, fmt.Sprintf("%s-r%d", cfg.Name, cfg.Rank), size)
		if err != nil {
			m.shutdown()
			return nil, fmt.Errorf("collective: mesh rank %d: %w", cfg.Rank, err)
		}
		m.arena = a
		// a full arena hands out receive-pool memory, not Go heap: read-only
		// in place when received (Protect), back to the pool on Release
		a.fall = zeroedAllocator{m.pool.Allocator()}
		// results in the arena go on to same-node peers without a copy;
		// the caller's options come after and may override it
		opts = append([]Option{WithAllocator(a.Allocator())}, opts...)
		opts = append(opts, WithArena(a))
	}
	if m.arena == nil {
		opts = append([]Option{WithAllocator(m.pool.Allocator())}, opts...)
	}
	w, err := New(m, opts...)
	if err != nil {
		m.shutdown()
		return nil, err
	}
	m.world = w
	return m, nil
}

func (m *Mesh) anySameNode() bool {
	for p := range m.peers {
		if p != m.cfg.Rank && m.SameNode(p) {
			return true
		}
	}
	return false
}

// spinFromEnv returns $RANKHUB_SPIN ("0": -1, no spinning), else
// DefaultSpin when size ranks of procs Go processors each (whose spinning
// readers yield to their rank's work) fit the cores, else -1.
func spinFromEnv(size, procs int) time.Duration {
	d, err := time.ParseDuration(os.Getenv(EnvSpin))
	switch {
	case err == nil && d == 0:
		return -1
	case err == nil && d > 0:
		return d
	case size*max(procs, 1) > runtime.NumCPU():
		return -1
	}
	return DefaultSpin
}

// defaultArenaSize is half of the free space of dir, at most 16 GiB and at
// least 64 MiB.
func defaultArenaSize(dir string) int64 {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 1 << 30
	}
	free := int64(st.Bavail) * int64(st.Bsize) / 2
	return max(64<<20, min(free, 16<<30))
}

// nodeAddr returns the address to listen on: the first non-loopback IP of
// host, else of any interface, else loopback.
func nodeAddr(host string) string {
	if ips, err := net.LookupIP(host); err == nil {
		for _, ip := range ips {
			if ip.To4() != nil && !ip.IsLoopback() {
				return ip.String()
			}
		}
	}
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && !n.IP.IsLoopback() {
				return n.IP.String()
			}
		}
	}
	return "127.0.0.1"
}

// World returns the communicator over all ranks of the mesh.
func (m *Mesh) World() *Comm { return m.world }

// Arena returns this rank's arena, or nil when no peer shares the node or
// ForceTCP is set. Arrays built with Arena().Allocator() reach same-node
// peers without any copy.
func (m *Mesh) Arena() *Arena { return m.arena }

// Pool returns the receive buffer pool.
func (m *Mesh) Pool() *RecvPool { return m.pool }

// Peer returns what rank p published.
func (m *Mesh) Peer(p int) PeerInfo { return m.peers[p] }

// PeerExited reports whether peer's process has exited (on this node: its
// pid is gone and it holds no arena), not merely its link: a stopped or
// cut-off process may still read arena pages it mapped. A peer in another
// PID namespace has a pid that names no process here; the lock it holds
// on its arena for its lifetime says it lives.
func (m *Mesh) PeerExited(peer int) bool {
	if peer < 0 || peer >= len(m.peers) || !m.SameNode(peer) {
		return false
	}
	p := m.peers[peer]
	if syscall.Kill(p.PID, 0) != syscall.ESRCH {
		return false
	}
	return m.arena == nil || !arenaHeld(filepath.Dir(m.arena.Path()), peer, p.PID)
}

// Rank implements Transport.
func (m *Mesh) Rank() int { return m.cfg.Rank }

// Size implements Transport.
func (m *Mesh) Size() int { return m.cfg.Size }

// SameNode implements Transport: equal advertised host identities, unless
// ForceTCP.
func (m *Mesh) SameNode(peer int) bool {
	if m.cfg.ForceTCP || peer < 0 || peer >= len(m.peers) {
		return false
	}
	return m.peers[peer].Host == m.cfg.Host
}

// NodeOf names rank p's node: its advertised host identity, or the rank
// itself with ForceTCP (every peer "not on this node").
func (m *Mesh) NodeOf(p int) string {
	if m.cfg.ForceTCP || p < 0 || p >= len(m.peers) {
		return fmt.Sprint("rank ", p)
	}
	return m.peers[p].Host
}

// peerName names a peer in errors.
func (m *Mesh) peerName(p int) string {
	if p >= 0 && p < len(m.peers) {
		return fmt.Sprintf("rank %d (host %s, pid %d)", p, m.peers[p].Host, m.peers[p].PID)
	}
	return fmt.Sprintf("rank %d", p)
}

// Send implements Transport. It dials the peer on first use.
func (m *Mesh) Send(ctx context.Context, to int, tag uint64, header []byte, bufs [][]byte) error {
	if to < 0 || to >= m.cfg.Size || to == m.cfg.Rank {
		return fmt.Errorf("%w: mesh send to rank %d of %d", ErrArgument, to, m.cfg.Size)
	}
	c, err := m.connect(ctx, to)
	if err != nil {
		return err
	}
	if err := c.Send(&comm.Frame{Type: frameData, Source: int32(m.cfg.Rank), ID: tag, Control: header, Buffers: bufs}); err != nil {
		err = fmt.Errorf("mesh: send to %s: %w", m.peerName(to), err)
		m.fail(m.links[to], err)
		return err
	}
	return nil
}

// Recv implements Transport. Receives of collective and user messages dial
// the peer if no connection exists yet, so that a dead peer is noticed;
// receives of release and abort messages only wait.
func (m *Mesh) Recv(ctx context.Context, from int, tag uint64) (*Message, error) {
	if from < 0 || from >= m.cfg.Size || from == m.cfg.Rank {
		return nil, fmt.Errorf("%w: mesh receive from rank %d of %d", ErrArgument, from, m.cfg.Size)
	}
	l := m.links[from]
	if cls := tag >> 62; cls == classUser || cls == classCollective {
		// A failure is reported below, once queued messages are consumed.
		_, _ = m.connect(ctx, from)
	}
	l.mu.Lock()
	q := l.queue(tag)
	q.waiters++
	defer func() {
		q.waiters--
		if len(q.msgs) == 0 && q.waiters == 0 && l.qs[tag] == q {
			delete(l.qs, tag)
		}
		l.mu.Unlock()
	}()
	for {
		if len(q.msgs) > 0 {
			msg := q.msgs[0]
			q.msgs[0] = nil
			q.msgs = q.msgs[1:]
			return msg, nil
		}
		if l.err != nil {
			return nil, l.err
		}
		wait := q.notify
		l.mu.Unlock()
		select {
		case <-wait:
		case <-l.dead:
		case <-m.done:
			l.mu.Lock()
			return nil, ErrClosed
		case <-ctx.Done():
			l.mu.Lock()
			return nil, fmt.Errorf("mesh: waiting for %s: %w", m.peerName(from), ctx.Err())
		}
		l.mu.Lock()
	}
}

func (l *link) queue(tag uint64) *tagQueue {
	q := l.qs[tag]
	if q == nil {
		q = &tagQueue{notify: make(chan struct{})}
		l.qs[tag] = q
	}
	return q
}

// connect returns the connection to peer, dialing it if nobody has yet.
func (m *Mesh) connect(ctx context.Context, peer int) (*comm.Conn, error) {
	l := m.links[peer]
	for {
		l.mu.Lock()
		if l.conn != nil {
			c := l.conn
			l.mu.Unlock()
			return c, nil
		}
		if l.err != nil {
			err := l.err
			l.mu.Unlock()
			return nil, err
		}
		if m.closed.Load() {
			l.mu.Unlock()
			return nil, ErrClosed
		}
		if !l.dialing {
			l.dialing = true
			m.wg.Add(1)
			go m.dial(l)
		}
		ready := l.ready
		l.mu.Unlock()
		select {
		case <-ready:
		case <-m.done:
			return nil, ErrClosed
		case <-ctx.Done():
			return nil, fmt.Errorf("mesh: connecting to %s: %w", m.peerName(peer), ctx.Err())
		}
	}
}

// dial connects to l.peer. Both ranks of a pair may dial at once; the
// connection dialed by the lower rank wins (the acceptor decides, see
// handleHello), and the refused dialer waits for the winner.
func (m *Mesh) dial(l *link) {
	defer m.wg.Done()
	pi := m.peers[l.peer]
	network, addr := "tcp", pi.TCP
	if m.SameNode(l.peer) && pi.Unix != "" {
		network, addr = "unix", pi.Unix
	}
	var c *comm.Conn
	var err error
	opts := m.opts
	noCert := false
	if network == "tcp" && m.cfg.TLS {
		opts.TLSFingerprint = pi.TLS
		if noCert = pi.TLS == ""; noCert {
			err = fmt.Errorf("collective: mesh: rank %d publishes no TLS certificate and this job requires TLS", l.peer)
		}
	}
	for attempt := 0; attempt < 3 && !noCert; attempt++ {
		// The dial ends with the mesh: Close never waits out a peer whose
		// host black-holes connections.
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		go func() {
			select {
			case <-m.done:
				cancel()
			case <-ctx.Done():
			}
		}()
		c, err = comm.Dial(ctx, network, addr, m.cfg.Key, opts)
		cancel()
		if err == nil || m.closed.Load() {
			break
		}
		select {
		case <-m.done:
		case <-time.After(time.Duration(50<<attempt) * time.Millisecond):
		}
	}
	if err == nil {
		var ok bool
		ok, err = m.hello(c)
		if err == nil && !ok {
			c.Close()
			l.mu.Lock()
			l.dialing = false
			l.mu.Unlock()
			return // the peer's own connection wins; handleHello installs it
		}
	}
	if err != nil {
		if c != nil {
			c.Close()
		}
		m.fail(l, fmt.Errorf("mesh: cannot reach %s at %s %s: %w", m.peerName(l.peer), network, addr, err))
		return
	}
	m.install(l, c)
}

// hello introduces this rank on a fresh dialed connection and reads the
// acceptor's verdict.
func (m *Mesh) hello(c *comm.Conn) (bool, error) {
	var b [8]byte
	binary.LittleEndian.PutUint32(b[0:], uint32(m.cfg.Rank))
	binary.LittleEndian.PutUint32(b[4:], uint32(m.cfg.Size))
	if err := c.Send(&comm.Frame{Type: frameHello, Source: int32(m.cfg.Rank), Control: b[:]}); err != nil {
		return false, err
	}
	type res struct {
		f   *comm.Frame
		err error
	}
	ch := make(chan res, 1)
	go func() { f, err := c.Recv(); ch <- res{f, err} }()
	select {
	case r := <-ch:
		if r.err != nil {
			return false, r.err
		}
		defer r.f.Release()
		if r.f.Type != frameAck || len(r.f.Control) != 1 {
			return false, fmt.Errorf("%w: expected a hello answer, got frame type %d", ErrProtocol, r.f.Type)
		}
		return r.f.Control[0] == 1, nil
	case <-time.After(20 * time.Second):
		c.Close()
		return false, errors.New("no answer to hello within 20s")
	case <-m.done:
		c.Close()
		return false, ErrClosed
	}
}

func (m *Mesh) acceptLoop() {
	defer m.wg.Done()
	for {
		c, err := m.ln.Accept()
		if err != nil {
			return
		}
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			m.handleHello(c)
		}()
	}
}

// handleHello reads the dialer's rank and installs the connection unless
// this rank already has one to it, or is dialing it and has the lower rank.
func (m *Mesh) handleHello(c *comm.Conn) {
	type res struct {
		f   *comm.Frame
		err error
	}
	ch := make(chan res, 1)
	go func() { f, err := c.Recv(); ch <- res{f, err} }()
	var f *comm.Frame
	select {
	case r := <-ch:
		if r.err != nil {
			m.cfg.Logger.Warn().Str("peer", c.RemoteAddr()).Err(r.err).Msg("mesh: connection dropped before its hello")
			c.Close()
			return
		}
		f = r.f
	case <-time.After(20 * time.Second):
		c.Close()
		return
	case <-m.done:
		c.Close()
		return
	}
	defer f.Release()
	if f.Type != frameHello || len(f.Control) != 8 {
		m.cfg.Logger.Warn().Str("peer", c.RemoteAddr()).Msg("mesh: connection without hello refused")
		c.Close()
		return
	}
	peer := int(binary.LittleEndian.Uint32(f.Control[0:]))
	size := int(binary.LittleEndian.Uint32(f.Control[4:]))
	if size != m.cfg.Size || peer < 0 || peer >= m.cfg.Size || peer == m.cfg.Rank {
		m.cfg.Logger.Warn().Str("peer", c.RemoteAddr()).Int("rank", peer).Int("size", size).Msg("mesh: hello from a rank outside this world refused")
		c.Close()
		return
	}
	l := m.links[peer]
	l.mu.Lock()
	accept := l.conn == nil && l.err == nil && !(l.dialing && m.cfg.Rank < peer) && !m.closed.Load()
	l.mu.Unlock()
	verdict := byte(0)
	if accept {
		verdict = 1
	}
	if err := c.Send(&comm.Frame{Type: frameAck, Source: int32(m.cfg.Rank), Control: []byte{verdict}}); err != nil || !accept {
		c.Close()
		return
	}
	m.install(l, c)
}

// install makes c the link's connection and starts its reader.
func (m *Mesh) install(l *link, c *comm.Conn) {
	l.mu.Lock()
	if l.conn != nil || l.err != nil || m.closed.Load() {
		l.mu.Unlock()
		c.Close()
		return
	}
	l.conn = c
	l.dialing = false
	close(l.ready)
	l.ready = make(chan struct{})
	l.mu.Unlock()
	m.wg.Add(1)
	go m.readLoop(l, c)
}

// SetPlace implements placer: the buffers of data frames from peer with
// tag land where fn says (nil: in the receive pool).
func (m *Mesh) SetPlace(peer int, tag uint64, fn PlaceFunc) {
	if peer < 0 || peer >= len(m.links) {
		return
	}
	l := m.links[peer]
	l.mu.Lock()
	defer l.mu.Unlock()
	setPlace(&l.place, tag, fn)
}

// TrySetPlace is SetPlace when no data frame from peer with tag is queued
// or being received (the reader asked for its place and has not queued
// it); it reports whether it installed fn.
func (m *Mesh) TrySetPlace(peer int, tag uint64, fn PlaceFunc) bool {
	if peer < 0 || peer >= len(m.links) {
		return false
	}
	l := m.links[peer]
	l.mu.Lock()
	defer l.mu.Unlock()
	if q := l.qs[tag]; (l.isArriving && l.arriving == tag) || (q != nil && len(q.msgs) > 0) {
		return false
	}
	setPlace(&l.place, tag, fn)
	return true
}

// readLoop moves every frame from c into its (peer, tag) queue. It ends when
// the connection fails: the peer closed, died or missed its heartbeats.
func (m *Mesh) readLoop(l *link, c *comm.Conn) {
	defer m.wg.Done()
	place := func(f *comm.Frame, lens []uint64) ([][]byte, func()) {
		if f.Type != frameData {
			return nil, nil
		}
		l.mu.Lock()
		fn := l.place[f.ID]
		l.arriving, l.isArriving = f.ID, true // until queued
		l.mu.Unlock()
		if fn == nil {
			return nil, nil
		}
		return fn(f.Control, lens)
	}
	for {
		f, err := c.RecvInto(place)
		if err != nil {
			l.mu.Lock()
			l.isArriving = false
			l.mu.Unlock()
			if !m.closed.Load() {
				m.fail(l, fmt.Errorf("mesh: connection to %s lost: %w", m.peerName(l.peer), err))
			}
			return
		}
		if f.Type == frameBye {
			f.Release()
			m.closeLink(l, fmt.Errorf("mesh: %s closed its end", m.peerName(l.peer)))
			return
		}
		if f.Type != frameData {
			f.Release()
			m.fail(l, fmt.Errorf("%w: mesh: frame type %d from %s", ErrProtocol, f.Type, m.peerName(l.peer)))
			return
		}
		msg := NewMessage(f.Control, f.Buffers, f.Release)
		l.mu.Lock()
		l.isArriving = false
		if l.err != nil {
			l.mu.Unlock()
			msg.Release()
			continue
		}
		if drop := m.drop.Load(); drop != nil && (*drop)(l.peer, f.ID, msg) {
			l.mu.Unlock()
			continue
		}
		q := l.queue(f.ID)
		q.msgs = append(q.msgs, msg)
		close(q.notify)
		q.notify = make(chan struct{})
		l.mu.Unlock()
	}
}

// SetDrop lets the world communicator consume messages of aborted
// collectives on arrival (see dropper). fn runs under the link's lock.
func (m *Mesh) SetDrop(fn func(from int, tag uint64, msg *Message) bool) { m.drop.Store(&fn) }

// DropQueued hands queued messages that satisfy pred to fn.
func (m *Mesh) DropQueued(pred func(tag uint64, msg *Message) bool, fn func(from int, msg *Message)) {
	for _, l := range m.links {
		var out []*Message
		l.mu.Lock()
		for tag, q := range l.qs {
			kept := q.msgs[:0]
			for _, msg := range q.msgs {
				if pred(tag, msg) {
					out = append(out, msg)
				} else {
					kept = append(kept, msg)
				}
			}
			if len(kept) == len(q.msgs) {
				continue // nothing dropped here
			}
			clear(q.msgs[len(kept):])
			q.msgs = kept
			if len(kept) == 0 {
				q.msgs = nil
				if q.waiters == 0 {
					delete(l.qs, tag)
				}
			}
		}
		l.mu.Unlock()
		for _, msg := range out {
			fn(l.peer, msg)
		}
	}
}

// LinkErr returns why the link to peer failed, or nil while it lives (or
// was never used).
func (m *Mesh) LinkErr(peer int) error {
	if peer < 0 || peer >= len(m.links) || peer == m.cfg.Rank {
		return nil
	}
	l := m.links[peer]
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

// fail marks the link dead: pending and later receives from the peer return
// err once its queued messages are consumed; sends fail at once.
func (m *Mesh) fail(l *link, err error) {
	if !m.closed.Load() {
		l.mu.Lock()
		first := l.err == nil
		l.mu.Unlock()
		if first {
			m.cfg.Logger.Warn().Int("peer", l.peer).Err(err).Msg("mesh: peer link failed")
		}
	}
	m.closeLink(l, err)
}

// closeLink ends the link with err (a peer that said goodbye, or a failure).
func (m *Mesh) closeLink(l *link, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err != nil {
		return
	}
	l.err = err
	l.dialing = false
	close(l.dead)
	close(l.ready)
	l.ready = make(chan struct{})
	if l.conn != nil {
		l.conn.Close()
	}
}

// Close closes the world communicator, every connection and the listener,
// releases queued messages and removes the arena. Arrays received through
// the mesh must be released before. Idempotent.
func (m *Mesh) Close() error {
	if m.closed.Swap(true) {
		return nil
	}
	var err error
	if m.world != nil {
		err = m.world.Close()
	}
	m.shutdown()
	if m.arena != nil {
		err = errors.Join(err, m.arena.Close())
	}
	return err
}

// shutdown stops the listener, connections and goroutines.
func (m *Mesh) shutdown() {
	m.closed.Store(true)
	close(m.done)
	if m.ln != nil {
		m.ln.Close()
	}
	for _, l := range m.links {
		l.mu.Lock()
		c := l.conn
		l.mu.Unlock()
		if c != nil {
			// best effort, bounded: the peer then knows this is no failure
			_ = c.NetConn().SetWriteDeadline(time.Now().Add(time.Second))
			_ = c.Send(&comm.Frame{Type: frameBye, Source: int32(m.cfg.Rank)})
			c.Close()
		}
	}
	m.wg.Wait()
	for _, l := range m.links {
		l.mu.Lock()
		for tag, q := range l.qs {
			for _, msg := range q.msgs {
				msg.Release()
			}
			q.msgs = nil
			delete(l.qs, tag)
		}
		l.mu.Unlock()
	}
	m.pool.Close()
}
