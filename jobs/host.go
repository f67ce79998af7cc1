package jobs

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
)

// Checks of a job against the machine it starts from. Validate checks the
// job alone; these look at the file system and the user's limits, so
// `validate`, `run` and `submit` call them before anything starts.

// Resources is what this user may still open and start on this machine.
type Resources struct {
	// OpenFiles is RLIMIT_NOFILE of the starting process (Go raises the soft
	// limit to the hard one at start). 0: unknown, not checked.
	OpenFiles uint64
	// Processes is RLIMIT_NPROC, which counts the user's threads; 0: no
	// limit (unlimited, or a privileged user the kernel does not hold to it).
	Processes uint64
	// Tasks is how many threads the user already runs.
	Tasks uint64
}

// What N local ranks cost. The local launcher holds, per rank, two log
// files and two pipes (both ends of each until the rank starts); rank 0
// holds one connection per engine and each rank its log, arena and mesh
// listener. A Go rank runs at least ThreadsPerRank threads: its scheduler's
// thread, sysmon, a thread blocked in a system call and a spare.
const (
	LauncherFDsPerRank = 6
	HubFDsPerEngine    = 2
	BaseFDs            = 64 // the process's own: stdio, logs, listeners, the Go runtime
	ThreadsPerRank     = 4
)

// CheckLocalRanks refuses a rank count this machine cannot start locally,
// naming the limit and the setting to change. It reports on job.ranks
// (or the flag that set it).
func (j *Job) CheckLocalRanks(r Resources) error {
	d := newDiags(j.File, j.pos, j.flags)
	n := uint64(max(j.Job.Ranks, 0))
	key := []string{"job", "ranks"}
	if need := BaseFDs + n*LauncherFDsPerRank; r.OpenFiles > 0 && need > r.OpenFiles {
		most := (r.OpenFiles - min(r.OpenFiles, BaseFDs)) / LauncherFDsPerRank
		d.errorf(key, "%d local ranks need about %d open files (%d per rank: logs and pipes), more than this user's limit RLIMIT_NOFILE = %d (ulimit -n): at most %d ranks, or raise the limit",
			n, need, LauncherFDsPerRank, r.OpenFiles, most)
	} else if need := BaseFDs + n*HubFDsPerEngine; r.OpenFiles > 0 && need > r.OpenFiles {
		d.errorf(key, "rank 0 needs about %d open files for %d engines, more than RLIMIT_NOFILE = %d (ulimit -n)", need, n-1, r.OpenFiles)
	}
	if need := r.Tasks + n*ThreadsPerRank; r.Processes > 0 && need > r.Processes {
		most := (r.Processes - min(r.Processes, r.Tasks)) / ThreadsPerRank
		d.errorf(key, "%d local ranks need about %d more processes and threads (%d per rank), and this user already runs %d of RLIMIT_NPROC = %d (ulimit -u): at most %d ranks, or raise the limit",
			n, n*ThreadsPerRank, ThreadsPerRank, r.Tasks, r.Processes, most)
	}
	return d.err()
}

// ResultsPath is where the sweep's result file goes: [results].path,
// relative to the directory the ranks run in (workdir). "" without
// [results].
func (j *Job) ResultsPath(workdir string) string {
	if j.Results == nil || j.Results.Path == "" {
		return ""
	}
	if filepath.IsAbs(j.Results.Path) {
		return j.Results.Path
	}
	return filepath.Join(workdir, j.Results.Path)
}

// CheckResultsDir checks that the result file's directory exists and this
// user may create files in it, reporting on results.path.
func (j *Job) CheckResultsDir(workdir string) error {
	p := j.ResultsPath(workdir)
	if p == "" || j.Task == nil {
		return nil
	}
	d := newDiags(j.File, j.pos, j.flags)
	key := []string{"results", "path"}
	dir := filepath.Dir(p)
	st, err := os.Stat(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		d.errorf(key, "the directory %s does not exist (create it first)", dir)
	case err != nil:
		d.errorf(key, "%v", err)
	case !st.IsDir():
		d.errorf(key, "%s is not a directory", dir)
	default:
		// access(2) answers for this user, ACLs and read-only mounts (EROFS)
		// included, without creating anything.
		if err := syscall.Access(dir, 2|1); err != nil { // W_OK|X_OK
			d.errorf(key, "cannot create %s: the directory %s is not writable (%v)", filepath.Base(p), dir, err)
		}
	}
	return d.err()
}
