package jobdir

import (
	"errors"
	"os"
	"strings"
	"sync"
	"testing"
)

func TestStatusKeepsEveryAttempt(t *testing.T) {
	d, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.ReadStatus(); !errors.Is(err, ErrNoStatus) {
		t.Fatalf("empty directory: %v", err)
	}
	if err := d.AppendAttempt(Attempt{Outcome: Completed, SchedID: "7"}); err != nil {
		t.Fatal(err)
	}
	if err := d.AppendAttempt(Attempt{Outcome: BadInput, Reason: "sweep.arrow already exists", SchedID: "7"}); err != nil {
		t.Fatal(err)
	}
	st, err := d.ReadStatus()
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Attempts) != 2 || st.Attempts[0].Outcome != Completed || st.Attempts[0].State != "completed" ||
		st.Last().ExitStatus != 1 || st.State != "failed" || st.Outcome != BadInput {
		t.Fatalf("%+v", st)
	}
	if err := d.AppendAttempt(Attempt{Outcome: "exploded"}); err == nil {
		t.Fatal("an outcome outside the table was recorded")
	}
}

func TestStatusConcurrentAppendsLoseNothing(t *testing.T) {
	d, _ := Open(t.TempDir())
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() { defer wg.Done(); d.AppendAttempt(Attempt{Outcome: Terminated}) }()
	}
	wg.Wait()
	if st, err := d.ReadStatus(); err != nil || len(st.Attempts) != 8 {
		t.Fatalf("%d attempts, %v", len(st.Attempts), err)
	}
}

// status.json as rankhub wrote it before it kept a history.
func TestStatusReadsTheOldFormat(t *testing.T) {
	d, _ := Open(t.TempDir())
	os.WriteFile(d.File(StatusFile), []byte(`{"state": "signalled", "reason": "stopped by SIGTERM", "time": "2026-11-20T10:00:00Z"}`), 0o600)
	st, err := d.ReadStatus()
	if err != nil || len(st.Attempts) != 1 || st.Last().Outcome != Terminated || st.Last().ExitStatus != 143 {
		t.Fatalf("%+v %v", st, err)
	}
	d.AppendAttempt(Attempt{Outcome: Completed})
	st, _ = d.ReadStatus()
	if len(st.Attempts) != 2 || !strings.Contains(st.Attempts[0].Reason, "SIGTERM") {
		t.Fatalf("the old record was not kept: %+v", st)
	}
	os.WriteFile(d.File(StatusFile), []byte(`{"state": `), 0o600)
	if _, err := d.ReadStatus(); err == nil || !strings.Contains(err.Error(), StatusFile) {
		t.Fatalf("damaged file: %v", err)
	}
}

func TestOutcomeTable(t *testing.T) {
	seen := map[int]Outcome{}
	for o, e := range table {
		if prev, dup := seen[e.code]; dup {
			t.Errorf("%s and %s share exit status %d", o, prev, e.code)
		}
		seen[e.code] = o
		if FromExitCode(e.code) != o {
			t.Errorf("FromExitCode(%d) = %s, want %s", e.code, FromExitCode(e.code), o)
		}
	}
	if OutcomeOf(nil) != Completed || OutcomeOf(errors.New("x")) != RankFailed ||
		OutcomeOf(Failf(Incomplete, "159 of 400 tasks")) != Incomplete || Incomplete.ExitCode() == 0 {
		t.Fatal("OutcomeOf")
	}
}
