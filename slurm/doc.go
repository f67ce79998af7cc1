// Package slurm runs rankhub jobs under SLURM: it renders the batch script,
// submits it with sbatch, follows it with one cached sacct (or scontrol)
// query for all jobs, cancels it with scancel, and expands and compresses
// SLURM hostlists.
//
// # Usage
//
// The launcher renders the script into the job directory and submits it:
//
//	b := slurm.New()                              // tools from PATH, 5 s status cache
//	text, err := b.Script(job, jobs.Launch{
//		JobDir:      "/scratch/alice/.rankhub/ising-20260101T120000",
//		RankCommand: []string{"/home/alice/bin/rankhub", "rank"},
//		Env:         map[string]string{"RANKHUB_JOB_DIR": "/scratch/alice/.rankhub/ising-20260101T120000"},
//	})
//	// write text to <jobdir>/job.sbatch, then
//	id, err := b.Submit(ctx, "/scratch/alice/.rankhub/ising-20260101T120000/job.sbatch")
//	st, err := b.Status(ctx, id, otherIDs...)   // one scheduler query for all ids
//	err = b.Cancel(ctx, id)
//
// Options: WithCommand("sbatch", "/opt/slurm/bin/sbatch") or WithBinDir for
// tool paths, WithCacheTTL for the status cache, WithoutAccounting to go
// straight to scontrol on clusters without slurmdbd.
//
// # The script
//
// #SBATCH lines carry job-name, ntasks (= ranks), nodes, ntasks-per-node,
// cpus-per-task, mem, time (jobs.Duration.SlurmTime), partition, account, qos,
// mail-user/mail-type, output (default <jobdir>/slurm-%j.out), error,
// --signal=B:USR1@<signal_lead> and then job.directives verbatim. Values
// are double-quoted for sbatch's directive parser where needed; newlines
// are refused. The body runs under `set -euo pipefail`, records
// $SLURM_JOB_ID in <jobdir>/scheduler-id, changes to the workdir, exports
// job.env and the launch environment (single-quoted), runs job.setup, and
// starts `srun --kill-on-bad-exit=1 <rank command>` in the background. A
// trap forwards USR1 (the walltime warning) and TERM (scancel, walltime)
// from the batch shell to the srun step, which forwards them to every rank,
// so the hub can flush results and record why the job ended.
//
// A custom template (job.template) replaces the built-in one; it is a
// text/template that receives *ScriptData and may use the functions quote
// (shell quoting), quoteArgs and join. ScriptData.Srun and .Exports are the
// pieces most templates need.
//
// Each rank finds its identity in SLURM_PROCID, SLURM_NTASKS,
// SLURM_LOCALID and SLURM_NODEID; SLURM_JOB_NODELIST holds the nodes in
// hostlist syntax, which ExpandHostlist turns into names.
//
// # Status
//
// Status asks `sacct -n -P -X -j <ids> -o JobID,State,ExitCode,Reason,NodeList`
// while accounting works; jobs sacct does not list yet are looked up with
// one `squeue -h -t all -j <ids>`. When sacct reports that accounting is
// disabled, the Backend switches for good to one `scontrol show job -o`
// (all jobs known to slurmctld). SLURM states map to PENDING, RUNNING,
// COMPLETED, FAILED (also NODE_FAIL, OUT_OF_MEMORY, BOOT_FAIL, DEADLINE),
// CANCELLED (also PREEMPTED), TIMEOUT, and UNKNOWN; see MapState. An exit
// code "code:signal" becomes code, or 128+signal when a signal ended the job.
//
// # A SLURM quirk
//
// With ProctrackType=proctrack/linuxproc SLURM finds a step's processes by
// parsing /proc/PID/stat; a rank program whose file name contains a blank
// breaks that parse, and scancel or a walltime kill then cannot reach the
// ranks (the node drains with "Kill task failed"). Keep blanks out of
// program file names (directories are fine).
//
// # Tests
//
// `go test ./slurm` runs unit tests with fake SLURM tools and golden
// scripts (`go test ./slurm -update` rewrites testdata/). The integration
// tests need a reachable SLURM (scripts/slurm-local.sh up); they skip with
// "SLURM NOT REACHABLE" otherwise, or fail when RANKHUB_REQUIRE_SLURM=1.
// The walltime test takes over a minute and runs with RANKHUB_SLOW_TESTS=1.
package slurm
