// Package batch holds what the slurm and pbs packages share: shell and
// directive quoting, the checks and shell side of a batch script (job
// directory, workdir, exports, rank command), template rendering, running
// scheduler tools with hints on failure, the status cache and the state
// names a Backend reports. It imports only jobs and the standard library.
//
// # Usage
//
// A backend keeps a Tools and a Cache and renders its script data with
// Check, NewShell and Render:
//
//	tools := batch.Tools{Paths: map[string]string{"qsub": "qsub"}, Hints: hints, NotFound: notFound}
//	out, err := tools.Run(ctx, "", "qsub", "./job.pbs") // *CommandError on failure
//
//	var cache batch.Cache
//	cache.TTL = 5 * time.Second
//	states, err := cache.Status(ids, func(ids []string) (map[string]jobs.SchedState, error) {
//		return askScheduler(ctx, ids)
//	})
//
// Errors from this package name no scheduler; the caller prefixes them
// ("slurm: ", "pbs: ") so that messages read as before.
package batch
