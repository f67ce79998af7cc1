package collective

import (
	"context"
	"errors"
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
)

// The node-aware allgather (AlgNode). A node's members give each other
// their parts through the arena (each stages its part once, one descriptor
// per node-mate); the node's leader (its lowest member) sends the node's
// block, every member's part in rank order, to every other leader at once
// (one writer per peer) and hands each block it receives to its node-mates
// as descriptors. Between two nodes the wire carries each block once in
// each direction, the least an allgather must move; inside a node nothing
// is copied beyond each rank's staging of its own part, when the leader's
// transport can place (the blocks then land in the leader's arena, which
// its node-mates map). Without placement a block is staged once.

// Tag steps of AlgNode's three kinds of messages.
const (
	nodeStepLocal = 0 // a part to a node-mate
	nodeStepBlock = 1 // a node's block between leaders
	nodeStepRelay = 2 // another node's block, leader to node-mate
)

// allgatherNode fills parts (parts[own rank] is set; the others nil) with
// every member's array of type dt, by AlgNode.
func (c *Comm) allgatherNode(ctx context.Context, op string, col column, parts []arrow.Array, tag func(uint8) uint64) error {
	t := c.topology()
	r := c.rank
	me := t.node[r]
	mates := t.members[me]
	leader := mates[0]
	isLeader := r == leader
	a := c.w.opts.arena
	if pl, ok := c.w.t.(placer); ok && isLeader && a != nil && len(mates) > 1 {
		for n, ms := range t.members {
			if n != me {
				pl.SetPlace(c.ranks[ms[0]], tag(nodeStepBlock), c.placeBlock)
				defer pl.SetPlace(c.ranks[ms[0]], tag(nodeStepBlock), nil)
			}
		}
	}
	// 1. parts inside the node: staged once, one descriptor per mate
	if len(mates) > 1 {
		v := arrayValue(col)
		if a != nil {
			staged, done := c.stage(v)
			defer done()
			v = staged
		}
		for _, q := range mates {
			if q != r {
				if err := c.send(ctx, op, q, tag(nodeStepLocal), v, nil); err != nil {
					return err
				}
			}
		}
		for _, q := range mates {
			if q == r {
				continue
			}
			g, err := c.recv(ctx, op, q, tag(nodeStepLocal))
			if err != nil {
				return err
			}
			if err := c.takeBlock(op, q, []int{q}, kindArray, col.dt, g, parts, tag); err != nil {
				return err
			}
		}
	}
	if !isLeader {
		// 3. the other nodes' blocks from the leader, in node order
		for n, ms := range t.members {
			if n == me {
				continue
			}
			g, err := c.recv(ctx, op, leader, tag(nodeStepRelay))
			if err != nil {
				return err
			}
			if err := c.takeBlock(op, leader, ms, kindChunked, col.dt, g, parts, tag); err != nil {
				return err
			}
		}
		return nil
	}
	// 2. this node's block to every other leader at once, theirs in
	var others []int
	for n, ms := range t.members {
		if n != me {
			others = append(others, ms[0])
		}
	}
	if len(others) == 0 {
		return nil
	}
	block := value{kind: kindChunked}
	for _, q := range mates {
		pc := col
		if q != r {
			var err error
			if pc, err = columnOf(parts[q]); err != nil {
				return err
			}
		}
		block.cols = append(block.cols, pc)
		block.aux += pc.n
	}
	sent := make(chan error, 1)
	go func() {
		sent <- c.sendEach(ctx, op, others, tag(nodeStepBlock), func(int) value { return block })
	}()
	err := c.leaderBlocks(ctx, op, others, col.dt, parts, tag)
	return errors.Join(err, <-sent)
}

// leaderBlocks receives the block of every other node's leader (others,
// in node order) into parts and hands each to this leader's node-mates.
func (c *Comm) leaderBlocks(ctx context.Context, op string, others []int, dt arrow.DataType, parts []arrow.Array, tag func(uint8) uint64) error {
	t := c.topology()
	mates := t.members[t.node[c.rank]][1:]
	for _, l := range others {
		g, err := c.recv(ctx, op, l, tag(nodeStepBlock))
		if err != nil {
			return err
		}
		var fwd value
		if len(mates) > 0 {
			if fwd, err = gotValue(g); err != nil {
				g.release()
				return err
			}
		}
		ms := t.members[t.node[l]]
		if err := c.takeBlock(op, l, ms, kindChunked, dt, g, parts, tag); err != nil {
			return err
		}
		if len(mates) == 0 {
			continue
		}
		done := func() {}
		if c.w.opts.arena != nil {
			fwd, done = c.stage(fwd) // placed blocks lie in the arena: no copy
		}
		for _, q := range mates {
			if err = c.send(ctx, op, q, tag(nodeStepRelay), fwd, nil); err != nil {
				break
			}
		}
		done()
		if err != nil {
			return err
		}
	}
	return nil
}

// takeBlock checks that g, from communicator rank from, is of kind want and
// holds one array of dt per rank of ms (ascending), and moves them into parts; otherwise it
// fails the collective naming from.
func (c *Comm) takeBlock(op string, from int, ms []int, want byte, dt arrow.DataType, g *got, parts []arrow.Array, tag func(uint8) uint64) error {
	if g.kind != want || len(g.arrs) != len(ms) {
		n := len(g.arrs)
		g.release()
		return c.failColl(tag(0), protoErr(op, c.rank, from, "expected the %d arrays of ranks %v, got %d", len(ms), ms, n))
	}
	for i, a := range g.arrs {
		if got := a.DataType(); !arrow.TypeEqual(got, dt) {
			g.release()
			return c.failColl(tag(0), &PeerError{Op: op, Rank: c.rank, Peer: from, Err: fmt.Errorf("%w: rank %d's part is %s, have %s", ErrType, ms[i], got, dt)})
		}
	}
	for i, q := range ms {
		parts[q] = g.arrs[i]
	}
	g.arrs = nil
	return nil
}

// placeBlock is a leader's PlaceFunc for the blocks of other nodes: every
// buffer of a chunked message lands in its own arena range, so that
// handing the block to node-mates copies nothing. Anything else, or a
// full arena, is left to the transport (nil).
func (c *Comm) placeBlock(header []byte, lens []uint64) ([][]byte, func()) {
	h, err := parseHeader(header)
	if err != nil || h.kind != kindChunked || len(h.refs) != len(lens) {
		return nil, nil
	}
	a := c.w.opts.arena
	out := make([][]byte, len(lens))
	var held [][]byte
	release := func() {
		for _, b := range held {
			_ = a.unref(a.offsetOf(b))
		}
	}
	for i, n := range lens {
		if h.refs[i].arena || int64(n) != h.refs[i].n {
			release()
			return nil, nil
		}
		if n == 0 {
			out[i] = []byte{}
			continue
		}
		b, err := a.Alloc(int64(n))
		if err != nil {
			release()
			return nil, nil
		}
		held = append(held, b)
		out[i] = b
	}
	return out, release
}
