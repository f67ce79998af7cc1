package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/rankhub/rankhub"
	"github.com/rankhub/rankhub/jobdir"
	"github.com/rankhub/rankhub/jobs"
	"github.com/rankhub/rankhub/launcher"
)

type runFlags struct {
	ranks     int
	walltime  string
	tcp       bool
	noAbort   bool
	heartbeat time.Duration
	workdir   string
	resume    bool
	force     bool
}

func newRunFlags(fl *runFlags) *flag.FlagSet {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.IntVar(&fl.ranks, "n", 0, "number of ranks (overrides [job].ranks)")
	fs.IntVar(&fl.ranks, "ranks", 0, "number of ranks (same as -n)")
	fs.StringVar(&fl.walltime, "walltime", "", "stop the job after this long (overrides [job].walltime)")
	fs.BoolVar(&fl.tcp, "tcp", false, "force TCP between ranks (default: Unix sockets on one host)")
	fs.BoolVar(&fl.noAbort, "no-abort", false, "keep the other ranks running when one fails")
	fs.DurationVar(&fl.heartbeat, "heartbeat", 0, "heartbeat interval between ranks (default 1s; a peer is dead after 5)")
	fs.StringVar(&fl.workdir, "workdir", "", "directory the ranks run in (overrides [job].workdir)")
	fs.BoolVar(&fl.resume, "resume", false, "sweep: run only the tasks whose rows are missing from the result file, appending to it")
	fs.BoolVar(&fl.force, "force", false, "with --resume: continue even if the job text or program differ from the file's provenance")
	return fs
}

func init() {
	register(&command{name: "run", summary: "run a job on this machine: N local ranks, no scheduler",
		usage: "[flags] job.toml | rankhub run -n N [flags] -- program [args...]", run: runRun})
	flagSets["run"] = func() *flag.FlagSet { return newRunFlags(&runFlags{}) }
}

func runRun(args []string, stdout, stderr io.Writer) error {
	var fl runFlags
	fs := newRunFlags(&fl)
	if err := parseFlags("run", fs, args, stdout); err != nil {
		return err
	}
	job, err := jobFromArgs(fs, args, fl.ranks)
	if err != nil {
		return err
	}
	if err := job.Apply(jobs.Overrides{Ranks: fl.ranks, Walltime: fl.walltime}); err != nil {
		return err
	}
	for _, w := range job.Warnings {
		fmt.Fprintf(stderr, "warning: %s\n", w)
	}
	if fl.workdir != "" {
		job.Job.Workdir, _ = filepath.Abs(fl.workdir)
	}
	if fl.heartbeat != 0 && fl.heartbeat < jobs.MinHeartbeat {
		return &usageError{msg: fmt.Sprintf("--heartbeat %v is below the minimum %v", fl.heartbeat, jobs.MinHeartbeat)}
	}
	if err := launcher.Preflight(job, true); err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	argv, err := launcher.RankCommand(job, self)
	if err != nil {
		return err
	}
	jd, err := launcher.NewJobDir(job, "")
	if err != nil {
		return err
	}
	jobDir := jd.Path
	fmt.Fprintf(stderr, "rankhub: job %s: %d ranks, job directory %s\n", job.Job.Name, job.Job.Ranks, jobDir)

	// Ctrl-C and SIGTERM stop the ranks; which one came decides the outcome.
	ctx, cancelRun := context.WithCancelCause(context.Background())
	defer cancelRun(nil)
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	go func() {
		select {
		case s := <-sigs:
			o := jobdir.Terminated
			if s == os.Interrupt {
				o = jobdir.Interrupted
			}
			cancelRun(jobdir.Failf(o, "rankhub run received %v; ranks stopped", s))
		case <-ctx.Done():
		}
	}()
	if wt := job.Job.Walltime.Duration; wt > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, wt, jobdir.Failf(jobdir.Walltime, "walltime %v reached; ranks stopped", wt))
		defer cancel()
	}
	transport := job.Job.Transport
	if fl.tcp {
		transport = "tcp"
	}
	hb := job.Job.Heartbeat.Duration
	if fl.heartbeat > 0 {
		hb = fl.heartbeat
	}
	abort := job.Job.AbortOnError == nil || *job.Job.AbortOnError
	env := map[string]string{}
	for k, v := range job.Job.Env {
		env[k] = v
	}
	if fl.force && !fl.resume {
		return &usageError{msg: "--force goes with --resume"}
	}
	if err := inputsPrecheck(job); err != nil {
		return err
	}
	if fl.resume {
		env[rankhub.EnvResume] = "1"
		if fl.force {
			env[rankhub.EnvResumeForce] = "1"
		}
		if err := sweepPrecheck(job, fl.force); err != nil {
			return err
		}
	}
	stopBar := startProgressBar(stderr, jobDir)
	defer stopBar()
	err = launcher.RunLocal(ctx, launcher.LocalConfig{
		Ranks: job.Job.Ranks, Command: argv, Env: env, JobDir: jobDir, Workdir: launcher.JobWorkdir(job),
		JobID: filepath.Base(jobDir), AbortOnError: abort && !fl.noAbort, Transport: transport, Heartbeat: hb,
		Settings: launcher.JobSettings(job, ""), Stdout: stdout, Stderr: stderr,
	})
	o, reason := runOutcome(jd, context.Cause(ctx), err)
	if o == jobdir.Completed {
		return nil
	}
	return &exitError{code: o.ExitCode(), err: fmt.Errorf("%s: %s (logs: %s)", o, reason, jobDir)}
}

// runOutcome decides how a local run ended and makes status.json say so.
// Rank 0 records the job's end (the driver's outcome, a signal it got);
// the launcher knows what rank 0 cannot: a signal to rankhub run itself,
// the local walltime, ranks that failed or were lost after or without the
// hub's record. The run's attempt is the first of the fresh job directory.
func runOutcome(jd jobdir.Dir, cause, runErr error) (jobdir.Outcome, string) {
	st, _ := jd.ReadStatus()
	recorded := len(st.Attempts) > 0
	a := st.Last()
	var re *launcher.RunError
	switch {
	case cause != nil && !errors.Is(cause, context.Canceled):
		// Our signal or the walltime stopped the ranks.
		a.Outcome, a.Reason = jobdir.OutcomeOf(cause), cause.Error()
	case recorded && a.Outcome == jobdir.Completed && errors.As(runErr, &re):
		// Rank 0 saw every task done, but a rank ended badly: killed by a
		// signal (lost), or failed.
		a.Outcome = jobdir.RankFailed
		if re.First.Signal != "" || len(re.Hung) > 0 {
			a.Outcome = jobdir.NodeLost
		}
		a.Reason = "completed, but " + re.First.String()
	case recorded:
		return a.Outcome, a.Reason
	case errors.As(runErr, &re):
		// Rank 0 recorded nothing: it was killed, or the program is not
		// built with rankhub.
		// built with rankhub. Rank 0's own exit status says why when it is
		// one of the table's (a rank built with rankhub exits so).
		a.Outcome, a.Reason = jobdir.RankFailed, re.Error()
		if re.First.Signal == "SIGTERM" {
			a.Outcome = jobdir.Terminated
		}
		for _, ex := range re.All {
			if o := jobdir.FromExitCode(ex.Status); ex.Rank == 0 && ex.Signal == "" && o != "" && o != jobdir.Completed {
				a.Outcome = o
			}
		}
	case runErr != nil:
		a.Outcome, a.Reason = jobdir.BadInput, runErr.Error()
	default:
		a.Outcome = jobdir.Completed
	}
	host, _ := os.Hostname()
	a.Host, a.PID, a.By = host, os.Getpid(), "rankhub run"
	a.Ended = time.Time{}
	if err := jd.SetAttempt(0, a); err != nil {
		fmt.Fprintf(os.Stderr, "rankhub run: %v\n", err)
	}
	return a.Outcome, a.Reason
}

// jobFromArgs loads the job file, or builds a job from "-- program args".
func jobFromArgs(fs *flag.FlagSet, args []string, ranks int) (*jobs.Job, error) {
	dash := -1
	for i, a := range args {
		if a == "--" {
			dash = i
			break
		}
	}
	if dash >= 0 || (fs.NArg() > 0 && !strings.HasSuffix(fs.Arg(0), ".toml")) {
		prog := fs.Args()
		if len(prog) == 0 {
			return nil, &usageError{msg: "no program after --"}
		}
		if ranks == 0 {
			return nil, &usageError{msg: "-n N is required with a program"}
		}
		name := jobs.DefaultName(filepath.Base(prog[0]) + ".toml")
		src := fmt.Sprintf("# rankhub run -n %d -- %s\n[job]\nname = %q\nranks = %d\nprogram = [", ranks, shellJoin(prog), name, ranks)
		for i, p := range prog {
			if i > 0 {
				src += ", "
			}
			src += fmt.Sprintf("%q", p)
		}
		src += "]\n"
		wd, _ := os.Getwd()
		return jobs.Parse(filepath.Join(wd, "command-line.toml"), []byte(src))
	}
	if fs.NArg() != 1 {
		return nil, &usageError{msg: "give one job file, or -n N -- program"}
	}
	return jobs.Load(fs.Arg(0))
}

func shellJoin(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = jobs.ShellQuote(a)
	}
	return strings.Join(q, " ")
}
