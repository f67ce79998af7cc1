package launcher

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/rankhub/rankhub/jobs"
	"golang.org/x/sys/unix"
)

// Preflight checks a job against this machine before anything starts: the
// result file's directory exists and is writable, and, for a local run
// (local), the user's limits allow the rank count. Errors name the file,
// line and key (jobs.Errors).
func Preflight(job *jobs.Job, local bool) error {
	errs := []error{job.CheckResultsDir(JobWorkdir(job))}
	if local {
		errs = append(errs, job.CheckLocalRanks(LocalResources()))
	}
	return errors.Join(errs...)
}

// LocalResources reads this process's limits on open files and processes
// and, when the latter is finite, counts the threads the user runs.
func LocalResources() jobs.Resources {
	var r jobs.Resources
	var lim unix.Rlimit
	if unix.Getrlimit(unix.RLIMIT_NOFILE, &lim) == nil && lim.Cur != unix.RLIM_INFINITY {
		r.OpenFiles = lim.Cur
	}
	// The kernel does not hold root (CAP_SYS_RESOURCE) to RLIMIT_NPROC.
	if unix.Getrlimit(unix.RLIMIT_NPROC, &lim) == nil && lim.Cur != unix.RLIM_INFINITY && os.Geteuid() != 0 {
		r.Processes = lim.Cur
		r.Tasks = userTasks(uint32(os.Getuid()))
	}
	return r
}

// userTasks counts the threads of the processes owned by uid.
func userTasks(uid uint32) uint64 {
	procs, _ := os.ReadDir("/proc")
	var n uint64
	for _, p := range procs {
		if _, err := strconv.Atoi(p.Name()); err != nil {
			continue
		}
		st, err := os.Stat(filepath.Join("/proc", p.Name()))
		if err != nil {
			continue
		}
		if s, ok := st.Sys().(*syscall.Stat_t); !ok || s.Uid != uid {
			continue
		}
		tasks, _ := os.ReadDir(filepath.Join("/proc", p.Name(), "task"))
		n += uint64(max(len(tasks), 1))
	}
	return n
}
