package main

import (
	"flag"
	"fmt"
	"io"

	"github.com/rankhub/rankhub/jobs"
	"github.com/rankhub/rankhub/launcher"
)

func init() {
	register(&command{name: "validate", summary: "check job files and report every error with file:line:col", usage: "job.toml [job.toml ...]", run: runValidate})
	flagSets["validate"] = func() *flag.FlagSet { return flag.NewFlagSet("validate", flag.ContinueOnError) }
}

func runValidate(args []string, stdout, stderr io.Writer) error {
	fs := flagSets["validate"]()
	if err := parseFlags("validate", fs, args, stdout); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return &usageError{msg: "no job file given"}
	}
	bad := 0
	for _, path := range fs.Args() {
		j, err := jobs.Load(path)
		if err == nil {
			// What this machine must allow: the results directory, and
			// the local rank count.
			err = launcher.Preflight(j, j.Job.Scheduler == jobs.SchedLocal)
		}
		if err != nil {
			fmt.Fprintln(stderr, err)
			bad++
			continue
		}
		for _, w := range j.Warnings {
			fmt.Fprintf(stderr, "warning: %s\n", w)
		}
		n := 0
		if j.Sweep != nil {
			n = j.NumTasks()
		}
		fmt.Fprintf(stdout, "%s: ok (job %q, %d ranks, scheduler %s", path, j.Job.Name, j.Job.Ranks, j.Job.Scheduler)
		if n > 0 {
			fmt.Fprintf(stdout, ", %d tasks", n)
		}
		fmt.Fprintln(stdout, ")")
	}
	if bad > 0 {
		return &exitError{code: 1, err: fmt.Errorf("%d of %d job files have errors", bad, fs.NArg())}
	}
	return nil
}
