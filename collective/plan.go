package collective

import "math/bits"

// The pure core of the algorithms: who talks to whom in which step, and
// which element ranges move. No IO here; comm code executes these plans.
//
// Reduction order (the documented fixed order). Let P be the rank count,
// p2 the largest power of two <= P and rem = P - p2.
//
//  1. Fold: for i < rem, rank 2i+1 sends to rank 2i, which computes
//     x[2i] op x[2i+1]. The survivors get new ranks: 2i -> i for i < rem,
//     and r -> r - rem for r >= 2*rem.
//  2. Over the p2 new ranks, a binary tree with distance 1 first: at level
//     k the partial results of the groups of 2^k new ranks that differ in
//     bit k are combined, the lower group's partial on the left.
//
// For P = 8 this is ((x0 op x1) op (x2 op x3)) op ((x4 op x5) op (x6 op x7));
// for P = 5 it is ((x0 op x1) op x2) op (x3 op x4). Binomial reduce,
// recursive doubling and recursive halving (with distance 1 first) all
// realise exactly this tree, so a float sum is bit-identical whichever
// algorithm the size selects, and independent of arrival order.

// fold describes the fold step for rank r of p.
type fold struct {
	p2, rem int
	newRank int // -1: r folds out (sends to r-1, receives the result back)
}

func makeFold(p, r int) fold {
	p2 := 1
	for p2*2 <= p {
		p2 *= 2
	}
	f := fold{p2: p2, rem: p - p2}
	switch {
	case r < 2*f.rem && r%2 == 1:
		f.newRank = -1
	case r < 2*f.rem:
		f.newRank = r / 2
	default:
		f.newRank = r - f.rem
	}
	return f
}

// oldRank maps a new rank back to the communicator rank.
func (f fold) oldRank(nr int) int {
	if nr < f.rem {
		return 2 * nr
	}
	return nr + f.rem
}

// halvStep is one step of recursive halving for one new rank: keep
// [keepLo, keepHi), send [sendLo, sendHi) to partner and receive partner's
// part of the kept range.
type halvStep struct {
	partner        int
	keepLo, keepHi int64
	sendLo, sendHi int64
}

// halving plans recursive halving of n elements over p2 new ranks for new
// rank nr, distance 1 first. Reversed, the steps plan the recursive doubling
// allgather. The final kept range is nr's block of the result.
func halving(n int64, p2, nr int) []halvStep {
	var steps []halvStep
	lo, hi := int64(0), n
	for mask := 1; mask < p2; mask <<= 1 {
		mid := lo + (hi-lo)/2
		s := halvStep{partner: nr ^ mask}
		if nr&mask == 0 {
			s.keepLo, s.keepHi, s.sendLo, s.sendHi = lo, mid, mid, hi
		} else {
			s.keepLo, s.keepHi, s.sendLo, s.sendHi = mid, hi, lo, mid
		}
		lo, hi = s.keepLo, s.keepHi
		steps = append(steps, s)
	}
	return steps
}

// block returns the range new rank nr holds after halving.
func block(n int64, p2, nr int) (int64, int64) {
	st := halving(n, p2, nr)
	if len(st) == 0 {
		return 0, n
	}
	last := st[len(st)-1]
	return last.keepLo, last.keepHi
}

// evenCounts splits n elements over p ranks: the first n%p get one more.
func evenCounts(n int64, p int) []int64 {
	c := make([]int64, p)
	for i := range c {
		c[i] = n / int64(p)
		if int64(i) < n%int64(p) {
			c[i]++
		}
	}
	return c
}

// displs returns the prefix sums of counts.
func displs(counts []int64) []int64 {
	d := make([]int64, len(counts))
	for i := 1; i < len(counts); i++ {
		d[i] = d[i-1] + counts[i-1]
	}
	return d
}

// binomialBcast returns, for relative rank vr (0 is the root) of p, the
// relative parent (-1 for the root) and the children in send order.
func binomialBcast(p, vr int) (parent int, children []int) {
	parent = -1
	mask := 1
	for mask < p {
		if vr&mask != 0 {
			parent = vr - mask
			break
		}
		mask <<= 1
	}
	for mask >>= 1; mask > 0; mask >>= 1 {
		if vr+mask < p {
			children = append(children, vr+mask)
		}
	}
	return parent, children
}

// directBcast is the tree of a direct bcast: virtual rank 0 (root) is the
// parent of every other.
func directBcast(p, vr int) (parent int, children []int) {
	if vr != 0 {
		return 0, nil
	}
	for ch := 1; ch < p; ch++ {
		children = append(children, ch)
	}
	return -1, children
}

// reduceTree returns rank r's place in the documented order's tree over p
// ranks: the rank it sends its partial to (-1: r is rank 0, which ends
// with the result) and the ranks whose partials it combines, in order,
// each on the right of its running partial (the fold partner first, then
// the binomial tree's children at distance 1, 2, 4, ...). Running it
// segment by segment keeps every element's order: it is the same tree.
func reduceTree(p, r int) (parent int, children []int) {
	f := makeFold(p, r)
	if f.newRank < 0 {
		return r - 1, nil
	}
	if r < 2*f.rem {
		children = append(children, r+1)
	}
	parent = -1
	for mask := 1; mask < f.p2; mask <<= 1 {
		if f.newRank&mask != 0 {
			parent = f.oldRank(f.newRank - mask)
			break
		}
		children = append(children, f.oldRank(f.newRank+mask))
	}
	return parent, children
}

// linkStep is the step of the first message from rank r to its parent in
// the binomial tree of p ranks (reduceTree): 0 for a rank that folds into
// r-1, else 1+log2 of the mask that links it. It is the step halving and
// doubling use with that partner, so binomial, the pipelined tree,
// halving and doubling all meet there: ranks that picked different
// algorithms for one call (their lengths differ) find the mismatch on
// that message.
func linkStep(p, r int) uint8 {
	f := makeFold(p, r)
	if f.newRank < 0 {
		return 0
	}
	return maskStep(f.newRank & -f.newRank)
}

// maskStep is the step of the exchange across mask (a power of 2).
func maskStep(mask int) uint8 { return uint8(1 + bits.TrailingZeros(uint(mask))) }

// pipeSegments cuts n elements of w bytes into pieces of about seg bytes
// (a multiple of 64 elements, so that validity bitmaps split at whole
// bytes); every rank computes the same cut from the same n and seg. No
// elements are one empty segment: every link of the tree still carries a
// message, and its length check runs.
func pipeSegments(n, w, seg int64) []span {
	per := max(64, seg/max(w, 1)/64*64)
	if n == 0 {
		return []span{{0, 0}}
	}
	var out []span
	for lo := int64(0); lo < n; lo += per {
		out = append(out, span{lo, min(per, n-lo)})
	}
	return out
}
