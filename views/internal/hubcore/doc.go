// Package hubcore is the hub's state machine, in the way of etcd raft's
// RawNode: engines (ids never reused, liveness, what each has pending), the
// history of tasks until purged, and the load-balancing scheduler with its
// waiting tasks (sched.go: schemes, high-water mark, After/Follow
// dependencies, timeouts, retries, requirements). It has no goroutines,
// locks, sockets or clock, and imports no other rankhub package.
//
// Events are method calls: Register and Joined (an engine arrives and gets
// its welcome), Lost (its connection ended), SubmitDirect, SubmitLB,
// Result, Unsendable (a task too large for a frame), Abort, Purge, Control,
// SetScheduler, Tick (time moves only by it), Shutdown and Close. Queries
// (Live, Engines, QueueStatus, ResultStatus, History, Known, NextDeadline)
// read the state. Ready returns the effects of the events since its last
// call, in order:
//
//   - Send: write these tasks to an engine, with one write
//   - Control: send abort, clear or shutdown to an engine
//   - Complete: a task is finished (an engine's answer, or a failure the
//     hub decided: engine died, aborted, dependency timeout, impossible
//     dependency, not sendable, shutdown)
//   - Requeue: a task waits again (a retry, or an engine lacking what it
//     requires)
//   - CloseEngine, EnginesChanged, Purged, Note (something to log)
//
// Usage, as views.Hub does it (one caller at a time: the holder of its turn):
//
//	c := hubcore.New(hubcore.Config{Host: host, Scheme: hubcore.LeastLoad})
//	c.Tick(time.Now())
//	ids, err := c.SubmitLB(payloads, hubcore.Spec{Retries: 1})
//	for _, ef := range c.Ready() {
//		switch ef := ef.(type) {
//		case hubcore.Send: // queue the frames on engine ef.Engine's outbox
//		case hubcore.Complete: // finish the future of task ef.ID
//		}
//	}
//
// The trace tests (trace_test.go) replay testdata/*.trace: events in,
// answers and effects out, one per line.
package hubcore
