package rankhub_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/rankhub/rankhub/jobdir"
	"github.com/rankhub/rankhub/launcher"
)

// Issue 13 point 2's rule for status.json: a rerun in the same job
// directory (a scheduler's requeue) appends its attempt; the first run's
// record stays (it used to be overwritten, completed by failed).
func TestRerunAppendsAttempt(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dir := t.TempDir()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	run := func(ctx context.Context, role string) error {
		return launcher.RunLocal(ctx, launcher.LocalConfig{
			Ranks: 2, Command: []string{self, "-test.run=^$"}, JobDir: dir, Workdir: dir, JobID: "t",
			Env:       map[string]string{roleEnv: role, "RANKHUB_START_TIMEOUT": "30s"},
			Heartbeat: 200 * time.Millisecond, Grace: 2 * time.Second, Stdout: testWriter{t}, Stderr: testWriter{t},
		})
	}
	// First attempt: stopped as scancel stops it.
	rctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- run(rctx, "block") }()
	waitNote(t, dir, "ready", 30*time.Second)
	stop()
	<-done
	// Second attempt, as after a requeue: completes.
	os.Remove(filepath.Join(dir, "notes"))
	os.WriteFile(filepath.Join(dir, "go"), nil, 0o600)
	if err := run(ctx, "serve"); err != nil {
		t.Fatalf("second attempt: %v", err)
	}
	d, _ := jobdir.Open(dir)
	st, err := d.ReadStatus()
	if err != nil || len(st.Attempts) != 2 || st.Attempts[0].Outcome != jobdir.Terminated ||
		st.Attempts[1].Outcome != jobdir.Completed || st.Outcome != jobdir.Completed {
		t.Fatalf("status.json: %+v %v", st, err)
	}
}
