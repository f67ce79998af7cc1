package sweep

import "fmt"

// IncompleteError is returned by the sweep driver when fewer tasks than the
// job asks for have a row: the run was stopped (SIGTERM, the walltime
// warning), every engine died, or chunks could not run. `--resume` runs the
// rest.
type IncompleteError struct {
	Wanted int    // tasks this run was to run
	Done   int    // of those, tasks that got a row
	Reason string // why the run stopped
	Err    error  // the cause, if any (context.Canceled, an engine error)
}

func (e *IncompleteError) Error() string {
	return fmt.Sprintf("sweep incomplete: %d of %d tasks have a row (%s); run again with --resume for the rest", e.Done, e.Wanted, e.Reason)
}

func (e *IncompleteError) Unwrap() error { return e.Err }

// TasksFailedError is returned by the sweep driver when every task has a
// row but some rows record a failure (exit status, error).
type TasksFailedError struct {
	Failed, Done int
	First        string // the first failure's message
}

func (e *TasksFailedError) Error() string {
	return fmt.Sprintf("%d of %d tasks failed (their rows keep the error); first: %s", e.Failed, e.Done, e.First)
}
