// Package pbs runs rankhub jobs under PBS Pro, OpenPBS and Torque: it
// renders the batch script for either dialect, starts the ranks with
// mpiexec, pbsdsh or pbs_tmrsh, reads $PBS_NODEFILE, submits with qsub,
// follows jobs with one cached qstat for all of them and cancels with qdel.
//
// # Usage
//
//	b := pbs.New()                                // tools from PATH, 5 s status cache
//	text, err := b.Script(job, launch)            // write to <jobdir>/job.pbs
//	id, err := b.Submit(ctx, "/scratch/alice/.rankhub/ising-20260101T120000/job.pbs")
//	st, err := b.Status(ctx, id, otherIDs...)   // one qstat for all ids
//	err = b.Cancel(ctx, id)
//
// Options: WithCommand / WithBinDir for tool paths, WithCacheTTL for the
// status cache, WithTextQstat to skip the PBS Pro JSON form.
//
// # Dialects
//
// job.pbs_dialect "pro" (default) asks for `-l select=N:ncpus=C:mpiprocs=R`
// (with `:mem=` per node), "torque" for `-l nodes=N:ppn=C` (with a
// job-wide `-l mem=`, job.memory times nodes). R is ranks_per_node, N is
// nodes (or derived), C is R times cpus_per_rank; without nodes and
// ranks_per_node all ranks ask for one node. Also rendered: -N (see
// JobName: letters, digits, '_', '.', '-', starting with a letter, at most
// 15 characters for Torque), -l walltime=HH:MM:SS, -q (queue, or partition
// as a synonym), -A, -M, -m (SLURM words END,FAIL become PBS letters ae),
// -j oe and -o (default <jobdir>/pbs.out; -e when job.error is set), then
// job.directives verbatim. The body records $PBS_JOBID in
// <jobdir>/scheduler-id, does `cd "$PBS_O_WORKDIR"` and then the workdir,
// exports the environment, runs job.setup, starts the ranks in the
// background and forwards USR1 and TERM from the batch shell to the
// starter processes.
//
// # Starters and rank identity
//
// Remote starters do not carry the batch shell's environment or directory,
// so every rank runs through a wrapper: /usr/bin/env RANKHUB_SIZE=<ranks>
// and every exported variable, then a cd into the batch shell's directory,
// then the rank command. How a rank learns its number:
//
//	mpiexec    default for pro: `mpiexec -n <ranks> ...`. The launcher is
//	           taken from $RANKHUB_MPIEXEC when set (split at blanks, e.g.
//	           "mpirun.openmpi --oversubscribe"; on Debian Open MPI is
//	           mpirun.openmpi). Open MPI sets OMPI_COMM_WORLD_RANK and
//	           OMPI_COMM_WORLD_SIZE; MPICH, Intel MPI and PBS Pro's mpiexec
//	           set PMI_RANK and PMI_SIZE. Open MPI's mpirun forwards USR1
//	           and TERM to the ranks.
//	pbsdsh     default for torque: `pbsdsh -c <ranks> -v ...`. Sets
//	           PBS_VNODENUM (0-based, the rank) and PBS_TASKNUM (unique but
//	           not 0-based). pbsdsh does not forward signals; PBS signals
//	           the ranks itself on qdel and at the walltime.
//	pbs_tmrsh  one `pbs_tmrsh <host> /usr/bin/env RANKHUB_RANK=<i> ...` per
//	           rank, rank i on line i*cpus_per_rank of $PBS_NODEFILE, then
//	           wait. Sets RANKHUB_RANK. Signals reach the pbs_tmrsh
//	           processes.
//
// RANKHUB_SIZE is set for every starter.
//
// A custom template (job.template) replaces the built-in script and
// receives *ScriptData (.Start is the starter block, .Directives the #PBS
// options), with the functions quote, quoteArgs and join.
//
// # Status
//
// Status runs `qstat -f -F json -x <ids>` (PBS Pro: finished jobs
// included). When qstat rejects those options (Torque, Slurm's Torque
// wrappers) the Backend switches for good to the text of `qstat -f <ids>`
// ("Job Id:", "job_state = R", "Exit_status = 0"). job_state letters map as
// MapState documents: Q H W T M pending; R E B running; S U suspended
// (running); C F X finished, then COMPLETED, FAILED, TIMEOUT or CANCELLED
// from Exit_status and the server's comment. Ids the server no longer knows
// are UNKNOWN.
//
// # Tests
//
// `go test ./pbs` runs unit tests with fake qsub/qstat/qdel, golden
// scripts (`go test ./pbs -update` rewrites testdata/) and every starter
// run by bash with fake starter programs. The integration tests submit a
// rendered Torque script through Slurm's qsub wrapper (scripts/slurm-local.sh
// up) and run a rendered PBS Pro script by bash with Open MPI
// (apt-get install openmpi-bin); they skip loudly when those are missing,
// or fail when RANKHUB_REQUIRE_SLURM=1.
package pbs
