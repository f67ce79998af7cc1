package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"time"

	"github.com/rankhub/rankhub"
	"github.com/rankhub/rankhub/jobdir"
	"github.com/rankhub/rankhub/jobs"
	"github.com/rankhub/rankhub/launcher"
)

type submitFlags struct {
	o      jobs.Overrides
	dryRun bool
	resume bool
	force  bool
	join   string // a running hub's job directory or hub.json: every rank is an engine joining it
	// hubFile is join's connection file, absolute, once checked.
	hubFile string
}

func newSubmitFlags(name string, fl *submitFlags) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.IntVar(&fl.o.Ranks, "ranks", 0, "number of ranks (overrides [job].ranks)")
	fs.IntVar(&fl.o.Ranks, "n", 0, "same as --ranks")
	fs.StringVar(&fl.o.Walltime, "walltime", "", "walltime, e.g. 2h or 1:30:00 (overrides [job].walltime)")
	fs.StringVar(&fl.o.Partition, "partition", "", "SLURM partition (overrides [job].partition)")
	fs.StringVar(&fl.o.Queue, "queue", "", "PBS queue (overrides [job].queue)")
	fs.StringVar(&fl.o.Account, "account", "", "account to charge (overrides [job].account)")
	fs.StringVar(&fl.o.Scheduler, "scheduler", "", "slurm or pbs (overrides [job].scheduler)")
	if name == "submit" {
		fs.BoolVar(&fl.dryRun, "dry-run", false, "write the job directory and script, but do not submit")
	}
	fs.BoolVar(&fl.resume, "resume", false, "sweep: run only the tasks whose rows are missing from the result file, appending to it")
	fs.BoolVar(&fl.force, "force", false, "with --resume: continue even if the job text or program differ from the file's provenance")
	fs.StringVar(&fl.join, "join", "", "a running hub's job directory or hub.json: every rank of the job is an engine joining it (like ipcluster engines)")
	return fs
}

func init() {
	register(&command{name: "submit", summary: "write the job directory and batch script and submit it to SLURM or PBS",
		usage: "[--dry-run] [--ranks N] [--walltime T] [--partition P|--queue Q] [--account A] [--join JOBDIR|hub.json] job.toml", run: runSubmit})
	register(&command{name: "script", summary: "print the batch script `submit` would submit (nothing is written)",
		usage: "[--ranks N] [--walltime T] [--partition P|--queue Q] [--account A] [--join JOBDIR|hub.json] job.toml", run: runScript})
	flagSets["submit"] = func() *flag.FlagSet { return newSubmitFlags("submit", &submitFlags{}) }
	flagSets["script"] = func() *flag.FlagSet { return newSubmitFlags("script", &submitFlags{}) }
}

func loadBatchJob(name string, args []string, stdout, stderr io.Writer) (*jobs.Job, *submitFlags, launcher.Backend, error) {
	var fl submitFlags
	fs := newSubmitFlags(name, &fl)
	if err := parseFlags(name, fs, reorder(args), stdout); err != nil {
		return nil, nil, nil, err
	}
	if fs.NArg() != 1 {
		return nil, nil, nil, &usageError{msg: "give one job file"}
	}
	load := jobs.Load
	if fl.join != "" {
		// Every rank is an engine of the hub it joins: one is enough.
		load = jobs.LoadEngines
	}
	job, err := load(fs.Arg(0))
	if err != nil {
		return nil, nil, nil, err
	}
	if err := job.Apply(fl.o); err != nil {
		return nil, nil, nil, err
	}
	for _, w := range job.Warnings {
		fmt.Fprintf(stderr, "warning: %s\n", w)
	}
	if job.Job.Scheduler == jobs.SchedLocal {
		return nil, nil, nil, fmt.Errorf("%s: [job].scheduler is %q: use `rankhub run`, or --scheduler slurm|pbs", job.File, job.Job.Scheduler)
	}
	be, err := launcher.NewBackend(job.Job.Scheduler)
	if err != nil {
		return nil, nil, nil, err
	}
	if fl.join != "" {
		if fl.hubFile, err = joinable(job, &fl, stderr); err != nil {
			return nil, nil, nil, err
		}
	}
	return job, &fl, be, nil
}

// joinable checks that job can run as engines joining the hub of fl.join
// and returns the hub's connection file: the job does no work of its own,
// the hub answers now, and the nodes can reach it (a hub on a loopback
// address is refused for a job that may span nodes, and warned about for
// one on a single node, which must be the hub's host).
func joinable(job *jobs.Job, fl *submitFlags, stderr io.Writer) (string, error) {
	if job.Task != nil || job.Sweep != nil {
		return "", fmt.Errorf("%s: --join: the job has a [task] or [sweep]; an engines job only serves the hub it joins (remove them, or submit without --join)", job.File)
	}
	if fl.resume {
		return "", &usageError{msg: "--resume does not go with --join (an engines job has no sweep)"}
	}
	path, ci, c, err := liveHub(fl.join)
	if err != nil {
		return "", fmt.Errorf("--join: %w", err)
	}
	c.Close()
	host, _, err := net.SplitHostPort(ci.TCP)
	if err != nil {
		return "", fmt.Errorf("--join: %s: the hub's address %q: %w", path, ci.TCP, err)
	}
	if ip := net.ParseIP(host); host == "localhost" || ip != nil && ip.IsLoopback() {
		msg := fmt.Sprintf("%s: the hub listens on %s, which only its own host (%s) reaches; for engines on other nodes start it with `rankhub start --listen 0.0.0.0` (or --interface IF)", path, ci.TCP, ci.Host)
		j := job.Job
		if j.Nodes != 1 && (j.RanksPerNode == 0 || j.RanksPerNode < j.Ranks) {
			return "", fmt.Errorf("--join: %s; this job may span nodes ([job].nodes is not 1)", msg)
		}
		fmt.Fprintf(stderr, "warning: %s; this job's node must be %s\n", msg, ci.Host)
	}
	return path, nil
}

// reorder moves a leading job file behind the flags, so both
// `submit job.toml --ranks 8` and `submit --ranks 8 job.toml` work.
func reorder(args []string) []string {
	if len(args) > 1 && len(args[0]) > 0 && args[0][0] != '-' {
		return append(append([]string{}, args[1:]...), args[0])
	}
	return args
}

func runScript(args []string, stdout, stderr io.Writer) error {
	job, fl, be, err := loadBatchJob("script", args, stdout, stderr)
	if err != nil {
		return err
	}
	dir := filepath.Join(launcher.JobWorkdir(job), jobdir.Root, job.Job.Name+"-"+time.Now().Format("20060102-150405")+"-xxxx")
	l, err := batchLaunch(job, dir)
	if err != nil {
		return err
	}
	if err := launchEnv(fl, l.Env); err != nil {
		return err
	}
	s, err := be.Script(job, l)
	if err != nil {
		return err
	}
	fmt.Fprint(stdout, s)
	return nil
}

func runSubmit(args []string, stdout, stderr io.Writer) error {
	job, fl, be, err := loadBatchJob("submit", args, stdout, stderr)
	if err != nil {
		return err
	}
	if err := launcher.Preflight(job, false); err != nil {
		return err
	}
	if err := inputsPrecheck(job); err != nil {
		return err
	}
	if fl.resume {
		// Refuse a resume that cannot work before anything is queued.
		if err := sweepPrecheck(job, fl.force); err != nil {
			return err
		}
	}
	jd, err := launcher.NewJobDir(job, "")
	if err != nil {
		return err
	}
	if fl.hubFile != "" {
		// status, wait and cancel load the job as an engines job.
		if err := jd.WriteJoin(fl.hubFile); err != nil {
			return err
		}
	}
	dir := jd.Path
	l, err := batchLaunch(job, dir)
	if err != nil {
		return err
	}
	if err := launchEnv(fl, l.Env); err != nil {
		return err
	}
	s, err := be.Script(job, l)
	if err != nil {
		return err
	}
	path := jd.File(jobdir.Script(job.Job.Scheduler))
	if err := jd.WriteScript(jobdir.Script(job.Job.Scheduler), []byte(s)); err != nil {
		return err
	}
	if fl.dryRun {
		fmt.Fprintf(stderr, "rankhub submit: dry run: %s written, not submitted\n", path)
		fmt.Fprintln(stdout, dir)
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	id, err := be.Submit(ctx, path)
	if err != nil {
		return fmt.Errorf("%w (the script is in %s)", err, path)
	}
	if err := jd.WriteSchedID(id); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "rankhub submit: %s job %s, job directory %s\n", be.Name(), id, dir)
	fmt.Fprintln(stdout, id)
	return nil
}

// launchEnv exports the resume request, or the hub to join, to the ranks
// of a batch job.
func launchEnv(fl *submitFlags, env map[string]string) error {
	if fl.hubFile != "" {
		env[launcher.EnvJoin] = fl.hubFile
	}
	if fl.force && !fl.resume {
		return &usageError{msg: "--force goes with --resume"}
	}
	if fl.resume {
		env[rankhub.EnvResume] = "1"
		if fl.force {
			env[rankhub.EnvResumeForce] = "1"
		}
	}
	return nil
}
