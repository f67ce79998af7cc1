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
// affected.
//
// sent counts the receivers reached (with the chain: whose route notice
// arrived, unless the array could not leave this rank for the chain; then
// only this node's receivers) and err joins the failures.
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
	reached := map[int]bool{}
	for _, q := range live {
		if serr := c.send(ctx, "multicast", q, ut, c.routeValue(pl, q), nil); serr != nil {
			err = errors.Join(err, serr)
			continue
		}
		reached[q] = true
	}
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
	cerr := c.chainSource(ctx, "multicast", mates, col, next, d.segment, chainTags{seg: dt, local: dt}, nil)
	if cerr != nil {
		// the chain is cut at its first link: only this node's receivers
		// (their own sends reported in cerr) are sure to have it
		return len(mates), errors.Join(err, cerr)
	}
	return len(reached), err
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

// routeValue is the route notice for receiver q of pl, in transport ranks:
// its role, the rank it receives from, and for a leader the next leader
// (-1: none) and its node-mates.
func (c *Comm) routeValue(pl chainPlan, q int) value {
	v := value{kind: kindNone, aux: auxRoute}
	add := func(r int) { v.fields = append(v.fields, fieldMeta{name: strconv.Itoa(r)}) }
	role := func(s string) { v.fields = append(v.fields, fieldMeta{name: s}) }
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
	done  chan struct{}
	arr   arrow.Array // set before done is closed
	err   error
	ended bool // done is closed (under world.mu, for relayQueue)
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
// relay running beside the first would take its segments).
type relayQueue struct {
	// held are relays whose notice a Recv took but gave up waiting for:
	// older than any queued notice, the next Recv takes them first.
	held    []*relay
	waiting []*relay // started, notice still queued, in arrival order
	last    *relay   // the latest started (taken or not)
}

// startRelay is called for every arriving user message (the transport's
// drop hook, which may hold a lock: nothing blocking here). For a route
// notice it starts this rank's part of the multicast at once; the notice
// stays queued for Recv, which then waits for the relay.
func (w *world) startRelay(from int, tag uint64, m *Message) {
	h, err := parseHeader(m.Header)
	if err != nil || h.kind != kindNone || h.aux != auxRoute {
		return
	}
	r := &relay{done: make(chan struct{})}
	if !w.track() {
		return
	}
	key := relayKey{from, tag}
	w.mu.Lock()
	q := w.relays[key]
	if q == nil {
		q = &relayQueue{}
		w.relays[key] = q
	}
	prev := q.last
	q.last = r
	q.waiting = append(q.waiting, r)
	w.mu.Unlock()
	go func() {
		defer w.wg.Done()
		var arr arrow.Array
		err := ErrClosed
		if prev != nil {
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
			ctx, cancel := context.WithTimeout(w.ctx, limit)
			arr, err = w.relayComm.followRoute(ctx, from, h.fields, tag)
			cancel()
		}
		r.arr, r.err = arr, err
		close(r.done)
		w.mu.Lock()
		r.ended = true
		w.dropRelayQueue(key, q)
		w.mu.Unlock()
	}()
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
		q = &relayQueue{last: r}
		w.relays[key] = q
	}
	q.held = append([]*relay{r}, q.held...)
	return nil, &PeerError{Op: "recv", Rank: c.rank, Peer: from, Err: fmt.Errorf("multicast: waiting for the array: %w", ctx.Err())}
}

// followRoute takes the array a route notice from transport rank `from`
// points to, forwarding it as the notice says. c is the world-rank
// communicator of the relays (transport ranks, tags as sent).
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
	if len(fields) < 2 {
		return nil, bad("%d fields, want at least 2", len(fields))
	}
	parent, err := rank(1, false)
	if err != nil {
		return nil, err
	}
	dt := dataTag(ut, from)
	var res *got
	switch role := fields[0].name; {
	case role == "member" && len(fields) == 2:
		res, err = c.chainRecv(ctx, "recv", parent, dt)
	case role == "leader" && len(fields) >= 3:
		next, nerr := rank(2, true)
		if nerr != nil {
			return nil, nerr
		}
		var mates []int
		for i := 3; i < len(fields); i++ {
			m, merr := rank(i, false)
			if merr != nil {
				return nil, merr
			}
			mates = append(mates, m)
		}
		res, err = c.chainRelay(ctx, "recv", parent, next, mates, chainTags{seg: dt, local: dt})
	default:
		return nil, bad("role %q with %d fields", role, len(fields))
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
