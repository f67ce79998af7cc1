package comm

import (
	"bufio"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/rs/zerolog"
)

// Allocator provides the receive memory of frames. Alloc returns a slice of
// at least n bytes whose first byte is Align-aligned; Free takes it back
// when the frame is released.
type Allocator interface {
	Alloc(n int64) []byte
	Free(b []byte)
}

// heapAllocator allocates from the Go heap; Free leaves the slice to the GC.
type heapAllocator struct{}

func (heapAllocator) Alloc(n int64) []byte {
	b := make([]byte, n+Align)
	off := int(alignUp(int64(uintptr(unsafe.Pointer(unsafe.SliceData(b))))) - int64(uintptr(unsafe.Pointer(unsafe.SliceData(b)))))
	return b[off : off+int(n) : off+int(n)]
}
func (heapAllocator) Free([]byte) {}

// HeapAllocator is the default Allocator: aligned Go heap memory.
var HeapAllocator Allocator = heapAllocator{}

// Grower is an optional ability of an Allocator for frames larger than
// RecvStep, whose memory grows as their bytes arrive. Without it, Conn grows
// a buffer by allocating a larger one, copying the bytes received so far and
// freeing the old one.
type Grower interface {
	// AllocUpTo returns a buffer for a frame of want bytes that has at least
	// min bytes and at most want: more than min only when the allocator can
	// give memory it already holds (a freed buffer of about that size).
	AllocUpTo(min, want int64) []byte
	// Grow returns a buffer of n > len(b) bytes whose first keep bytes are
	// b's; b is not used afterwards. The result is Align-aligned and is
	// freed with Free.
	Grow(b []byte, keep, n int64) []byte
}

// growBy is the factor by which a frame's receive buffer grows when the
// bytes received so far fill it: a Grower grows without copying (double),
// a copy grows by four so that a large frame is copied at most a third of
// its size in total.
const (
	growByGrower = 2
	growByCopy   = 4
)

// recvMem is the receive buffer of one frame: it starts at RecvStep (or the
// frame's size, if smaller) and grows as bytes arrive, up to total.
type recvMem struct {
	alloc Allocator
	mem   []byte
	total int64
}

func newRecvMem(alloc Allocator, total, step int64) recvMem {
	m := recvMem{alloc: alloc, total: total}
	switch g, ok := alloc.(Grower); {
	case total <= step:
		m.mem = alloc.Alloc(total)
	case ok:
		m.mem = g.AllocUpTo(step, total)
	default:
		m.mem = alloc.Alloc(step)
	}
	return m
}

// room returns the buffer with at least need bytes, keeping the first keep.
func (m *recvMem) room(keep, need int64) []byte {
	if need <= int64(len(m.mem)) {
		return m.mem
	}
	if g, ok := m.alloc.(Grower); ok {
		m.mem = g.Grow(m.mem, keep, min(m.total, max(need, growByGrower*int64(len(m.mem)))))
		return m.mem
	}
	b := m.alloc.Alloc(min(m.total, max(need, growByCopy*int64(len(m.mem)))))
	copy(b, m.mem[:keep])
	m.alloc.Free(m.mem)
	m.mem = b
	return b
}

// readBuffers reads the buffers of lengths lens at offsets offs (from
// layout) into memory that grows with the bytes received.
func (c *Conn) readBuffers(lens []uint64, offs []int64, total int64) ([]byte, error) {
	m := newRecvMem(c.opts.Allocator, total, c.recvStep)
	for i, l := range lens {
		pos, end := offs[i], offs[i]+int64(l)
		for pos < end {
			// grow only once the bytes received fill the buffer
			mem := m.room(pos, min(end, pos+1))
			stop := min(end, int64(len(mem)))
			if err := c.readLarge(mem[pos:stop]); err != nil {
				m.alloc.Free(m.mem)
				return nil, c.wrapIOErr(err)
			}
			pos = stop
		}
	}
	return m.mem, nil
}

// wakeBytes is how many bytes of a large buffer the kernel queues before
// it wakes the connection's reader (SO_RCVLOWAT, readLarge).
const wakeBytes = 1 << 20

// readLarge reads len(b) bytes into b. Over TCP, a buffer of wakeBytes or
// more is read with the socket's receive low-water mark raised, so that
// the reader sleeps until wakeBytes are queued instead of waking for
// every few segments: traced on the emulated 3-node cluster (3 ranks on 2
// cores), an 8 MiB receive took 26 reads, each a sleep and a wake-up of
// the reading thread, and 9 with the mark. The mark never exceeds the
// bytes of b still to come (the last read is not held back waiting for
// bytes that will not come) and is back at 1 when readLarge returns. The
// heartbeat counts bytes queued meanwhile as traffic (heartbeat).
func (c *Conn) readLarge(b []byte) error {
	if c.tcp == nil || len(b) < wakeBytes {
		_, err := io.ReadFull(c.r, b)
		return err
	}
	defer c.setLowat(1)
	for pos := 0; pos < len(b); {
		c.setLowat(max(1, min(len(b)-pos, wakeBytes)-c.r.Buffered()))
		n, err := c.r.Read(b[pos:])
		pos += n
		if err != nil && pos < len(b) {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
	}
	return nil
}

// setLowat sets the socket's receive low-water mark to v bytes (when it
// is not v already). A failure leaves the reads as they were: only the
// number of wake-ups changes.
func (c *Conn) setLowat(v int) {
	if c.lowat.Load() == int64(v) {
		return
	}
	c.lowat.Store(int64(v))
	_ = c.tcp.Control(func(fd uintptr) { _ = setRcvLowat(fd, v) })
}

// arriving reports whether bytes reached the socket since the last call
// while the reader waits for a low-water mark (readLarge): they are
// traffic, even though no read took them yet. Heartbeat goroutine only.
func (c *Conn) arriving() bool {
	if c.tcp == nil || c.lowat.Load() <= 1 {
		c.inq = 0
		return false
	}
	q := 0
	if err := c.tcp.Control(func(fd uintptr) { q, _ = unread(fd) }); err != nil {
		return false
	}
	moved := q > 0 && q != c.inq
	c.inq = q
	return moved
}

// Options configure a connection. The zero value is usable.
type Options struct {
	Limits    Limits    // zero: DefaultLimits
	Allocator Allocator // zero: HeapAllocator
	// Heartbeat is the interval of pings sent when the connection is otherwise
	// idle; the peer is declared dead after HeartbeatMisses intervals without
	// any byte from it. Zero disables heartbeats. Arrival is stamped by reads,
	// so a connection with heartbeats needs a goroutine blocked in Recv.
	Heartbeat       time.Duration
	HeartbeatMisses int // zero: 5
	// HandshakeTimeout bounds the authentication exchange. Zero: 2s on a
	// listener (DefaultHandshakeTimeout), 10s for Dial.
	HandshakeTimeout time.Duration
	// Spin is how long after sending the reader polls the socket instead of
	// sleeping until data arrives. A reply that comes within the window is
	// read without a wakeup, which costs 10-50 µs on virtual machines whose
	// vCPUs sleep (MPI busy-polls for the same reason). The poller yields to
	// the process's other goroutines and the core to other threads between
	// polls (a peer queued on this core would otherwise wait out the
	// window). Zero: never spin.
	Spin time.Duration
	// SpinOnRecv opens the spin window after every read as well, not only
	// after sends: for peers that exchange messages in tight sequences
	// (collectives), whose reader is already waiting when this side sends.
	SpinOnRecv bool
	// TLSFingerprint, for Dial over TCP: speak TLS 1.3 and accept only the
	// listener certificate whose SHA-256 is this (hex; Listener.TLSFingerprint,
	// ConnInfo.TLS). Empty: plain. TLS connections never spin.
	TLSFingerprint string
	Logger         zerolog.Logger
}

func (o *Options) fill() {
	if o.Limits.MaxControl <= 0 {
		o.Limits.MaxControl = DefaultLimits.MaxControl
	}
	if o.Limits.MaxBuffers <= 0 {
		o.Limits.MaxBuffers = DefaultLimits.MaxBuffers
	}
	if o.Limits.MaxBytes <= 0 {
		o.Limits.MaxBytes = DefaultLimits.MaxBytes
	}
	if o.Limits.MaxBytes <= 0 {
		o.Limits.MaxBytes, _ = DefaultMaxFrame() // Listen and Dial report a bad $RANKHUB_MAX_FRAME
	}
	if o.Allocator == nil {
		o.Allocator = HeapAllocator
	}
	if o.HeartbeatMisses <= 0 {
		o.HeartbeatMisses = 5
	}
}

// Conn is an authenticated, framed connection. Send may be called from many
// goroutines; Recv from one goroutine at a time.
type Conn struct {
	nc   net.Conn
	opts Options
	r    *bufio.Reader

	wmu     sync.Mutex
	whdr    []byte          // scratch for headers and control, guarded by wmu
	wvec    net.Buffers     // scratch iovec, guarded by wmu
	rc      syscall.RawConn // for spinning reads; nil when Spin is off
	poll    spinPoll        // spinRead's read attempt, made once
	lastTx  atomic.Int64
	lastRx  atomic.Int64
	closed  atomic.Bool
	errMu   sync.Mutex
	err     error // first terminal error
	done    chan struct{}
	hdrBuf  [headerSize]byte
	lensBuf []uint64
	offsBuf []int64
	// recvStep is RecvStep; the fuzz test lowers it to reach the growth.
	recvStep int64
	// tcp is the socket of a plain TCP connection (Linux), whose reader
	// sets a receive low-water mark while large buffers arrive
	// (readLarge); nil otherwise.
	tcp   syscall.RawConn
	lowat atomic.Int64 // the socket's low-water mark; 1, the default, outside readLarge
	inq   int          // the unread bytes the heartbeat saw last (its goroutine only)
}

// stampReader records the time of every successful read, for heartbeats.
type stampReader struct {
	c *Conn
}

func (s stampReader) Read(p []byte) (int, error) {
	c := s.c
	if c.rc != nil {
		if n, err, ok := c.spinRead(p); ok {
			if n > 0 {
				c.lastRx.Store(nanotime())
			}
			return n, err
		}
	}
	n, err := c.nc.Read(p)
	if n > 0 {
		c.lastRx.Store(nanotime())
	}
	return n, err
}

// spinRead polls the socket until data comes or the spin window after the
// last send (or read, with SpinOnRecv) closes; ok is false when nothing
// came (then the caller blocks).
func (c *Conn) spinRead(p []byte) (n int, err error, ok bool) {
	last := c.lastTx.Load()
	if c.opts.SpinOnRecv {
		last = max(last, c.lastRx.Load())
	}
	until := last + int64(c.opts.Spin)
	for nanotime() < until && !c.closed.Load() {
		c.poll.p = p
		cerr := c.rc.Read(c.poll.fn)
		rn, rerr := c.poll.n, c.poll.err
		c.poll.p = nil
		if cerr != nil {
			return 0, cerr, true
		}
		switch {
		case rerr == syscall.EAGAIN || rerr == syscall.EINTR:
			runtime.Gosched()
			// And to the other processes: the peer this reader waits for
			// may be queued on this very core (a wake-up puts the woken
			// thread beside its waker), and would wait out the whole window.
			yieldCPU()
			continue
		case rerr != nil:
			return 0, os.NewSyscallError("read", rerr), true
		case rn == 0:
			return 0, io.EOF, true
		}
		return rn, nil, true
	}
	return 0, nil, false
}

// spinPoll is one read attempt of spinRead: into p, giving n and err. Its
// function is made once per connection; a closure per poll (with what it
// captured) allocated three times a microsecond while a reader spun.
type spinPoll struct {
	p   []byte
	n   int
	err error
	fn  func(fd uintptr) bool
}

func (s *spinPoll) read(fd uintptr) bool {
	s.n, s.err = syscall.Read(int(fd), s.p)
	return true // one attempt; never park here
}

var epoch = time.Now()

func nanotime() int64 { return int64(time.Since(epoch)) }

// check reports options that cannot be used: a bad $RANKHUB_MAX_FRAME
// when the frame limit comes from it.
func (o *Options) check() error {
	if o.Limits.MaxBytes <= 0 && DefaultLimits.MaxBytes <= 0 {
		if _, err := DefaultMaxFrame(); err != nil {
			return err
		}
	}
	return nil
}

func newConn(nc net.Conn, opts Options) *Conn {
	opts.fill()
	c := &Conn{nc: nc, opts: opts, done: make(chan struct{}), recvStep: RecvStep}
	if sc, ok := nc.(syscall.Conn); ok && opts.Spin > 0 {
		c.rc, _ = sc.SyscallConn()
		c.poll.fn = c.poll.read
	}
	c.r = bufio.NewReaderSize(stampReader{c}, 64<<10)
	c.lowat.Store(1)
	if tc, ok := nc.(*net.TCPConn); ok && lowatOK {
		c.tcp, _ = tc.SyscallConn()
	}
	now := nanotime()
	c.lastRx.Store(now)
	c.lastTx.Store(now)
	if opts.Heartbeat > 0 {
		go c.heartbeat()
	}
	return c
}

// NetConn returns the underlying connection (for addresses and deadlines).
func (c *Conn) NetConn() net.Conn { return c.nc }

// RemoteAddr is the peer's address as a string.
func (c *Conn) RemoteAddr() string {
	if a := c.nc.RemoteAddr(); a != nil && a.String() != "" {
		return a.String()
	}
	return c.nc.LocalAddr().Network() + ":peer"
}

// Done is closed when the connection is closed, by either side or by a
// heartbeat timeout.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Err returns the error that ended the connection, or nil while it is open.
func (c *Conn) Err() error {
	c.errMu.Lock()
	defer c.errMu.Unlock()
	return c.err
}

func (c *Conn) fail(err error) {
	c.errMu.Lock()
	if c.err == nil {
		c.err = err
	}
	c.errMu.Unlock()
	if c.closed.CompareAndSwap(false, true) {
		close(c.done)
		c.nc.Close()
	}
}

// Close closes the connection. Pending and later calls return ErrClosed.
// It is idempotent.
func (c *Conn) Close() error {
	c.fail(ErrClosed)
	return nil
}

func (c *Conn) heartbeat() {
	iv := c.opts.Heartbeat
	dead := int64(iv) * int64(c.opts.HeartbeatMisses)
	t := time.NewTicker(iv)
	defer t.Stop()
	ping := &Frame{Type: TypePing}
	for {
		select {
		case <-c.done:
			return
		case <-t.C:
		}
		now := nanotime()
		if c.arriving() {
			c.lastRx.Store(now)
		}
		if now-c.lastRx.Load() > dead {
			c.opts.Logger.Warn().Str("peer", c.RemoteAddr()).Dur("silent", time.Duration(now-c.lastRx.Load())).Msg("heartbeat timeout")
			c.fail(fmt.Errorf("%w: nothing from %s for %v", ErrHeartbeat, c.RemoteAddr(), time.Duration(now-c.lastRx.Load()).Round(time.Millisecond)))
			return
		}
		// The silence check above never waits for the write lock: a write
		// blocked on a dead peer must not hide its death. The ping is skipped
		// while another write is in progress (that write is traffic too).
		if now-c.lastTx.Load() >= int64(iv)/2 && c.wmu.TryLock() {
			if _, isTLS := c.nc.(*tls.Conn); isTLS {
				// A TLS write that times out leaves the connection
				// unusable, so the ping waits without a deadline, apart
				// from this loop, which goes on checking silence (and
				// closes the connection, ending the write, on a death).
				go func() {
					err := c.pingLocked(ping, 0)
					c.wmu.Unlock()
					if err != nil {
						c.fail(err)
					}
				}()
				continue
			}
			err := c.pingLocked(ping, iv)
			c.wmu.Unlock()
			if err != nil {
				c.fail(err)
				return
			}
		}
	}
}

// pingLocked writes a ping under wmu with a deadline (none if limit is
// zero), so the heartbeat goroutine never blocks on a peer that stopped
// reading. A ping cut short leaves the stream torn: that is an error.
func (c *Conn) pingLocked(ping *Frame, limit time.Duration) error {
	var h [headerSize]byte
	putHeader(h[:], ping)
	if limit > 0 {
		c.nc.SetWriteDeadline(time.Now().Add(limit))
	}
	n, err := c.nc.Write(h[:])
	if limit > 0 {
		c.nc.SetWriteDeadline(time.Time{})
	}
	if err == nil {
		c.lastTx.Store(nanotime())
		return nil
	}
	var ne net.Error
	if n == 0 && errors.As(err, &ne) && ne.Timeout() {
		return nil // the socket is full: the silence check decides
	}
	return c.wrapIOErr(err)
}

// Send writes one frame with a single gathered write (writev): the header and
// control payload, then every buffer straight from the caller's memory. The
// buffers are not copied and must not be modified until Send returns.
func (c *Conn) Send(f *Frame) error {
	return c.SendBatch([]*Frame{f})
}

// SendBatch writes several frames with one gathered write, in order. Small
// frames sent together (many tiny tasks or results) then cost one system
// call instead of one each.
func (c *Conn) SendBatch(fs []*Frame) error {
	if c.closed.Load() {
		return c.closedErr()
	}
	for _, f := range fs {
		if len(f.Buffers) > c.opts.Limits.MaxBuffers || len(f.Control) > c.opts.Limits.MaxControl {
			return fmt.Errorf("%w: %d buffers, %d control bytes", ErrFrameTooLarge, len(f.Buffers), len(f.Control))
		}
		var total int64
		for _, b := range f.Buffers {
			total += int64(len(b))
		}
		if total > c.opts.Limits.MaxBytes {
			return fmt.Errorf("%w: %d bytes of buffers (limit %d)", ErrFrameTooLarge, total, c.opts.Limits.MaxBytes)
		}
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	need := 0
	for _, f := range fs {
		need += headerSize + 8*len(f.Buffers) + len(f.Control)
	}
	if cap(c.whdr) < need {
		c.whdr = make([]byte, need, max(need, 4096))
	}
	head := c.whdr[:need]
	vec := c.wvec[:0]
	off, from := 0, 0
	for _, f := range fs {
		hn := headerSize + 8*len(f.Buffers)
		putHeader(head[off:], f)
		copy(head[off+hn:], f.Control) // control payloads are small: one contiguous head
		off += hn + len(f.Control)
		if len(f.Buffers) > 0 {
			vec = append(vec, head[from:off])
			from = off
			for _, b := range f.Buffers {
				if len(b) > 0 {
					vec = append(vec, b)
				}
			}
		}
	}
	if from < off {
		vec = append(vec, head[from:off])
	}
	var err error
	if len(vec) == 1 {
		_, err = c.nc.Write(vec[0])
	} else {
		bufs := vec
		_, err = bufs.WriteTo(c.nc)
	}
	for i := range vec {
		vec[i] = nil // keep no reference to the caller's buffers
	}
	c.wvec = vec[:0]
	if err != nil {
		err = c.wrapIOErr(err)
		c.fail(err)
		return err
	}
	c.lastTx.Store(nanotime())
	return nil
}

func (c *Conn) closedErr() error {
	if err := c.Err(); err != nil {
		return err
	}
	return ErrClosed
}

func (c *Conn) wrapIOErr(err error) error {
	if c.closed.Load() {
		return c.closedErr()
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("comm: connection closed by %s: %w", c.RemoteAddr(), io.EOF)
	}
	return fmt.Errorf("comm: %s: %w", c.RemoteAddr(), err)
}

// Recv reads the next frame. Heartbeat frames are consumed here. Any error is
// terminal: the connection is closed and every later call returns it.
func (c *Conn) Recv() (*Frame, error) { return c.RecvInto(nil) }

// Place chooses where a frame's buffers land, from its header (Type,
// Source, ID; Control read already) and its buffers' lengths, before any
// byte of them is read: one slice per buffer, of exactly its length, and
// what to call when the frame is released (or when reading it fails).
// nil: the Allocator's memory, as usual. It runs on the reading goroutine.
type Place func(f *Frame, lens []uint64) (bufs [][]byte, release func())

// RecvInto is Recv with the buffers of frames that place accepts read
// straight into the memory it names (a receiver that knows where the bytes
// belong then copies nothing). place may be nil.
func (c *Conn) RecvInto(place Place) (*Frame, error) {
	for {
		f, err := c.recv(place)
		if err != nil {
			c.fail(err)
			return nil, c.closedErr()
		}
		if f.Type == TypePing {
			continue
		}
		return f, nil
	}
}

func (c *Conn) recv(place Place) (*Frame, error) {
	if c.closed.Load() {
		return nil, c.closedErr()
	}
	if _, err := io.ReadFull(c.r, c.hdrBuf[:]); err != nil {
		return nil, c.wrapIOErr(err)
	}
	h, err := parseHeader(c.hdrBuf[:], c.opts.Limits)
	if err != nil {
		return nil, fmt.Errorf("from %s: %w", c.RemoteAddr(), err)
	}
	f := &Frame{Type: h.typ, Flags: h.flags, Source: h.source, ID: h.id}
	if h.nbufs > 0 {
		if cap(c.lensBuf) < h.nbufs {
			c.lensBuf = make([]uint64, h.nbufs)
			c.offsBuf = make([]int64, h.nbufs)
		}
		lens, offs := c.lensBuf[:h.nbufs], c.offsBuf[:h.nbufs]
		var lb [8]byte
		for i := range lens {
			if _, err := io.ReadFull(c.r, lb[:]); err != nil {
				return nil, c.wrapIOErr(err)
			}
			lens[i] = binary.LittleEndian.Uint64(lb[:])
		}
		total, err := layout(lens, c.opts.Limits, offs)
		if err != nil {
			return nil, fmt.Errorf("from %s: %w", c.RemoteAddr(), err)
		}
		if h.ctrlLen > 0 {
			if f.Control, err = c.readControl(h.ctrlLen); err != nil {
				return nil, err
			}
		}
		if place != nil {
			if bufs, release := place(f, lens); placed(bufs, lens) {
				return c.readPlaced(f, bufs, release)
			} else if release != nil {
				release()
			}
		}
		mem, err := c.readBuffers(lens, offs, total)
		if err != nil {
			return nil, err
		}
		alloc := c.opts.Allocator
		f.release = func() { alloc.Free(mem) }
		f.Buffers = make([][]byte, h.nbufs)
		for i, l := range lens {
			f.Buffers[i] = mem[offs[i] : offs[i]+int64(l) : offs[i]+int64(l)]
		}
		return f, nil
	}
	if h.ctrlLen > 0 {
		if f.Control, err = c.readControl(h.ctrlLen); err != nil {
			return nil, err
		}
	}
	return f, nil
}

// placed reports whether bufs has one slice of each length of lens.
func placed(bufs [][]byte, lens []uint64) bool {
	if bufs == nil || len(bufs) != len(lens) {
		return false
	}
	for i, b := range bufs {
		if uint64(len(b)) != lens[i] {
			return false
		}
	}
	return true
}

// readPlaced reads f's buffers into bufs (Place).
func (c *Conn) readPlaced(f *Frame, bufs [][]byte, release func()) (*Frame, error) {
	for _, b := range bufs {
		if err := c.readLarge(b); err != nil {
			if release != nil {
				release()
			}
			return nil, c.wrapIOErr(err)
		}
	}
	f.Buffers, f.release = bufs, release
	return f, nil
}

// ctrlStep is the control payload allocated before any of it arrives;
// larger payloads grow as their bytes arrive.
const ctrlStep = 1 << 20

// readControl reads a control payload of n bytes, allocating as it arrives.
func (c *Conn) readControl(n int) ([]byte, error) {
	b := make([]byte, min(n, ctrlStep))
	for got := 0; ; {
		if _, err := io.ReadFull(c.r, b[got:]); err != nil {
			return nil, c.wrapIOErr(err)
		}
		got = len(b)
		if got == n {
			return b, nil
		}
		b = append(b, make([]byte, min(n-got, 3*got))...)
	}
}
