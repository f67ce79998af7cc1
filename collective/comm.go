package collective

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// Option configures New.
type Option func(*options)

type options struct {
	mem        memory.Allocator
	arena      *Arena
	largeBytes int64
	algSpec    string
	algs       map[string]Alg
}

// WithAllocator sets where results that need new memory (reductions,
// contiguous gathers, large bcasts) are allocated. Default:
// memory.DefaultAllocator.
func WithAllocator(mem memory.Allocator) Option { return func(o *options) { o.mem = mem } }

// WithArena enables shared memory with same-node peers: data goes through
// this rank's arena as descriptors. The caller keeps ownership of the arena
// and closes it after the Comm.
func WithArena(a *Arena) Option { return func(o *options) { o.arena = a } }

// WithLargeThreshold sets the payload size in bytes from which bcast uses
// scatter+allgather and reduce/allreduce use recursive halving (default
// 256 KiB). Every rank must pass the same value.
func WithLargeThreshold(n int64) Option { return func(o *options) { o.largeBytes = n } }

// WithAlgorithm overrides the decision table (decide.go) with
// "op:alg[,op:alg...]", e.g. "bcast:vandegeijn,allreduce:halving", where
// the algorithm can run on the communicator's layout (elsewhere the table
// decides). Every rank must pass the same. JoinMesh reads $RANKHUB_COLL_ALG.
// An unknown op or algorithm makes New fail.
func WithAlgorithm(spec string) Option { return func(o *options) { o.algSpec = spec } }

// world is what all communicators over one Transport share.
type world struct {
	t    Transport
	opts options
	// relayCopied counts the bytes chain relays copied into their
	// assembly instead of receiving them in place (tests).
	relayCopied atomic.Int64

	mu      sync.Mutex
	maps    map[string]*Mapping
	pending map[uint64]*Tracker
	token   uint64
	// held are the arena ranges each peer (transport rank) holds, by
	// message token: dropped by its release message, or all at once when
	// the peer dies, so that a dead rank's views do not pin the arena.
	held map[int]map[uint64][]int64

	abortMu     sync.Mutex
	aborted     map[uint64]error // collective key -> why
	abortNotify chan struct{}    // closed and replaced at every abort

	// relays are the multicasts this rank forwards, by route notice
	// (under mu); relayComm is the world in transport ranks they use.
	relays    map[relayKey]*relayQueue
	relayComm *Comm
	// relayTimeout overrides relayTimeout in nanoseconds when not 0
	// (tests).
	relayTimeout atomic.Int64
	// mcastSeq numbers this rank's chained multicasts; tagLocks (under
	// mu) serialise those of one user tag.
	mcastSeq atomic.Uint64
	tagLocks map[uint64]*tagLock
	// endedSeq: by data tag, the last multicast whose relay here ended,
	// kept once one failed (relayEnded); ended counts its entries.
	// endedMu is a leaf lock (the drop hook takes it under the
	// transport's lock, as it takes mu).
	endedMu  sync.Mutex
	endedSeq map[uint64]uint64
	ended    atomic.Int32

	closed atomic.Bool
	ctx    context.Context // ends at Close
	cancel context.CancelFunc
	wg     sync.WaitGroup
	// wgMu orders Close against goroutines started later (release
	// messages sent from garbage-collector cleanups at any time).
	wgMu sync.Mutex
}

// Comm is a communicator: a group of ranks that run collectives together.
// Collectives on one Comm must be started in the same order on every member
// (as in MPI); once started, concurrent collectives are kept apart by their
// sequence numbers in the tag.
type Comm struct {
	w     *world
	ctxID uint32
	ranks []int // communicator rank -> transport rank
	rank  int
	seq   atomic.Uint32

	subMu  sync.Mutex
	subCnt map[string]int64

	topoOnce sync.Once
	tp       *topo

	// treeAck is the acknowledgement of this rank's last tree Reduce that
	// its parent owes it and it has not taken yet (reducetree.go).
	ackMu   sync.Mutex
	treeAck *pendingAck
}

// New returns the world communicator over t. With an arena it starts one
// goroutine per same-node peer that receives arena release messages; Close
// stops them.
func New(t Transport, opts ...Option) (*Comm, error) {
	if t == nil || t.Size() < 1 || t.Rank() < 0 || t.Rank() >= t.Size() {
		return nil, fmt.Errorf("%w: transport with rank/size out of range", ErrArgument)
	}
	o := options{mem: memory.DefaultAllocator, largeBytes: 256 << 10}
	for _, f := range opts {
		f(&o)
	}
	if o.algSpec != "" {
		algs, err := parseAlgorithms(o.algSpec)
		if err != nil {
			return nil, err
		}
		o.algs = algs
	}
	w := &world{t: t, opts: o, maps: map[string]*Mapping{}, pending: map[uint64]*Tracker{}, held: map[int]map[uint64][]int64{},
		aborted: map[uint64]error{}, abortNotify: make(chan struct{})}
	ranks := make([]int, t.Size())
	for i := range ranks {
		ranks[i] = i
	}
	c := &Comm{w: w, ranks: ranks, rank: t.Rank(), subCnt: map[string]int64{}}
	ctx, cancel := context.WithCancel(context.Background())
	w.ctx, w.cancel = ctx, cancel
	w.relays = map[relayKey]*relayQueue{}
	w.tagLocks = map[uint64]*tagLock{}
	w.relayComm = &Comm{w: w, ranks: ranks, rank: t.Rank(), subCnt: map[string]int64{}}
	for p := 0; p < t.Size(); p++ {
		if p != t.Rank() {
			w.wg.Add(1)
			go w.abortLoop(ctx, p)
		}
	}
	if d, ok := t.(dropper); ok {
		d.SetDrop(func(from int, tag uint64, m *Message) bool {
			if tag>>62 == classUser {
				return w.userArrived(from, tag, m)
			}
			if !isCollTag(tag) {
				return false
			}
			if _, err := w.abortState(collKey(tag)); err == nil {
				return false
			}
			w.discard(from, m)
			return true
		})
	}
	if o.arena != nil {
		for p := 0; p < t.Size(); p++ {
			if p != t.Rank() && t.SameNode(p) {
				w.wg.Add(1)
				go w.releaseLoop(ctx, p)
			}
		}
	}
	return c, nil
}

// Rank is this rank's number in the communicator.
func (c *Comm) Rank() int { return c.rank }

// Arena is this rank's shared-memory arena (nil without one): arrays
// allocated from Arena().Allocator() are sent to ranks on this node
// without a copy.
func (c *Comm) Arena() *Arena { return c.w.opts.arena }

// Size is the number of ranks in the communicator.
func (c *Comm) Size() int { return len(c.ranks) }

// WorldRank returns the transport rank of communicator rank r.
func (c *Comm) WorldRank(r int) int { return c.ranks[r] }

// Close stops the world's release goroutines and unmaps peer arenas. Every
// array received through shared memory must be released first. Close on a
// communicator from Sub or Split closes the whole world. Idempotent.
func (c *Comm) Close() error {
	w := c.w
	w.wgMu.Lock()
	already := w.closed.Swap(true)
	w.wgMu.Unlock()
	if already {
		return nil
	}
	w.cancel()
	w.wg.Wait()
	w.mu.Lock()
	defer w.mu.Unlock()
	for k, q := range w.relays { // multicasts nobody received
		for _, r := range append(q.held, q.waiting...) {
			if r.arr != nil {
				r.arr.Release()
			}
		}
		delete(w.relays, k)
	}
	var err error
	for p, m := range w.maps {
		err = errors.Join(err, m.Close())
		delete(w.maps, p)
	}
	for tok, tr := range w.pending {
		tr.fail()
		delete(w.pending, tok)
	}
	return err
}

// exitChecker is a Transport that can tell that a peer's process exited
// (Mesh, LocalTransport).
type exitChecker interface {
	PeerExited(peer int) bool
}

// releaseLoop returns arena ranges that peer has released, and all it
// still holds once its process has exited (its queued releases applied
// first). A link that failed while the process lives (stopped, cut off)
// does not free anything: the process may still read the pages.
func (w *world) releaseLoop(ctx context.Context, peer int) {
	defer w.wg.Done()
	for {
		m, err := w.t.Recv(ctx, peer, releaseTag())
		if err != nil {
			break
		}
		w.handleRelease(peer, m.Header)
		m.Release()
	}
	ec, ok := w.t.(exitChecker)
	if !ok {
		return
	}
	for !ec.PeerExited(peer) {
		select {
		case <-ctx.Done():
			return
		case <-time.After(500 * time.Millisecond):
		}
	}
	w.reclaim(peer)
}

// reclaim drops every arena reference a dead peer held.
func (w *world) reclaim(peer int) {
	w.mu.Lock()
	held := w.held[peer]
	delete(w.held, peer)
	var trs []*Tracker
	for tok := range held {
		if tr := w.pending[tok]; tr != nil {
			trs = append(trs, tr)
			delete(w.pending, tok)
		}
	}
	w.mu.Unlock()
	for _, offs := range held {
		for _, off := range offs {
			_ = w.opts.arena.unref(off)
		}
	}
	for _, tr := range trs {
		tr.done1()
	}
}

// abortLoop records aborts announced by peer.
func (w *world) abortLoop(ctx context.Context, peer int) {
	defer w.wg.Done()
	for {
		m, err := w.t.Recv(ctx, peer, abortTag())
		if err != nil {
			return
		}
		w.handleAbort(m)
	}
}

// pollAbort applies abort notices from peer that are already queued (a
// peer that aborted and exited: its notice explains the broken link
// better than the link does) and returns the abort error of key, if any.
func (w *world) pollAbort(peer int, key uint64) error {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for {
		m, err := w.t.Recv(ctx, peer, abortTag())
		if err != nil || m == nil {
			break
		}
		w.handleAbort(m)
	}
	_, err := w.abortState(key)
	return err
}

// handleAbort applies one abort notice.
func (w *world) handleAbort(m *Message) {
	key, err := parseAbort(m.Header)
	m.Release()
	if err != nil {
		w.markAborted(key, err)
	}
}

// Abort notices: key, origin (transport rank), reason, then one optional
// byte naming the kind of the cause (older peers send none and ignore it),
// so that a type mismatch found on one rank is ErrType on every rank.
var abortKinds = []error{nil, ErrType, ErrArgument, ErrUnknownOp}

// abortNotice encodes the abort of collective key at origin for cause.
func abortNotice(key uint64, origin int, cause error) []byte {
	b := binary.AppendUvarint(nil, key)
	b = binary.AppendUvarint(b, uint64(origin))
	b = appendString(b, cause.Error())
	kind := byte(0)
	for i, k := range abortKinds {
		if k != nil && errors.Is(cause, k) {
			kind = byte(i)
			break
		}
	}
	return append(b, kind)
}

// parseAbort decodes an abort notice into its key and the error the
// collective fails with here (nil when the notice is corrupt).
func parseAbort(h []byte) (uint64, error) {
	r := &reader{b: h}
	key := uint64(r.uvarint("abort key", 1<<64-1))
	origin := r.uvarint("abort origin", 1<<31)
	reason := r.str("abort reason")
	if r.err != nil {
		return 0, nil
	}
	cause := &remoteCause{msg: reason}
	if len(r.b) > 0 && int(r.b[0]) < len(abortKinds) {
		cause.kind = abortKinds[r.b[0]]
	}
	return key, fmt.Errorf("rank %d (transport rank) aborted the collective: %w", origin, cause)
}

// remoteCause is the cause of another rank's abort: its message, and the
// package error it wrapped there, if any.
type remoteCause struct {
	msg  string
	kind error
}

func (e *remoteCause) Error() string { return e.msg }
func (e *remoteCause) Unwrap() error { return e.kind }

func (w *world) markAborted(key uint64, err error) {
	w.abortMu.Lock()
	if w.aborted[key] != nil {
		w.abortMu.Unlock()
		return
	}
	w.aborted[key] = err
	close(w.abortNotify)
	w.abortNotify = make(chan struct{})
	w.abortMu.Unlock()
	if d, ok := w.t.(dropper); ok {
		d.DropQueued(func(tag uint64, _ *Message) bool { return isCollTag(tag) && collKey(tag) == key }, w.discard)
	}
}

// discard releases a message nobody will receive (its collective was
// aborted): arena ranges it names go back to their owner at once.
func (w *world) discard(from int, m *Message) {
	h, err := parseHeader(m.Header)
	m.Release()
	if err != nil || h.aux2 == 0 {
		return
	}
	var offs []int64
	for _, r := range h.refs {
		if r.arena {
			offs = append(offs, r.off)
		}
	}
	if len(offs) > 0 {
		w.sendRelease(from, h.aux2, offs)
	}
}

// abortState returns the notify channel of aborts and the error a
// collective was aborted with (nil while it runs).
func (w *world) abortState(key uint64) (chan struct{}, error) {
	w.abortMu.Lock()
	defer w.abortMu.Unlock()
	return w.abortNotify, w.aborted[key]
}

// abort tells every member that the collective with this tag failed here,
// unless it already was aborted (then the origin told everyone).
func (c *Comm) abort(tag uint64, cause error) {
	if !isCollTag(tag) {
		return
	}
	key := collKey(tag)
	w := c.w
	w.abortMu.Lock()
	seen := w.aborted[key] != nil
	w.abortMu.Unlock()
	if seen {
		return
	}
	w.markAborted(key, cause)
	b := abortNotice(key, c.ranks[c.rank], cause)
	for q, wr := range c.ranks {
		if q == c.rank {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = w.t.Send(ctx, wr, abortTag(), b, nil) // best effort: a dead peer cannot be told
		cancel()
	}
}

// failColl aborts the collective of tag on every member and returns err:
// used where this rank finds a mismatch others cannot see (type, length).
func (c *Comm) failColl(tag uint64, err error) error {
	c.abort(tag, err)
	return err
}

// recvMsg is Transport.Recv that also returns when the collective is
// aborted by another member.
func (c *Comm) recvMsg(ctx context.Context, from int, tag uint64) (*Message, error) {
	if !isCollTag(tag) {
		return c.w.t.Recv(ctx, c.ranks[from], tag)
	}
	key := collKey(tag)
	if _, err := c.w.abortState(key); err != nil {
		return nil, err
	}
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type res struct {
		m   *Message
		err error
	}
	ch := make(chan res, 1)
	go func() {
		m, err := c.w.t.Recv(rctx, c.ranks[from], tag)
		ch <- res{m, err}
	}()
	for {
		notify, err := c.w.abortState(key)
		if err != nil {
			cancel()
			if r := <-ch; r.m != nil {
				c.w.discard(c.ranks[from], r.m)
			}
			return nil, err
		}
		select {
		case r := <-ch:
			if r.err != nil {
				if aerr := c.w.pollAbort(c.ranks[from], key); aerr != nil {
					return nil, aerr
				}
			}
			return r.m, r.err
		case <-notify:
		}
	}
}

// handleRelease applies one release message from peer: token, count,
// offsets. The ranges dropped are those recorded for the token when it was
// sent (a bad or repeated message from a peer is ignored, never fatal).
func (w *world) handleRelease(peer int, b []byte) {
	r := &reader{b: b}
	tok := r.uvarint("release token", 1<<63-1)
	if r.err != nil {
		return
	}
	w.mu.Lock()
	offs, ok := w.held[peer][uint64(tok)]
	var tr *Tracker
	if ok {
		delete(w.held[peer], uint64(tok))
		tr = w.pending[uint64(tok)]
		delete(w.pending, uint64(tok))
	}
	w.mu.Unlock()
	if !ok {
		return
	}
	for _, off := range offs {
		_ = w.opts.arena.unref(off)
	}
	if tr != nil {
		tr.done1()
	}
}

// mapping returns the cached read-only mapping of a peer arena.
func (w *world) mapping(path string) (*Mapping, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if m := w.maps[path]; m != nil {
		return m, nil
	}
	if w.closed.Load() {
		return nil, ErrClosed
	}
	m, err := OpenArena(path)
	if err != nil {
		return nil, err
	}
	w.maps[path] = m
	return m, nil
}

// Tracker tells when buffers sent through shared memory are no longer
// referenced by any receiver, so the sender may modify them again
// (IPython's track=True). Sends that copied are done at once.
type Tracker struct {
	pending atomic.Int64
	ch      chan struct{}
	once    sync.Once
	failed  atomic.Bool
}

func newTracker() *Tracker { return &Tracker{ch: make(chan struct{})} }

func (t *Tracker) add() { t.pending.Add(1) }

func (t *Tracker) done1() {
	if t.pending.Add(-1) <= 0 {
		t.once.Do(func() { close(t.ch) })
	}
}

func (t *Tracker) seal() {
	if t.pending.Load() <= 0 {
		t.once.Do(func() { close(t.ch) })
	}
}

func (t *Tracker) fail() {
	t.failed.Store(true)
	t.once.Do(func() { close(t.ch) })
}

// Done is closed when every receiver has released the sent buffers.
func (t *Tracker) Done() <-chan struct{} { return t.ch }

// Wait blocks until Done or ctx ends. It returns ErrClosed when the Comm was
// closed before all releases arrived.
func (t *Tracker) Wait(ctx context.Context) error {
	select {
	case <-t.ch:
		if t.failed.Load() {
			return ErrClosed
		}
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// value is what one message carries.
type value struct {
	kind   byte
	aux    int64
	fields []fieldMeta
	cols   []column
}

func arrayValue(c column) value { return value{kind: kindArray, cols: []column{c}} }

// shm reports whether messages to communicator rank peer use the arena.
func (c *Comm) shm(peer int) bool {
	return c.w.opts.arena != nil && c.ranks[peer] != c.ranks[c.rank] && c.w.t.SameNode(c.ranks[peer])
}

// allShm reports whether every other member is reachable through the arena.
func (c *Comm) allShm() bool {
	for p := range c.ranks {
		if p != c.rank && !c.shm(p) {
			return false
		}
	}
	return c.w.opts.arena != nil
}

// stage copies every buffer of v that is not already in the arena into it,
// once. The returned release drops the staging references; descriptors sent
// in between hold their own.
func (c *Comm) stage(v value) (value, func()) {
	a := c.w.opts.arena
	var held [][]byte
	cp := func(b []byte) []byte {
		if len(b) == 0 || a.Contains(b) {
			return b
		}
		nb, err := a.Alloc(int64(len(b)))
		if err != nil {
			return b // arena full: this buffer goes inline
		}
		copyLarge(nb, b)
		held = append(held, nb)
		return nb
	}
	out := v
	out.cols = make([]column, len(v.cols))
	for i, col := range v.cols {
		col.data = cp(col.data)
		if col.valid != nil {
			col.valid = cp(col.valid)
		}
		out.cols[i] = col
	}
	return out, func() {
		for _, b := range held {
			_ = a.unref(a.offsetOf(b))
		}
	}
}

// arenaRef returns the arena offset of b with one reference taken for a
// descriptor: b itself when it lies in the arena, else a copy of b made
// there (the copy's allocation reference becomes the descriptor's). -1: b
// must go inline (arena full or closed).
func (a *Arena) arenaRef(b []byte) int64 {
	if off := a.offsetOf(b); off >= 0 {
		if a.retain(off) != nil {
			return -1
		}
		return off
	}
	nb, err := a.Alloc(int64(len(b)))
	if err != nil {
		return -1
	}
	copyLarge(nb, b)
	return a.offsetOf(nb)
}

// send sends v to communicator rank to. When to is on this node every
// buffer travels as an arena descriptor: buffers in the arena as they are,
// others after one copy into it; tr (may be nil) tracks their release.
func (c *Comm) send(ctx context.Context, op string, to int, tag uint64, v value, tr *Tracker) error {
	w := c.w
	h := header{kind: v.kind, aux: v.aux, fields: v.fields, cols: make([]colMeta, len(v.cols))}
	var bufs [][]byte
	var retained []int64
	useArena := c.shm(to)
	for i, col := range v.cols {
		h.cols[i] = colMeta{typ: col.dt.ID(), n: col.n, off: col.off, nulls: col.nulls, hasValid: col.valid != nil}
		for _, b := range col.bytes() {
			if useArena && len(b) > 0 {
				if off := w.opts.arena.arenaRef(b); off >= 0 {
					h.arena = w.opts.arena.Path()
					h.refs = append(h.refs, bufRef{arena: true, off: off, n: int64(len(b))})
					retained = append(retained, off)
					continue
				}
			}
			h.refs = append(h.refs, bufRef{n: int64(len(b))})
			bufs = append(bufs, b)
		}
	}
	var tok uint64
	peer := c.ranks[to]
	if len(retained) > 0 {
		w.mu.Lock()
		w.token++
		tok = w.token
		if tr != nil {
			tr.add()
			w.pending[tok] = tr
		}
		if w.held[peer] == nil {
			w.held[peer] = map[uint64][]int64{}
		}
		w.held[peer][tok] = retained // before sending: the release may come at once
		w.mu.Unlock()
		h.aux2 = tok
	}
	err := w.t.Send(ctx, peer, tag, h.marshal(), bufs)
	if err != nil {
		if len(retained) > 0 {
			// The peer's death may have reclaimed them already: whoever
			// takes the record drops the references, once.
			w.mu.Lock()
			_, mine := w.held[peer][tok]
			delete(w.held[peer], tok)
			if mine {
				delete(w.pending, tok)
			}
			w.mu.Unlock()
			if mine {
				for _, off := range retained {
					_ = w.opts.arena.unref(off)
				}
				if tr != nil {
					tr.done1()
				}
			}
		}
		c.abort(tag, fmt.Errorf("rank %d: send to rank %d: %w", c.rank, to, err))
		return &PeerError{Op: op, Rank: c.rank, Peer: to, Err: err}
	}
	return nil
}

// got is a received value: arrays aliasing the message.
type got struct {
	kind   byte
	aux    int64
	fields []fieldMeta
	arrs   []arrow.Array
}

func (g *got) release() {
	for _, a := range g.arrs {
		a.Release()
	}
	g.arrs = nil
}

// recv receives the next value from communicator rank from.
func (c *Comm) recv(ctx context.Context, op string, from int, tag uint64) (*got, error) {
	m, err := c.recvMsg(ctx, from, tag)
	if err != nil {
		c.abort(tag, fmt.Errorf("rank %d: receive from rank %d: %w", c.rank, from, err))
		return nil, &PeerError{Op: op, Rank: c.rank, Peer: from, Err: err}
	}
	g, err := c.decode(m, from)
	if err != nil {
		c.abort(tag, fmt.Errorf("rank %d: message from rank %d: %w", c.rank, from, err))
		return nil, &PeerError{Op: op, Rank: c.rank, Peer: from, Err: err}
	}
	return g, nil
}

func (c *Comm) decode(m *Message, from int) (*got, error) {
	h, err := parseHeader(m.Header)
	if err != nil {
		m.Release()
		return nil, err
	}
	var mp *Mapping
	var arenaOffs []int64
	bytesOf := make([][]byte, len(h.refs))
	inline := 0
	for i, r := range h.refs {
		if r.arena {
			if mp == nil {
				if h.arena == "" {
					m.Release()
					return nil, fmt.Errorf("%w: arena descriptor without arena name", ErrProtocol)
				}
				if mp, err = c.w.mapping(h.arena); err != nil {
					m.Release()
					return nil, err
				}
			}
			if bytesOf[i], err = mp.Bytes(r.off, r.n); err != nil {
				m.Release()
				return nil, err
			}
			arenaOffs = append(arenaOffs, r.off)
			continue
		}
		if inline >= len(m.Bufs) || int64(len(m.Bufs[inline])) != r.n {
			m.Release()
			return nil, fmt.Errorf("%w: inline buffer %d missing or of wrong length", ErrProtocol, inline)
		}
		bytesOf[i] = m.Bufs[inline]
		inline++
	}
	if inline != len(m.Bufs) {
		m.Release()
		return nil, fmt.Errorf("%w: %d buffers received, header names %d", ErrProtocol, len(m.Bufs), inline)
	}
	tok := uint64(h.aux2)
	owner := &msgOwner{}
	owner.done = func() {
		m.Release()
		if len(arenaOffs) > 0 {
			c.w.sendRelease(c.ranks[from], tok, arenaOffs)
		}
	}
	cols := make([]column, len(h.cols))
	k := 0
	for i, cm := range h.cols {
		col := column{dt: typeOf(cm.typ), n: cm.n, off: cm.off, nulls: cm.nulls}
		if cm.hasValid {
			col.valid = bytesOf[k]
			k++
		}
		col.data = bytesOf[k]
		k++
		if err := checkBuffers(i, cm, col.valid, col.data); err != nil {
			owner.done()
			return nil, err
		}
		cols[i] = col
	}
	g := &got{kind: h.kind, aux: h.aux, fields: h.fields}
	if len(cols) == 0 {
		owner.done()
		return g, nil
	}
	owner.n.Add(1) // hold the message while building
	for _, col := range cols {
		g.arrs = append(g.arrs, arrayFrom(col, owner))
	}
	owner.Free(nil)
	return g, nil
}

// track counts a goroutine about to start in w.wg (it calls w.wg.Done),
// unless Close began: then it returns false and nothing may start.
func (w *world) track() bool {
	w.wgMu.Lock()
	defer w.wgMu.Unlock()
	if w.closed.Load() {
		return false
	}
	w.wg.Add(1)
	return true
}

// sendRelease tells the arena owner that this rank dropped its views.
func (w *world) sendRelease(owner int, tok uint64, offs []int64) {
	b := binary.AppendUvarint(nil, tok)
	b = binary.AppendUvarint(b, uint64(len(offs)))
	for _, o := range offs {
		b = binary.AppendUvarint(b, uint64(o))
	}
	if !w.track() {
		return
	}
	go func() {
		defer w.wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_ = w.t.Send(ctx, owner, releaseTag(), b, nil) // the owner's arena is removed at its Close anyway
	}()
}

// next starts a collective: it checks the communicator and returns the tag
// maker for its steps.
func (c *Comm) next() (func(step uint8) uint64, error) {
	if c.w.closed.Load() {
		return nil, ErrClosed
	}
	seq := c.seq.Add(1)
	return func(step uint8) uint64 { return collTag(c.ctxID, seq, step) }, nil
}

func (c *Comm) checkRoot(op string, root int) error {
	if root < 0 || root >= len(c.ranks) {
		return fmt.Errorf("%w: %s root %d not in [0, %d)", ErrArgument, op, root, len(c.ranks))
	}
	return nil
}

// nextRooted starts a collective with a root: next, then checkRoot.
func (c *Comm) nextRooted(op string, root int) (func(step uint8) uint64, error) {
	tag, err := c.next()
	if err != nil {
		return nil, err
	}
	if err := c.checkRoot(op, root); err != nil {
		return nil, err
	}
	return tag, nil
}

// Send sends arr to communicator rank `to` with a user tag in [0, MaxTag].
// The returned Tracker is done when the receiver released arena buffers
// sent without copying (arr allocated from this rank's Arena); otherwise at
// once.
func (c *Comm) Send(ctx context.Context, to int, tag uint64, arr arrow.Array) (*Tracker, error) {
	if c.w.closed.Load() {
		return nil, ErrClosed
	}
	if to < 0 || to >= len(c.ranks) || tag > MaxTag {
		return nil, fmt.Errorf("%w: send to rank %d tag %d", ErrArgument, to, tag)
	}
	col, err := columnOf(arr)
	if err != nil {
		return nil, err
	}
	tr := newTracker()
	if err := c.send(ctx, "send", to, userTag(c.ctxID, tag), arrayValue(col), tr); err != nil {
		return nil, err
	}
	tr.seal()
	return tr, nil
}

// SendTo sends arr to every communicator rank in tos with one user tag, as
// Send to each would, except that buffers not in this rank's arena are
// copied into it once for all the receivers on this node, not once each.
// A failed send does not stop the others: sent counts the receivers that
// got the message, and err joins the failures.
func (c *Comm) SendTo(ctx context.Context, tos []int, tag uint64, arr arrow.Array) (sent int, err error) {
	if c.w.closed.Load() {
		return 0, ErrClosed
	}
	if tag > MaxTag {
		return 0, fmt.Errorf("%w: send tag %d", ErrArgument, tag)
	}
	for _, to := range tos {
		if to < 0 || to >= len(c.ranks) {
			return 0, fmt.Errorf("%w: send to rank %d", ErrArgument, to)
		}
	}
	col, err := columnOf(arr)
	if err != nil {
		return 0, err
	}
	return c.sendTo(ctx, tos, tag, col)
}

// sendTo is SendTo after the checks.
func (c *Comm) sendTo(ctx context.Context, tos []int, tag uint64, col column) (sent int, err error) {
	local := 0
	for _, to := range tos {
		if to != c.rank && c.shm(to) {
			local++
		}
	}
	v := arrayValue(col)
	if local > 1 {
		staged, unstage := c.stage(v)
		defer unstage()
		v = staged
	}
	// Every receiver at once: a multicast below the chain's sizes is this
	// (the driver's push to engines on other nodes).
	for _, serr := range c.sendEachErrs(ctx, "send", tos, userTag(c.ctxID, tag), func(int) value { return v }) {
		if serr != nil {
			err = errors.Join(err, serr)
			continue
		}
		sent++
	}
	return sent, err
}

// Recv receives the next array sent by communicator rank `from` with tag
// (Send, SendTo, Multicast: following a multicast's route, it may come from
// another rank, which this rank may also forward it to).
// The array is read-only and aliases the received memory; Release it.
func (c *Comm) Recv(ctx context.Context, from int, tag uint64) (arrow.Array, error) {
	if c.w.closed.Load() {
		return nil, ErrClosed
	}
	if from < 0 || from >= len(c.ranks) || tag > MaxTag {
		return nil, fmt.Errorf("%w: receive from rank %d tag %d", ErrArgument, from, tag)
	}
	ut := userTag(c.ctxID, tag)
	if r := c.w.heldRelay(relayKey{c.ranks[from], ut}); r != nil {
		return c.waitRelay(ctx, from, relayKey{c.ranks[from], ut}, r)
	}
	g, err := c.recv(ctx, "recv", from, ut)
	if err != nil {
		return nil, err
	}
	if g.kind == kindNone && g.aux == auxRoute {
		return c.takeRoute(ctx, from, g.fields, ut)
	}
	if g.kind == kindNone && g.aux == auxRouteCancel {
		// its relay is failed (a transport without the drop hook
		// delivers it here: its route was followed already)
		return c.Recv(ctx, from, tag)
	}
	if g.kind != kindArray || len(g.arrs) != 1 {
		g.release()
		return nil, &PeerError{Op: "recv", Rank: c.rank, Peer: from, Err: fmt.Errorf("%w: expected one array", ErrProtocol)}
	}
	return g.arrs[0], nil
}

// Barrier returns when every member has entered it (dissemination
// algorithm, ceil(log2 P) rounds).
func (c *Comm) Barrier(ctx context.Context) error {
	tag, err := c.next()
	if err != nil {
		return err
	}
	p, r := len(c.ranks), c.rank
	step := uint8(0)
	for k := 1; k < p; k <<= 1 {
		if err := c.send(ctx, "barrier", (r+k)%p, tag(step), value{}, nil); err != nil {
			return err
		}
		g, err := c.recv(ctx, "barrier", (r-k+p)%p, tag(step))
		if err != nil {
			return err
		}
		g.release()
		step++
	}
	return nil
}

// Sub returns a communicator over the given members of c (communicator
// ranks, renumbered 0.. in the given order). Only the members call it, all
// with the same list; the caller must be in it.
func (c *Comm) Sub(ranks []int) (*Comm, error) {
	if c.w.closed.Load() {
		return nil, ErrClosed
	}
	seen := map[int]bool{}
	me := -1
	world := make([]int, len(ranks))
	vals := make([]int64, 0, len(ranks)+1)
	for i, r := range ranks {
		if r < 0 || r >= len(c.ranks) || seen[r] {
			return nil, fmt.Errorf("%w: Sub rank list %v: rank %d out of range or repeated", ErrArgument, ranks, r)
		}
		seen[r] = true
		if r == c.rank {
			me = i
		}
		world[i] = c.ranks[r]
		vals = append(vals, int64(r))
	}
	if me < 0 {
		return nil, fmt.Errorf("%w: Sub rank list %v does not include rank %d", ErrArgument, ranks, c.rank)
	}
	key := fmt.Sprint(ranks)
	c.subMu.Lock()
	c.subCnt[key]++
	n := c.subCnt[key]
	c.subMu.Unlock()
	vals = append(vals, -n)
	return &Comm{w: c.w, ctxID: deriveCtx(c.ctxID, vals...), ranks: world, rank: me, subCnt: map[string]int64{}}, nil
}

// Split partitions c like MPI_Comm_split: members passing the same color
// form a new communicator, ordered by key and then by rank. A negative
// color returns (nil, nil): the caller joins no communicator. Every member
// must call it.
func (c *Comm) Split(ctx context.Context, color, key int) (*Comm, error) {
	seq := c.seq.Load() + 1
	b := []int64{int64(color), int64(key)}
	mine := arrayFromInt64(b)
	defer mine.Release()
	all, err := c.Allgather(ctx, mine, Contiguous())
	if err != nil {
		return nil, err
	}
	defer all.Release()
	if color < 0 {
		return nil, nil
	}
	vals := all.Chunk(0).(interface{ Int64Values() []int64 }).Int64Values()
	type mem struct{ key, rank int }
	var group []mem
	for r := 0; r < len(c.ranks); r++ {
		if vals[2*r] == int64(color) {
			group = append(group, mem{int(vals[2*r+1]), r})
		}
	}
	sort.Slice(group, func(i, j int) bool {
		if group[i].key != group[j].key {
			return group[i].key < group[j].key
		}
		return group[i].rank < group[j].rank
	})
	world := make([]int, len(group))
	me := -1
	for i, g := range group {
		world[i] = c.ranks[g.rank]
		if g.rank == c.rank {
			me = i
		}
	}
	return &Comm{w: c.w, ctxID: deriveCtx(c.ctxID, int64(seq), int64(color), -1), ranks: world, rank: me, subCnt: map[string]int64{}}, nil
}
