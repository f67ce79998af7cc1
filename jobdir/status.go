package jobdir

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"
	"time"
)

// Attempt is one run of a job: the first run, a rerun, a requeue by the
// scheduler. status.json keeps every attempt; a new one is appended.
type Attempt struct {
	Outcome    Outcome   `json:"outcome"`
	State      string    `json:"state"`       // Outcome.State()
	ExitStatus int       `json:"exit_status"` // Outcome.ExitCode()
	Reason     string    `json:"reason"`
	Started    time.Time `json:"started,omitzero"`
	Ended      time.Time `json:"ended"`
	Host       string    `json:"host,omitempty"`
	PID        int       `json:"pid,omitempty"`
	SchedID    string    `json:"scheduler_id,omitempty"`
	// By says who recorded it: "rank 0" when the hub saw the end, "rankhub
	// run" when the launcher did (the hub could not).
	By string `json:"by,omitempty"`
}

// Status is status.json: the last attempt's fields on top (for a reader
// that looks at one line), every attempt below, the first run first.
type Status struct {
	State      string    `json:"state"`
	Outcome    Outcome   `json:"outcome"`
	ExitStatus int       `json:"exit_status"`
	Reason     string    `json:"reason"`
	Time       time.Time `json:"time"`
	Attempts   []Attempt `json:"attempts"`
}

// Last is the latest attempt.
func (s Status) Last() Attempt {
	if len(s.Attempts) == 0 {
		return Attempt{}
	}
	return s.Attempts[len(s.Attempts)-1]
}

// ReadStatus reads status.json: ErrNoStatus when the job recorded no end.
func (d Dir) ReadStatus() (Status, error) {
	b, err := os.ReadFile(d.File(StatusFile))
	if errors.Is(err, fs.ErrNotExist) {
		return Status{}, ErrNoStatus
	}
	if err != nil {
		return Status{}, fmt.Errorf("jobdir: %w", err)
	}
	return parseStatus(d.File(StatusFile), b)
}

func parseStatus(path string, b []byte) (Status, error) {
	var s Status
	if err := json.Unmarshal(b, &s); err != nil {
		return Status{}, fmt.Errorf("jobdir: %s: %w", path, err)
	}
	if len(s.Attempts) == 0 && s.State != "" {
		// Written before status.json kept a history: one attempt.
		o := s.Outcome
		if o == "" {
			o = map[string]Outcome{"completed": Completed, "signalled": Terminated}[s.State]
			if o == "" {
				o = RankFailed
			}
		}
		s.Attempts = []Attempt{{Outcome: o, State: s.State, ExitStatus: o.ExitCode(), Reason: s.Reason, Ended: s.Time}}
	}
	for i, a := range s.Attempts {
		if !a.Outcome.Known() {
			return Status{}, fmt.Errorf("jobdir: %s: attempt %d: unknown outcome %q", path, i+1, a.Outcome)
		}
	}
	return s, nil
}

// AppendAttempt adds an attempt to status.json, keeping every earlier one.
// State, ExitStatus and (when zero) Ended are filled in from the outcome
// and the clock. Writers on several processes are serialized by a lock.
func (d Dir) AppendAttempt(a Attempt) error { return d.SetAttempt(-1, a) }

// SetAttempt records attempt i (0 is the first run): it replaces attempt i
// when status.json has one (the launcher correcting what rank 0 recorded
// of the same run), appends otherwise; i < 0 appends. Earlier attempts are
// never touched.
func (d Dir) SetAttempt(i int, a Attempt) error {
	if !a.Outcome.Known() {
		return fmt.Errorf("jobdir: unknown outcome %q", a.Outcome)
	}
	a.State, a.ExitStatus = a.Outcome.State(), a.Outcome.ExitCode()
	if a.Ended.IsZero() {
		a.Ended = time.Now().UTC()
	}
	lock, err := d.Append(".status.lock")
	if err != nil {
		return err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("jobdir: locking %s: %w", d.File(StatusFile), err)
	}
	s, err := d.ReadStatus()
	if err != nil && !errors.Is(err, ErrNoStatus) {
		// A damaged file is kept beside, never silently overwritten.
		os.Rename(d.File(StatusFile), d.File(StatusFile+".damaged"))
		s = Status{}
	}
	if i >= 0 && i < len(s.Attempts) {
		s.Attempts[i] = a
	} else {
		s.Attempts = append(s.Attempts, a)
	}
	s.State, s.Outcome, s.ExitStatus, s.Reason, s.Time = a.State, a.Outcome, a.ExitStatus, a.Reason, a.Ended
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("jobdir: %w", err)
	}
	return d.WriteFile(StatusFile, append(b, '\n'))
}
