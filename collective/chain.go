package collective

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"golang.org/x/sys/unix"
)

// The node-aware pipelined chain (AlgChain) of Bcast and Multicast: the
// source, then one leader per other node (its lowest member of the set),
// each forwarding the segments it receives to the next leader as they
// arrive, so that every link between nodes carries the payload once and
// all of them at the same time. Every leader assembles the payload (in its
// arena when it has node-mates to serve) and hands it to its node-mates as
// one arena descriptor: one transfer per node across the wire, no copy
// inside the node beyond the leader's assembly. The source stages its
// array in its arena once for its own node-mates.

// chainPlan is who does what in a chain over a set of communicator ranks.
type chainPlan struct {
	leaders []int         // chain order; leaders[0] is the source
	local   map[int][]int // leader -> its node-mates in the set
	leader  map[int]int   // member of the set -> its node's leader
}

// planChain plans the chain from src over set (communicator ranks,
// without src; repeats ignored) on the layout t. Nodes follow in the order
// of t's node numbers (their lowest members), src's node first.
func planChain(t *topo, src int, set []int) chainPlan {
	pl := chainPlan{leaders: []int{src}, local: map[int][]int{}, leader: map[int]int{src: src}}
	in := map[int]bool{src: true}
	byNode := make([][]int, len(t.members))
	for _, q := range set {
		if !in[q] {
			in[q] = true
			byNode[t.node[q]] = append(byNode[t.node[q]], q)
		}
	}
	srcNode := t.node[src]
	for _, q := range byNode[srcNode] {
		pl.local[src] = append(pl.local[src], q)
		pl.leader[q] = src
	}
	for n, qs := range byNode {
		if n == srcNode || len(qs) == 0 {
			continue
		}
		lo := qs[0]
		for _, q := range qs {
			lo = min(lo, q)
		}
		pl.leaders = append(pl.leaders, lo)
		for _, q := range qs {
			pl.leader[q] = lo
			if q != lo {
				pl.local[lo] = append(pl.local[lo], q)
			}
		}
	}
	return pl
}

// position returns r's place in the chain (-1: r is no leader).
func (pl chainPlan) position(r int) int {
	for i, l := range pl.leaders {
		if l == r {
			return i
		}
	}
	return -1
}

// chainTags are the tags of a chain's two kinds of messages, and for a
// multicast its sequence number (0: a collective's chain, whose tags are
// its own). Every multicast of one (sender, tag) uses the same tags, so
// each of its messages carries its number as the last header field (a
// stamp): a relay takes only its own multicast's messages and discards
// those of an earlier one, which a failed relay left behind.
type chainTags struct{ seg, local, seq uint64 }

// stamp appends the multicast number of tags (none for a collective) to
// v's fields.
func (tags chainTags) stamp(v value) value {
	if tags.seq != 0 {
		v.fields = append(v.fields[:len(v.fields):len(v.fields)], fieldMeta{name: strconv.FormatUint(tags.seq, 10)})
	}
	return v
}

// stampOf reads the multicast number a message's fields end with (false:
// none).
func stampOf(fields []fieldMeta) (uint64, bool) {
	if len(fields) == 0 {
		return 0, false
	}
	s, err := strconv.ParseUint(fields[len(fields)-1].name, 10, 64)
	return s, err == nil && s != 0
}

// bcastChain runs the chain over every member for Bcast. On root v is the
// array; the others get it.
func (c *Comm) bcastChain(ctx context.Context, op string, root int, v value, seg int64, tag func(uint8) uint64) (*got, error) {
	all := make([]int, 0, len(c.ranks))
	for q := range c.ranks {
		if q != root {
			all = append(all, q)
		}
	}
	pl := planChain(c.topology(), root, all)
	return c.runChain(ctx, op, pl, v, seg, chainTags{seg: tag(3), local: tag(4)}, nil)
}

// runChain takes this rank's part in pl. On the source v is the array and
// the result is nil; a leader and a member return the payload. tr (source
// only, may be nil) tracks the arena descriptors the source sends.
func (c *Comm) runChain(ctx context.Context, op string, pl chainPlan, v value, seg int64, tags chainTags, tr *Tracker) (*got, error) {
	r := c.rank
	pos := pl.position(r)
	next := -1
	if pos >= 0 && pos+1 < len(pl.leaders) {
		next = pl.leaders[pos+1]
	}
	switch {
	case pos == 0:
		return nil, c.chainSource(ctx, op, pl.local[r], v.cols[0], next, seg, tags, tr)
	case pos > 0:
		return c.chainRelay(ctx, op, pl.leaders[pos-1], next, pl.local[r], tags)
	}
	ld, ok := pl.leader[r]
	if !ok {
		return nil, fmt.Errorf("%w: %s: rank %d is not in the chain", ErrArgument, op, r)
	}
	return c.chainRecv(ctx, op, ld, tags.local, 0)
}

// auxChainFail marks a chain's failure notice (kindNone, the reason in the
// first field): a leader that cannot go on tells the ranks it serves, so
// that they fail at once naming the cause instead of waiting. Collectives
// have aborts for that; multicasts (user tags) use the notice.
const auxChainFail = 4

// chainRecv receives the next chain message from `from`: a failure notice
// becomes an ErrUpstream error. For a multicast (seq not 0) it discards the
// messages of earlier multicasts (a failed relay's leftovers), refuses a
// later one's or an unstamped one, and when ctx ends returns its cause (a
// relay's timeout, or the sender's word that the route is broken).
func (c *Comm) chainRecv(ctx context.Context, op string, from int, tag, seq uint64) (*got, error) {
	var g *got
	var err error
	for {
		g, err = c.recv(ctx, op, from, tag)
		if err != nil {
			if seq != 0 && ctx.Err() != nil {
				cause := context.Cause(ctx)
				if pe := (*PeerError)(nil); errors.As(cause, &pe) {
					return nil, cause
				}
				return nil, &PeerError{Op: op, Rank: c.rank, Peer: from, Err: cause}
			}
			return nil, err
		}
		if seq == 0 {
			break
		}
		s, ok := stampOf(g.fields)
		if ok && s < seq {
			g.release() // an earlier multicast's, left behind
			continue
		}
		if !ok || s > seq {
			g.release()
			return nil, protoErr(op, c.rank, from, "multicast message stamped %q while waiting for multicast %d", lastField(g.fields), seq)
		}
		g.fields = g.fields[:len(g.fields)-1]
		break
	}
	if g.kind != kindNone || g.aux != auxChainFail {
		return g, nil
	}
	reason := "no reason given"
	if len(g.fields) > 0 {
		reason = g.fields[0].name
	}
	return nil, &PeerError{Op: op, Rank: c.rank, Peer: from, Err: fmt.Errorf("%w: %s", ErrUpstream, reason)}
}

// lastField is the last of fields ("" when none), for errors.
func lastField(fields []fieldMeta) string {
	if len(fields) == 0 {
		return ""
	}
	return fields[len(fields)-1].name
}

// chainFail tells next (-1: none) and mates that this leader failed with
// cause (best effort; collectives abort instead). It returns cause.
func (c *Comm) chainFail(next int, mates []int, tags chainTags, cause error) error {
	if isCollTag(tags.seg) {
		return cause
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	v := tags.stamp(value{kind: kindNone, aux: auxChainFail, fields: []fieldMeta{{name: cause.Error()}}})
	if next >= 0 {
		_ = c.send(ctx, "multicast", next, tags.seg, v, nil)
	}
	for _, q := range mates {
		_ = c.send(ctx, "multicast", q, tags.local, v, nil)
	}
	return cause
}

// segmentValue is a chain segment: col, the elements from at of an array
// of n (in aux; at in the first field, so that the receiver can place it;
// a multicast's stamp may follow).
func segmentValue(col column, at, n int64) value {
	v := arrayValue(col)
	v.aux = n
	v.fields = []fieldMeta{{name: strconv.FormatInt(at, 10)}}
	return v
}

// segmentAt reads the start a segment's header names (-1: none), before
// its stamp when it has one.
func segmentAt(fields []fieldMeta) int64 {
	if len(fields) != 1 && len(fields) != 2 {
		return -1
	}
	at, err := strconv.ParseInt(fields[0].name, 10, 64)
	if err != nil || at < 0 {
		return -1
	}
	return at
}

// assemblyMax is the most bytes a relay assembles: the node's memory (a
// peer that declares more is refused by name instead of crashing the
// process in the allocator).
var assemblyMax = sync.OnceValue(func() int64 {
	var si unix.Sysinfo_t
	if unix.Sysinfo(&si) != nil || si.Totalram == 0 {
		return 1 << 40
	}
	return int64(si.Totalram) * int64(si.Unit)
})

// chainDest is a relay's assembly, shared with the transport's receiving
// goroutine when the transport can place messages (placer): segments
// without nulls are then read from the socket straight into the assembly
// and forwarded from there, never copied (place); others are copied by the
// relay (put). Placement is asked for only when every segment of the chain
// that has arrived was consumed and none is arriving (TrySetPlace), so
// place sees every later segment, in order: it places each at exactly the
// place after the one before (the first where the relay is), and after the
// first it declines places nothing more, so that the transport never writes
// where the relay copies or has checked and forwarded (an earlier
// multicast's segment excepted: the relay discards it, never copies it).
type chainDest struct {
	mem memory.Allocator
	seq uint64 // the multicast's number (0: a collective's chain)

	mu     sync.Mutex
	asm    *assembler // nil until the first segment's header
	n      int64
	dt     arrow.DataType
	next   int64 // end of the last placed segment: only a segment there is placed
	closed bool  // the relay is done with it, or place declined one: place nothing more
}

// close ends placing and returns the assembly (nil: none was made), which
// the relay may then finish or release.
func (d *chainDest) close() *assembler {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.closed = true
	return d.asm
}

// startAt makes at, where the relay's next segment starts, the only place
// a segment may be placed (before placement is asked for).
func (d *chainDest) startAt(at int64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.next = at
}

// assembly returns the assembly of n elements of dt, made on first use; nil
// when it exists for another type or length.
func (d *chainDest) assembly(dt arrow.DataType, n int64) *assembler {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.asm == nil {
		d.asm, d.n, d.dt = newAssembler(dt, n, d.mem), n, dt
	}
	if d.n != n || !arrow.TypeEqual(d.dt, dt) {
		return nil
	}
	return d.asm
}

// place is the relay's PlaceFunc: a segment without nulls that starts
// where the last placed one ended (the first: at 0) lands there in the
// assembly, which it holds a reference to until released. Anything else is
// left to the transport (nil), and so is every message after it: a
// duplicate, stale or hostile segment is never written into the assembly,
// the relay refuses it by its position, naming the peer.
func (d *chainDest) place(header []byte, lens []uint64) ([][]byte, func()) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil, nil
	}
	bufs, release, stale := d.placeLocked(header, lens)
	if bufs == nil && !stale {
		d.closed = true
	}
	return bufs, release
}

// placeLocked is place under d.mu. stale: the message is an earlier
// multicast's, which the relay discards (or the communicator drops on
// arrival) and never copies: it does not end placing.
func (d *chainDest) placeLocked(header []byte, lens []uint64) (bufs [][]byte, release func(), stale bool) {
	h, err := parseHeader(header)
	if err != nil {
		return nil, nil, false
	}
	if d.seq != 0 {
		s, ok := stampOf(h.fields)
		if !ok || s != d.seq {
			return nil, nil, ok && s < d.seq
		}
	}
	if h.kind != kindArray || len(h.cols) != 1 || len(h.refs) != 1 || h.refs[0].arena || len(lens) != 1 {
		return nil, nil, false
	}
	cm, at := h.cols[0], segmentAt(h.fields)
	dt := typeOf(cm.typ)
	if dt == nil || cm.hasValid || cm.off != 0 || cm.n <= 0 || at < 0 || cm.n > h.aux-at {
		return nil, nil, false
	}
	w := width(dt)
	if w <= 0 || h.aux > assemblyMax()/w || int64(lens[0]) != cm.n*w {
		return nil, nil, false // too large a declared array is the relay's error to name
	}
	// A segment is placed only right after the ones placed before it: one
	// that names an earlier place (a duplicate, a stale or hostile sender)
	// would rewrite bytes already checked and forwarded, or, after the last
	// one, the finished result; one that names a later place would be
	// written where the relay may copy the declined one it skipped. It goes
	// to the queue, where the relay refuses it.
	if at != d.next {
		return nil, nil, false
	}
	if d.asm == nil {
		d.asm, d.n, d.dt = newAssembler(dt, h.aux, d.mem), h.aux, dt
	}
	if d.n != h.aux || !arrow.TypeEqual(d.dt, dt) {
		return nil, nil, false
	}
	d.next = at + cm.n
	buf := d.asm.data
	buf.Retain() // until the message is released
	var once sync.Once
	return [][]byte{buf.Bytes()[at*w : (at+cm.n)*w]}, func() { once.Do(buf.Release) }, false
}

// chainRelay is a leader's part: receive the segments from prev, forward
// each to next (-1: none) as it arrives, assemble them (in the arena when
// there are mates), then hand the payload to mates.
func (c *Comm) chainRelay(ctx context.Context, op string, prev, next int, mates []int, tags chainTags) (*got, error) {
	r := c.rank
	dest := &chainDest{mem: c.w.opts.mem, seq: tags.seq}
	if a := c.w.opts.arena; a != nil && len(mates) > 0 {
		dest.mem = a.Allocator() // node-mates alias the assembled payload
	}
	// Placed segments hold the assembly (in the arena with mates, and
	// with the mesh's default allocator, its arena) until they are
	// consumed: a failed collective's are dropped from the queue by its
	// abort, a failed multicast's by relayEnded (multicast.go), with every
	// other message of it, queued or still to come.
	pl, _ := c.w.t.(placer)
	placing := false
	defer func() {
		if placing {
			pl.SetPlace(c.ranks[prev], tags.seg, nil)
		}
	}()
	var asm *assembler
	var dt arrow.DataType
	var n, at int64
	fail := func(err error) (*got, error) {
		if a := dest.close(); a != nil {
			a.release()
		}
		return nil, c.chainFail(next, mates, tags, err)
	}
	for first := true; first || at < n; first = false {
		// Segments that arrived before (or while) placement is asked for
		// are queued unseen by place, which could then write where the
		// relay copies them: it starts only when every one that arrived
		// was consumed, right after them (a root that ran ahead has its
		// first segments copied, the others still placed).
		if pl != nil && !placing {
			dest.startAt(at)
			placing = pl.TrySetPlace(c.ranks[prev], tags.seg, dest.place)
		}
		g, err := c.chainRecv(ctx, op, prev, tags.seg, tags.seq)
		if err != nil {
			return fail(err)
		}
		var col column
		if g.kind == kindArray && len(g.arrs) == 1 {
			col, err = columnOf(g.arrs[0])
		}
		if first && err == nil && g.kind == kindArray && len(g.arrs) == 1 && g.aux >= col.n {
			if w := width(col.dt); w <= 0 || g.aux > assemblyMax()/w {
				g.release()
				return fail(c.failColl(tags.seg, protoErr(op, r, prev, "chain of %d elements of %v: more than this node's %d bytes of memory", g.aux, col.dt, assemblyMax())))
			}
			n, dt = g.aux, col.dt
			asm = dest.assembly(dt, n)
		}
		if asm == nil || g.kind != kindArray || len(g.arrs) != 1 || err != nil || !arrow.TypeEqual(col.dt, dt) || g.aux != n || col.n > n-at || (col.n == 0 && n > 0) || segmentAt(g.fields) != at {
			g.release()
			return fail(c.failColl(tags.seg, protoErr(op, r, prev, "chain segment at element %d of %d is not a segment of %v", at, n, dt)))
		}
		if next >= 0 {
			if err := c.send(ctx, op, next, tags.seg, tags.stamp(segmentValue(col, at, n)), nil); err != nil {
				g.release()
				return fail(err) // next too is told, should the link still carry that
			}
		}
		if asm.putPlaced(at, col) {
			c.w.relayCopied.Add(bytesOf(col))
		}
		at += col.n
		g.release()
	}
	dest.close()
	res := asm.finish()
	rc, err := columnOf(res)
	if err == nil {
		err = c.chainLocal(ctx, op, mates, rc, tags, nil)
	}
	if err != nil {
		res.Release()
		return nil, c.chainFail(-1, mates, tags, err)
	}
	return &got{kind: kindArray, arrs: []arrow.Array{res}}, nil
}

// chainSource sends col down the chain in segments of seg bytes while its
// node-mates get it as descriptors.
func (c *Comm) chainSource(ctx context.Context, op string, mates []int, col column, next int, seg int64, tags chainTags, tr *Tracker) error {
	localErr := make(chan error, 1)
	go func() { localErr <- c.chainLocal(ctx, op, mates, col, tags, tr) }()
	var err error
	if next >= 0 {
		per := max(1, seg/width(col.dt))
		for lo := int64(0); ; lo += per {
			hi := min(col.n, lo+per)
			sv := tags.stamp(segmentValue(col.slice(lo, hi), lo, col.n))
			if err = c.send(ctx, op, next, tags.seg, sv, nil); err != nil || hi >= col.n {
				break
			}
		}
	}
	return errors.Join(err, <-localErr)
}

// chainLocal gives col to a leader's node-mates: staged in the arena once
// (nothing to copy when it lies there already), one descriptor each.
func (c *Comm) chainLocal(ctx context.Context, op string, mates []int, col column, tags chainTags, tr *Tracker) error {
	if len(mates) == 0 {
		return nil
	}
	v := tags.stamp(arrayValue(col))
	if c.w.opts.arena != nil {
		staged, done := c.stage(v)
		defer done()
		v = staged
	}
	for _, q := range mates {
		if err := c.send(ctx, op, q, tags.local, v, tr); err != nil {
			return err
		}
	}
	return nil
}
