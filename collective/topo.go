package collective

import (
	"fmt"
	"os"
)

// nodeNamer is a Transport that names the node of every rank (Mesh,
// LocalTransport), so that every member of a communicator computes the
// same layout.
type nodeNamer interface {
	NodeOf(peer int) string
}

// topo is how a communicator's members sit on nodes: nodes are numbered in
// the order of their lowest member.
type topo struct {
	node    []int   // communicator rank -> node index
	members [][]int // node index -> its communicator ranks, ascending
}

// topology returns c's layout over nodes (computed once). Without a
// nodeNamer transport every member is its own node.
func (c *Comm) topology() *topo {
	c.topoOnce.Do(func() {
		nn, _ := c.w.t.(nodeNamer)
		t := &topo{node: make([]int, len(c.ranks))}
		idx := map[string]int{}
		for q, wr := range c.ranks {
			name := fmt.Sprint("rank ", wr)
			if nn != nil {
				name = nn.NodeOf(wr)
			}
			i, ok := idx[name]
			if !ok {
				i = len(t.members)
				idx[name] = i
				t.members = append(t.members, nil)
			}
			t.node[q] = i
			t.members[i] = append(t.members[i], q)
		}
		c.tp = t
	})
	return c.tp
}

// layoutOf is layout over the members in set (nil: all of them).
func (c *Comm) layoutOf(set []int, sizeKnown bool) layout {
	t := c.topology()
	if set == nil {
		set = make([]int, len(c.ranks))
		for q := range set {
			set[q] = q
		}
	}
	perNode := map[int]int{}
	for _, q := range set {
		perNode[t.node[q]]++
	}
	l := layout{ranks: len(set), nodes: len(perNode), sizeKnown: sizeKnown, largeBytes: c.w.opts.largeBytes}
	for _, k := range perNode {
		l.perNode = max(l.perNode, k)
	}
	// Arenas: this rank has one, or nobody shares its node (a rank alone
	// on its node has none, and needs none): the same answer on every
	// member of a mesh, where every rank with a node-mate has an arena.
	l.shm = c.w.opts.arena != nil || len(t.members[t.node[c.rank]]) == 1
	l.crossPair = len(set) == 2 && t.node[set[0]] != t.node[set[1]]
	for n, k := range perNode {
		if n != t.node[c.rank] {
			l.others++
			l.perOther = max(l.perOther, k)
		}
	}
	return l
}

// decide asks the decision table (decide.go) for op on c.
func (c *Comm) decide(op string, bytes int64, sizeKnown bool) decision {
	return decide(op, bytes, c.layoutOf(nil, sizeKnown), c.w.opts.algs)
}

// algorithmsFromEnv returns the option for $RANKHUB_COLL_ALG (nil when unset).
func algorithmsFromEnv() []Option {
	if s := os.Getenv(EnvCollAlg); s != "" {
		return []Option{WithAlgorithm(s)}
	}
	return nil
}
