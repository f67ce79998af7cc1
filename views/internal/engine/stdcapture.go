package engine

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/rankhub/rankhub/views/internal/proto"
)

// Output capture of registered functions (apply and map): an engine
// process with EngineConfig.CaptureOutput points its file descriptors 1 and
// 2 at pipes once, at start. A pump per pipe reads them; while a task runs
// what it reads goes to the task's capped capture (output.go), between
// tasks to the process's original stdout and stderr (the rank's log files).
// So whatever writes to those descriptors during a task is in its
// Metadata.Stdout and Stderr: fmt.Print, os.Stderr, and processes the
// function starts with them (cmd.Stdout = os.Stdout). Output of goroutines
// that outlive their task lands in the task running when it is written.
//
// No output is lost at the end of a task: the pumps read only while
// holding mu, and end takes mu and drains what is left in the pipes, so
// every byte written before the function returned is the task's.
type StdCapture struct {
	mu      sync.Mutex
	streams [2]*stdStream
}

type stdStream struct {
	name string // "stdout", "stderr"
	r    int    // the pipe's read end, non-blocking
	orig *os.File
	cur  *Capture // the running task's; nil between tasks
	buf  []byte
}

var stdCaptureTaken atomic.Bool

// errCaptureTaken: a process has one stdout; only one engine captures it.
var errCaptureTaken = errors.New("views: output capture: another engine of this process captures stdout and stderr already")

// StartStdCapture redirects descriptors 1 and 2 into pipes and starts the
// pumps. It is for processes that run one engine.
func StartStdCapture() (*StdCapture, error) {
	if !stdCaptureTaken.CompareAndSwap(false, true) {
		return nil, errCaptureTaken
	}
	s := &StdCapture{}
	for i, fd := range []int{1, 2} {
		orig, err := unix.Dup(fd)
		if err != nil {
			return nil, fmt.Errorf("views: output capture: dup %d: %w", fd, err)
		}
		unix.CloseOnExec(orig)
		var p [2]int
		if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
			unix.Close(orig)
			return nil, fmt.Errorf("views: output capture: pipe: %w", err)
		}
		if err := unix.Dup3(p[1], fd, 0); err != nil {
			unix.Close(orig)
			unix.Close(p[0])
			unix.Close(p[1])
			return nil, fmt.Errorf("views: output capture: dup3: %w", err)
		}
		unix.Close(p[1])
		unix.SetNonblock(p[0], true)
		st := &stdStream{name: [2]string{"stdout", "stderr"}[i], r: p[0], orig: os.NewFile(uintptr(orig), "original "+[2]string{"stdout", "stderr"}[i]), buf: make([]byte, 64<<10)}
		s.streams[i] = st
		go s.pump(st)
	}
	return s, nil
}

// readLocked reads what the pipe holds now and delivers it; it reports
// whether the pipe is empty (EAGAIN) or ended. mu is held.
func (s *StdCapture) readLocked(st *stdStream) (empty, ended bool) {
	n, err := unix.Read(st.r, st.buf)
	if n > 0 {
		if st.cur != nil {
			st.cur.Write(st.buf[:n])
		} else {
			st.orig.Write(st.buf[:n])
		}
		return false, false
	}
	switch {
	case err == unix.EAGAIN:
		return true, false
	case err == unix.EINTR:
		return false, false
	}
	return true, true // EOF or a broken descriptor
}

func (s *StdCapture) pump(st *stdStream) {
	fds := []unix.PollFd{{Fd: int32(st.r), Events: unix.POLLIN}}
	for {
		s.mu.Lock()
		empty, ended := s.readLocked(st)
		s.mu.Unlock()
		if ended {
			return
		}
		if empty {
			unix.Poll(fds, -1) // outside mu; EINTR just loops
		}
	}
}

// drainLocked delivers everything the pipes hold: one poll when they are
// empty, as they are at the end of most tasks. mu is held.
func (s *StdCapture) drainLocked() {
	fds := []unix.PollFd{{Fd: int32(s.streams[0].r), Events: unix.POLLIN}, {Fd: int32(s.streams[1].r), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(fds, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil || n == 0 {
			return
		}
		for i, st := range s.streams {
			if fds[i].Revents&unix.POLLIN != 0 {
				s.readLocked(st)
			} else if fds[i].Revents != 0 {
				fds[i].Fd = -1 // hung up or broken: poll ignores it from now on
			}
		}
	}
}

// Begin starts capturing for a task. Output the pumps have not read yet
// (written just before) is the task's: draining here would cost the
// load-balanced hot path a system call per task.
func (s *StdCapture) Begin() {
	s.mu.Lock()
	for _, st := range s.streams {
		st.cur = &Capture{}
	}
	s.mu.Unlock()
}

// End stops capturing and puts what the task wrote into res.
func (s *StdCapture) End(res *proto.Result) {
	s.mu.Lock()
	s.drainLocked()
	out, errc := s.streams[0].cur, s.streams[1].cur
	s.streams[0].cur, s.streams[1].cur = nil, nil
	s.mu.Unlock()
	res.Stdout, res.StdoutOmitted = out.Text("stdout")
	res.Stderr, res.StderrOmitted = errc.Text("stderr")
}
