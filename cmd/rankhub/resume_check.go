package main

import (
	"path/filepath"

	"github.com/rankhub/rankhub/jobs"
	"github.com/rankhub/rankhub/launcher"
	"github.com/rankhub/rankhub/sweep"
)

// inputsPrecheck checks, before any rank starts or anything is queued, that
// every file the job's tasks read (stdin, inputs) is there.
func inputsPrecheck(job *jobs.Job) error {
	if job.Task == nil {
		return nil
	}
	_, err := sweep.HashInputs(job, launcher.JobWorkdir(job))
	return err
}

// sweepPrecheck checks, before any rank starts, that a --resume may continue
// the job's result file (see sweep.Precheck).
func sweepPrecheck(job *jobs.Job, force bool) error {
	if job.Results == nil || job.Results.Path == "" {
		return nil
	}
	path := job.Results.Path
	if !filepath.IsAbs(path) {
		path = filepath.Join(launcher.JobWorkdir(job), path)
	}
	return sweep.Precheck(path, job, force, launcher.JobWorkdir(job))
}
