// Package views is rankhub's IPython.parallel: the hub on rank 0, the
// engines on the other ranks, and the client a driver uses to send them work.
//
// Every rank runs the same binary, so functions are not shipped: they are
// registered by name on every rank (Register) and called by name. Values
// travel through a codec: Go scalars, strings, slices, maps, structs, and
// Arrow arrays, records and chunked arrays whose buffers are sent without a
// copy. A value that cannot be sent is an error before anything is sent.
// Ref(name) passes a value that lives in an engine's namespace without
// moving it.
//
// # Client and views
//
// A Client is made in process on rank 0 (NewClient, what rankhub.Main hands
// the driver) or from anywhere that can reach the hub with the job's
// connection file (Connect). Both have the same API. Engine ids are rank-1
// and never reused.
//
//	dv, _ := c.DirectView()                     // every engine live now
//	dv.Push(map[string]any{"a": 5, "b": 10})
//	ar, _ := dv.Apply("add", views.Ref{"a"}, views.Ref{"b"}, 27)
//	vals, err := ar.Get(time.Minute)            // []any{42, 42}
//	dv.Scatter("x", xs)                         // contiguous blocks by rows
//	all, _ := dv.Gather("x")                    // concatenated again
//	one, _ := c.View(-1)                        // the last engine; Slice(start, stop, step)
//
//	lb, _ := c.LoadBalancedView()
//	load, _ := lb.Apply("load", "A")
//	norm, _ := lb.With(views.TaskOptions{Follow: views.On(load)}).Apply("norm", views.Ref{"A"})
//	m, _ := lb.Map("f", 100, xs)                // chunks of 100 elements
//	for v, err := range m.Unordered() { ... }   // as results arrive
//
// DirectView sends to fixed engines: Apply, Map, Execute and Run (shell
// commands and scripts; per-engine output and exit status in Metadata),
// Push, Pull, Get, Set, Delete, Scatter, Gather, Clear, Abort, Shutdown,
// and On for a per-call choice of targets. LoadBalancedView lets the hub
// pick the engine: Apply and Map with chunk size, TaskOptions with After
// (time) and Follow (location) dependencies, Require (engine labels,
// namespace names or registered functions an engine must have) and Depend
// (a registered predicate that must hold there), Timeout and Retries. The
// hub's scheme is least-load by default, or round-robin or random, with an
// optional high-water mark of tasks in flight per engine (HubConfig,
// RANKHUB_SCHEME, RANKHUB_HWM).
//
// An AsyncResult waits (Wait, Get with a timeout: ErrTimeout), reports
// (Ready, Successful, Progress, Metadata, Elapsed, WallTime, SerialTime),
// iterates (Ordered, Unordered), maps engines to values (ByEngine), offers
// a Done channel to select on, aborts (Abort) and tracks sends (Sent).
// Client.Wait and Client.Outstanding concern the client's own tasks. Pull
// of one name gives one value per engine.
// Remote failures are *RemoteError (engine id, rank, host, error type,
// message, traceback for panics); failures of several tasks are a
// *CompositeError. errors.Is matches them with the sentinels ErrPanic,
// ErrAborted, ErrEngineDied, ErrDependencyTimeout, ErrImpossibleDependency.
//
// The hub keeps results until purged, so any client can fetch them by
// message id (Client.Result); QueueStatus, ResultStatus, History and
// Purge/PurgeAll are its queries. Abort, Clear and Shutdown go through a
// control channel that engines read while they run a task.
//
// # Memory
//
// Arrow arrays and large numeric slices are handed to the transport as they
// are: do not modify them until the result's Sent channel is closed.
// Received arrays are read-only; copy into a builder to change values.
// Field metadata of records is not sent. No write into a received value
// changes what the hub stores or what another client or engine sees: a
// driver in the hub's process receives deep copies of slices, maps and
// Arrow arrays smaller than a page (internal/codec/detach.go), outside clients and
// engines decode their own. An Arrow array of at least a page (4 KiB,
// validity, offsets and data together) is read-only in memory as well,
// wherever it arrives (an engine's push, a pull or Get, by an outside
// client or the driver on rank 0; in frames over TCP or a Unix socket, or
// on the mesh): a write through Float64Values() or the like faults
// (SIGSEGV, a recoverable panic under debug.SetPanicOnFault). Arrays in
// frames are copied once into read-only memory (collective.ReadOnlyCopy:
// up to 1 MiB in chunks of a memory file mapped twice, reused without
// system calls; larger ones in memory of their own, protected once
// written); the hub keeps its results' arrays in their frames, which no
// client can write, and copies them when a driver in its process gets
// them. An outside client receives frames of 1 MiB or more into pooled
// memory made read-only in place: their arrays are not copied (Go slices
// and byte strings in such a frame are copied out, being yours to
// modify). Arrays that crossed nodes on the mesh are protected in place, in
// their receive buffers (collective.Comm.Protect), and on one node the
// mesh maps the sender's arena read-only: neither copies. The frame copy
// is the cost (BenchmarkPushArrow, 2 shared cores): none measurable at
// 4 KiB; a push through frames up to about 1.2 times as long at 64 KiB and
// 1 MiB and up to twice at 32 MiB. A pull by an outside client copies
// nothing from 1 MiB (3 interleaved rounds: 32 MiB 31-37 ms against 78-92
// ms when the hub and the client copied, 1 MiB 1.4-1.6 against 2.7-3.2
// ms), and below that once, at the client. Received []float64 and
// other Go slices are yours to modify.
//
// Push, Set and Scatter from a driver on rank 0, and the engines' answers
// to Pull, Get and Gather, move numeric Arrow arrays of 1 MiB and more over
// the job's collective mesh (views/internal/bulk), the path of package collective: on
// one node the engine maps the sender's shared-memory arena read-only (an
// array not allocated there, from collective.Comm.Arena().Allocator(), is
// copied into it once for all the engines of the call), across nodes the
// buffers are written straight from the array and received into pooled
// mappings made read-only in place until the array is collected. Like arrays decoded from frames, received
// arrays are managed by the garbage collector: their
// memory goes back to its owner when nothing built on them is reachable (a
// Go slice such as Float64Values() is valid only while the array is). Do
// not Release arrays a result or a namespace hands you; Retain is not
// needed to keep them. An array allocated from the arena is aliased by the
// engines it was pushed to: do not modify it while they hold it. Outside
// clients (Connect) and load-balanced calls send through the hub's frames.
//
// # Hostile input and limits
//
// Every byte from a peer is untrusted. The decoders return an error for
// every input (they are fuzzed: FuzzDecodeValues, FuzzDecodeArrow, with
// the crashers found kept in internal/codec/testdata/fuzz), and counts read from the wire
// only size preallocations up to 1024 elements: memory follows the
// elements actually received. The hub decodes an outside client's tasks
// before forwarding them: a corrupt one is that client's bad request and
// never reaches an engine. Each peer's messages are handled behind a
// recovery boundary: a panic while the hub handles a client's request
// answers it with an error and closes that client; while it handles an
// engine's result, closes that engine (its pending tasks fail naming it);
// while an engine handles a task or encodes its result, fails that task
// (ErrPanic, with the stack); a panicking control message is dropped, and an
// outside client fails the request or task a hub message answered. Every
// such panic is logged with its stack.
//
// Execute and Run read a command's stdout and stderr as streams and keep
// the first and the last MiB of each; the bytes between are counted
// (Metadata.StdoutOmitted, StderrOmitted) and replaced by a line saying how
// many were left out, so a command printing gigabytes costs its engine a
// few MiB. Nothing too large for a frame is dropped in silence: a task's
// result or arguments too large become at once a RemoteError matching
// ErrNotSendable that names the engine and the reason, a reply too large
// for an outside client an error, and the frames sent with it still go.
//
// Rank processes capture what registered functions print during apply
// and map (EngineConfig.CaptureOutput: descriptors 1 and 2, so also the
// processes a function starts) into Metadata.Stdout and Stderr, capped in
// the same way.
//
// Engines may join a running hub at any time (rankhub engines): each gets
// the next id, never one given before, and takes load-balanced work at
// once; the hub warns when its registered functions differ from the first
// engine's.
//
// Engine functions get communicators from their Context: Comm() over the
// engines of the DirectView call, World() over every rank. The bulk path
// uses world tags from BulkTagBase up; user Send/Recv on the world keeps
// below it.
//
// # Layout of the code
//
// Users import views only. Below it, in the order imports may point (the
// import-direction test in layout_test.go checks it):
//
//   - views: the client API (Client, DirectView, LoadBalancedView,
//     AsyncResult, errors; client.go, lbview.go, result.go, wait.go, the
//     outside client remote.go). hub.go keeps Hub and HubConfig (a defined
//     type forwarding to views/internal/hub, and an alias); seams.go keeps
//     the names users had (Context, Register, Ref, As, BulkTagBase,
//     ServeEngine, EngineConfig, ...) as aliases and wrappers; errors.go
//     re-exports the sentinels and RemoteError of the layers below as the
//     same variables and type (errors.Is holds across them).
//   - views/internal/hub: the hub's IO: connections and their readers,
//     outboxes (outbox.go), outside clients (hubclients.go), the owner of
//     the hub's state machine (hub.go: the turn, its effects), and the task
//     record that is also the future behind an AsyncResult (task.go,
//     futures.go).
//   - views/internal/engine: what runs on an engine: its connection to the
//     hub (engine.go: Serve, the reader and the worker), the registry of
//     functions and their calls, Context, the namespace, output capture.
//   - views/internal/proto: the engine↔hub frames (proto.go), the typed
//     client↔hub messages (clientmsg.go), each field checked, and what the
//     wire's error codes stand for (errors.go: RemoteError, the sentinels).
//   - views/internal/bulk: the bulk path (large numeric arrays over the
//     collective mesh) that the hub, the engine and the client's Push and
//     Pull use; below the engine, beside proto, on the codec only.
//   - views/internal/hubcore: the hub's state machine, without IO.
//   - views/internal/codec: values to a control payload and raw buffers,
//     Arrow without a copy, received arrays read-only and collected
//     (detach.go, gc.go).
package views
