package hub

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/rankhub/rankhub/comm"
)

// Task is one message to one engine and its outcome: the future behind an
// AsyncResult, made by the hub's run (in process) or by an outside
// client's reader. The hub's record of the task is in its core
// (internal/hubcore); id, kind, name, submitted, lb, after and follow are
// set before the task is shared; eng, and rank and host before done closes.
type Task struct {
	ID        uint64
	Kind      int
	Name      string
	Submitted time.Time
	Eng       atomic.Int64 // engine id; -1 while a load-balanced task waits
	LB        bool
	After     []uint64
	Follow    []uint64
	Done      chan struct{}
	Sent      chan struct{}
	sentOnce  sync.Once

	// Written once before done is closed; read only after.
	Started, Completed, Received time.Time
	Value                        any
	Err                          error
	Stdout, Stderr               string
	Omitted                      [2]int64 // bytes left out of stdout, stderr
	Exit                         int
	Rank                         int
	Host                         string
	Frame                        *comm.Frame
	BulkBytes                    int64 // of value, received on the bulk path

	mu       sync.Mutex
	finished bool
	watchers []func(*Task)
}

func NewTask(id uint64, kind int, name string, now time.Time) *Task {
	t := &Task{ID: id, Kind: kind, Name: name, Submitted: now, Done: make(chan struct{}), Sent: make(chan struct{})}
	t.Eng.Store(-1)
	return t
}

// Finish records the outcome once and runs the watchers (outside any lock).
func (t *Task) Finish(v any, err error, received time.Time) {
	t.mu.Lock()
	if t.finished {
		t.mu.Unlock()
		return
	}
	t.finished = true
	t.Value, t.Err, t.Received = v, err, received
	ws := t.watchers
	t.watchers = nil
	close(t.Done)
	t.mu.Unlock()
	t.MarkSent()
	for _, w := range ws {
		w(t)
	}
}

// Watch calls fn once the task is finished (at once if it is).
func (t *Task) Watch(fn func(*Task)) {
	t.mu.Lock()
	if t.finished {
		t.mu.Unlock()
		fn(t)
		return
	}
	t.watchers = append(t.watchers, fn)
	t.mu.Unlock()
}

func (t *Task) MarkSent() { t.sentOnce.Do(func() { close(t.Sent) }) }

func (t *Task) IsDone() bool {
	select {
	case <-t.Done:
		return true
	default:
		return false
	}
}
