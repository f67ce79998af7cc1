package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/rankhub/rankhub/comm"
	"github.com/rankhub/rankhub/jobdir"
	"github.com/rankhub/rankhub/jobs"
	"github.com/rankhub/rankhub/launcher"
)

func init() {
	register(&command{name: "status", summary: "a job's scheduler state, how it ended, and the hub's live view while it runs",
		usage: "[jobdir | scheduler-id]", run: runStatus})
	register(&command{name: "cancel", summary: "cancel a submitted job (scancel / qdel)", usage: "jobdir | scheduler-id", run: runCancel})
	register(&command{name: "wait", summary: "wait until a submitted job ends; exit status from the job", usage: "[--timeout D] jobdir | scheduler-id", run: runWait})
	register(&command{name: "jobs", summary: "the job directories under .rankhub with their states", usage: "", run: runJobs})
	for _, n := range []string{"status", "cancel", "jobs"} {
		n := n
		flagSets[n] = func() *flag.FlagSet { return flag.NewFlagSet(n, flag.ContinueOnError) }
	}
	flagSets["wait"] = func() *flag.FlagSet {
		fs := flag.NewFlagSet("wait", flag.ContinueOnError)
		fs.Duration("timeout", 0, "give up after this long (0: no limit)")
		return fs
	}
}

// liveView is filled in by the views client when it can reach the hub.
var liveView func(w io.Writer, jobDir string) error

func schedState(ctx context.Context, ref *jobRef) (*jobs.SchedState, error) {
	if ref.schedID == "" || ref.job.Job.Scheduler == jobs.SchedLocal {
		return nil, nil
	}
	be, err := launcher.NewBackend(ref.job.Job.Scheduler)
	if err != nil {
		return nil, err
	}
	m, err := be.Status(ctx, ref.schedID)
	if err != nil {
		return nil, err
	}
	st, ok := m[ref.schedID]
	if !ok {
		return &jobs.SchedState{ID: ref.schedID, State: "UNKNOWN", ExitCode: -1}, nil
	}
	return &st, nil
}

func runStatus(args []string, stdout, stderr io.Writer) error {
	fs := flagSets["status"]()
	if err := parseFlags("status", fs, args, stdout); err != nil {
		return err
	}
	arg := fs.Arg(0)
	if arg == "" {
		dirs := listJobDirs()
		if len(dirs) == 0 {
			return fmt.Errorf("no job directories under %s", jobdir.Root)
		}
		arg = dirs[len(dirs)-1]
	}
	ref, err := resolveJob(arg)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "job        %s (%s, %d ranks)\ndirectory  %s\n", ref.job.Job.Name, ref.job.Job.Scheduler, ref.job.Job.Ranks, ref.dir)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if st, err := schedState(ctx, ref); err != nil {
		fmt.Fprintf(stdout, "scheduler  error: %v\n", err)
	} else if st != nil {
		fmt.Fprintf(stdout, "scheduler  %s job %s: %s", ref.job.Job.Scheduler, st.ID, st.State)
		if st.ExitCode >= 0 {
			fmt.Fprintf(stdout, " (exit %d)", st.ExitCode)
		}
		if st.Reason != "" {
			fmt.Fprintf(stdout, ", %s", st.Reason)
		}
		if st.Nodes != "" {
			fmt.Fprintf(stdout, ", nodes %s", st.Nodes)
		}
		fmt.Fprintln(stdout)
	}
	if st, err := ref.dir.ReadStatus(); err == nil {
		printEnd(stdout, st)
	} else if !errors.Is(err, jobdir.ErrNoStatus) {
		fmt.Fprintf(stdout, "ended      unreadable: %v\n", err)
	} else {
		if p, err := ref.dir.ReadProgress(); err == nil && p.Total > 0 {
			fmt.Fprintf(stdout, "progress   %d/%d tasks (%d failed, %d interrupted) at %s\n", p.Done+p.Skipped, p.Total, p.Failed, p.Interrupted,
				p.Updated.Local().Format(time.DateTime))
		}
		hubView(stdout, ref.dir)
	}
	return nil
}

// hubAnswer bounds the wait for a running hub's live view: a hub that is
// gone (its node lost, its process stopped) must not hold status up.
const hubAnswer = 2 * time.Second

// hubView prints the hub's live view, or why there is none, within
// hubAnswer: from the files when the connection file names a process of
// this host that no longer exists, else from the hub if it answers in time.
func hubView(w io.Writer, dir jobdir.Dir) {
	ci, err := comm.ReadConnInfo(dir.File(jobdir.ConnFile))
	if err != nil {
		fmt.Fprintf(w, "hub        not running (no readable %s)\n", jobdir.ConnFile)
		return
	}
	if host, _ := os.Hostname(); ci.Host == host && ci.PID > 0 && syscall.Kill(ci.PID, 0) == syscall.ESRCH {
		fmt.Fprintf(w, "hub        gone: pid %d on %s no longer runs (it ended without recording how; see rank-0.err)\n", ci.PID, ci.Host)
		return
	}
	if liveView == nil {
		return
	}
	var buf bytes.Buffer
	done := make(chan error, 1)
	go func() { done <- liveView(&buf, dir.Path) }() // left behind if the hub never answers: the command ends
	select {
	case err := <-done:
		w.Write(buf.Bytes())
		if err != nil {
			fmt.Fprintf(w, "hub        not reachable: %v\n", err)
		}
	case <-time.After(hubAnswer):
		fmt.Fprintf(w, "hub        no answer within %v from %s pid %d (%s): hung, or its node is lost\n", hubAnswer, ci.Host, ci.PID, ci.TCP)
	}
}

func runCancel(args []string, stdout, stderr io.Writer) error {
	fs := flagSets["cancel"]()
	if err := parseFlags("cancel", fs, args, stdout); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return &usageError{msg: "give a job directory or scheduler id"}
	}
	ref, err := resolveJob(fs.Arg(0))
	if err != nil {
		return err
	}
	if ref.schedID == "" {
		return fmt.Errorf("%s was not submitted to a scheduler (no %s)", ref.dir, jobdir.SchedIDFile)
	}
	be, err := launcher.NewBackend(ref.job.Job.Scheduler)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := be.Cancel(ctx, ref.schedID); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "cancelled %s job %s\n", be.Name(), ref.schedID)
	return nil
}

// printEnd shows how the job ended, each attempt when it ran more than once.
func printEnd(w io.Writer, st jobdir.Status) {
	for i, a := range st.Attempts {
		label := "ended     "
		if len(st.Attempts) > 1 {
			label = fmt.Sprintf("attempt %-2d", i+1)
		}
		fmt.Fprintf(w, "%s %s (%s, exit %d) at %s", label, a.State, a.Outcome, a.ExitStatus, a.Ended.Local().Format(time.DateTime))
		if a.Reason != "" {
			fmt.Fprintf(w, ": %s", a.Reason)
		}
		fmt.Fprintln(w)
	}
}

// terminal are the scheduler states of a job that has ended.
var terminal = map[string]bool{"COMPLETED": true, "FAILED": true, "CANCELLED": true, "TIMEOUT": true,
	"NODE_FAIL": true, "OUT_OF_MEMORY": true, "PREEMPTED": true, "BOOT_FAIL": true, "DEADLINE": true}

// waitOutcome is how a job the scheduler reports ended ended: status.json
// knows what the scheduler does not (the walltime warning, tasks that did
// not run, engines lost); the scheduler knows what rank 0 could not record
// (a cancel or a timeout before it wrote anything, a step that failed
// after it did).
func waitOutcome(sched jobs.SchedState, st jobdir.Status, stErr error) (jobdir.Outcome, string) {
	signalled := map[string]jobdir.Outcome{"CANCELLED": jobdir.Terminated, "TIMEOUT": jobdir.Walltime, "DEADLINE": jobdir.Walltime,
		"PREEMPTED": jobdir.Terminated, "NODE_FAIL": jobdir.NodeLost, "BOOT_FAIL": jobdir.NodeLost}
	by := fmt.Sprintf("the scheduler says %s", sched.State)
	if stErr == nil && len(st.Attempts) > 0 {
		a := st.Last()
		switch {
		case a.Outcome == jobdir.Completed && sched.State != "COMPLETED":
			// The hub saw the work done; the step ended badly afterwards.
			if o, ok := signalled[sched.State]; ok {
				return o, by + " after rank 0 recorded completion"
			}
			return jobdir.RankFailed, by + fmt.Sprintf(" (exit %d) after rank 0 recorded completion", sched.ExitCode)
		default:
			return a.Outcome, a.Reason
		}
	}
	if stErr != nil && !errors.Is(stErr, jobdir.ErrNoStatus) {
		return jobdir.RankFailed, fmt.Sprintf("%s; %v", by, stErr)
	}
	if o, ok := signalled[sched.State]; ok {
		return o, by + "; rank 0 recorded no end"
	}
	if sched.State == "COMPLETED" && sched.ExitCode <= 0 {
		return jobdir.Completed, ""
	}
	// A rank's exit status from the table says why, except 0-2, which any
	// program may return.
	if o := jobdir.FromExitCode(sched.ExitCode); sched.ExitCode > 2 && o != "" {
		return o, by + "; rank 0 recorded no end"
	}
	return jobdir.RankFailed, fmt.Sprintf("%s (exit %d); rank 0 recorded no end", by, sched.ExitCode)
}

func runWait(args []string, stdout, stderr io.Writer) error {
	fs := flagSets["wait"]()
	if err := parseFlags("wait", fs, args, stdout); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return &usageError{msg: "give a job directory or scheduler id"}
	}
	timeout := fs.Lookup("timeout").Value.(flag.Getter).Get().(time.Duration)
	ref, err := resolveJob(fs.Arg(0))
	if err != nil {
		return err
	}
	deadline := time.Time{}
	if timeout > 0 {
		deadline = time.Now().Add(timeout)
	}
	delay := time.Second
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		st, err := schedState(ctx, ref)
		cancel()
		if err != nil {
			return err
		}
		if st == nil {
			return fmt.Errorf("%s was not submitted to a scheduler", ref.dir)
		}
		if terminal[st.State] {
			fmt.Fprintf(stdout, "%s job %s: %s\n", ref.job.Job.Scheduler, st.ID, st.State)
			status, stErr := ref.dir.ReadStatus()
			if stErr == nil {
				printEnd(stdout, status)
			}
			o, reason := waitOutcome(*st, status, stErr)
			if o == jobdir.Completed {
				return nil
			}
			return &exitError{code: o.ExitCode(), err: fmt.Errorf("job %s ended %s: %s: %s", st.ID, st.State, o, reason)}
		}
		if !deadline.IsZero() && time.Now().After(deadline) {
			return &exitError{code: 124, err: fmt.Errorf("job %s still %s after %v", st.ID, st.State, timeout)}
		}
		time.Sleep(delay)
		if delay < 10*time.Second { // poll sparingly
			delay += delay / 2
		}
	}
}

func runJobs(args []string, stdout, stderr io.Writer) error {
	fs := flagSets["jobs"]()
	if err := parseFlags("jobs", fs, args, stdout); err != nil {
		return err
	}
	dirs := listJobDirs()
	if len(dirs) == 0 {
		fmt.Fprintf(stdout, "no job directories under %s\n", jobdir.Root)
		return nil
	}
	// One scheduler query per backend for all ids.
	refs := make([]*jobRef, 0, len(dirs))
	ids := map[string][]string{}
	for _, d := range dirs {
		ref, err := resolveJob(d)
		if err != nil {
			continue
		}
		refs = append(refs, ref)
		if ref.schedID != "" {
			ids[ref.job.Job.Scheduler] = append(ids[ref.job.Job.Scheduler], ref.schedID)
		}
	}
	states := map[string]jobs.SchedState{}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var errs []error
	for sched, list := range ids {
		be, err := launcher.NewBackend(sched)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		m, err := be.Status(ctx, list...)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for k, v := range m {
			states[k] = v
		}
	}
	fmt.Fprintf(stdout, "%-44s %-8s %-10s %-12s %s\n", "job directory", "sched", "id", "state", "ended")
	for _, r := range refs {
		state := "-"
		if st, ok := states[r.schedID]; ok {
			state = st.State
		}
		end := ""
		if st, err := r.dir.ReadStatus(); err == nil {
			end = string(st.Outcome)
		}
		fmt.Fprintf(stdout, "%-44s %-8s %-10s %-12s %s\n", shortDir(r.dir.Path), r.job.Job.Scheduler, orDash(r.schedID), state, orDash(end))
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	return nil
}

func shortDir(d string) string {
	if wd, err := os.Getwd(); err == nil && strings.HasPrefix(d, wd+"/") {
		return d[len(wd)+1:]
	}
	return d
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
