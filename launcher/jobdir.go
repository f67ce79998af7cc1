package launcher

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/rankhub/rankhub/jobs"
)

// JobDirRoot is the folder under the workdir that holds job directories.
const JobDirRoot = ".rankhub"

// Files inside a job directory.
const (
	JobFileName   = "job.toml"
	SchedIDFile   = "scheduler-id"
	EndStatusFile = "status.json"
)

// NewJobDir creates <workdir>/.rankhub/<name>-<time>-<rand>/ and copies the
// job file's text into it.
func NewJobDir(job *jobs.Job, workdir string) (string, error) {
	if workdir == "" {
		workdir = JobWorkdir(job)
	}
	var r [2]byte
	rand.Read(r[:])
	name := fmt.Sprintf("%s-%s-%s", job.Job.Name, time.Now().Format("20060102-150405"), hex.EncodeToString(r[:]))
	dir := filepath.Join(workdir, JobDirRoot, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("launcher: job directory: %w", err)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(abs, JobFileName), job.Source, 0o644); err != nil {
		return "", fmt.Errorf("launcher: job directory: %w", err)
	}
	return abs, nil
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
