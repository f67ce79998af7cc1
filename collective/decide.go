package collective

import (
	"fmt"
	"sort"
	"strings"
)

// The one place that decides which algorithm a collective runs, as Open
// MPI's tuned decision table does: decide is a pure function of the
// operation, the payload size and the layout of the communicator's ranks
// over nodes. Every collective asks it; an override (WithAlgorithm,
// $RANKHUB_COLL_ALG) replaces the table's answer where the algorithm can
// run on the layout, so that tests and benchmarks can run every algorithm
// on every layout.

// EnvCollAlg names the environment variable JoinMesh reads for
// WithAlgorithm: "op:alg[,op:alg...]", e.g. "bcast:binomial,allreduce:halving".
const EnvCollAlg = "RANKHUB_COLL_ALG"

// Alg names an algorithm.
type Alg string

// Algorithms. Which operations each applies to is in algsOf.
const (
	// AlgShm: all members on one node: descriptors into the sender's arena
	// go straight to every rank (no tree; the payload is copied at most
	// once, into the arena).
	AlgShm Alg = "shm"
	// AlgBinomial: a binomial tree (bcast; reduce to rank 0, then root).
	AlgBinomial Alg = "binomial"
	// AlgVanDeGeijn: bcast as scatter + ring allgather.
	AlgVanDeGeijn Alg = "vandegeijn"
	// AlgChain: node-aware pipelined chain. Bcast: root, then one leader
	// per node (the lowest rank there), each forwarding segments as they
	// arrive, so that every link carries data at once; inside a node the
	// leader hands the result on as arena descriptors. Multicast: the same
	// over the target ranks.
	AlgChain Alg = "chain"
	// AlgDirect: one message from the source to every destination (scatter,
	// gather, multicast; scatter and bcast send them all at once, one
	// writer per peer), or, in a reduce of two ranks on two nodes, the
	// other input straight to root in pieces.
	AlgDirect Alg = "direct"
	// AlgRing: allgather ring.
	AlgRing Alg = "ring"
	// AlgNode: node-aware allgather (allgather_node.go): parts gathered
	// inside each node through the arena, one block per node between
	// leaders (all at once), node-mates alias their leader's blocks.
	AlgNode Alg = "node"
	// AlgOneRound: reduce/allreduce on one node: every input to every rank
	// as descriptors, each rank combines its share, shares stitched.
	AlgOneRound Alg = "oneround"
	// AlgDoubling: allreduce by recursive doubling.
	AlgDoubling Alg = "doubling"
	// AlgHalving: reduce by recursive halving + block gather; allreduce by
	// recursive halving + recursive doubling (Rabenseifner).
	AlgHalving Alg = "halving"
	// AlgTree: reduce/allreduce over the documented order's tree run in
	// pipelined segments (reducetree.go); allreduce streams the result
	// down the node-aware chain from rank 0 as its segments are final.
	AlgTree Alg = "tree"
)

// Operations the table knows.
const (
	opBcast     = "bcast"
	opReduce    = "reduce"
	opAllreduce = "allreduce"
	opAllgather = "allgather"
	opScatter   = "scatter"
	opGather    = "gather"
	opMulticast = "multicast"
)

// algsOf lists, per operation, the algorithms it implements.
var algsOf = map[string][]Alg{
	opBcast:     {AlgShm, AlgBinomial, AlgVanDeGeijn, AlgChain, AlgDirect},
	opReduce:    {AlgOneRound, AlgBinomial, AlgHalving, AlgDirect, AlgTree},
	opAllreduce: {AlgOneRound, AlgDoubling, AlgHalving, AlgTree},
	opAllgather: {AlgShm, AlgRing, AlgDirect, AlgNode},
	opScatter:   {AlgDirect},
	opGather:    {AlgDirect},
	opMulticast: {AlgDirect, AlgChain},
}

// layout is how a communicator's members sit on nodes, the same on every
// member.
type layout struct {
	ranks      int
	nodes      int
	perNode    int  // most members on one node
	shm        bool // members on one node reach each other through arenas
	crossPair  bool // exactly two members, on different nodes
	others     int  // nodes other than this rank's with members (multicast)
	perOther   int  // most members on one of them
	sizeKnown  bool // false: bytes is not known here (a bcast's non-root)
	largeBytes int64
}

// decision is what decide returns.
type decision struct {
	alg     Alg
	segment int64 // bytes per pipelined message (chain); 0: whole
	// down is how the pipelined tree's Allreduce hands the result on
	// from rank 0: AlgDirect, each final segment to every other rank at
	// once; AlgChain, down the node-aware chain.
	down Alg
}

// Segment sizes of pipelined algorithms, within [minSegment, maxSegment]:
// the chain's about a sixteenth of the payload, so that the pipeline fills
// quickly, and at least minChainSegment (segmentFor); the tree's half of it
// (treeSegmentFor).
const (
	minSegment = 512 << 10
	maxSegment = 4 << 20
)

// minMulticastChain is the least payload a multicast chains (views' Push
// to 5 engines of 3 nodes x 2 on the emulated cluster, medians of 5:
// 8 MiB direct 31.7 ms, chain 31.4 ms; 16 MiB 81 / 36 ms; 32 MiB 170 / 66
// ms). Below it nothing was measured: the relays' per-message costs are
// not known to pay.
const minMulticastChain = 8 << 20

// maxDirectBcast is the most ranks, one per node, that a bcast reaches
// straight from root, all at once (AlgDirect), below minChainDirect bytes;
// from there root announces the chain through that direct tree. On the
// emulated 3-node cluster (make bench-multinode, 3 x 1; medians of 7, of 5
// from 256 MiB, per run; runs interleaved, load 3-8 on 2 cores from the
// other engineers' work), ms:
//
//	MiB  direct                      chain (relays read in place)
//	8    19.4 13.6 10.6              14.2 18.4 12.6
//	64   124 85 81 139 96 120        84 155 102 146 90 161
//	256  560 384 391                 377 406 397
//	512  1009 659 982 1123 1022 873  757 632 947 1128 752 1066
//
// (binomial announcing the chain, as before: 23 / 130 / 1049.) The "nodes"
// share 2 cores: two streams at once move about 2x what one does, and each
// algorithm makes 4 copies of the payload in all, so they are close; the
// chain wins where root's link is the limit (a real fabric).
const maxDirectBcast = 3

// minChainDirect: see maxDirectBcast. A variable for the tests.
var minChainDirect int64 = 256 << 20

// treeSegmentBytes, when positive, replaces segmentFor's choice for the
// pipelined tree (tests: many segments, and cuts that do not divide, on
// small arrays).
var treeSegmentBytes int64

// A chain's segments are never below MinPooled: a relay that enters the
// collective after its first segments arrived (a late exit from the
// previous barrier) gets them unplaced, in receive buffers of the mesh's
// pool, and below MinPooled those are fresh Go heap memory whose every
// page faults on the copy from the socket (14.5 us a page on the emulated
// cluster, idle; 3-4 ms a 512 KiB segment under load, against 0.06 ms
// for one read in place). Traced there, 3 x 2 Bcast 8 MiB (16 segments
// of 512 KiB): the slow repetitions (30-120 ms against 9-11) were those
// with a late relay, whose unplaced reads took 3-5 ms each with about 100
// page faults (placed reads: 0.3 ms, 2.5 faults). From MinPooled the
// pool serves them from mappings it keeps faulted in.
func segmentFor(bytes int64) int64 {
	return max(roundSegment(bytes/16), minChainSegment)
}

// minChainSegment is the least chain segment (segmentFor): the pool's
// least pooled receive, rounded as roundSegment rounds.
const minChainSegment = (MinPooled + 64<<10 - 1) / (64 << 10) * (64 << 10)

func roundSegment(s int64) int64 {
	s = min(max(s, minSegment), maxSegment)
	return (s + 64<<10 - 1) / (64 << 10) * (64 << 10)
}

// treeSegmentFor is the pipelined tree's segment: half the payload, within
// [minSegment, maxSegment], so that below 8 MiB it runs two segments (one
// overlaps the other's combination) and from 8 MiB maxSegment, as from 64
// MiB before. Every segment costs each rank a message, a hand-off to its
// sending goroutine and, past the window, a credit, on cores the adds and
// the kernel's copies share. On the emulated 3-node cluster (make
// bench-multinode, 3 x 1, 8 MiB; the same tree with segments of 512 KiB,
// 1, 2 and 4 MiB run in turn, 3 rounds; medians of 9 per round, ms; load
// 12-20 from the other engineers' work):
//
//	           512 KiB          1 MiB            2 MiB            4 MiB
//	reduce     23.1 40.0 24.3   19.4 41.0 15.8   15.9 13.6 13.9   11.3 14.1 11.5
//	allreduce  36.3 31.5 41.3   46.7 47.7 28.0   41.5 38.4 29.6   27.6 33.0 25.2
func treeSegmentFor(bytes int64) int64 {
	return roundSegment(bytes / 2)
}

// Allgather on up to maxDirectBcast ranks, one per node, sends every part
// to every rank at once (AlgDirect): the same bytes as the ring, without
// its steps. On the emulated cluster, 3 x 1, direct then ring run right
// after it (ms, median (min); load 3-7 on 2 cores from the other
// engineers' work): 8 MiB, 15 reps: 15.2 (9.5) 13.6 (10.7), 12.1 (8.7)
// 16.8 (11.1), 16.3 (11.2) 20.9 (12.4); 64 MiB: 94 119 vs 139 111; 512
// MiB: 812 894 vs 833 958. On 3 x 2 (direct there sends each part over
// the wire twice per other node): 8 MiB 15.1 22.9 19.6 vs 18.3 22.4 19.5,
// level.
//
// With node-mates on several nodes allgather runs AlgNode: each node's
// block crosses once to every other node (12 parts on 3 x 2, where the
// ring moves 15 and direct 24) and node-mates alias their leader's
// blocks. On the emulated cluster, 3 x 2 (make bench-multinode's rows,
// ring then node run right after it, median of 5 (3 at 512 MiB), load
// 3.5-7.5 on 2 cores, the benchmark's own included), ms:
//
//	MiB  ring              node
//	8    21.9 15.2 18.8    17.2 15.5 13.9
//	64   156 202 172       87 90 127
//	512  1225 1264 1085    1033 719 885

// maxTreeNodes is the most nodes on which reduce and allreduce run the
// pipelined tree (AlgTree): its rank 0 takes log2(P) partials, halving's
// ranks about two payloads each, so the tree's overlap pays on few nodes.
// On the emulated 3-node cluster (make bench-multinode, 3 x 1, ms, median
// of 5, of 3 at 512 MiB; tree, then halving run right after it; load 5-7
// on 2 cores from the other engineers' work):
//
//	          8 MiB       64 MiB       512 MiB
//	reduce    17.2 20.9   144 244      1152 1616
//	allreduce 28.8 40.3   245 361      1581 2521
//
// and on 3 x 2 (the same way): reduce 37.3 30.6 / 200 278 / 1319 1833,
// allreduce 69.1 52.5 / 443 326 / 3080 2577. There allreduce's broadcast
// reaches node-mates only after the whole result (chain.go), and a node's
// ranks fold through the arena first: the tree wins for reduce from
// minTreeShared bytes, not for allreduce.
const maxTreeNodes = 4

// minTreeShared: see maxTreeNodes.
const minTreeShared = 64 << 20

// The pipelined tree's Allreduce hands the result on as Bcast does: on up
// to maxDirectBcast ranks, one per node, below minChainDirect bytes, rank
// 0 sends each final segment to every other rank at once (AlgDirect);
// else down the node-aware chain
// (chain.go), whose relay forwards a segment only once it has all of it,
// so that on 3 x 1 the last rank got the last segment a whole segment
// time after the second (traced at 8 MiB, load 7-9: rank 2 ended 9-15 ms
// after rank 0). On the emulated 3-node cluster, 3 x 1 (mnbench, the
// variants taking turns repetition by repetition in one job; 5 jobs of 10
// repetitions each at 8 MiB, 3 jobs of 5 at 64 MiB; load 4-9 on 2 cores
// from the other engineers' work), ms, median (min) of all repetitions:
//
//	MiB  chain          direct
//	8    24.1 (15.6)    22.5 (16.2)
//	64   182 (142)      166 (141)
//
// and again later with this code, the chain forced in turns (4 jobs of
// 15 each at 8 MiB, 6 of 6 at 64): chain 25.6 (15.1), direct 24.9 (12.2)
// at 8 MiB; 171 (127) and 171 (122) at 64: a small gain at 8 MiB, level
// at 64. From minChainDirect, not measured, the chain stays, as for
// Bcast.
//
// (tried in the same jobs: direct with segments of 2 MiB instead of 4 at
// 8 MiB, 22.0 (14.5), level; an allreduce in two rounds, every rank
// combining a third of the result from pieces of every input sent
// straight to it, then sending its third to every rank: 22.0 (12.4) at 8
// MiB, 209 (120) at 64, and on 3 x 2 at 8 MiB medians of 52-75 ms
// against halving's 31-43 in 4 interleaved jobs.)

// decide returns the algorithm for op moving bytes (per rank: the array
// each rank passes, or the root's array) on layout l. override (may be
// nil) maps ops to algorithms; it is used where the algorithm can run on l.
//
// The table:
//
//	bcast      all on one node with arenas: shm; several members on a
//	           node (arenas) or several nodes: chain; one member per node:
//	           up to maxDirectBcast ranks direct (root to all at once;
//	           from minChainDirect bytes the chain, announced through it),
//	           else binomial below the large threshold or with 2 ranks,
//	           chain above it (announced through the binomial tree:
//	           non-roots do not know the size)
//	reduce     small: binomial; one node with arenas: oneround; two ranks
//	           on two nodes: direct; up to maxTreeNodes nodes with one
//	           rank each, or from minTreeShared bytes: tree; else halving
//	allreduce  small: doubling; one node with arenas: oneround; up to
//	           maxTreeNodes nodes with one rank each: tree, its result
//	           from rank 0 straight to each rank up to maxDirectBcast
//	           ranks below minChainDirect bytes, else down the chain;
//	           else halving
//	allgather  one node with arenas: shm; up to maxDirectBcast ranks, one
//	           per node: direct (every part to every rank at once);
//	           node-mates (arenas) on several nodes: node (one block per
//	           node between leaders, node-mates alias it); else ring
//	scatter, gather: direct
//	multicast  chain from minMulticastChain bytes when several receivers
//	           share another node or they are on 3 or more other nodes;
//	           else direct
func decide(op string, bytes int64, l layout, override map[string]Alg) decision {
	d := table(op, bytes, l)
	if a, ok := override[op]; ok && applicable(op, a, l) {
		d.alg = a
	}
	switch {
	case d.alg == AlgChain:
		d.segment = segmentFor(bytes)
	case d.alg == AlgTree && treeSegmentBytes > 0:
		d.segment = treeSegmentBytes
	case d.alg == AlgTree:
		d.segment = treeSegmentFor(bytes)
	}
	if op == opAllreduce && d.alg == AlgTree {
		d.down = AlgChain
		if l.perNode == 1 && l.ranks <= maxDirectBcast && bytes < minChainDirect {
			d.down = AlgDirect
		}
	}
	return d
}

func table(op string, bytes int64, l layout) decision {
	oneNode := l.nodes == 1 && l.shm && l.ranks > 1
	large := l.ranks >= 2 && bytes >= l.largeBytes
	switch op {
	case opBcast:
		switch {
		case oneNode:
			return decision{alg: AlgShm}
		case l.perNode > 1 && l.shm:
			return decision{alg: AlgChain}
		case l.perNode == 1 && l.ranks > 2 && l.ranks <= maxDirectBcast:
			if l.sizeKnown && bytes >= minChainDirect {
				return decision{alg: AlgChain} // announced through the direct tree
			}
			return decision{alg: AlgDirect}
		case !l.sizeKnown || !large || l.ranks <= 2:
			return decision{alg: AlgBinomial}
		default:
			return decision{alg: AlgChain}
		}
	case opReduce:
		switch {
		case !large:
			return decision{alg: AlgBinomial}
		case oneNode:
			return decision{alg: AlgOneRound}
		case l.crossPair:
			return decision{alg: AlgDirect}
		case l.nodes <= maxTreeNodes && (l.perNode == 1 || bytes >= minTreeShared):
			return decision{alg: AlgTree}
		default:
			return decision{alg: AlgHalving}
		}
	case opAllreduce:
		switch {
		case !large:
			return decision{alg: AlgDoubling}
		case oneNode:
			return decision{alg: AlgOneRound}
		case l.nodes <= maxTreeNodes && l.perNode == 1:
			return decision{alg: AlgTree}
		default:
			return decision{alg: AlgHalving}
		}
	case opAllgather:
		switch {
		case oneNode:
			return decision{alg: AlgShm}
		case l.perNode == 1 && l.ranks <= maxDirectBcast:
			return decision{alg: AlgDirect}
		case l.perNode > 1 && l.shm && l.nodes > 1:
			return decision{alg: AlgNode}
		}
		return decision{alg: AlgRing}
	case opMulticast:
		// The chain sends the array once per other node instead of once
		// per receiver: worth its relays and assembly copies when some
		// other node has several receivers, or when the sender's link
		// would carry it to 3 or more nodes.
		if large && bytes >= minMulticastChain && (l.perOther > 1 || l.others >= 3) {
			return decision{alg: AlgChain}
		}
		return decision{alg: AlgDirect}
	}
	return decision{alg: AlgDirect}
}

// applicable reports whether alg can run op on l.
func applicable(op string, alg Alg, l layout) bool {
	oneNode := l.nodes == 1 && l.shm
	switch {
	case alg == AlgShm || alg == AlgOneRound:
		return oneNode
	case op == opBcast && alg == AlgVanDeGeijn:
		return l.ranks > 2
	case op == opReduce && alg == AlgDirect:
		return l.crossPair
	}
	for _, a := range algsOf[op] {
		if a == alg {
			return true
		}
	}
	return false
}

// parseAlgorithms reads "op:alg[,op:alg...]" (WithAlgorithm,
// $RANKHUB_COLL_ALG); an unknown op or an algorithm the op does not have
// is an error naming it and what exists.
func parseAlgorithms(spec string) (map[string]Alg, error) {
	out := map[string]Alg{}
	for _, f := range strings.Split(spec, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		op, alg, ok := strings.Cut(f, ":")
		algs, known := algsOf[op]
		if !ok || !known {
			return nil, fmt.Errorf("%w: algorithm override %q: want op:alg with op one of %s", ErrArgument, f, strings.Join(opNames(), ", "))
		}
		found := false
		for _, a := range algs {
			found = found || a == Alg(alg)
		}
		if !found {
			return nil, fmt.Errorf("%w: algorithm override %q: %s has %s", ErrArgument, f, op, joinAlgs(algs))
		}
		out[op] = Alg(alg)
	}
	return out, nil
}

func opNames() []string {
	var ns []string
	for op := range algsOf {
		ns = append(ns, op)
	}
	sort.Strings(ns)
	return ns
}

func joinAlgs(as []Alg) string {
	s := make([]string, len(as))
	for i, a := range as {
		s[i] = string(a)
	}
	return strings.Join(s, ", ")
}
