package collective

import (
	"context"
	"errors"
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
)

// The pipelined tree (AlgTree) of Reduce and Allreduce: the documented
// order's tree itself (reduceTree), run segment by segment. Each rank
// combines segment k of its children's partials, in the documented order,
// while the transport receives segment k+1 and a second goroutine sends
// segment k-1 to its parent, so that every link of the tree carries data
// at once and no rank waits for a whole message. It is the same tree as
// the binomial reduce, so every element's result is bit-identical to
// every other algorithm's on every layout; on ranks placed on nodes in
// blocks (SLURM's default) each node's ranks fold inside the node first
// and one partial per node crosses the wire.
//
// Flow control: a rank sends at most treeWindow segments ahead of what
// its parent has combined; the parent returns a credit per segment it
// consumed. The transports read eagerly, so without it a parent slower
// than its children (it adds, they only send) would queue the whole
// message in receive buffers. Across calls: a Reduce's sending rank
// returns without hearing from its parent, so the parent acknowledges
// each child's last segment once it has combined all of them, and the
// child takes that acknowledgement before it sends its first segment of
// its next tree collective (it is there already unless the parent is
// behind): a rank runs at most one tree Reduce ahead of its parent on
// each link, and a slow root holds at most one Reduce per child (without
// it, payloads of at most treeWindow segments exchanged no credit at all,
// and a loop of Reduces queued a whole payload at root per iteration).
// A rank whose input lies in its arena sent it by reference: it takes
// the acknowledgement before its Reduce returns, so that, as with
// MPI_Reduce, the input may be written once Reduce returned.
//
// Rank 0 ends with the result. Reduce to another root streams the final
// segments to root as they are done; Allreduce streams them from rank 0
// down the node-aware Bcast chain (chain.go), or, on a few ranks one per
// node, straight to every rank at once (decide.go); the receivers read
// them from the socket straight into their assembly: the broadcast of
// segment k starts as soon as its reduction is final.

// Steps of the pipelined tree's messages.
const (
	stepTreeUp     = 90 // a partial segment to the parent
	stepTreeCredit = 91 // the parent consumed one: send one more
	stepTreeSeg    = 92 // a final segment down the chain (or to root)
	stepTreeLocal  = 93 // the result to a leader's node-mates
	stepSettle     = 94 // Reduce: the parent's part is done (settle; not the tree's)
	stepTreeAck    = 95 // Reduce: the parent combined all of the child's segments
)

// pendingAck is a tree Reduce's acknowledgement not yet taken: from the
// parent, on that Reduce's tag.
type pendingAck struct {
	parent int
	tag    uint64
}

// treeWindow is how many segments a rank sends before its parent's first
// credit: enough to keep the link busy while the parent combines one.
const treeWindow = 4

// treeHook, when set (tests), sees each partial segment k that rank sent
// to peer (sent) and each one rank combined from peer (after combining,
// before the credit goes back): the segments in flight between two ranks
// can be counted there, and a rank made slow.
var treeHook func(rank, peer, k int, sent bool)

// treeRecvHook, when set (tests), sees each partial segment k that rank
// received from peer before it combines it: a combination can be delayed
// there.
var treeRecvHook func(rank, peer, k int)

// treeUp runs this rank's part of the pipelined tree over segments of
// about seg bytes. Rank 0 hands every final segment, in order, to final
// (may be nil) from a goroutine of its own, so that the next segment is
// combined meanwhile; the others send their partial segments to their
// parent. With ack (Reduce), once every segment is combined each child
// gets the acknowledgement it takes later (flow control above), and this
// rank owes its parent the taking of one. On return acc holds this rank's
// partial (rank 0: the result) wherever it has children.
func (s *reduceState) treeUp(ctx context.Context, seg int64, ack bool, final func(sp span, col column) error) error {
	c, n := s.c, s.col.n
	parent, children := reduceTree(len(c.ranks), c.rank)
	segs := pipeSegments(n, s.acc.w, seg)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	emit := func(k int, sp span, col column) error {
		if parent >= 0 {
			return s.sendUp(ctx, parent, k, sp.off, col)
		}
		if final != nil {
			return final(sp, col)
		}
		return nil
	}
	type piece struct {
		k   int
		sp  span
		col column
	}
	out := make(chan piece, len(segs))
	sent := make(chan error, 1)
	go func() {
		var err error
		for p := range out {
			if err == nil {
				if err = emit(p.k, p.sp, p.col); err != nil {
					cancel()
				}
			}
		}
		sent <- err
	}()
	var err error
	for k, sp := range segs {
		if err = s.combineSegment(ctx, children, segs, k); err != nil {
			break
		}
		col := s.col.slice(sp.off, sp.off+sp.n)
		if len(children) > 0 {
			col = s.accSlice(sp.off, sp.off+sp.n)
		}
		out <- piece{k, sp, col}
	}
	if err == nil && ack {
		for _, ch := range children {
			if err = c.send(ctx, s.op, ch, s.tag(stepTreeAck), value{kind: kindNone}, nil); err != nil {
				break
			}
		}
	}
	close(out)
	if err = errors.Join(err, <-sent); err == nil && ack && parent >= 0 {
		c.ackMu.Lock()
		c.treeAck = &pendingAck{parent: parent, tag: s.tag(stepTreeAck)}
		c.ackMu.Unlock()
	}
	return err
}

// takeAck waits for the acknowledgement of this rank's previous tree
// Reduce, if it has not taken it yet (no wait when its parent is not
// behind: it came long ago). A failure of that Reduce (its parent found a
// mismatch after this rank had returned) or of the link fails this
// collective, on every member, naming the parent: it is reported here,
// once, rather than not at all.
func (s *reduceState) takeAck(ctx context.Context) error {
	if err := s.waitAck(ctx); err != nil {
		return s.c.failColl(s.tag(stepTreeUp), fmt.Errorf("collective: the previous reduce (pipelined tree) did not end: %w", err))
	}
	return nil
}

// waitAck takes the acknowledgement this rank is owed, if any.
func (s *reduceState) waitAck(ctx context.Context) error {
	c := s.c
	c.ackMu.Lock()
	a := c.treeAck
	c.treeAck = nil
	c.ackMu.Unlock()
	if a == nil {
		return nil
	}
	g, err := c.recv(ctx, s.op, a.parent, a.tag)
	if err != nil {
		return err
	}
	ok := g.kind == kindNone && len(g.arrs) == 0
	g.release()
	if !ok {
		return c.failColl(a.tag, protoErr(s.op, c.rank, a.parent, "expected the acknowledgement of a tree reduce"))
	}
	return nil
}

// inputByRef reports whether this rank's input goes to parent by
// reference: it lies in this rank's arena and parent maps it.
func (s *reduceState) inputByRef(parent int) bool {
	a := s.c.w.opts.arena
	if parent < 0 || !s.c.shm(parent) || a == nil {
		return false
	}
	return a.Contains(s.col.data) || (s.col.valid != nil && a.Contains(s.col.valid))
}

// combineSegment receives segment k of every child's partial and combines
// them, in order, into acc; each child gets a credit for one more.
func (s *reduceState) combineSegment(ctx context.Context, children []int, segs []span, k int) error {
	c, sp := s.c, segs[k]
	for i, ch := range children {
		g, in, err := s.recvSegment(ctx, ch, k, sp)
		if err != nil {
			return err
		}
		if treeRecvHook != nil {
			treeRecvHook(c.rank, ch, k)
		}
		if i == 0 {
			combineFrom(s.acc, sp.off, s.col, in, true, s.k)
		} else {
			combine(s.acc, sp.off, in, true, s.k)
		}
		g.release()
		if treeHook != nil {
			treeHook(c.rank, ch, k, false)
		}
		if k+treeWindow < len(segs) {
			if err := c.send(ctx, s.op, ch, s.tag(stepTreeCredit), value{kind: kindNone}, nil); err != nil {
				return err
			}
		}
	}
	if len(children) > 0 {
		s.mark(sp.off, sp.off+sp.n)
	}
	return nil
}

// recvSegment receives from peer its partial of segment k, sp: anything
// else (another place, length or type, a duplicate or stale segment)
// aborts the collective naming the peer.
func (s *reduceState) recvSegment(ctx context.Context, peer, k int, sp span) (*got, column, error) {
	tag := s.tag(s.upStep(s.c.rank, peer, k))
	g, err := s.c.recv(ctx, s.op, peer, tag)
	if err != nil {
		return nil, column{}, err
	}
	var in column
	if g.kind == kindArray && len(g.arrs) == 1 {
		in, err = columnOf(g.arrs[0])
	}
	if g.kind != kindArray || len(g.arrs) != 1 || err != nil || !arrow.TypeEqual(in.dt, s.col.dt) || in.n != sp.n || g.aux != s.col.n || segmentAt(g.fields) != sp.off {
		what := "not an array"
		if len(g.arrs) == 1 {
			what = fmt.Sprintf("%d elements of %v at element %d of %d", g.arrs[0].Len(), g.arrs[0].DataType(), segmentAt(g.fields), g.aux)
		}
		g.release()
		return nil, column{}, s.c.failColl(tag, &PeerError{Op: s.op, Rank: s.c.rank, Peer: peer,
			Err: fmt.Errorf("%w: partial segment: got %s, want %d elements of %v at element %d of %d", ErrType, what, sp.n, s.col.dt, sp.off, s.col.n)})
	}
	return g, in, nil
}

// sendUp sends segment k of this rank's partial to parent, after the
// parent's credit when it is beyond the window.
func (s *reduceState) sendUp(ctx context.Context, parent, k int, at int64, col column) error {
	if k == 0 {
		if err := s.takeAck(ctx); err != nil {
			return err
		}
	}
	if k >= treeWindow {
		g, err := s.c.recv(ctx, s.op, parent, s.tag(stepTreeCredit))
		if err != nil {
			return err
		}
		ok := g.kind == kindNone && len(g.arrs) == 0
		g.release()
		if !ok {
			return s.c.failColl(s.tag(stepTreeCredit), protoErr(s.op, s.c.rank, parent, "expected a credit for segment %d", k))
		}
	}
	if err := s.c.send(ctx, s.op, parent, s.tag(s.upStep(parent, s.c.rank, k)), segmentValue(col, at, s.col.n), nil); err != nil {
		return err
	}
	if treeHook != nil {
		treeHook(s.c.rank, parent, k, true)
	}
	return nil
}

// upStep is the step of segment k from child to parent: the first on the
// step binomial, halving and doubling use on that link (linkStep), so that
// a rank that picked another algorithm for this call (its length differs)
// meets the tree there and the length check names the mismatch; the
// others on stepTreeUp.
func (s *reduceState) upStep(parent, child, k int) uint8 {
	if k > 0 {
		return stepTreeUp
	}
	return linkStep(len(s.c.ranks), child)
}

// settle ends Reduce's part of the binomial tree (reduceTree, the tree of
// AlgBinomial; AlgTree does without it) on this rank: it waits until its parent has
// settled (rank 0: its part is done), then lets its children go. A rank
// that only sends would otherwise return success while its parent finds
// the mismatch; now the abort reaches it while it waits.
func (s *reduceState) settle(ctx context.Context) error {
	parent, children := reduceTree(len(s.c.ranks), s.c.rank)
	return s.settleWith(ctx, parent, children)
}

// settleWith is settle on the links given: wait for parent's end (none
// when parent < 0), then send the end to children.
func (s *reduceState) settleWith(ctx context.Context, parent int, children []int) error {
	c := s.c
	if parent >= 0 {
		g, err := c.recv(ctx, s.op, parent, s.tag(stepSettle))
		if err != nil {
			return err
		}
		ok := g.kind == kindNone && len(g.arrs) == 0
		g.release()
		if !ok {
			return c.failColl(s.tag(stepSettle), protoErr(s.op, c.rank, parent, "expected the end of the reduction"))
		}
	}
	for _, ch := range children {
		if err := c.send(ctx, s.op, ch, s.tag(stepSettle), value{kind: kindNone}, nil); err != nil {
			return err
		}
	}
	return nil
}

// accSlice views elements [lo, hi) of acc without counting the whole
// bitmap.
func (s *reduceState) accSlice(lo, hi int64) column {
	full := column{dt: s.acc.dt, n: s.acc.n, data: s.acc.data.Bytes()}
	if s.acc.valid != nil {
		full.valid = s.acc.valid.Bytes()
	}
	return full.slice(lo, hi)
}

// streamTo returns a final-segment sink for rank 0 that sends each segment
// to next as part of a chain of n elements (the receiver runs chainRelay);
// a chain of no elements carries one empty segment (pipeSegments).
func (s *reduceState) streamTo(ctx context.Context, next int, tags chainTags) func(span, column) error {
	return func(sp span, col column) error {
		return s.c.send(ctx, s.op, next, tags.seg, segmentValue(col, sp.off, s.col.n), nil)
	}
}

// streamAll returns a final-segment sink for rank 0 that sends each
// segment to every rank of to at once, one goroutine each (each receiver
// runs chainRelay with no next); it returns once all have it.
func (s *reduceState) streamAll(ctx context.Context, to []int, tags chainTags) func(span, column) error {
	return func(sp span, col column) error {
		errc := make(chan error, len(to))
		for _, q := range to {
			go func() {
				errc <- s.c.send(ctx, s.op, q, tags.seg, segmentValue(col, sp.off, s.col.n), nil)
			}()
		}
		var err error
		for range to {
			err = errors.Join(err, <-errc)
		}
		return err
	}
}

// reduceTreeRooted is Reduce over the pipelined tree. No rank waits for
// an end from its parent (settle): a rank that only sends returns once its
// last segment is sent, a round trip sooner. A failure (a mismatch its
// parent finds later) is then certain only on root, which never finishes
// without every partial, each checked by the rank that combined it; every
// other rank returns nil either way, so none holds a wrong result. A rank
// that sent its input by reference (it lies in its arena) returns only
// once its parent has combined it (sent): its input may be written then.
func (s *reduceState) reduceTreeRooted(ctx context.Context, root int, seg int64) (arrow.Array, error) {
	c, r := s.c, s.c.rank
	up := func(final func(span, column) error) error {
		parent, children := reduceTree(len(c.ranks), r)
		if err := s.treeUp(ctx, seg, true, final); err != nil {
			return err
		}
		if len(children) == 0 && s.inputByRef(parent) {
			return s.waitAck(ctx) // this Reduce's: a failure is this Reduce's
		}
		return nil
	}
	if root == 0 {
		if err := up(nil); err != nil || r != 0 {
			return nil, err
		}
		return s.finish(), nil
	}
	tags := chainTags{seg: s.tag(stepTreeSeg), local: s.tag(stepTreeLocal)}
	switch r {
	case 0:
		return nil, up(s.streamTo(ctx, root, tags))
	case root:
		done := make(chan error, 1)
		go func() { done <- up(nil) }()
		g, err := c.chainRelay(ctx, s.op, 0, -1, nil, tags)
		if err = errors.Join(err, <-done); err != nil {
			if g != nil {
				g.release()
			}
			return nil, err
		}
		return g.arrs[0], nil
	}
	return nil, up(nil)
}

// allreduceTree is Allreduce over the pipelined tree, the result streamed
// from rank 0 as its segments become final: with direct straight to every
// other rank at once (they must be one per node: no rank has node-mates
// to serve), else down the node-aware chain.
func (s *reduceState) allreduceTree(ctx context.Context, seg int64, direct bool) (arrow.Array, error) {
	c, r := s.c, s.c.rank
	others := make([]int, 0, len(c.ranks)-1)
	for q := 1; q < len(c.ranks); q++ {
		others = append(others, q)
	}
	pl := planChain(c.topology(), 0, others)
	direct = direct && len(pl.local) == 0
	tags := chainTags{seg: s.tag(stepTreeSeg), local: s.tag(stepTreeLocal)}
	if r == 0 {
		var sink func(span, column) error
		switch {
		case direct:
			sink = s.streamAll(ctx, others, tags)
		case len(pl.leaders) > 1:
			sink = s.streamTo(ctx, pl.leaders[1], tags)
		}
		if err := s.treeUp(ctx, seg, false, sink); err != nil {
			return nil, err
		}
		s.ensure(0, s.col.n)
		if err := c.chainLocal(ctx, s.op, pl.local[0], s.acc.column(), tags, nil); err != nil {
			return nil, err
		}
		return s.finish(), nil
	}
	up := make(chan error, 1)
	go func() { up <- s.treeUp(ctx, seg, false, nil) }()
	var g *got
	var err error
	if direct {
		g, err = c.chainRelay(ctx, s.op, 0, -1, nil, tags)
	} else {
		g, err = c.runChain(ctx, s.op, pl, value{}, seg, tags, nil)
	}
	if err = errors.Join(err, <-up); err != nil {
		if g != nil {
			g.release()
		}
		return nil, err
	}
	if len(g.arrs) != 1 {
		g.release()
		return nil, protoErr(s.op, r, pl.leader[r], "expected one array")
	}
	return g.arrs[0], nil
}
