package launcher

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/rankhub/rankhub/jobdir"
)

// LocalConfig starts N ranks on this machine, as mpirun -n N would.
type LocalConfig struct {
	Ranks   int
	Command []string          // argv of every rank
	Env     map[string]string // extra environment for every rank
	JobDir  string            // absolute; logs go there
	Workdir string
	JobID   string
	// AbortOnError stops every rank as soon as one exits with an error.
	AbortOnError bool
	// Transport and Heartbeat are passed to the ranks, and so are the
	// other rank settings in Settings (TLS, MaxFrame; its Transport,
	// Heartbeat and JobFile are ignored).
	Transport string
	Heartbeat time.Duration
	Settings  RankSettings
	// Stdout and Stderr receive every rank's lines with a "[rank N] " prefix.
	Stdout, Stderr io.Writer
	// Grace is how long ranks get between SIGTERM and SIGKILL. Zero: 5s.
	Grace time.Duration
}

// HeartbeatMisses is how many heartbeat intervals of silence make a peer
// dead, for every rank rankhub starts.
const HeartbeatMisses = 5

// RankExit is how one rank ended.
type RankExit struct {
	Rank   int
	Status int    // exit status, or -1 when killed by a signal
	Signal string // the signal that killed it, if any
	Err    error
}

func (r RankExit) failed() bool { return r.Err != nil || r.Status != 0 || r.Signal != "" }

func (r RankExit) String() string {
	switch {
	case r.Signal != "":
		return fmt.Sprintf("rank %d was killed by signal %s", r.Rank, r.Signal)
	case r.Err != nil:
		return fmt.Sprintf("rank %d: %v", r.Rank, r.Err)
	default:
		return fmt.Sprintf("rank %d exited with status %d", r.Rank, r.Status)
	}
}

// RunError is returned by RunLocal when a rank failed.
type RunError struct {
	First RankExit   // the first rank that failed
	All   []RankExit // every rank's end
	// Aborted says the other ranks were stopped because of First.
	Aborted bool
	// Hung lists the ranks still running a heartbeat timeout after rank 0
	// ended, which the launcher stopped.
	Hung []int
}

func (e *RunError) Error() string {
	s := e.First.String()
	if e.Aborted {
		s += "; the other ranks were stopped"
	}
	return s
}

// Signal names for messages.
func sigName(s syscall.Signal) string {
	switch s {
	case syscall.SIGKILL:
		return "SIGKILL"
	case syscall.SIGTERM:
		return "SIGTERM"
	case syscall.SIGINT:
		return "SIGINT"
	case syscall.SIGSEGV:
		return "SIGSEGV"
	case syscall.SIGABRT:
		return "SIGABRT"
	case syscall.SIGUSR1:
		return "SIGUSR1"
	}
	return s.String()
}

// RunLocal starts the ranks and waits for them. Cancelling ctx (Ctrl-C)
// sends SIGTERM to every rank, then SIGKILL after the grace period. If a rank
// fails and AbortOnError is set, the others are stopped the same way.
func RunLocal(ctx context.Context, cfg LocalConfig) error {
	if cfg.Ranks < 1 || len(cfg.Command) == 0 {
		return errors.New("launcher: local run needs ranks >= 1 and a command")
	}
	if cfg.Grace <= 0 {
		cfg.Grace = 5 * time.Second
	}
	if cfg.Stdout == nil {
		cfg.Stdout = os.Stdout
	}
	if cfg.Stderr == nil {
		cfg.Stderr = os.Stderr
	}
	dir, err := jobdir.Open(cfg.JobDir)
	if err != nil {
		return fmt.Errorf("launcher: %w", err)
	}
	out := &lineWriter{w: cfg.Stdout}
	errw := &lineWriter{w: cfg.Stderr}
	if cfg.Stdout == cfg.Stderr {
		errw = out
	}
	cmds := make([]*exec.Cmd, cfg.Ranks)
	writers := make([][2]*os.File, cfg.Ranks) // the ranks' ends, closed here after Start
	var readers []*os.File
	var copiers sync.WaitGroup
	var files []*os.File
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	// setupFailed undoes a half-made start: with every pipe closed, the
	// copiers already started see EOF and end.
	setupFailed := func(err error) error {
		for _, w := range writers {
			if w[0] != nil {
				w[0].Close()
				w[1].Close()
			}
		}
		for _, rd := range readers {
			rd.Close()
		}
		return err
	}
	for r := 0; r < cfg.Ranks; r++ {
		cmd := exec.Command(cfg.Command[0], cfg.Command[1:]...)
		cmd.Dir = cfg.Workdir
		cmd.Env = appendEnv(os.Environ(), IdentityEnv(Identity{Rank: r, Size: cfg.Ranks, LocalRank: r, Node: 0, JobDir: cfg.JobDir, JobID: cfg.JobID}))
		cmd.Env = appendEnv(cmd.Env, RankSettings{JobFile: dir.File(jobdir.JobFile), Transport: cfg.Transport, Heartbeat: cfg.Heartbeat,
			TLS: cfg.Settings.TLS, MaxFrame: cfg.Settings.MaxFrame}.Env())
		cmd.Env = append(cmd.Env, "GODEBUG="+RankGODEBUG(os.Getenv("GODEBUG")),
			"GOMAXPROCS="+RankGOMAXPROCS(os.Getenv("GOMAXPROCS"), cfg.Ranks, runtime.NumCPU()))
		cmd.Env = appendEnv(cmd.Env, cfg.Env)
		// Own process group: a terminal's Ctrl-C reaches only rankhub, which
		// stops the ranks in order. Pdeathsig: if rankhub itself is killed,
		// the ranks get SIGTERM and shut down instead of living on.
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
		// Our own pipes, not cmd.StdoutPipe: Wait closes those as soon as the
		// rank exits, losing lines still in flight. These stay open until
		// every writer (the rank and anything it started) has closed them.
		so, sow, err := os.Pipe()
		if err != nil {
			return setupFailed(err)
		}
		se, sew, err := os.Pipe()
		if err != nil {
			so.Close()
			sow.Close()
			return setupFailed(err)
		}
		cmd.Stdout, cmd.Stderr = sow, sew
		readers = append(readers, so, se)
		writers[r] = [2]*os.File{sow, sew}
		fo, err := dir.Create(jobdir.RankOut(r))
		if err != nil {
			return setupFailed(fmt.Errorf("launcher: rank log: %w", err))
		}
		fe, err := dir.Create(jobdir.RankErr(r))
		if err != nil {
			return setupFailed(fmt.Errorf("launcher: rank log: %w", err))
		}
		files = append(files, fo, fe)
		prefix := fmt.Sprintf("[rank %d] ", r)
		copiers.Add(2)
		go func() { defer copiers.Done(); copyLines(so, fo, out, prefix) }()
		go func() { defer copiers.Done(); copyLines(se, fe, errw, prefix) }()
		cmds[r] = cmd
	}
	started := 0
	var startErr error
	for r, cmd := range cmds {
		err := cmd.Start()
		writers[r][0].Close() // the rank has its own copies now (or never will)
		writers[r][1].Close()
		if err != nil {
			startErr = fmt.Errorf("launcher: starting rank %d (%s): %w", r, cfg.Command[0], err)
			for _, w := range writers[r+1:] {
				w[0].Close()
				w[1].Close()
			}
			break
		}
		started++
	}
	exits := make(chan RankExit, cfg.Ranks)
	for r := 0; r < started; r++ {
		go func(r int) {
			err := cmds[r].Wait()
			exits <- exitOf(r, cmds[r], err)
		}(r)
	}
	stopping := false
	var stopTimer <-chan time.Time
	stop := func() {
		if stopping {
			return
		}
		stopping = true
		for r := 0; r < started; r++ {
			if p := cmds[r].Process; p != nil {
				syscall.Kill(-p.Pid, syscall.SIGTERM)
				syscall.Kill(-p.Pid, syscall.SIGCONT) // a stopped rank must run to see it
			}
		}
		stopTimer = time.After(cfg.Grace)
	}
	// When rank 0, a rankhub hub, has ended, the job is over: engines leave on their own
	// within the heartbeat timeout (they lose the hub). One that does not
	// is hung (stopped, deadlocked, on a lost node): the rest are stopped
	// after the heartbeat timeout, killed after the grace period.
	hb := cfg.Heartbeat
	if hb <= 0 {
		hb = time.Second
	}
	var hubGone <-chan time.Time
	var stragglers []int
	var result *RunError
	if startErr != nil {
		stop()
	}
	all := make([]RankExit, 0, cfg.Ranks)
	var hubFailed *RankExit
	escalated := false
	ctxDone := ctx.Done()
	for len(all) < started {
		select {
		case ex := <-exits:
			all = append(all, ex)
			if ex.Rank == 0 && len(all) < started && wasHub(dir) {
				hubGone = time.After(HeartbeatMisses * hb)
			}
			// Rank 0 exiting node-lost explains nothing: an engine's
			// failure came first and is the one to name.
			if ex.Rank == 0 && ex.failed() && jobdir.FromExitCode(ex.Status) != jobdir.NodeLost &&
				(!stopping || (ex.Signal != "" && ex.Signal != "SIGTERM" && !escalated)) {
				hubFailed = &ex
			}
			if ex.failed() && result == nil && !stopping {
				result = &RunError{First: ex}
				if cfg.AbortOnError {
					result.Aborted = true
					stop()
				}
			}
		case <-ctxDone:
			ctxDone = nil
			stop()
		case <-hubGone:
			hubGone = nil
			if !stopping {
				for r := 1; r < started; r++ {
					if !exited(all, r) {
						stragglers = append(stragglers, r)
					}
				}
				errw.writeLine(fmt.Appendf(nil, "rankhub: rank 0 ended %v ago; stopping ranks %v, which did not leave\n", HeartbeatMisses*hb, stragglers))
				stop()
			}
		case <-stopTimer:
			escalated = true
			for r := 0; r < started; r++ {
				if p := cmds[r].Process; p != nil {
					syscall.Kill(-p.Pid, syscall.SIGKILL)
				}
			}
		}
	}
	// Every rank has exited; their output ends when the last writer closes
	// it. A process a rank left behind may hold a pipe open: give it a
	// moment, then stop reading.
	copied := make(chan struct{})
	go func() { copiers.Wait(); close(copied) }()
	select {
	case <-copied:
	case <-time.After(2 * time.Second):
		for _, rd := range readers {
			rd.Close()
		}
		<-copied
	}
	for _, rd := range readers {
		rd.Close()
	}
	if startErr != nil {
		return startErr
	}
	if result == nil && len(stragglers) > 0 {
		result = &RunError{First: RankExit{Rank: stragglers[0], Status: -1,
			Err: fmt.Errorf("hung: still running %v after rank 0 ended; stopped", HeartbeatMisses*hb)}, Hung: stragglers}
	}
	if result != nil {
		result.All = all
		// Ranks that fail together are reaped in any order; when the hub
		// (rank 0) failed on its own, not by our stopping it, its failure
		// explains the engines' (they lost it).
		if hubFailed != nil {
			result.First = *hubFailed
		}
		return result
	}
	if ctx.Err() != nil {
		return fmt.Errorf("launcher: interrupted: %w", ctx.Err())
	}
	return nil
}

// wasHub tells whether rank 0 ran a rankhub hub: it recorded the job's
// end, or left its connection file behind (killed). Other programs' ranks
// owe rank 0 nothing and may run on after it.
func wasHub(d jobdir.Dir) bool {
	for _, f := range []string{jobdir.StatusFile, jobdir.ConnFile} {
		if _, err := os.Stat(d.File(f)); err == nil {
			return true
		}
	}
	return false
}

// appendEnv appends the variables of m to env in name order.
func appendEnv(env []string, m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		env = append(env, k+"="+m[k])
	}
	return env
}

func exited(all []RankExit, r int) bool {
	for _, ex := range all {
		if ex.Rank == r {
			return true
		}
	}
	return false
}

func exitOf(r int, cmd *exec.Cmd, err error) RankExit {
	ex := RankExit{Rank: r}
	if cmd.ProcessState != nil {
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			ex.Status, ex.Signal = -1, sigName(ws.Signal())
			return ex
		}
		ex.Status = cmd.ProcessState.ExitCode()
		return ex
	}
	ex.Err = err
	return ex
}

// lineWriter serializes whole lines from many ranks onto one writer.
type lineWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lineWriter) writeLine(b []byte) {
	l.mu.Lock()
	l.w.Write(b)
	l.mu.Unlock()
}

func copyLines(r io.Reader, file io.Writer, console *lineWriter, prefix string) {
	br := bufio.NewReaderSize(r, 64<<10)
	var line []byte
	for {
		chunk, err := br.ReadSlice('\n')
		line = append(line, chunk...)
		if err == bufio.ErrBufferFull {
			continue
		}
		if len(line) > 0 {
			file.Write(line)
			if line[len(line)-1] != '\n' {
				line = append(line, '\n')
			}
			console.writeLine(append([]byte(prefix), line...))
			line = line[:0]
		}
		if err != nil {
			return
		}
	}
}
