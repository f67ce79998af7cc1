package collective

import (
	"context"
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/bitutil"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// combine reduces in into acc's elements [lo, lo+in.n) in place. accLeft
// says whether acc holds the lower ranks' partial (the left operand). An
// element is null in the result if it is null on any rank.
func combine(acc *assembler, lo int64, in column, accLeft bool, k kernel) {
	w := acc.w
	dst := acc.data.Bytes()[lo*w : (lo+in.n)*w]
	src := in.data[in.off*w : (in.off+in.n)*w]
	if accLeft {
		k(dst, dst, src, in.n)
	} else {
		k(dst, src, dst, in.n)
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

// reduceState is one rank's running partial result.
type reduceState struct {
	c   *Comm
	op  string
	k   kernel
	col column
	acc *assembler
	tag func(uint8) uint64
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
	acc.put(0, col)
	return &reduceState{c: c, op: op, k: k, col: col, acc: acc, tag: tag}, nil
}

// recvCombine receives a piece from peer and combines it at lo.
func (s *reduceState) recvCombine(ctx context.Context, peer int, step uint8, lo, n int64, accLeft bool) error {
	g, err := s.c.recv(ctx, s.op, peer, s.tag(step))
	if err != nil {
		return err
	}
	defer g.release()
	if len(g.arrs) != 1 {
		return protoErr(s.op, s.c.rank, peer, "expected one array")
	}
	in, err := columnOf(g.arrs[0])
	if err != nil || !arrow.TypeEqual(in.dt, s.col.dt) || in.n != n {
		return &PeerError{Op: s.op, Rank: s.c.rank, Peer: peer, Err: fmt.Errorf("%w: got %d elements of %s, want %d of %s", ErrType, g.arrs[0].Len(), g.arrs[0].DataType(), n, s.col.dt)}
	}
	combine(s.acc, lo, in, accLeft, s.k)
	return nil
}

func (s *reduceState) sendRange(ctx context.Context, peer int, step uint8, lo, hi int64) error {
	return s.c.send(ctx, s.op, peer, s.tag(step), arrayValue(s.acc.column().slice(lo, hi)), nil)
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
		peer := f.oldRank(st.partner)
		if err := s.sendRange(ctx, peer, uint8(1+i), st.sendLo, st.sendHi); err != nil {
			return err
		}
		if err := s.recvCombine(ctx, peer, uint8(1+i), st.keepLo, st.keepHi-st.keepLo, f.newRank < st.partner); err != nil {
			return err
		}
	}
	return nil
}

func (s *reduceState) finish() arrow.Array { a := s.acc.finish(); s.acc = nil; return a }

func (s *reduceState) release() {
	if s.acc != nil {
		s.acc.release()
	}
}

func (c *Comm) large(arr arrow.Array) bool {
	return len(c.ranks) > 2 && int64(arr.Len())*width(arr.DataType()) >= c.w.opts.largeBytes
}

// Reduce combines every rank's arr element-wise with o, in the fixed order
// documented in plan.go, and returns the result on root (nil elsewhere).
// All ranks must pass arrays of one type and length. Small payloads: fold,
// binomial tree to rank 0, then to root. Large: fold, recursive halving,
// blocks to root.
func (c *Comm) Reduce(ctx context.Context, root int, arr arrow.Array, o Op) (arrow.Array, error) {
	tag, err := c.next()
	if err != nil {
		return nil, err
	}
	if err := c.checkRoot("reduce", root); err != nil {
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
	if !c.large(arr) {
		on, err := s.foldIn(ctx, f)
		if err != nil {
			return nil, err
		}
		if on {
			for mask := 1; mask < f.p2; mask <<= 1 {
				if f.newRank&mask != 0 {
					if err := s.sendRange(ctx, f.oldRank(f.newRank-mask), uint8(1+mask%64), 0, s.col.n); err != nil {
						return nil, err
					}
					break
				}
				if err := s.recvCombine(ctx, f.oldRank(f.newRank+mask), uint8(1+mask%64), 0, s.col.n, true); err != nil {
					return nil, err
				}
			}
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
	on, err := s.foldIn(ctx, f)
	if err != nil {
		return nil, err
	}
	if on {
		if err := s.halve(ctx, f); err != nil {
			return nil, err
		}
		if r != root {
			lo, hi := block(s.col.n, f.p2, f.newRank)
			return nil, s.sendRange(ctx, root, toRoot, lo, hi)
		}
	}
	if r != root {
		return nil, nil
	}
	rootNR := makeFold(p, root).newRank
	for nr := 0; nr < f.p2; nr++ {
		if nr == rootNR {
			continue
		}
		lo, hi := block(s.col.n, f.p2, nr)
		if err := s.recvPut(ctx, f.oldRank(nr), toRoot, lo, hi); err != nil {
			return nil, err
		}
	}
	return s.finish(), nil
}

// recvPut receives a finished block and copies it into acc.
func (s *reduceState) recvPut(ctx context.Context, peer int, step uint8, lo, hi int64) error {
	g, err := s.c.recv(ctx, s.op, peer, s.tag(step))
	if err != nil {
		return err
	}
	defer g.release()
	if len(g.arrs) != 1 {
		return protoErr(s.op, s.c.rank, peer, "expected one array")
	}
	in, err := columnOf(g.arrs[0])
	if err != nil || !arrow.TypeEqual(in.dt, s.col.dt) || in.n != hi-lo {
		return protoErr(s.op, s.c.rank, peer, "block of %d elements, want %d", g.arrs[0].Len(), hi-lo)
	}
	s.acc.put(lo, in)
	return nil
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
	if !c.large(arr) {
		step := uint8(1)
		for mask := 1; mask < f.p2; mask <<= 1 {
			partner := f.newRank ^ mask
			peer := f.oldRank(partner)
			if err := s.sendRange(ctx, peer, step, 0, s.col.n); err != nil {
				return nil, err
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
			peer := f.oldRank(st.partner)
			if err := s.sendRange(ctx, peer, uint8(30+i), st.keepLo, st.keepHi); err != nil {
				return nil, err
			}
			if err := s.recvPut(ctx, peer, uint8(30+i), st.sendLo, st.sendHi); err != nil {
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

// ReduceScatter reduces every rank's arr element-wise with o (same order as
// Reduce) and gives rank i elements [displ(i), displ(i)+counts[i]) of the
// result; nil counts split evenly. It is Reduce to rank 0 followed by
// Scatterv, so counts matter on rank 0.
func (c *Comm) ReduceScatter(ctx context.Context, arr arrow.Array, o Op, counts []int64) (arrow.Array, error) {
	if counts == nil && arr != nil {
		counts = evenCounts(int64(arr.Len()), len(c.ranks))
	}
	red, err := c.Reduce(ctx, 0, arr, o)
	if err != nil {
		return nil, err
	}
	if red != nil {
		defer red.Release()
	}
	return c.Scatterv(ctx, 0, red, counts)
}
