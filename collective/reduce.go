package collective

import (
	"context"
	"fmt"
	"sort"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/bitutil"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// combine reduces in into acc's elements [lo, lo+in.n) in place. accLeft
// says whether acc holds the lower ranks' partial (the left operand). An
// element is null in the result if it is null on any rank.
func combine(acc *assembler, lo int64, in column, accLeft bool, k kernel) {
	dst := acc.data.Bytes()[lo*acc.w : (lo+in.n)*acc.w]
	combineWith(acc, lo, dst, in, accLeft, k)
}

// combineWith writes acc[lo, lo+in.n) = mine op in (mine on the left when
// accLeft), mine holding the elements acc's validity describes, and ANDs
// in's validity into acc's.
func combineWith(acc *assembler, lo int64, mine []byte, in column, accLeft bool, k kernel) {
	w := acc.w
	dst := acc.data.Bytes()[lo*w : (lo+in.n)*w]
	src := in.data[in.off*w : (in.off+in.n)*w]
	if accLeft {
		k(dst, mine, src, in.n)
	} else {
		k(dst, src, mine, in.n)
	}
	if in.valid == nil {
		return
	}
	if acc.valid == nil {
		acc.valid = memory.NewResizableBuffer(acc.mem)
		acc.valid.Resize(int((acc.n + 7) / 8))
		bitutil.SetBitsTo(acc.valid.Bytes(), 0, acc.n, true)
	}
	bitutil.BitmapAnd(acc.valid.Bytes(), in.valid, lo, in.off, acc.valid.Bytes(), lo, in.n)
}

// reduceState is one rank's running partial result. acc is filled lazily:
// elements outside `have` still equal the input, so a rank that only sends
// its input sends it in place (arena descriptors, no copy) and the first
// combination reads input and message and writes acc in one pass.
type reduceState struct {
	c    *Comm
	op   string
	k    kernel
	col  column
	acc  *assembler
	have []span // element ranges of acc holding values, sorted and merged
	tag  func(uint8) uint64
	old  []*assembler // earlier partials peers may still read (rebase)
	// align is one page in elements: the one-round reduction cuts the
	// result there, so that the blocks can be stitched (oneround.go).
	align int64
}

// rebase makes the current partial the new "input" and starts a fresh acc,
// so that a partial just sent as an arena descriptor is never written
// while the peer reads it (recursive doubling combines the full range
// every step). The old buffer is released with the state; its arena range
// lives on until the peer's release arrives.
func (s *reduceState) rebase() {
	if len(s.have) == 0 {
		return
	}
	s.ensure(0, s.col.n)
	s.old = append(s.old, s.acc)
	s.col = s.acc.column()
	s.acc = newAssembler(s.col.dt, s.col.n, s.c.w.opts.mem)
	if s.col.valid != nil {
		s.acc.valid = memory.NewResizableBuffer(s.acc.mem)
		s.acc.valid.Resize(int((s.acc.n + 7) / 8))
		bitutil.CopyBitmap(s.col.valid, int(s.col.off), int(s.col.n), s.acc.valid.Bytes(), 0)
	}
	s.have = nil
}

func (c *Comm) newReduce(op string, arr arrow.Array, o Op, tag func(uint8) uint64) (*reduceState, error) {
	col, err := columnOf(arr)
	if err != nil {
		return nil, err
	}
	k, err := lookupKernel(o, col.dt)
	if err != nil {
		return nil, err
	}
	acc := newAssembler(col.dt, col.n, c.w.opts.mem)
	if col.valid != nil {
		acc.valid = memory.NewResizableBuffer(acc.mem)
		acc.valid.Resize(int((acc.n + 7) / 8))
		bitutil.CopyBitmap(col.valid, int(col.off), int(col.n), acc.valid.Bytes(), 0)
	}
	return &reduceState{c: c, op: op, k: k, col: col, acc: acc, tag: tag, align: int64(pageSize) / width(col.dt)}, nil
}

// covered returns how much of [lo, hi) acc holds: 0 none, 1 part, 2 all.
func (s *reduceState) covered(lo, hi int64) int {
	in := int64(0)
	for _, h := range s.have {
		a, b := max(lo, h.off), min(hi, h.off+h.n)
		if a < b {
			in += b - a
		}
	}
	switch {
	case in == 0 && hi > lo:
		return 0
	case in == hi-lo:
		return 2
	}
	return 1
}

// mark records that acc holds [lo, hi).
func (s *reduceState) mark(lo, hi int64) {
	if lo >= hi {
		return
	}
	out := s.have[:0:0]
	cur := span{lo, hi - lo}
	for _, h := range s.have {
		if h.off+h.n < cur.off || cur.off+cur.n < h.off {
			out = append(out, h)
			continue
		}
		e := max(h.off+h.n, cur.off+cur.n)
		cur.off = min(h.off, cur.off)
		cur.n = e - cur.off
	}
	out = append(out, cur)
	sort.Slice(out, func(i, j int) bool { return out[i].off < out[j].off })
	s.have = out
}

// ensure copies the input into the parts of [lo, hi) acc does not hold.
func (s *reduceState) ensure(lo, hi int64) {
	w := s.acc.w
	dst := s.acc.data.Bytes()
	src := s.col.data[s.col.off*w:]
	at := lo
	fill := func(a, b int64) {
		if a < b {
			copyLarge(dst[a*w:b*w], src[a*w:b*w])
		}
	}
	for _, h := range s.have {
		if h.off+h.n <= at || h.off >= hi {
			continue
		}
		fill(at, min(h.off, hi))
		at = max(at, h.off+h.n)
	}
	fill(at, hi)
	s.mark(lo, hi)
}

// recvCombine receives a piece from peer and combines it at lo. A type or
// length mismatch aborts the collective on every member.
func (s *reduceState) recvCombine(ctx context.Context, peer int, step uint8, lo, n int64, accLeft bool) error {
	g, err := s.c.recv(ctx, s.op, peer, s.tag(step))
	if err != nil {
		return err
	}
	defer g.release()
	if len(g.arrs) != 1 {
		return s.c.failColl(s.tag(step), protoErr(s.op, s.c.rank, peer, "expected one array"))
	}
	in, err := columnOf(g.arrs[0])
	if err != nil || !arrow.TypeEqual(in.dt, s.col.dt) || in.n != n || g.aux != s.col.n || len(g.fields) != 0 {
		what := fmt.Sprintf("%d elements of %s of an array of %d", g.arrs[0].Len(), g.arrs[0].DataType(), g.aux)
		if at := segmentAt(g.fields); at >= 0 {
			what += fmt.Sprintf(" (a pipelined tree segment at element %d)", at)
		}
		return s.c.failColl(s.tag(step), &PeerError{Op: s.op, Rank: s.c.rank, Peer: peer,
			Err: fmt.Errorf("%w: got %s, want %d of %s of an array of %d", ErrType, what, n, s.col.dt, s.col.n)})
	}
	switch s.covered(lo, lo+n) {
	case 0:
		combineFrom(s.acc, lo, s.col, in, accLeft, s.k)
		s.mark(lo, lo+n)
	case 1:
		s.ensure(lo, lo+n)
		fallthrough
	default:
		combine(s.acc, lo, in, accLeft, s.k)
	}
	return nil
}

// combineFrom writes acc[lo, lo+in.n) = own[lo..] op in (own on the left
// when accLeft); acc's validity already holds own's.
func combineFrom(acc *assembler, lo int64, own, in column, accLeft bool, k kernel) {
	w := acc.w
	combineWith(acc, lo, own.data[(own.off+lo)*w:(own.off+lo+in.n)*w], in, accLeft, k)
}

// sendRange sends elements [lo, hi) of the partial result: the input itself
// where nothing was combined yet.
func (s *reduceState) sendRange(ctx context.Context, peer int, step uint8, lo, hi int64) error {
	switch s.covered(lo, hi) {
	case 0:
		// outside combined ranges acc's validity still equals the input's
		return s.c.send(ctx, s.op, peer, s.tag(step), s.partValue(s.col.slice(lo, hi)), nil)
	case 1:
		s.ensure(lo, hi)
	}
	return s.c.send(ctx, s.op, peer, s.tag(step), s.partValue(s.acc.column().slice(lo, hi)), nil)
}

// partValue is a piece of the partial result: its header names the length
// of the whole array (aux), which recvCombine checks, so that a piece of
// the same size from an array of another length is refused.
func (s *reduceState) partValue(col column) value {
	v := arrayValue(col)
	v.aux = s.col.n
	return v
}

// segBytes is the piece size of reduction transfers over sockets.
const segBytes = 2 << 20

// segments cuts [lo, hi) into the pieces sent to peer as separate
// messages: over a socket pieces of segBytes, so that the receiver combines
// one while the next arrives; one piece on the same node (descriptors).
// Both sides compute the same cut.
func (s *reduceState) segments(peer int, lo, hi int64) []span {
	per := max(1, segBytes/width(s.col.dt))
	if s.c.w.t.SameNode(s.c.ranks[peer]) || hi-lo <= per {
		return []span{{lo, hi - lo}}
	}
	var out []span
	for a := lo; a < hi; a += per {
		out = append(out, span{a, min(per, hi-a)})
	}
	return out
}

// exchange sends elements [sLo, sHi) of the partial to peer and hands the
// pieces of [rLo, rHi) that peer sends back to recv, in order. The ranges
// must be disjoint. Over a socket the send runs beside the receives, so
// that combining one piece overlaps the transfer of the next.
func (s *reduceState) exchange(ctx context.Context, peer int, step uint8, sLo, sHi, rLo, rHi int64, recv func(lo, hi int64) error) error {
	out, in := s.segments(peer, sLo, sHi), s.segments(peer, rLo, rHi)
	if s.covered(sLo, sHi) == 1 {
		s.ensure(sLo, sHi) // before the receives change acc
	}
	src := s.col // outside combined ranges acc's validity equals the input's
	if s.covered(sLo, sHi) == 2 {
		src = s.acc.column()
	}
	send := func() error {
		for _, sg := range out {
			if err := s.c.send(ctx, s.op, peer, s.tag(step), s.partValue(src.slice(sg.off, sg.off+sg.n)), nil); err != nil {
				return err
			}
		}
		return nil
	}
	receive := func() error {
		for _, sg := range in {
			if err := recv(sg.off, sg.off+sg.n); err != nil {
				return err
			}
		}
		return nil
	}
	// Concurrently only without validity: bitmap bytes at the border of
	// the two ranges may be shared.
	if len(out) == 1 && len(in) == 1 || src.valid != nil {
		if err := send(); err != nil {
			return err
		}
		return receive()
	}
	errc := make(chan error, 1)
	go func() { errc <- send() }()
	rerr := receive()
	if serr := <-errc; serr != nil {
		return serr
	}
	return rerr
}

// foldIn runs step 1 of the documented order. It reports whether this rank
// continues (false: it folded out).
func (s *reduceState) foldIn(ctx context.Context, f fold) (bool, error) {
	r := s.c.rank
	if f.newRank < 0 {
		return false, s.sendRange(ctx, r-1, 0, 0, s.col.n)
	}
	if r < 2*f.rem {
		return true, s.recvCombine(ctx, r+1, 0, 0, s.col.n, true)
	}
	return true, nil
}

// halve runs recursive halving; afterwards the rank holds its block.
func (s *reduceState) halve(ctx context.Context, f fold) error {
	for i, st := range halving(s.col.n, f.p2, f.newRank) {
		peer, step, accLeft := f.oldRank(st.partner), uint8(1+i), f.newRank < st.partner
		if err := s.exchange(ctx, peer, step, st.sendLo, st.sendHi, st.keepLo, st.keepHi, func(lo, hi int64) error {
			return s.recvCombine(ctx, peer, step, lo, hi-lo, accLeft)
		}); err != nil {
			return err
		}
	}
	return nil
}

func (s *reduceState) finish() arrow.Array {
	s.ensure(0, s.col.n)
	a := s.acc.finish()
	s.acc = nil
	return a
}

func (s *reduceState) release() {
	if s.acc != nil {
		s.acc.release()
	}
	for _, a := range s.old {
		a.release()
	}
	s.old = nil
}

// Reduce combines every rank's arr element-wise with o, in the fixed order
// documented in plan.go, and returns the result on root (nil elsewhere).
// All ranks must pass arrays of one type and length; otherwise root
// returns ErrType for sure (from the rank that found it, or its abort),
// also when their lengths straddle the large threshold and they picked
// different algorithms: every algorithm's first message on a link of the
// binomial tree shares a step (linkStep) and names the whole length. As
// with MPI_Reduce, another rank may return before the mismatch is found
// (the pipelined tree's senders wait for no end from their parent; the
// other algorithms' do, settle) and then returns nil and no error; a rank
// never returns a result but root. As MPI_Reduce's send buffer, arr may
// be written again as soon as Reduce returned on this rank: a rank whose
// input went to its parent by reference (it lies in this rank's arena)
// returns only once the parent has combined it. Small payloads:
// fold, binomial tree to rank 0, then to root. Large: fold, recursive
// halving, blocks to root.
func (c *Comm) Reduce(ctx context.Context, root int, arr arrow.Array, o Op) (arrow.Array, error) {
	tag, err := c.nextRooted("reduce", root)
	if err != nil {
		return nil, err
	}
	s, err := c.newReduce("reduce", arr, o, tag)
	if err != nil {
		return nil, err
	}
	defer s.release()
	p, r := len(c.ranks), c.rank
	if p == 1 {
		return s.finish(), nil
	}
	f := makeFold(p, r)
	const toRoot = 60
	d := c.decide(opReduce, bytesOf(s.col), true)
	alg := d.alg
	if alg == AlgTree {
		return s.reduceTreeRooted(ctx, root, d.segment)
	}
	if alg == AlgBinomial {
		on, err := s.foldIn(ctx, f)
		if err != nil {
			return nil, err
		}
		if on {
			for mask := 1; mask < f.p2; mask <<= 1 {
				if f.newRank&mask != 0 {
					if err := s.sendRange(ctx, f.oldRank(f.newRank-mask), maskStep(mask), 0, s.col.n); err != nil {
						return nil, err
					}
					break
				}
				if err := s.recvCombine(ctx, f.oldRank(f.newRank+mask), maskStep(mask), 0, s.col.n, true); err != nil {
					return nil, err
				}
			}
		}
		if err := s.settle(ctx); err != nil {
			return nil, err
		}
		switch {
		case r == 0 && root == 0:
			return s.finish(), nil
		case r == 0:
			return nil, s.sendRange(ctx, root, toRoot, 0, s.col.n)
		case r == root:
			g, err := c.recv(ctx, "reduce", 0, tag(toRoot))
			if err != nil {
				return nil, err
			}
			if len(g.arrs) != 1 {
				g.release()
				return nil, protoErr("reduce", r, 0, "expected one array")
			}
			return g.arrs[0], nil
		}
		return nil, nil
	}
	if alg == AlgOneRound {
		return s.oneRound(ctx, root)
	}
	if other := 1 - r; alg == AlgDirect {
		// Two ranks over a socket: the other input straight to root, cut
		// in pieces that root combines while the next arrives. Halving
		// would move as many bytes, in two rounds instead of one. Rank 1
		// sends first on step 1, binomial's link (linkStep): to root 0
		// its first piece, which root 0 then settles; root 1 an empty
		// piece, which rank 0 receives after its own. So a binomial peer
		// (its length below the threshold) meets this one there.
		if r == 1 && root == 1 {
			if err := s.c.send(ctx, s.op, 0, s.tag(linkStep(2, 1)), s.partValue(s.col.slice(0, 0)), nil); err != nil {
				return nil, err
			}
		}
		for i, sg := range s.segments(other, 0, s.col.n) {
			step := uint8(toRoot)
			if i == 0 && root == 0 {
				step = linkStep(2, 1)
			}
			if r != root {
				err = s.sendRange(ctx, root, step, sg.off, sg.off+sg.n)
			} else {
				err = s.recvCombine(ctx, other, step, sg.off, sg.n, r < other)
			}
			if err != nil {
				return nil, err
			}
		}
		switch {
		case r == 0 && root == 1:
			return nil, s.recvCombine(ctx, 1, linkStep(2, 1), 0, 0, true)
		case r == 1 && root == 0:
			return nil, s.settleWith(ctx, 0, nil)
		case r == 0:
			if err := s.settleWith(ctx, -1, []int{1}); err != nil {
				return nil, err
			}
		}
		return s.finish(), nil
	}
	// The folded-out ranks (only sending) wait for their partner's end,
	// so that a mismatch it finds fails them too (settleWith).
	on, err := s.foldIn(ctx, f)
	if err != nil {
		return nil, err
	}
	var fold []int
	if on && r < 2*f.rem {
		fold = []int{r + 1}
	}
	if on {
		if err := s.halve(ctx, f); err != nil {
			return nil, err
		}
		if r != root {
			lo, hi := block(s.col.n, f.p2, f.newRank)
			for _, sg := range s.segments(root, lo, hi) {
				if err := s.sendRange(ctx, root, toRoot, sg.off, sg.off+sg.n); err != nil {
					return nil, err
				}
			}
			return nil, s.settleWith(ctx, -1, fold)
		}
	}
	if r != root {
		return nil, s.settleWith(ctx, r-1, nil)
	}
	rootNR := makeFold(p, root).newRank
	for nr := 0; nr < f.p2; nr++ {
		if nr == rootNR {
			continue
		}
		lo, hi := block(s.col.n, f.p2, nr)
		for _, sg := range s.segments(f.oldRank(nr), lo, hi) {
			if err := s.recvPut(ctx, f.oldRank(nr), toRoot, sg.off, sg.off+sg.n); err != nil {
				return nil, err
			}
		}
	}
	parent := -1
	if !on {
		parent = r - 1
	}
	if err := s.settleWith(ctx, parent, fold); err != nil {
		return nil, err
	}
	return s.finish(), nil
}

// recvPut receives a finished block and copies it into acc.
func (s *reduceState) recvPut(ctx context.Context, peer int, step uint8, lo, hi int64) error {
	g, in, err := s.recvBlock(ctx, peer, step, lo, hi)
	if err != nil {
		return err
	}
	defer g.release()
	s.acc.put(lo, in)
	s.mark(lo, hi)
	return nil
}

// recvBlock receives a finished block [lo, hi) of the result; the caller
// releases g.
func (s *reduceState) recvBlock(ctx context.Context, peer int, step uint8, lo, hi int64) (*got, column, error) {
	g, err := s.c.recv(ctx, s.op, peer, s.tag(step))
	if err != nil {
		return nil, column{}, err
	}
	if len(g.arrs) != 1 {
		g.release()
		return nil, column{}, s.c.failColl(s.tag(step), protoErr(s.op, s.c.rank, peer, "expected one array"))
	}
	in, err := columnOf(g.arrs[0])
	if err != nil || !arrow.TypeEqual(in.dt, s.col.dt) || in.n != hi-lo {
		err := s.c.failColl(s.tag(step), protoErr(s.op, s.c.rank, peer, "block of %d elements of %s, want %d of %s", g.arrs[0].Len(), g.arrs[0].DataType(), hi-lo, s.col.dt))
		g.release()
		return nil, column{}, err
	}
	return g, in, nil
}

// blockSrc is block [lo, hi) of a result, computed by rank peer.
type blockSrc struct {
	peer   int
	lo, hi int64
}

// gatherBlocks receives from step the blocks of the result that other
// ranks computed (this rank's own are in acc) and returns the result:
// stitched from the blocks where they lie in arenas (no copy), else copied
// into acc.
func (s *reduceState) gatherBlocks(ctx context.Context, srcs []blockSrc, step uint8) (arrow.Array, error) {
	var blocks []stitchBlock
	ins := make([]column, len(srcs))
	defer func() {
		for _, b := range blocks {
			b.release()
		}
	}()
	nulls := false
	for i, bs := range srcs {
		if bs.lo >= bs.hi {
			continue
		}
		if bs.peer == s.c.rank {
			mine := s.acc.column()
			nulls = nulls || mine.valid != nil
			buf := s.acc.data
			buf.Retain()
			blocks = append(blocks, stitchBlock{lo: bs.lo, data: mine.data[bs.lo*s.acc.w : bs.hi*s.acc.w], release: buf.Release})
			continue
		}
		g, in, err := s.recvBlock(ctx, bs.peer, step, bs.lo, bs.hi)
		if err != nil {
			return nil, err
		}
		nulls = nulls || in.valid != nil
		blocks = append(blocks, stitchBlock{lo: bs.lo, data: in.data[in.off*s.acc.w : (in.off+in.n)*s.acc.w], release: g.release})
		ins[i] = in
	}
	if !nulls {
		if arr, ok := s.c.w.stitch(s.col.dt, s.col.n, append([]stitchBlock(nil), blocks...)); ok {
			blocks = nil // the array releases them
			return arr, nil
		}
	}
	for i, bs := range srcs {
		if bs.peer != s.c.rank && bs.lo < bs.hi {
			s.acc.put(bs.lo, ins[i])
			s.mark(bs.lo, bs.hi)
		}
	}
	return s.finish(), nil
}

// Allreduce is Reduce with the result on every rank, bit-identical on all
// of them. Small payloads: fold, recursive doubling, unfold. Large: fold,
// recursive halving (reduce-scatter), recursive doubling allgather, unfold.
func (c *Comm) Allreduce(ctx context.Context, arr arrow.Array, o Op) (arrow.Array, error) {
	tag, err := c.next()
	if err != nil {
		return nil, err
	}
	s, err := c.newReduce("allreduce", arr, o, tag)
	if err != nil {
		return nil, err
	}
	defer s.release()
	p, r := len(c.ranks), c.rank
	if p == 1 {
		return s.finish(), nil
	}
	d := c.decide(opAllreduce, bytesOf(s.col), true)
	alg := d.alg
	switch alg {
	case AlgOneRound:
		return s.oneRound(ctx, -1)
	case AlgTree:
		return s.allreduceTree(ctx, d.segment, d.down == AlgDirect)
	}
	f := makeFold(p, r)
	const unfold = 62
	on, err := s.foldIn(ctx, f)
	if err != nil {
		return nil, err
	}
	if !on {
		g, err := c.recv(ctx, "allreduce", r-1, tag(unfold))
		if err != nil {
			return nil, err
		}
		if len(g.arrs) != 1 {
			g.release()
			return nil, protoErr("allreduce", r, r-1, "expected one array")
		}
		return g.arrs[0], nil
	}
	if alg == AlgDoubling {
		step := uint8(1)
		for mask := 1; mask < f.p2; mask <<= 1 {
			partner := f.newRank ^ mask
			peer := f.oldRank(partner)
			if err := s.sendRange(ctx, peer, step, 0, s.col.n); err != nil {
				return nil, err
			}
			if c.shm(peer) {
				s.rebase() // peer aliases what was just sent
			}
			if err := s.recvCombine(ctx, peer, step, 0, s.col.n, f.newRank < partner); err != nil {
				return nil, err
			}
			step++
		}
	} else {
		if err := s.halve(ctx, f); err != nil {
			return nil, err
		}
		steps := halving(s.col.n, f.p2, f.newRank)
		for i := len(steps) - 1; i >= 0; i-- {
			st := steps[i]
			peer, step := f.oldRank(st.partner), uint8(30+i)
			if err := s.exchange(ctx, peer, step, st.keepLo, st.keepHi, st.sendLo, st.sendHi, func(lo, hi int64) error {
				return s.recvPut(ctx, peer, step, lo, hi)
			}); err != nil {
				return nil, err
			}
		}
	}
	if r < 2*f.rem {
		if err := s.sendRange(ctx, r+1, unfold, 0, s.col.n); err != nil {
			return nil, err
		}
	}
	return s.finish(), nil
}

// ReduceScatter reduces every rank's arr element-wise with o (the same
// fixed order as Reduce, so results are bit-identical to Reduce's) and gives
// rank i elements [displ(i), displ(i)+counts[i]) of the result; nil counts
// split evenly. Every rank passes the same counts. Algorithm: fold, recursive
// halving (each surviving rank ends with one block of the result), then
// every block is cut at the count boundaries and the pieces go straight to
// their ranks: the payload crosses the network about once.
func (c *Comm) ReduceScatter(ctx context.Context, arr arrow.Array, o Op, counts []int64) (arrow.Array, error) {
	const op = "reducescatter"
	tag, err := c.next()
	if err != nil {
		return nil, err
	}
	s, err := c.newReduce(op, arr, o, tag)
	if err != nil {
		return nil, err
	}
	defer s.release()
	p, r, n := len(c.ranks), c.rank, s.col.n
	if counts == nil {
		counts = evenCounts(n, p)
	}
	if err := checkCounts(op, counts, p, n); err != nil {
		return nil, c.failColl(tag(0), err)
	}
	if p == 1 {
		return s.finish(), nil
	}
	f := makeFold(p, r)
	on, err := s.foldIn(ctx, f)
	if err != nil {
		return nil, err
	}
	if on {
		if err := s.halve(ctx, f); err != nil {
			return nil, err
		}
	}
	const redist = 70
	ds := displs(counts)
	var bLo, bHi int64
	if on {
		bLo, bHi = block(n, f.p2, f.newRank)
	}
	for q := 0; q < p; q++ {
		lo, hi := max(bLo, ds[q]), min(bHi, ds[q]+counts[q])
		if q == r || lo >= hi {
			continue
		}
		if err := s.sendRange(ctx, q, redist, lo, hi); err != nil {
			return nil, err
		}
	}
	myLo, myHi := ds[r], ds[r]+counts[r]
	out := newAssembler(s.col.dt, counts[r], c.w.opts.mem)
	for nr := 0; nr < f.p2; nr++ {
		blo, bhi := block(n, f.p2, nr)
		lo, hi := max(blo, myLo), min(bhi, myHi)
		if lo >= hi {
			continue
		}
		q := f.oldRank(nr)
		if q == r {
			s.ensure(lo, hi)
			out.put(lo-myLo, s.acc.column().slice(lo, hi))
			continue
		}
		g, err := c.recv(ctx, op, q, tag(redist))
		if err != nil {
			out.release()
			return nil, err
		}
		var in column
		if len(g.arrs) == 1 {
			in, err = columnOf(g.arrs[0])
		}
		if len(g.arrs) != 1 || err != nil || in.n != hi-lo || !arrow.TypeEqual(in.dt, s.col.dt) {
			g.release()
			out.release()
			return nil, c.failColl(tag(redist), protoErr(op, r, q, "piece [%d, %d) of the result: wrong length or type", lo, hi))
		}
		out.put(lo-myLo, in)
		g.release()
	}
	return out.finish(), nil
}
