// Package sweep runs parameter sweeps: a pure planner that decides which
// tasks run next (task identity, order, chunks, growth), and the checks that
// decide whether a run may continue an existing result file.
//
// Usage: the driver on rank 0 builds the set of tasks already in the file
// (DoneFromFile), checks the file's last segment against the job (Resume),
// then asks a Planner for chunks of Refs and sends them to the engines.
//
//	done, seg, err := sweep.Resume(path, job, prov, force)
//	pl := sweep.NewPlanner(job, done)
//	for refs := pl.Next(sweep.ChunkSize(cost, pl.Left(), engines)); refs != nil; ... {
//		// send refs; an engine runs job.PointTask(ref.Point, ref.Replicate)
//	}
package sweep
