// Package jobdir owns the job directory: the name of every file in it, the
// modes they are created with, and typed reads and writes of what rankhub
// records there (the job's outcome history in status.json, a sweep's
// progress.json, the scheduler's job id). Nothing else builds these paths.
//
// A job directory is private by default: the directory is 0700 and every
// file rankhub writes in it 0600, whatever the umask. A job with
// [job].group_readable = true gets 0750 and 0640 instead, so a project
// group can read logs and results. Ranks learn the choice from the
// directory's own mode (Open), so no environment variable carries it.
//
// Usage:
//
//	d, err := jobdir.Create(job, workdir) // <workdir>/.rankhub/<name>-<time>-<id>/, job.toml inside
//	f, err := d.Create(jobdir.RankOut(3)) // rank-3.out, 0600
//	err = d.AppendAttempt(jobdir.Attempt{Outcome: jobdir.Terminated, Reason: "SIGTERM"})
//	st, err := d.ReadStatus()             // every attempt, first run first
//	os.Exit(st.Last().Outcome.ExitCode())
//
// A driver (the sweep's, a program's) chooses how the job ends by the
// error it returns; rank 0 records it and exits with its status:
//
//	return jobdir.Failf(jobdir.Incomplete, "%d of %d tasks have no row", missing, total)
//	return jobdir.Failf(jobdir.TasksFailed, "%d of %d tasks failed", failed, total)
//	return err // any other error: rank-failed
package jobdir
