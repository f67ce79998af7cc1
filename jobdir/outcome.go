package jobdir

import (
	"errors"
	"fmt"
)

// Outcome is how a job ended: its exit status (of `rankhub run`, of
// `rankhub wait`, and of rank 0's process) and its reason in status.json.
// This file is the one table of them; the README's Commands section
// repeats it.
//
//	outcome        exit  status.json state  when
//	completed         0  completed          every task asked for ran (a program's driver returned nil)
//	bad-input         1  failed             the job, a flag or a file is wrong; nothing (more) was started
//	usage             2  failed             bad command line
//	tasks-failed      3  completed          every task ran, some of them failed (their rows say why)
//	incomplete        4  failed             fewer tasks ran than asked, without a signal
//	rank-failed       5  failed             a rank failed (exit status, crash, or the driver's error)
//	node-lost         6  completed          every task ran, but engines were lost (declared dead by the hub) and their tasks re-run
//	walltime          7  signalled          stopped by the walltime warning (SIGUSR1) or the local walltime
//	start-failed      8  failed             not every rank reached the hub within the start timeout
//	interrupted     130  signalled          SIGINT (Ctrl-C)
//	terminated      143  signalled          SIGTERM (scancel, qdel, kill)
type Outcome string

// The outcomes; see the table above.
const (
	Completed   Outcome = "completed"
	BadInput    Outcome = "bad-input"
	Usage       Outcome = "usage"
	TasksFailed Outcome = "tasks-failed"
	Incomplete  Outcome = "incomplete"
	RankFailed  Outcome = "rank-failed"
	NodeLost    Outcome = "node-lost"
	Walltime    Outcome = "walltime"
	StartFailed Outcome = "start-failed"
	Interrupted Outcome = "interrupted"
	Terminated  Outcome = "terminated"
)

var table = map[Outcome]struct {
	code  int
	state string
}{
	Completed:   {0, "completed"},
	BadInput:    {1, "failed"},
	Usage:       {2, "failed"},
	TasksFailed: {3, "completed"},
	Incomplete:  {4, "failed"},
	RankFailed:  {5, "failed"},
	NodeLost:    {6, "completed"},
	Walltime:    {7, "signalled"},
	StartFailed: {8, "failed"},
	Interrupted: {130, "signalled"},
	Terminated:  {143, "signalled"},
}

// ExitCode is the outcome's exit status; an outcome not in the table (a
// status.json from a newer rankhub) is a rank failure.
func (o Outcome) ExitCode() int {
	if e, ok := table[o]; ok {
		return e.code
	}
	return table[RankFailed].code
}

// State is the coarse state of status.json: completed, failed or signalled.
func (o Outcome) State() string {
	if e, ok := table[o]; ok {
		return e.state
	}
	return "failed"
}

// Known tells whether o is in the table.
func (o Outcome) Known() bool { _, ok := table[o]; return ok }

// FromExitCode is the outcome whose exit status is code ("" when none is).
func FromExitCode(code int) Outcome {
	for o, e := range table {
		if e.code == code {
			return o
		}
	}
	return ""
}

// Error is an error that says how the job ends. A driver (the sweep's or a
// program's) returns one to choose its outcome; the root package records
// it in status.json and exits with its code. Any other error of a driver is
// RankFailed.
type Error struct {
	Outcome Outcome
	Err     error
}

func (e *Error) Error() string {
	if e.Err == nil {
		return string(e.Outcome)
	}
	return e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }

// Fail wraps err with an outcome.
func Fail(o Outcome, err error) error { return &Error{Outcome: o, Err: err} }

// Failf is Fail with a formatted message.
func Failf(o Outcome, format string, args ...any) error {
	return &Error{Outcome: o, Err: fmt.Errorf(format, args...)}
}

// OutcomeOf is the outcome an error stands for: Completed for nil, the
// outcome of an *Error in its chain, else RankFailed.
func OutcomeOf(err error) Outcome {
	if err == nil {
		return Completed
	}
	var e *Error
	if errors.As(err, &e) && e.Outcome.Known() {
		return e.Outcome
	}
	return RankFailed
}
