// Package collective gives every rank MPI's collectives on numeric Apache
// Arrow arrays: Barrier, Bcast, Scatter, Scatterv, Gather, Gatherv,
// Allgather, Reduce, Allreduce, ReduceScatter, tagged Send/Recv, and
// communicators over subsets (Sub, Split).
//
// # Data
//
// Arrays of int8..int64, uint8..uint64, float32 and float64, nulls
// included; records (BcastRecord, ScatterRecord partitions rows,
// GatherRecord and AllgatherRecord return an arrow.Table whose columns are
// chunked over the received buffers) and chunked arrays (BcastChunked,
// GatherChunked). Slices (offset != 0) are sent in place: the validity bitmap is
// cut at the byte of the first element and the bit offset travels in the
// header. Sizes are int64; arrays over 2 GiB work. Received arrays are
// read-only and alias the received memory (memory.NewBufferWithAllocator
// with an owner per message): the message, or the shared-memory range, is
// returned when the last Arrow reference is released. Gather and Allgather
// return an *arrow.Chunked over the received buffers, or one contiguous
// chunk with Contiguous(). Every returned array must be Released.
//
// # Reductions
//
// Sum, Prod, Min, Max for every type; RegisterOp adds typed kernels. In a
// reduction an element is null if it is null on any rank. The combination
// order is fixed for a given rank count and does not depend on message
// arrival or on the algorithm (see plan.go): fold pairs (2i, 2i+1) for the
// ranks beyond the largest power of two, then a binary tree with distance
// 1 first, lower ranks on the left. Floating-point results are therefore
// reproducible run to run and identical on every rank of an Allreduce.
// On CPUs with AVX2 the Sum and Prod kernels of float64 and float32 (and
// Sum of 32- and 64-bit integers) are vector loops that compute exactly
// what the scalar ones do, lane by lane; build tag purego turns them off.
//
// # Algorithms
//
// One function decides, as Open MPI's tuned decision table does: decide
// (decide.go) maps the operation, the payload size and the layout of the
// members over nodes (ranks, nodes, most ranks on a node, arenas; learnt
// from the transport: Mesh.NodeOf, the advertised host identity) to an
// algorithm and a segment size. WithAlgorithm, or $RANKHUB_COLL_ALG for a
// Mesh ("bcast:chain,allreduce:halving"), overrides it where the algorithm
// can run on the layout. The table:
//
//   - Bcast: all members on this node: shm (root stages the array in its
//     arena once, every rank gets a descriptor). Several members on some
//     node, or large payloads with one member per node: chain (chain.go):
//     root, then one leader per other node (its lowest member), each
//     forwarding segments (a sixteenth of the payload, 512 KiB to 4 MiB)
//     to the next as they arrive, so that every link between nodes carries
//     the payload once and all at the same time; each leader assembles it
//     (in its arena) and hands it to its node-mates as one descriptor.
//     Up to 3 ranks, one per node: direct, root sends the whole array to
//     both others at once (one writer per peer; each keeps the buffer it
//     received as its result, no copy); from 256 MiB the chain, announced
//     through that direct tree. A chain's leaders read the segments from
//     the socket straight into their assembly and forward them from there
//     (in the arena when they have node-mates). Small payloads with one
//     member per node, or 2 ranks: binomial tree. Non-roots do not know
//     the size: the chain on a flat layout (and van de Geijn, scatter +
//     ring allgather, by override) is announced through the binomial (or
//     direct) tree.
//   - Reduce: binomial tree (small); one round (below) on one node; two
//     ranks on two nodes: the other input straight to root in 2 MiB
//     pieces, combined while the next arrives; up to 4 nodes of one rank
//     each, or from 64 MiB: the pipelined tree (reducetree.go): the
//     documented order's own tree run segment by segment (half the
//     payload, 512 KiB to 4 MiB), every rank combining segment k of its
//     children's partials while segment k+1 arrives and segment k-1 goes
//     to its parent, at most 4 segments ahead of the parent (credits);
//     else recursive halving and block gather.
//   - Allreduce: recursive doubling (small); one round on one node; up to
//     4 nodes of one rank each: the pipelined tree to rank 0, whose final
//     segments go down the Bcast chain as each is done; else recursive
//     halving + recursive doubling.
//   - Allgather: shm on one node (every rank stages its array once and
//     sends a descriptor to each peer); up to 3 ranks, one per node:
//     direct (every part to every other rank at once, one writer per
//     peer); node-mates on several nodes: node (allgather_node.go: the
//     parts of a node's ranks go to each other as arena descriptors, each
//     node's leader sends the node's block to every other leader at once
//     and receives theirs into its arena, its node-mates alias them); else
//     ring.
//   - Scatter/Gather: direct from/to the root (descriptors on one node;
//     across nodes the root sends every piece at once, one writer per
//     peer, so that a slow peer holds back no other).
//   - Multicast (one array from one rank to a set of ranks, what the views'
//     Push uses): direct (SendTo); from 8 MiB, when several receivers share
//     another node or they are on 3 or more other nodes, the chain above
//     over the receivers, announced to each by a small route notice so
//     that a plain Recv follows it. A receiver starts forwarding when the
//     notice arrives (after the earlier multicasts of that sender and tag),
//     not when it calls Recv; like other messages of one sender and tag,
//     multicasts reach Recv in the order sent. A leader that fails sends
//     the ranks behind it a failure notice (ErrUpstream, naming the cause)
//     and takes what its transport placed out of the queue, so that it
//     does not pin the arena.
//
// "Large" is WithLargeThreshold (256 KiB). The reductions' combination
// order is fixed (see Reductions): every algorithm realises the same tree
// whatever the layout. The pipelined tree is node-aware only as far as
// that tree is: with ranks placed on nodes in blocks (srun's default) a
// node's ranks combine in the node first and one partial per node
// crosses the wire.
// One round, on one node: every input goes to every rank as a descriptor,
// each rank computes its share of the result (cut on page boundaries) from
// all inputs in the documented order, chunk by chunk in cache, and the
// shares are stitched: mapped read-only side by side in a new address
// range, no byte copied (they are copied instead when a share has nulls or
// went inline). Stitched results are read-only like received arrays and
// like them must be released before the Comm is closed. Over sockets,
// large reductions move their ranges in 2 MiB pieces, sent beside the
// receives and combined while the next piece arrives. ReduceScatter:
// recursive halving, then each block goes straight to the ranks whose
// counts it covers. Reductions fill their result lazily: a rank
// sends its input in place until it has combined something, and the first
// combination reads input and message and writes the result in one pass.
// A type or length mismatch found by one rank aborts the collective on all,
// and every rank returns it, but in Reduce only root does for sure: as in
// MPI_Reduce, a rank that only sends (in the pipelined tree) returns once
// its last segment is sent, without a round trip for its parent's end, so
// it may return nil and no error before its parent finds the mismatch
// (which then fails its next tree collective, naming the parent). As in
// MPI, a rank may write its input again once its own call returned: a
// rank whose input went by reference (it lies in its arena) returns only
// once its parent has combined it. A sending rank runs at most one
// pipelined Reduce ahead of its parent: the parent acknowledges the last
// segment, and the child takes that before its next one sends.
// Allreduce fails on every rank: every rank waits for the result.
//
// # Shared memory protocol
//
// A rank may own an Arena: a file rankhub-<name>-<pid>.arena (usually in
// /dev/shm) mapped MAP_SHARED, with a first-fit, coalescing allocator and a
// reference count per range. When the peer is on the same node
// (Transport.SameNode) a buffer inside the arena is sent as a descriptor
// (arena path, offset, length; ranges of 64 KiB and more start on a page
// boundary) in the header instead of bytes; buffers
// outside it are first copied into the arena once per collective (stage).
// Each descriptor adds a reference to its range, and the message carries a
// token. The receiver maps the arena read-only once (OpenArena, cached) and
// aliases it. When it releases the last Arrow reference to the message it
// sends a release message (tag class 2: token, offsets) back to the owner,
// whose release goroutine drops the references; a range is freed at zero.
// Send returns a Tracker that is done when all releases for its messages
// arrived, i.e. when the buffer is safe to modify again; SendTo sends one
// array to several ranks, staging it in the arena once for all of them.
// Comm.Arena is the arena (its Allocator builds arrays sent without a
// copy). Package views moves large arrays of Push/Pull/Scatter/Gather this
// way, with world user tags from views.BulkTagBase up. The owner records
// what each peer holds: when that peer's process has exited (not merely
// its link failed: a stopped process may still read the pages) the ranges
// come back. Arena files are removed by Arena.Close; CleanStale removes
// arenas whose owner is gone: an owner holds a flock on its arena file for
// its lifetime, so ranks in other PID namespaces are judged right.
// When all members share a node, Bcast, Scatter, Gather and Allgather send
// descriptors directly (no tree): the payload is copied at most once.
// Across nodes, a chain's leader assembles what it receives in its arena
// and sends its node-mates descriptors of it: no further copy.
//
// # Between processes: Mesh
//
// JoinMesh makes the Transport between rank processes over comm: every rank
// listens (TCP on the node address, plus an abstract Unix socket), publishes
// its addresses through an Exchange (FileExchange: <dir>/mesh/rank-N.json in
// the job directory, written atomically) and learns the others'. A
// connection is dialed when a peer is first used; when two ranks dial each
// other at once the connection dialed by the lower rank is kept (a hello
// frame carries the rank, the acceptor answers). Both sides authenticate
// with the job key. One reader goroutine per connection demultiplexes frames
// into queues by (peer, tag), so sends never wait for the receiver to post a
// receive. Receive buffers come from a RecvPool that keeps freed large
// buffers, already faulted in, for reuse. Heartbeats on every connection
// declare a silent peer dead after five intervals; a dead peer fails
// pending receives from it (after its queued messages) with an error naming
// the rank, host and pid, and a failed rank aborts its collective on every
// member. After sending on a connection its reader polls the socket for
// MeshConfig.Spin (default 100µs, $RANKHUB_SPIN; off unless the ranks'
// GOMAXPROCS fit the node's cores) instead of sleeping: a reply that comes within the
// window costs no wakeup. Ranks with equal host identity (os.Hostname, or RANKHUB_MESH_HOST)
// use Unix sockets and arenas; ForceTCP turns both off. Mesh.World is the
// world communicator, with this rank's arena in /dev/shm (arenas of dead
// processes are removed at start; Close removes this one).
//
//	m, err := collective.JoinMesh(ctx, collective.MeshConfig{
//		Rank: id.Rank, Size: id.Size, Key: key,
//		Exchange: collective.FileExchange(id.JobDir)})
//	if err != nil { ... }
//	defer m.Close()
//	buf := memory.NewResizableBuffer(m.Arena().Allocator()) // same-node peers alias it
//	sum, err := m.World().Allreduce(ctx, arr, collective.Sum)
//
// # Usage
//
//	tr := ...                              // a Transport (comm adapter, or NewLocalNetwork)
//	arena, _ := collective.NewArena("/dev/shm", "job42-r3", 1<<30)
//	defer arena.Close()
//	c, err := collective.New(tr, collective.WithArena(arena))
//	if err != nil { ... }
//	defer c.Close()                        // before arena.Close
//	sum, err := c.Allreduce(ctx, arr, collective.Sum)
//	if err != nil { ... }                  // *PeerError names the rank and peer
//	defer sum.Release()
//	parts, err := c.Gather(ctx, 0, arr)    // *arrow.Chunked on rank 0, nil elsewhere
//
// Collectives on one Comm must be started in the same order on every member.
// Use context deadlines: a failed peer makes the collective return an error
// naming it instead of hanging.
package collective
