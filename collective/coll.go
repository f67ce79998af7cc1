package collective

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
)

// GatherOption changes what Gather and Allgather return.
type GatherOption func(*gatherOpts)

type gatherOpts struct{ contiguous bool }

// Contiguous makes Gather/Allgather copy the pieces into one array: the
// returned Chunked then has exactly one chunk.
func Contiguous() GatherOption { return func(o *gatherOpts) { o.contiguous = true } }

// applyGather returns the gather options opts set.
func applyGather(opts []GatherOption) gatherOpts {
	var o gatherOpts
	for _, f := range opts {
		f(&o)
	}
	return o
}

func bytesOf(c column) int64 { return c.n * width(c.dt) }

func protoErr(op string, rank, peer int, format string, args ...any) error {
	return &PeerError{Op: op, Rank: rank, Peer: peer, Err: fmt.Errorf("%w: "+format, append([]any{ErrProtocol}, args...)...)}
}

// Bcast sends root's arr to every rank and returns it (on root: arr,
// retained). The algorithm comes from the decision table (decide.go):
// shared memory when every member is on this node (root stages the data in
// its arena once and sends a descriptor to each rank: receivers alias it);
// across nodes with several members on a node, a pipelined chain of node
// leaders (chain.go) and descriptors inside each node; one member per node:
// a binomial tree for small payloads or 2 ranks, the chain for large ones.
// Non-roots do not know the size: what the root chose beyond the tree is
// announced through the binomial tree.
func (c *Comm) Bcast(ctx context.Context, root int, arr arrow.Array) (arrow.Array, error) {
	tag, err := c.nextRooted("bcast", root)
	if err != nil {
		return nil, err
	}
	var v value
	bytes := int64(-1)
	if c.rank == root {
		col, err := columnOf(arr)
		if err != nil {
			return nil, err
		}
		v = arrayValue(col)
		bytes = bytesOf(col)
	}
	// Non-roots decide without the size: chain and shm are chosen from the
	// layout alone, then every member runs them at once; anything else
	// starts with the binomial tree that carries root's choice.
	d := c.decide(opBcast, bytes, c.rank == root)
	var g *got
	switch blind := c.decide(opBcast, -1, false).alg; {
	case blind == AlgChain:
		g, err = c.bcastChain(ctx, "bcast", root, v, d.segment, tag)
	case c.rank == root && d.alg == AlgChain:
		v.aux = auxChain
		fallthrough
	default:
		if c.rank == root && d.alg == AlgVanDeGeijn {
			v.aux = auxVanDeGeijn
		}
		shape := treeBinomial
		switch {
		case d.alg == AlgShm:
			shape = treeShm
		case blind == AlgDirect:
			shape = treeDirect
		}
		g, err = c.bcastValue(ctx, "bcast", root, v, shape, d.segment, tag)
	}
	if err != nil {
		return nil, err
	}
	if c.rank == root {
		arr.Retain()
		return arr, nil
	}
	if g == nil || g.kind != kindArray || len(g.arrs) != 1 {
		if g != nil {
			g.release()
		}
		return nil, protoErr("bcast", c.rank, root, "expected one array")
	}
	return g.arrs[0], nil
}

// What a bcast's root announces through the binomial tree in aux.
const (
	auxVanDeGeijn = 1
	auxChain      = 2
)

// bcastShape is the tree of a bcast that never chains (records, chunked
// arrays): the same on every member.
func (c *Comm) bcastShape() bcastTree {
	switch {
	case c.allShm():
		return treeShm
	case c.decide(opBcast, -1, false).alg == AlgDirect:
		return treeDirect
	}
	return treeBinomial
}

// The shapes of bcastValue's tree.
type bcastTree int

const (
	treeBinomial bcastTree = iota
	// treeShm: root sends a descriptor into its arena to every rank.
	treeShm
	// treeDirect (AlgDirect): root sends to every rank at once, one writer
	// per peer (sendEach).
	treeDirect
)

// bcastValue moves v from root to all. Non-roots get the value; root gets nil.
// With treeShm (every member on this node, arenas) root sends a descriptor
// to every rank; otherwise a binomial tree, or root straight to everyone
// at once (treeDirect), carries v, or what root announces in v.aux (van de
// Geijn; the chain with segments of seg bytes).
func (c *Comm) bcastValue(ctx context.Context, op string, root int, v value, shape bcastTree, seg int64, tag func(uint8) uint64) (*got, error) {
	p, r := len(c.ranks), c.rank
	if p == 1 {
		return nil, nil
	}
	if shape == treeShm {
		if r != root {
			return c.recv(ctx, op, root, tag(0))
		}
		staged, done := c.stage(v)
		defer done()
		for q := 0; q < p; q++ {
			if q != root {
				if err := c.send(ctx, op, q, tag(0), staged, nil); err != nil {
					return nil, err
				}
			}
		}
		return nil, nil
	}
	vr := (r - root + p) % p
	parent, children := binomialBcast(p, vr)
	if shape == treeDirect {
		parent, children = directBcast(p, vr)
	}
	// toChildren sends w to every child: at once in the direct tree, in
	// the binomial order (the farthest subtree first) otherwise.
	toChildren := func(w value) error {
		qs := make([]int, len(children))
		for i, ch := range children {
			qs[i] = (ch + root) % p
		}
		if shape == treeDirect {
			return c.sendEach(ctx, op, qs, tag(0), func(int) value { return w })
		}
		for _, q := range qs {
			if err := c.send(ctx, op, q, tag(0), w, nil); err != nil {
				return err
			}
		}
		return nil
	}
	var g *got
	if parent >= 0 {
		var err error
		if g, err = c.recv(ctx, op, (parent+root)%p, tag(0)); err != nil {
			return nil, err
		}
		if g.kind == kindNone && (g.aux == auxVanDeGeijn || g.aux == auxChain) {
			// van de Geijn or the chain announced through the tree: pass
			// it on, then take part.
			if err := toChildren(value{aux: g.aux}); err != nil {
				return nil, err
			}
			if g.aux == auxChain {
				return c.bcastChain(ctx, op, root, value{}, 0, tag)
			}
			first, err := c.recv(ctx, op, root, tag(2))
			if err != nil {
				return nil, err
			}
			return c.vdgRecv(ctx, op, root, first, tag)
		}
		v = value{kind: g.kind, aux: g.aux, fields: g.fields}
		for _, a := range g.arrs {
			col, err := columnOf(a)
			if err != nil {
				g.release()
				return nil, err
			}
			v.cols = append(v.cols, col)
		}
	} else if v.kind == kindArray && (v.aux == auxVanDeGeijn || v.aux == auxChain) {
		if err := toChildren(value{aux: v.aux}); err != nil {
			return nil, err
		}
		if v.aux == auxChain {
			v.aux = 0
			return c.bcastChain(ctx, op, root, v, seg, tag)
		}
		return nil, c.vdgRoot(ctx, op, v.cols[0], tag)
	}
	if err := toChildren(v); err != nil {
		if g != nil {
			g.release()
		}
		return nil, err
	}
	return g, nil
}

// vdgRoot is the root side of van de Geijn: send chunk q to rank q (the
// first message, aux=1, carries the total length in the chunk header's
// fields), then take part in the ring.
func (c *Comm) vdgRoot(ctx context.Context, op string, col column, tag func(uint8) uint64) error {
	p, r := len(c.ranks), c.rank
	counts := evenCounts(col.n, p)
	ds := displs(counts)
	for q := 0; q < p; q++ {
		if q == r {
			continue
		}
		v := arrayValue(col.slice(ds[q], ds[q]+counts[q]))
		v.aux = 1
		v.fields = []fieldMeta{{name: fmt.Sprint(col.n)}}
		if err := c.send(ctx, op, q, tag(2), v, nil); err != nil {
			return err
		}
	}
	for s := 0; s < p-1; s++ {
		si := (r - s + p) % p
		if err := c.send(ctx, op, (r+1)%p, tag(1), arrayValue(col.slice(ds[si], ds[si]+counts[si])), nil); err != nil {
			return err
		}
		g, err := c.recv(ctx, op, (r-1+p)%p, tag(1))
		if err != nil {
			return err
		}
		g.release()
	}
	return nil
}

// vdgRecv is a non-root's side of van de Geijn, starting from its chunk.
func (c *Comm) vdgRecv(ctx context.Context, op string, root int, first *got, tag func(uint8) uint64) (*got, error) {
	p, r := len(c.ranks), c.rank
	var n int64
	if len(first.fields) != 1 || len(first.arrs) != 1 {
		first.release()
		return nil, protoErr(op, r, root, "bad scatter chunk")
	}
	if _, err := fmt.Sscan(first.fields[0].name, &n); err != nil || n < 0 {
		first.release()
		return nil, protoErr(op, r, root, "bad total length %q", first.fields[0].name)
	}
	dt := first.arrs[0].DataType()
	counts := evenCounts(n, p)
	ds := displs(counts)
	asm := newAssembler(dt, n, c.w.opts.mem)
	put := func(idx int, from int, a arrow.Array) error {
		col, err := columnOf(a)
		if err != nil || col.n != counts[idx] || !arrow.TypeEqual(col.dt, dt) {
			return c.failColl(tag(1), protoErr(op, r, from, "chunk %d: %d elements of %s, want %d of %s", idx, a.Len(), a.DataType(), counts[idx], dt))
		}
		asm.put(ds[idx], col)
		return nil
	}
	err := put(r, root, first.arrs[0])
	first.release()
	if err != nil {
		asm.release()
		return nil, err
	}
	for s := 0; s < p-1; s++ {
		si, ri := (r-s+p)%p, (r-s-1+p)%p
		if err := c.send(ctx, op, (r+1)%p, tag(1), arrayValue(asm.column().slice(ds[si], ds[si]+counts[si])), nil); err != nil {
			asm.release()
			return nil, err
		}
		g, err := c.recv(ctx, op, (r-1+p)%p, tag(1))
		if err != nil {
			asm.release()
			return nil, err
		}
		if len(g.arrs) != 1 {
			g.release()
			asm.release()
			return nil, protoErr(op, r, (r-1+p)%p, "expected one chunk")
		}
		err = put(ri, (r-1+p)%p, g.arrs[0])
		g.release()
		if err != nil {
			asm.release()
			return nil, err
		}
	}
	return &got{kind: kindArray, arrs: []arrow.Array{asm.finish()}}, nil
}

// Scatter splits root's arr into Size() near-equal parts (the first
// len%Size() ranks get one element more) and gives part i to rank i.
func (c *Comm) Scatter(ctx context.Context, root int, arr arrow.Array) (arrow.Array, error) {
	var counts []int64
	if c.rank == root && arr != nil {
		counts = evenCounts(int64(arr.Len()), len(c.ranks))
	}
	return c.Scatterv(ctx, root, arr, counts)
}

// Scatterv gives elements [displ(i), displ(i)+counts[i]) of root's arr to
// rank i; arr and counts matter only on root. Parts are slices of root's
// buffers, sent without copying (through the arena on one node).
func (c *Comm) Scatterv(ctx context.Context, root int, arr arrow.Array, counts []int64) (arrow.Array, error) {
	tag, err := c.nextRooted("scatter", root)
	if err != nil {
		return nil, err
	}
	if c.rank != root {
		g, err := c.recv(ctx, "scatter", root, tag(0))
		if err != nil {
			return nil, err
		}
		if g.kind != kindArray || len(g.arrs) != 1 {
			g.release()
			return nil, protoErr("scatter", c.rank, root, "expected one array")
		}
		return g.arrs[0], nil
	}
	col, err := columnOf(arr)
	if err != nil {
		return nil, err
	}
	if err := checkCounts("scatterv", counts, len(c.ranks), col.n); err != nil {
		return nil, err
	}
	ds := displs(counts)
	src := col
	if c.allShm() {
		v, done := c.stage(arrayValue(col))
		defer done()
		src = v.cols[0]
	}
	// Across nodes every piece goes at once, one writer per peer
	// (sendEach); on one node they are small descriptors into the arena.
	piece := func(q int) value { return arrayValue(src.slice(ds[q], ds[q]+counts[q])) }
	if c.allShm() {
		for _, q := range c.others() {
			if err := c.send(ctx, "scatter", q, tag(0), piece(q), nil); err != nil {
				return nil, err
			}
		}
	} else if err := c.sendEach(ctx, "scatter", c.others(), tag(0), piece); err != nil {
		return nil, err
	}
	return array.NewSlice(arr, ds[root], ds[root]+counts[root]), nil
}

func checkCounts(op string, counts []int64, p int, n int64) error {
	if len(counts) != p {
		return fmt.Errorf("%w: %s: %d counts for %d ranks", ErrArgument, op, len(counts), p)
	}
	sum := int64(0)
	for i, k := range counts {
		if k < 0 {
			return fmt.Errorf("%w: %s: counts[%d] = %d", ErrArgument, op, i, k)
		}
		sum += k
	}
	if sum != n {
		return fmt.Errorf("%w: %s: counts sum to %d, array has %d elements", ErrArgument, op, sum, n)
	}
	return nil
}

// Gather collects every rank's arr on root, in rank order, as a chunked
// array whose chunks alias the received buffers (no copy), or as one chunk
// with Contiguous(). Non-roots get nil. The element types must agree.
func (c *Comm) Gather(ctx context.Context, root int, arr arrow.Array, opts ...GatherOption) (*arrow.Chunked, error) {
	return c.gather(ctx, "gather", root, arr, nil, opts)
}

// Gatherv is Gather where root also checks that rank i sent counts[i]
// elements (counts matter only on root).
func (c *Comm) Gatherv(ctx context.Context, root int, arr arrow.Array, counts []int64, opts ...GatherOption) (*arrow.Chunked, error) {
	if c.rank == root && len(counts) != len(c.ranks) {
		return nil, fmt.Errorf("%w: gatherv: %d counts for %d ranks", ErrArgument, len(counts), len(c.ranks))
	}
	return c.gather(ctx, "gatherv", root, arr, counts, opts)
}

func (c *Comm) gather(ctx context.Context, op string, root int, arr arrow.Array, counts []int64, opts []GatherOption) (*arrow.Chunked, error) {
	tag, err := c.nextRooted(op, root)
	if err != nil {
		return nil, err
	}
	col, err := columnOf(arr)
	if err != nil {
		return nil, err
	}
	if c.rank != root {
		v := arrayValue(col)
		if c.shm(root) {
			staged, done := c.stage(v)
			defer done()
			v = staged
		}
		return nil, c.send(ctx, op, root, tag(0), v, nil)
	}
	parts := make([]arrow.Array, len(c.ranks))
	defer func() {
		for _, a := range parts {
			if a != nil {
				a.Release()
			}
		}
	}()
	for q := range c.ranks {
		if q == root {
			arr.Retain()
			parts[q] = arr
			continue
		}
		g, err := c.recv(ctx, op, q, tag(0))
		if err != nil {
			return nil, err
		}
		if len(g.arrs) != 1 {
			g.release()
			return nil, protoErr(op, c.rank, q, "expected one array")
		}
		parts[q] = g.arrs[0]
		if !arrow.TypeEqual(parts[q].DataType(), col.dt) {
			return nil, c.failColl(tag(0), &PeerError{Op: op, Rank: c.rank, Peer: q, Err: fmt.Errorf("%w: got %s, root has %s", ErrType, parts[q].DataType(), col.dt)})
		}
	}
	for q, k := range counts {
		if int64(parts[q].Len()) != k {
			return nil, c.failColl(tag(0), &PeerError{Op: op, Rank: c.rank, Peer: q, Err: fmt.Errorf("%w: sent %d elements, counts[%d] = %d", ErrArgument, parts[q].Len(), q, k)})
		}
	}
	return c.chunked(col.dt, parts, opts)
}

// chunked builds the result of a gather (references to parts are taken).
func (c *Comm) chunked(dt arrow.DataType, parts []arrow.Array, opts []GatherOption) (*arrow.Chunked, error) {
	if !applyGather(opts).contiguous {
		return arrow.NewChunked(dt, parts), nil
	}
	one, err := c.concat(dt, parts)
	if err != nil {
		return nil, err
	}
	defer one.Release()
	return arrow.NewChunked(dt, []arrow.Array{one}), nil
}

// concat copies parts, arrays of type dt, into one new array.
func (c *Comm) concat(dt arrow.DataType, parts []arrow.Array) (arrow.Array, error) {
	n := int64(0)
	for _, a := range parts {
		n += int64(a.Len())
	}
	asm := newAssembler(dt, n, c.w.opts.mem)
	at := int64(0)
	for _, a := range parts {
		col, err := columnOf(a)
		if err != nil {
			asm.release()
			return nil, err
		}
		asm.put(at, col)
		at += col.n
	}
	return asm.finish(), nil
}

// Allgather gives every rank the arrays of all ranks in rank order, as
// Gather does on root. Same node: every rank stages its array in its arena
// once and sends a descriptor to each peer. Otherwise a ring: in step s rank
// r forwards the array of rank r-s to r+1.
func (c *Comm) Allgather(ctx context.Context, arr arrow.Array, opts ...GatherOption) (*arrow.Chunked, error) {
	const op = "allgather"
	tag, err := c.next()
	if err != nil {
		return nil, err
	}
	col, err := columnOf(arr)
	if err != nil {
		return nil, err
	}
	p, r := len(c.ranks), c.rank
	parts := make([]arrow.Array, p)
	defer func() {
		for _, a := range parts {
			if a != nil {
				a.Release()
			}
		}
	}()
	arr.Retain()
	parts[r] = arr
	take := func(q int, g *got) error {
		if len(g.arrs) != 1 {
			g.release()
			return c.failColl(tag(0), protoErr(op, r, q, "expected one array"))
		}
		if !arrow.TypeEqual(g.arrs[0].DataType(), col.dt) {
			g.release()
			return c.failColl(tag(0), &PeerError{Op: op, Rank: r, Peer: q, Err: fmt.Errorf("%w: got %s, have %s", ErrType, g.arrs[0].DataType(), col.dt)})
		}
		return nil
	}
	alg := c.decide(opAllgather, bytesOf(col), true).alg
	if alg == AlgShm {
		staged, done := c.stage(arrayValue(col))
		defer done()
		if err := c.sendAll(ctx, op, staged, tag); err != nil {
			return nil, err
		}
		err := c.recvAll(ctx, op, tag, func(q int, g *got) error {
			if err := take(q, g); err != nil {
				return err
			}
			parts[q] = g.arrs[0]
			return nil
		})
		if err != nil {
			return nil, err
		}
		return c.chunked(col.dt, parts, opts)
	}
	if alg == AlgDirect {
		// every part to every other rank at once, one writer per peer,
		// while the others' parts arrive: no step waits for a relayed one
		sent := make(chan error, 1)
		go func() {
			sent <- c.sendEach(ctx, op, c.others(), tag(0), func(int) value { return arrayValue(col) })
		}()
		err := c.recvAll(ctx, op, tag, func(q int, g *got) error {
			if err := take(q, g); err != nil {
				return err
			}
			parts[q] = g.arrs[0]
			return nil
		})
		if err = errors.Join(err, <-sent); err != nil {
			return nil, err
		}
		return c.chunked(col.dt, parts, opts)
	}
	if alg == AlgNode {
		if err := c.allgatherNode(ctx, op, col, parts, tag); err != nil {
			return nil, err
		}
		return c.chunked(col.dt, parts, opts)
	}
	for s := 0; s < p-1; s++ {
		si, ri := (r-s+p)%p, (r-s-1+p)%p
		sc, err := columnOf(parts[si])
		if err != nil {
			return nil, err
		}
		if err := c.send(ctx, op, (r+1)%p, tag(0), arrayValue(sc), nil); err != nil {
			return nil, err
		}
		g, err := c.recv(ctx, op, (r-1+p)%p, tag(0))
		if err != nil {
			return nil, err
		}
		if err := take((r-1+p)%p, g); err != nil {
			return nil, err
		}
		parts[ri] = g.arrs[0]
	}
	return c.chunked(col.dt, parts, opts)
}

// sendAll sends v to every peer.
func (c *Comm) sendAll(ctx context.Context, op string, v value, tag func(uint8) uint64) error {
	for q := range c.ranks {
		if q != c.rank {
			if err := c.send(ctx, op, q, tag(0), v, nil); err != nil {
				return err
			}
		}
	}
	return nil
}

// recvAll receives one value from every peer in rank order and hands it to
// take; it stops at the first error.
func (c *Comm) recvAll(ctx context.Context, op string, tag func(uint8) uint64, take func(q int, g *got) error) error {
	for q := range c.ranks {
		if q == c.rank {
			continue
		}
		g, err := c.recv(ctx, op, q, tag(0))
		if err != nil {
			return err
		}
		if err := take(q, g); err != nil {
			return err
		}
	}
	return nil
}

// sendEach sends vOf(q) to every communicator rank q in tos at once, one
// writer per peer: a slow receiver does not hold back the others' data, and
// the links from this rank carry data together (on the emulated cluster
// three streams at once move 2x what one does). It returns when every send
// has ended (the buffers are the caller's until then), with the failures
// joined.
func (c *Comm) sendEach(ctx context.Context, op string, tos []int, tag uint64, vOf func(q int) value) error {
	return errors.Join(c.sendEachErrs(ctx, op, tos, tag, vOf)...)
}

// sendEachErrs sends vOf(q) to every q of tos at once (one writer per peer), so
// that a slow link to one peer does not hold back the others and the links
// carry data together; it returns each send's error, in the order of tos.
func (c *Comm) sendEachErrs(ctx context.Context, op string, tos []int, tag uint64, vOf func(q int) value) []error {
	errs := make([]error, len(tos))
	if len(tos) == 1 { // one peer: on this goroutine
		errs[0] = c.send(ctx, op, tos[0], tag, vOf(tos[0]), nil)
		return errs
	}
	var wg sync.WaitGroup
	for i, q := range tos {
		v := vOf(q)
		wg.Go(func() { errs[i] = c.send(ctx, op, q, tag, v, nil) })
	}
	wg.Wait()
	return errs
}

// others lists the communicator ranks but this one.
func (c *Comm) others() []int {
	qs := make([]int, 0, len(c.ranks)-1)
	for q := range c.ranks {
		if q != c.rank {
			qs = append(qs, q)
		}
	}
	return qs
}
