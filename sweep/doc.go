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
// warning: ChunkResult.Interrupted) is no answer: the driver writes no row
// for it and --resume runs it; a chunk that ran nothing is an error, which
// the hub retries on another engine while the job goes on.
//
// The Planner alone is pure: given the job, the tasks already in the file
// (Done, and for adaptive replicates their rows through Prior) and what
// completes (Observe), Next answers which (point, replicate) tasks to send.
package sweep
