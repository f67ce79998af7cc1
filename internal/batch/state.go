package batch

// States a Backend reports in jobs.SchedState.State; slurm and pbs
// re-export them.
const (
	StatePending   = "PENDING"
	StateRunning   = "RUNNING"
	StateCompleted = "COMPLETED"
	StateFailed    = "FAILED"
	StateCancelled = "CANCELLED"
	StateTimeout   = "TIMEOUT"
	StateUnknown   = "UNKNOWN"
)
