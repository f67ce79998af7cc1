package collective

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
)

// auxRoute marks a multicast's route notice (kindNone): the receiver takes
// the array from the rank it names instead of from the sender.
const auxRoute = 3

// auxRouteCancel marks a sender's word (kindNone, with the user tag; the
// multicast's number, the rank and why in its fields) that a multicast's
// route through a rank is broken: that rank did not get its route notice
// and will never relay. The communicator consumes it on arrival (Recv
// never sees it) and fails the relay of that multicast at once.
const auxRouteCancel = 5

// Multicast sends arr from this rank to every communicator rank in tos
// with one user tag, as SendTo does, and each receiver takes it with
// Recv(ctx, thisRank, tag). The decision table (decide.go) picks how:
// direct (SendTo: one message each, staged in the arena once for this
// node's receivers), or, for large arrays to several other nodes or
// several receivers on another node, the node-aware chain of Bcast
// (chain.go): this rank sends every receiver a small route notice, then the
// array once down a pipelined chain of one receiver per node (each
// forwarding segments as they arrive); every such leader hands it to its
// node-mates as arena descriptors. A receiver forwards as soon as the
// notice arrives, not when it calls Recv (on transports that let the
// communicator see arriving messages: Mesh, LocalTransport), so a busy
// receiver does not hold up the others; multicasts of one tag follow each
// other there in the order sent, and Recv returns them in that order
// among the other messages of that tag. A receiver whose leader fails gets
// an error naming that rank and why (ErrUpstream); the others are not
// affected. Each chained multicast of one (sender, tag) has its own
// number, in its route notice and on every message of its chain, so that a
// relay never takes another one's data: what a failed relay leaves
// behind is dropped, never received as the next multicast's. Chained
// multicasts of one tag from this rank run one at a time (concurrent calls
// wait for each other); when a route notice cannot be sent, the ranks
// routed through that rank are told at once and fail naming it.
//
// sent counts the receivers reached (with the chain: whose route notice
// arrived and whose route is whole, unless the array could not leave this
// rank for the chain; then only this node's receivers) and err joins the
// failures.
func (c *Comm) Multicast(ctx context.Context, tos []int, tag uint64, arr arrow.Array) (sent int, err error) {
	if c.w.closed.Load() {
		return 0, ErrClosed
	}
	if tag > MaxTag {
		return 0, fmt.Errorf("%w: multicast tag %d", ErrArgument, tag)
	}
	set := []int{c.rank}
	seen := map[int]bool{c.rank: true}
	for _, to := range tos {
		if to < 0 || to >= len(c.ranks) || to == c.rank {
			return 0, fmt.Errorf("%w: multicast from rank %d to rank %d", ErrArgument, c.rank, to)
		}
		if !seen[to] {
			seen[to] = true
			set = append(set, to)
		}
	}
	col, err := columnOf(arr)
	if err != nil {
		return 0, err
	}
	d := decide(opMulticast, bytesOf(col), c.layoutOf(set, true), c.w.opts.algs)
	if d.alg != AlgChain {
		return c.sendTo(ctx, set[1:], tag, col)
	}
	// Receivers whose link is known to have failed stay out of the chain,
	// so that nobody waits behind them.
	var live []int
	if le, ok := c.w.t.(linkErrer); ok {
		for _, q := range set[1:] {
			if lerr := le.LinkErr(c.ranks[q]); lerr != nil {
				err = errors.Join(err, &PeerError{Op: "multicast", Rank: c.rank, Peer: q, Err: lerr})
				continue
			}
			live = append(live, q)
		}
	} else {
		live = set[1:]
	}
	pl := planChain(c.topology(), c.rank, live)
	ut := userTag(c.ctxID, tag)
	unlock, lerr := c.w.lockTag(ctx, ut)
	if lerr != nil {
		return 0, errors.Join(err, fmt.Errorf("collective: multicast on rank %d: waiting for its multicast of tag %d before: %w", c.rank, tag, lerr))
	}
	defer unlock()
	seq := c.w.mcastSeq.Add(1)
	reached := map[int]bool{}
	var lost []int
	for _, q := range live {
		if serr := c.send(ctx, "multicast", q, ut, c.routeValue(pl, q, seq), nil); serr != nil {
			err = errors.Join(err, serr)
			lost = append(lost, q)
			continue
		}
		reached[q] = true
	}
	err = errors.Join(err, c.cancelRoutes(pl, lost, reached, ut, seq))
	next := -1
	if len(pl.leaders) > 1 && reached[pl.leaders[1]] {
		next = pl.leaders[1]
	}
	var mates []int
	for _, q := range pl.local[c.rank] {
		if reached[q] {
			mates = append(mates, q)
		}
	}
	dt := dataTag(ut, c.ranks[c.rank])
	cerr := c.chainSource(ctx, "multicast", mates, col, next, d.segment, chainTags{seg: dt, local: dt, seq: seq}, nil)
	if cerr != nil {
		// the chain is cut at its first link: only this node's receivers
		// (their own sends reported in cerr) are sure to have it
		return len(mates), errors.Join(err, cerr)
	}
	return len(reached), err
}

// cancelRoutes tells every rank in reached whose route passes through a
// rank of lost (a leader whose route notice could not be sent: it never
// relays) that its multicast seq fails, naming that rank, and takes it
// out of reached; it returns the failures, one per rank.
func (c *Comm) cancelRoutes(pl chainPlan, lost []int, reached map[int]bool, ut, seq uint64) error {
	var err error
	for _, f := range lost {
		pos := pl.position(f)
		if pos < 0 {
			continue // a member: nobody is routed through it
		}
		var cut []int // every rank after f in the chain, and their node-mates
		cut = append(cut, pl.local[f]...)
		for _, l := range pl.leaders[pos+1:] {
			cut = append(cut, l)
			cut = append(cut, pl.local[l]...)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		for _, q := range cut {
			if !reached[q] {
				continue
			}
			delete(reached, q)
			v := value{kind: kindNone, aux: auxRouteCancel, fields: []fieldMeta{
				{name: strconv.FormatUint(seq, 10)}, {name: strconv.Itoa(c.ranks[f])}}}
			why := fmt.Errorf("%w: routed through rank %d, whose route notice could not be sent", ErrUpstream, f)
			if serr := c.send(ctx, "multicast", q, ut, v, nil); serr != nil {
				why = fmt.Errorf("%w (nor could this be told: %v)", why, serr)
			}
			err = errors.Join(err, &PeerError{Op: "multicast", Rank: c.rank, Peer: q, Err: why})
		}
		cancel()
	}
	return err
}

// tagLock serialises the chained multicasts of one tag from this rank
// (their messages share tags; refs counts holders and waiters).
type tagLock struct {
	ch   chan struct{} // holds one token while taken
	refs int           // under world.mu
}

// lockTag waits until this rank runs no other chained multicast of ut
// (or ctx ends) and returns the unlock.
func (w *world) lockTag(ctx context.Context, ut uint64) (func(), error) {
	w.mu.Lock()
	l := w.tagLocks[ut]
	if l == nil {
		l = &tagLock{ch: make(chan struct{}, 1)}
		w.tagLocks[ut] = l
	}
	l.refs++
	w.mu.Unlock()
	done := func() {
		w.mu.Lock()
		if l.refs--; l.refs == 0 {
			delete(w.tagLocks, ut)
		}
		w.mu.Unlock()
	}
	select {
	case l.ch <- struct{}{}:
	case <-ctx.Done():
		done()
		return nil, ctx.Err()
	}
	return func() { <-l.ch; done() }, nil
}

// dataTag is the tag of the segments and descriptors of a multicast from
// transport rank origin: the user tag in a context derived from the
// communicator's and origin, so that they never mix with the route notice
// (which Recv waits for), with user messages, or with another sender's
// multicast of that tag that a leader relays at the same time (its
// node-mates would take either's descriptors). The derived contexts of
// one communicator differ for every origin below 2^21 (checked for a few
// contexts; the first collision is at 2^21, TestDataTagPerSender checks
// 2^16).
func dataTag(ut uint64, origin int) uint64 {
	ctx := uint32(ut>>40) & ctxMask
	return ut&^(uint64(ctxMask)<<40) | uint64(deriveCtx(ctx, -0x6d63, int64(origin)))<<40
}

// routeValue is the route notice of multicast seq for receiver q of pl, in
// transport ranks: its role, seq, the rank it receives from, and for a
// leader the next leader (-1: none) and its node-mates.
func (c *Comm) routeValue(pl chainPlan, q int, seq uint64) value {
	v := value{kind: kindNone, aux: auxRoute}
	add := func(r int) { v.fields = append(v.fields, fieldMeta{name: strconv.Itoa(r)}) }
	role := func(s string) {
		v.fields = append(v.fields, fieldMeta{name: s}, fieldMeta{name: strconv.FormatUint(seq, 10)})
	}
	pos := pl.position(q)
	if pos < 0 {
		role("member")
		add(c.ranks[pl.leader[q]])
		return v
	}
	role("leader")
	add(c.ranks[pl.leaders[pos-1]])
	if pos+1 < len(pl.leaders) {
		add(c.ranks[pl.leaders[pos+1]])
	} else {
		add(-1)
	}
	for _, m := range pl.local[q] {
		add(c.ranks[m])
	}
	return v
}

// linkErrer is a Transport that knows which links have failed (Mesh,
// LocalTransport).
type linkErrer interface {
	LinkErr(peer int) error
}

// relayTimeout bounds a relay whose upstream stays silent but alive.
const relayTimeout = 10 * time.Minute

// relay is a receiver's part of one multicast, started when its route
// notice arrives.
type relay struct {
	done   chan struct{}
	seq    uint64                  // the multicast's number
	cancel context.CancelCauseFunc // fails it (a route cancellation)
	arr    arrow.Array             // set before done is closed
	err    error
	ended  bool // done is closed (under world.mu, for relayQueue)
}

type relayKey struct {
	from int // transport rank
	tag  uint64
}

// relayQueue holds the relays of one (sender, tag), which like its
// messages keep their order: Recv takes them in the order their route
// notices arrived (the order they were sent, which is the order of the
// transport's queue that Recv takes the notices from), and each follows
// its route only once the one before has ended, since every multicast of
// one (sender, tag) uses the same data tag from the same ranks (a second
// relay running beside the first would discard the first's segments as an
// earlier multicast's, and relayEnded's numbers must grow).
type relayQueue struct {
	// held are relays whose notice a Recv took but gave up waiting for:
	// older than any queued notice, the next Recv takes them first.
	held    []*relay
	waiting []*relay // started, notice still queued, in arrival order
	last    *relay   // the latest started (taken or not)
	// running are the relays not ended, by multicast number (for
	// cancelRelay).
	running map[uint64]*relay
}

// userArrived is the drop hook's part for every arriving user message
// (which may hold the transport's lock: nothing blocking here). A route
// notice starts this rank's part of the multicast at once (startRelay) and
// stays queued for Recv; a route cancellation is consumed and fails its
// relay; a message of a multicast whose relay here has ended (a failed
// one's leftovers, still arriving) is dropped, its memory released. It
// reports whether it consumed m.
func (w *world) userArrived(from int, tag uint64, m *Message) bool {
	h, err := parseHeader(m.Header)
	if err != nil {
		return false
	}
	if h.kind == kindNone && h.aux == auxRoute {
		w.startRelay(from, tag, h.fields)
		return false
	}
	if h.kind == kindNone && h.aux == auxRouteCancel {
		w.cancelRelay(from, tag, h.fields)
		m.Release()
		return true
	}
	if w.ended.Load() == 0 {
		return false
	}
	if w.endedMulticast(tag, h.fields) {
		w.discard(from, m)
		return true
	}
	return false
}

// endedMulticast reports whether a message with tag and fields belongs to
// a multicast whose relay on this rank has ended after a failure, or to an
// earlier one of its (sender, tag).
func (w *world) endedMulticast(tag uint64, fields []fieldMeta) bool {
	s, ok := stampOf(fields)
	if !ok {
		return false
	}
	w.endedMu.Lock()
	last, known := w.endedSeq[tag]
	w.endedMu.Unlock()
	return known && s <= last
}

// relayEnded records that the relay of multicast seq, whose messages have
// data tag dt, ended here (failed: with an error). After a failure, every
// message of it and of earlier ones of its (sender, tag) is dropped,
// queued or yet to arrive: segments the sender or an upstream relay still
// streams, placed ones holding the assembly, a failure notice that came
// late. Nothing would ever receive them, and the next relay of that
// (sender, tag) must not take them for its own. Relays of one (sender,
// tag) end in order, so one number per data tag is enough; it stays for
// the world's life once a relay of that data tag failed (a few bytes),
// since a slow upstream may deliver leftovers at any time.
func (w *world) relayEnded(dt, seq uint64, failed bool) {
	w.endedMu.Lock()
	last, known := w.endedSeq[dt]
	if failed || known {
		if w.endedSeq == nil {
			w.endedSeq = map[uint64]uint64{}
		}
		w.endedSeq[dt] = max(last, seq)
		if !known {
			w.ended.Add(1)
		}
	}
	w.endedMu.Unlock()
	if !failed {
		return
	}
	if d, ok := w.t.(dropper); ok {
		d.DropQueued(func(tag uint64, m *Message) bool {
			if tag != dt {
				return false
			}
			h, err := parseHeader(m.Header)
			if err != nil {
				return false
			}
			s, ok := stampOf(h.fields)
			return ok && s <= seq
		}, w.discard)
	}
}

// startRelay starts this rank's part of the multicast whose route notice
// (fields) arrived from transport rank from with user tag.
func (w *world) startRelay(from int, tag uint64, fields []fieldMeta) {
	seq, _ := routeSeq(fields) // 0: a bad notice, which followRoute names
	ctx, cancel := context.WithCancelCause(w.ctx)
	r := &relay{done: make(chan struct{}), seq: seq, cancel: cancel}
	if !w.track() {
		cancel(nil)
		return
	}
	key := relayKey{from, tag}
	w.mu.Lock()
	q := w.relays[key]
	if q == nil {
		q = &relayQueue{running: map[uint64]*relay{}}
		w.relays[key] = q
	}
	prev := q.last
	q.last = r
	q.waiting = append(q.waiting, r)
	if seq != 0 {
		q.running[seq] = r
	}
	w.mu.Unlock()
	go func() {
		defer w.wg.Done()
		defer cancel(nil)
		var arr arrow.Array
		err := ErrClosed
		if prev != nil {
			// the one before ends first even when this one is cancelled:
			// relayEnded's numbers grow
			select {
			case <-prev.done:
			case <-w.ctx.Done():
			}
		}
		if w.ctx.Err() == nil {
			limit := relayTimeout
			if d := w.relayTimeout.Load(); d != 0 {
				limit = time.Duration(d)
			}
			tctx, tcancel := context.WithTimeoutCause(ctx, limit, fmt.Errorf("multicast relay timeout (%v) expired: %w", limit, context.DeadlineExceeded))
			arr, err = w.relayComm.followRoute(tctx, from, fields, tag)
			tcancel()
		}
		r.arr, r.err = arr, err
		close(r.done)
		w.mu.Lock()
		r.ended = true
		delete(q.running, seq)
		w.dropRelayQueue(key, q)
		w.mu.Unlock()
	}()
}

// cancelRelay fails the relay of the multicast a route cancellation from
// transport rank from with user tag names (fields: its number, the rank
// that did not get its route notice), unless it ended.
func (w *world) cancelRelay(from int, tag uint64, fields []fieldMeta) {
	if len(fields) < 2 {
		return
	}
	seq, err := strconv.ParseUint(fields[0].name, 10, 64)
	if err != nil {
		return
	}
	w.mu.Lock()
	var r *relay
	if q := w.relays[relayKey{from, tag}]; q != nil {
		r = q.running[seq]
	}
	w.mu.Unlock()
	if r != nil {
		via := fmt.Sprintf("%.20q", fields[1].name)
		if f, err := strconv.Atoi(fields[1].name); err == nil {
			via = strconv.Itoa(f)
		}
		r.cancel(&PeerError{Op: "recv", Rank: w.t.Rank(), Peer: from, Err: fmt.Errorf(
			"%w: multicast: routed through rank %s, which did not get its route notice", ErrUpstream, via)})
	}
}

// dropRelayQueue forgets q (under w.mu) once nothing waits in it and its
// last relay has ended, so that no (sender, tag) stays behind.
func (w *world) dropRelayQueue(key relayKey, q *relayQueue) {
	if len(q.held) == 0 && len(q.waiting) == 0 && q.last.ended && w.relays[key] == q {
		delete(w.relays, key)
	}
}

// takeRoute returns the array of the multicast whose route notice (fields)
// Recv got from communicator rank from: from the oldest relay of (from,
// tag) not yet taken, started when the notice arrived, or, without one, by
// following the route now. Concurrent Recvs of one (sender, tag) may each
// take the other's array, as they may take each other's messages.
func (c *Comm) takeRoute(ctx context.Context, from int, fields []fieldMeta, ut uint64) (arrow.Array, error) {
	w := c.w
	key := relayKey{c.ranks[from], ut}
	var r *relay
	w.mu.Lock()
	if q := w.relays[key]; q != nil && len(q.waiting) > 0 {
		r = popRelay(&q.waiting)
		w.dropRelayQueue(key, q)
	}
	w.mu.Unlock()
	if r == nil {
		return w.relayComm.followRoute(ctx, c.ranks[from], fields, ut)
	}
	return c.waitRelay(ctx, from, key, r)
}

// heldRelay takes the oldest relay of key that a Recv gave up waiting for
// (nil: none).
func (w *world) heldRelay(key relayKey) *relay {
	w.mu.Lock()
	defer w.mu.Unlock()
	q := w.relays[key]
	if q == nil || len(q.held) == 0 {
		return nil
	}
	r := popRelay(&q.held)
	w.dropRelayQueue(key, q)
	return r
}

// popRelay takes the first of *rs, which must not be empty.
func popRelay(rs *[]*relay) *relay {
	r := (*rs)[0]
	(*rs)[0] = nil // not pinned by the slice's array
	*rs = (*rs)[1:]
	return r
}

// waitRelay returns r's array. When ctx ends first, r goes back to the
// front of its queue for the next Recv, as a message stays queued when a
// Recv gives up on it (its notice is gone from the transport's queue).
func (c *Comm) waitRelay(ctx context.Context, from int, key relayKey, r *relay) (arrow.Array, error) {
	select {
	case <-r.done:
		return r.arr, r.err
	case <-ctx.Done():
	}
	w := c.w
	w.mu.Lock()
	defer w.mu.Unlock()
	select {
	case <-r.done:
		return r.arr, r.err
	default:
	}
	// Not ended, so its queue (whose last relay did not end either) is
	// still there; made anew only should that ever change.
	q := w.relays[key]
	if q == nil {
		q = &relayQueue{last: r, running: map[uint64]*relay{r.seq: r}}
		w.relays[key] = q
	}
	q.held = append([]*relay{r}, q.held...)
	return nil, &PeerError{Op: "recv", Rank: c.rank, Peer: from, Err: fmt.Errorf("multicast: waiting for the array: %w", ctx.Err())}
}

// routeSeq reads a route notice's multicast number.
func routeSeq(fields []fieldMeta) (uint64, bool) {
	if len(fields) < 2 {
		return 0, false
	}
	s, err := strconv.ParseUint(fields[1].name, 10, 64)
	return s, err == nil && s != 0
}

// followRoute takes the array a route notice from transport rank `from`
// points to, forwarding it as the notice says. c is the world-rank
// communicator of the relays (transport ranks, tags as sent). When it
// fails, every message of that multicast still here or yet to come is
// dropped (relayEnded).
func (c *Comm) followRoute(ctx context.Context, from int, fields []fieldMeta, ut uint64) (arrow.Array, error) {
	bad := func(format string, args ...any) error {
		return &PeerError{Op: "recv", Rank: c.rank, Peer: from, Err: fmt.Errorf("%w: multicast route: "+format, append([]any{ErrProtocol}, args...)...)}
	}
	rank := func(i int, none bool) (int, error) {
		q, err := strconv.Atoi(fields[i].name)
		if err != nil || q < -1 || q >= len(c.ranks) || q == c.rank || (q == -1 && !none) {
			return 0, bad("field %d: %q is not a rank of %d other than %d", i, fields[i].name, len(c.ranks), c.rank)
		}
		return q, nil
	}
	if len(fields) < 3 {
		return nil, bad("%d fields, want at least 3", len(fields))
	}
	seq, ok := routeSeq(fields)
	if !ok {
		return nil, bad("field 1: %.20q is not a multicast number", fields[1].name)
	}
	dt := dataTag(ut, from)
	arr, err := c.followRouteSeq(ctx, from, fields, dt, seq, rank, bad)
	c.w.relayEnded(dt, seq, err != nil)
	return arr, err
}

// followRouteSeq is followRoute once the notice's number is known.
func (c *Comm) followRouteSeq(ctx context.Context, from int, fields []fieldMeta, dt, seq uint64, rank func(int, bool) (int, error), bad func(string, ...any) error) (arrow.Array, error) {
	parent, err := rank(2, false)
	if err != nil {
		return nil, err
	}
	tags := chainTags{seg: dt, local: dt, seq: seq}
	var res *got
	switch role := fields[0].name; {
	case role == "member" && len(fields) == 3:
		res, err = c.chainRecv(ctx, "recv", parent, dt, seq)
	case role == "leader" && len(fields) >= 4:
		next, nerr := rank(3, true)
		if nerr != nil {
			return nil, nerr
		}
		var mates []int
		for i := 4; i < len(fields); i++ {
			m, merr := rank(i, false)
			if merr != nil {
				return nil, merr
			}
			mates = append(mates, m)
		}
		res, err = c.chainRelay(ctx, "recv", parent, next, mates, tags)
	default:
		return nil, bad("role %.20q with %d fields", role, len(fields))
	}
	if err != nil {
		return nil, err
	}
	if res.kind != kindArray || len(res.arrs) != 1 {
		res.release()
		return nil, &PeerError{Op: "recv", Rank: c.rank, Peer: parent, Err: fmt.Errorf("%w: expected one array", ErrProtocol)}
	}
	return res.arrs[0], nil
}
