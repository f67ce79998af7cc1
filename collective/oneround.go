package collective

import (
	"context"
	"fmt"
	"slices"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/bitutil"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// One-round reduction on one node. Every input is readable by every rank
// (arena descriptors), so each rank computes its own block of the result
// straight from all inputs, in the documented order (plan.go) evaluated
// chunk by chunk in cache: no intermediate partial is written to memory
// and the ranks wait for each other once instead of log2(p) times. The
// blocks, page aligned, are then stitched (stitch.go) by whoever needs
// them.

// Steps of the one-round reduction.
const (
	stepInputs = 50 // every input to every rank
	stepBlocks = 51 // blocks to root (Reduce) or to every rank (Allreduce)
)

// chunkBytes is the piece of a block combined through the whole tree at
// once: small enough that the partials stay in the L1/L2 cache.
const chunkBytes = 32 << 10

// pieceOf returns the element range of the result that rank i of p
// computes: even shares cut on page boundaries (align elements).
func pieceOf(n int64, p, i int, align int64) (int64, int64) {
	cut := func(i int) int64 {
		if i >= p {
			return n
		}
		return n * int64(i) / int64(p) / align * align
	}
	return cut(i), cut(i + 1)
}

// oneRound reduces on one node in one round and returns the result on
// root, or on every rank when root < 0.
func (s *reduceState) oneRound(ctx context.Context, root int) (arrow.Array, error) {
	c := s.c
	p, r, n := len(c.ranks), c.rank, s.col.n
	staged, unstage := c.stage(s.partValue(s.col))
	defer unstage()
	// The input to this rank's parent in the binomial tree goes on the
	// step binomial and doubling use on that link (linkStep), and the
	// children's come first: a rank that picked another algorithm for
	// this call (its length differs) meets this one there.
	_, children := reduceTree(p, r)
	step := func(from, to int) uint8 {
		if pa, _ := reduceTree(p, from); pa == to {
			return linkStep(p, from)
		}
		return stepInputs
	}
	for q := 0; q < p; q++ {
		if q != r {
			if err := c.send(ctx, s.op, q, s.tag(step(r, q)), staged, nil); err != nil {
				return nil, err
			}
		}
	}
	order := append([]int(nil), children...)
	for q := 0; q < p; q++ {
		if q != r && !slices.Contains(children, q) {
			order = append(order, q)
		}
	}
	ins := make([]column, p)
	ins[r] = s.col
	for _, q := range order {
		tag := s.tag(step(q, r))
		g, err := c.recv(ctx, s.op, q, tag)
		if err != nil {
			return nil, err
		}
		defer g.release()
		var in column
		if len(g.arrs) == 1 {
			in, err = columnOf(g.arrs[0])
		}
		if len(g.arrs) != 1 || err != nil || !arrow.TypeEqual(in.dt, s.col.dt) || in.n != n || g.aux != n || len(g.fields) != 0 {
			what := "not an array"
			if len(g.arrs) == 1 {
				what = fmt.Sprintf("%d elements of %s of an array of %d", g.arrs[0].Len(), g.arrs[0].DataType(), g.aux)
			}
			return nil, c.failColl(tag, &PeerError{Op: s.op, Rank: r, Peer: q,
				Err: fmt.Errorf("%w: input of rank %d: got %s, want %d elements of %s", ErrType, q, what, n, s.col.dt)})
		}
		ins[q] = in
	}
	lo, hi := pieceOf(n, p, r, s.align)
	s.combineAll(ins, lo, hi)
	var blocks []blockSrc
	for q := 0; q < p; q++ {
		qlo, qhi := pieceOf(n, p, q, s.align)
		blocks = append(blocks, blockSrc{peer: q, lo: qlo, hi: qhi})
	}
	if root >= 0 && r != root {
		return nil, s.sendRange(ctx, root, stepBlocks, lo, hi)
	}
	if root < 0 {
		for q := 0; q < p; q++ {
			if q != r {
				if err := s.sendRange(ctx, q, stepBlocks, lo, hi); err != nil {
					return nil, err
				}
			}
		}
	}
	return s.gatherBlocks(ctx, blocks, stepBlocks)
}

// combineAll writes elements [lo, hi) of the result into acc: for each
// chunk, the fold and the binary tree of plan.go over the inputs.
func (s *reduceState) combineAll(ins []column, lo, hi int64) {
	if lo >= hi {
		return
	}
	p := len(ins)
	f := makeFold(p, 0)
	w := s.acc.w
	chunk := max(1, chunkBytes/w)
	tmp := make([][]byte, f.p2)
	for j := range tmp {
		tmp[j] = make([]byte, chunk*w)
	}
	vals := make([][]byte, f.p2)
	dst := s.acc.data.Bytes()
	for a := lo; a < hi; a += chunk {
		m := min(chunk, hi-a)
		src := func(q int) []byte {
			c := ins[q]
			return c.data[(c.off+a)*w : (c.off+a+m)*w]
		}
		for j := 0; j < f.p2; j++ {
			q := f.oldRank(j)
			if j < f.rem {
				s.k(tmp[j][:m*w], src(q), src(q+1), m)
				vals[j] = tmp[j][:m*w]
			} else {
				vals[j] = src(q)
			}
		}
		for d := 1; d < f.p2; d <<= 1 {
			for j := 0; j+d < f.p2; j += 2 * d {
				out := tmp[j][:m*w]
				if 2*d == f.p2 {
					out = dst[a*w : (a+m)*w]
				}
				s.k(out, vals[j], vals[j+d], m)
				vals[j] = out
			}
		}
	}
	// an element is null if it is null on any rank
	for _, in := range ins {
		if in.valid == nil {
			continue
		}
		if s.acc.valid == nil {
			s.acc.valid = memory.NewResizableBuffer(s.acc.mem)
			s.acc.valid.Resize(int((s.acc.n + 7) / 8))
			bitutil.SetBitsTo(s.acc.valid.Bytes(), 0, s.acc.n, true)
		}
		v := s.acc.valid.Bytes()
		bitutil.BitmapAnd(v, in.valid, lo, in.off+lo, v, lo, hi-lo)
	}
	s.mark(lo, hi)
}
