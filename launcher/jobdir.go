package launcher

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/rankhub/rankhub/jobdir"
	"github.com/rankhub/rankhub/jobs"
)

// Names of the job directory: aliases of package jobdir's, which owns
// them, for callers written before it did (new code uses jobdir's).
const (
	JobDirRoot    = jobdir.Root
	JobFileName   = jobdir.JobFile
	SchedIDFile   = jobdir.SchedIDFile
	EndStatusFile = jobdir.StatusFile
)

// NewJobDir creates the job's directory under workdir ("" = the job's
// workdir) with the job's modes (private unless [job].group_readable) and
// copies the job file's text into it.
func NewJobDir(job *jobs.Job, workdir string) (jobdir.Dir, error) {
	if workdir == "" {
		workdir = JobWorkdir(job)
	}
	return jobdir.Create(job, workdir)
}

// JobWorkdir is the directory ranks run in: [job].workdir, else the job
// file's directory, else the current directory.
func JobWorkdir(job *jobs.Job) string {
	base := "."
	if job.File != "" {
		base = filepath.Dir(job.File)
	}
	if job.Job.Workdir != "" {
		if filepath.IsAbs(job.Job.Workdir) {
			return job.Job.Workdir
		}
		return filepath.Join(base, job.Job.Workdir)
	}
	abs, err := filepath.Abs(base)
	if err != nil {
		return base
	}
	return abs
}

// RankCommand resolves the job's program (relative to the job file) or, when
// it has none, the rankhub binary self running the built-in driver.
func RankCommand(job *jobs.Job, self string) ([]string, error) {
	if len(job.Job.Program) == 0 {
		return []string{self, "rank"}, nil
	}
	prog := job.Job.Program[0]
	if !filepath.IsAbs(prog) && strings.Contains(prog, "/") {
		base := "."
		if job.File != "" {
			base = filepath.Dir(job.File)
		}
		prog = filepath.Join(base, prog)
	}
	abs, err := filepath.Abs(prog)
	if err == nil && strings.Contains(job.Job.Program[0], "/") {
		prog = abs
	}
	if !strings.Contains(prog, "/") {
		return append([]string{prog}, job.Job.Program[1:]...), nil
	}
	st, err := os.Stat(prog)
	if err != nil {
		return nil, fmt.Errorf("launcher: job.program: %w (build it first, e.g. `make build`)", err)
	}
	if st.IsDir() || st.Mode()&0o111 == 0 {
		return nil, fmt.Errorf("launcher: job.program: %s is not an executable file", prog)
	}
	return append([]string{prog}, job.Job.Program[1:]...), nil
}
