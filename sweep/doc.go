// Package sweep runs parameter sweeps: a pure planner that decides which
// tasks run next (task identity, order, chunks, growth, adaptive
// replicates), the checks that decide whether a run may continue an
// existing result file, the driver that sends chunks to the engines and
// writes their rows, and the engine side (function and shell execution,
// bounded output, output parsing).
//
// Usage, on rank 0 (the root package's sweep driver):
//
//	w, pl, segment, err := sweep.OpenFile(path, job, prov, resume, force)
//	defer w.Close(status)
//	err = sweep.Drive(ctx, client, job, w, pl, segment, writeProgress, log)
//
// and on every engine, for the builtin sweep.BuiltinName:
//
//	res, err := sweep.RunChunk(ctx, job, pairs)
//
// A task the engine's stop interrupts (SIGTERM, a requeue, the walltime
// warning: its Exit is ExitInterrupted, ChunkResult.Interrupted) is no
// answer: the driver writes no row for it; while the driver goes on it
// runs again on the other engines (Planner.Again), else --resume runs it.
// A failed attempt counts as interrupted when it ended at most stopGrace
// (2 s) before its engine's stop: the scheduler's signal may reach a
// command (which dies of it, or handles it and exits non-zero) before the
// engine's own handler runs; the engine waits for that once per chunk,
// only after a recent failure. A chunk that ran nothing is an error, which
// the hub retries on another engine while the job goes on.
//
// The Planner alone is pure: given the job, the tasks already in the file
// (Done, and for adaptive replicates their rows through Prior) and what
// completes (Observe), Next answers which (point, replicate) tasks to send.
package sweep
