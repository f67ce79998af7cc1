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
	self, err := os.Executable()
	if err != nil {
		return err
	}
	argv, err := launcher.RankCommand(job, self)
	if err != nil {
		return err
	}
	jobDir, err := launcher.NewJobDir(job, "")
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "rankhub: job %s: %d ranks, job directory %s\n", job.Job.Name, job.Job.Ranks, jobDir)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if wt := job.Job.Walltime.Duration; wt > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, wt)
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
		Stdout: stdout, Stderr: stderr,
	})
	var re *launcher.RunError
	switch {
	case errors.As(err, &re):
		return &exitError{code: 1, err: fmt.Errorf("%w (logs: %s)", err, jobDir)}
	case err != nil && errors.Is(err, context.DeadlineExceeded):
		return &exitError{code: 1, err: fmt.Errorf("walltime %v reached; ranks stopped (logs: %s)", job.Job.Walltime.Duration, jobDir)}
	case err != nil && ctx.Err() != nil:
		return &exitError{code: 130, err: fmt.Errorf("interrupted; ranks stopped (logs: %s)", jobDir)}
	}
	return err
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
