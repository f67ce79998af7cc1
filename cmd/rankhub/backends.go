package main

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"time"

	"github.com/rankhub/rankhub/jobdir"
	"github.com/rankhub/rankhub/jobs"
	"github.com/rankhub/rankhub/launcher"
	"github.com/rankhub/rankhub/pbs"
	"github.com/rankhub/rankhub/slurm"
)

func init() {
	launcher.RegisterBackend(jobs.SchedSLURM, func() launcher.Backend { return slurm.New() })
	launcher.RegisterBackend(jobs.SchedPBS, func() launcher.Backend { return pbs.New() })
}

// batchLaunch is what every rank of a batch job needs: the rank command and
// the environment exported by the script. Rank identity comes from the
// scheduler's own variables (SLURM_PROCID, PMI_RANK, ...), never from here.
func batchLaunch(job *jobs.Job, jobDir string) (jobs.Launch, error) {
	self, err := os.Executable()
	if err != nil {
		return jobs.Launch{}, err
	}
	if abs, err := filepath.EvalSymlinks(self); err == nil {
		self = abs
	}
	argv, err := launcher.RankCommand(job, self)
	if err != nil {
		return jobs.Launch{}, err
	}
	env := launcher.JobSettings(job, filepath.Join(jobDir, jobdir.JobFile)).Env()
	env[launcher.EnvJobDir] = jobDir
	env[launcher.EnvSize] = strconv.Itoa(job.Job.Ranks)
	env["GODEBUG"] = launcher.RankGODEBUG(os.Getenv("GODEBUG"))
	return jobs.Launch{JobDir: jobDir, RankCommand: argv, Env: env}, nil
}

// jobRef is a job directory with what it records.
type jobRef struct {
	dir     jobdir.Dir
	job     *jobs.Job
	schedID string
}

// resolveJob finds a job directory from a path or a scheduler id.
func resolveJob(arg string) (*jobRef, error) {
	path := arg
	if st, err := os.Stat(arg); err != nil || !st.IsDir() {
		dirs, _ := filepath.Glob(filepath.Join(jobdir.Root, "*"))
		path = ""
		for _, d := range dirs {
			if (jobdir.Dir{Path: d}).SchedID() == arg {
				path = d
			}
		}
		if path == "" {
			return nil, fmt.Errorf("%s: neither a job directory nor the scheduler id of a job under %s", arg, jobdir.Root)
		}
	}
	dir, err := jobdir.Open(path)
	if err != nil {
		return nil, err
	}
	job, err := dir.LoadJob()
	if err != nil {
		return nil, fmt.Errorf("%s: not a job directory: %w", path, err)
	}
	return &jobRef{dir: dir, job: job, schedID: dir.SchedID()}, nil
}

func listJobDirs() []string {
	dirs, _ := filepath.Glob(filepath.Join(jobdir.Root, "*"))
	sort.Slice(dirs, func(i, j int) bool { return modTime(dirs[i]).Before(modTime(dirs[j])) })
	return dirs
}

func modTime(p string) time.Time {
	st, err := os.Stat(p)
	if err != nil {
		return time.Time{}
	}
	return st.ModTime()
}
