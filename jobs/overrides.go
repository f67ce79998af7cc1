package jobs

import (
	"maps"
)

// Overrides are the command-line flags that take precedence over the job
// file. Zero fields leave the job's value alone.
type Overrides struct {
	Ranks     int    // --ranks
	Walltime  string // --walltime, any form ParseDuration reads
	Partition string // --partition (also the PBS queue unless --queue is given)
	Queue     string // --queue (also the SLURM partition unless --partition is given)
	Account   string // --account
	Scheduler string // --scheduler
}

// Apply sets the overrides on the job and validates it again. Diagnostics
// about an overridden value name the flag ("--walltime: ...") instead of the
// file. On error the job is left unchanged and the error is an *Errors.
func (j *Job) Apply(o Overrides) error {
	next := *j
	next.Job.Env = maps.Clone(j.Job.Env)
	next.flags = maps.Clone(j.flags)
	if next.flags == nil {
		next.flags = map[string]string{}
	}
	if next.Task != nil {
		t := *next.Task
		next.Task = &t
	}
	if next.Sweep != nil {
		s := *next.Sweep
		next.Sweep = &s
	}
	if next.Results != nil {
		r := *next.Results
		next.Results = &r
	}
	var flagErrs []Diag
	set := func(key, flag string) { next.flags[key] = flag }
	if o.Ranks != 0 {
		next.Job.Ranks = o.Ranks
		set("job.ranks", "--ranks")
	}
	if o.Walltime != "" {
		w, err := ParseDuration(o.Walltime)
		if err != nil {
			flagErrs = append(flagErrs, Diag{Key: "--walltime", Msg: err.Error()})
		} else {
			next.Job.Walltime = w
			set("job.walltime", "--walltime")
		}
	}
	if o.Partition != "" {
		next.Job.Partition = o.Partition
		set("job.partition", "--partition")
		if o.Queue == "" {
			next.Job.Queue = o.Partition
			set("job.queue", "--partition")
		}
	}
	if o.Queue != "" {
		next.Job.Queue = o.Queue
		set("job.queue", "--queue")
		if o.Partition == "" {
			next.Job.Partition = o.Queue
			set("job.partition", "--queue")
		}
	}
	if o.Account != "" {
		next.Job.Account = o.Account
		set("job.account", "--account")
	}
	if o.Scheduler != "" {
		next.Job.Scheduler = o.Scheduler
		set("job.scheduler", "--scheduler")
	}
	err := next.Validate()
	if len(flagErrs) > 0 {
		all := flagErrs
		if e, ok := err.(*Errors); ok {
			all = append(all, e.Diags...)
		}
		sortDiags(all)
		return &Errors{Diags: all}
	}
	if err != nil {
		return err
	}
	*j = next
	return nil
}
