package main

import (
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rankhub/rankhub/comm"
	"github.com/rankhub/rankhub/jobdir"
	"github.com/rankhub/rankhub/views"
)

// TestStartPxStatusStop: start a hub and engines that wait for clients,
// drive them from the CLI and from two Go clients at once, stop them.
func TestStartPxStatusStop(t *testing.T) {
	dir := t.TempDir()
	r := rh(t, dir, "start", "-n", "3")
	if r.code != 0 {
		t.Fatalf("start: %d\n%s", r.code, r.stderr)
	}
	jobDir := strings.TrimSpace(r.stdout)
	if !strings.HasPrefix(jobDir, filepath.Join(dir, jobdir.Root)) {
		t.Fatalf("start printed %q", r.stdout)
	}
	ci, err := comm.ReadConnInfo(filepath.Join(jobDir, jobdir.ConnFile))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(ci.PID, syscall.SIGKILL) })

	r = rh(t, dir, "status", jobDir)
	if r.code != 0 || !strings.Contains(r.stdout, "engines    2 live of 2") {
		t.Fatalf("status: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = rh(t, dir, "px", jobDir, "--", "echo hello from rank $RANKHUB_RANK")
	if r.code != 0 || r.stdout != "[stdout:0] hello from rank 1\n[stdout:1] hello from rank 2\n" {
		t.Fatalf("px: %d\n%q\n%s", r.code, r.stdout, r.stderr)
	}
	r = rh(t, dir, "px", "-t", "-1", jobDir, "--", "echo no >&2; exit 5")
	if r.code != 1 || r.stdout != "[stderr:1] no\n" || !strings.Contains(r.stderr, "exit status 5") {
		t.Fatalf("px failing: %d\n%q\n%s", r.code, r.stdout, r.stderr)
	}
	// Two outside clients at once; the second sees the first's result.
	a, err := views.Connect(filepath.Join(jobDir, jobdir.ConnFile))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := views.Connect(filepath.Join(jobDir, jobdir.ConnFile))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if !reflect.DeepEqual(a.IDs(), []int{0, 1}) {
		t.Fatalf("ids %v", a.IDs())
	}
	dv, _ := a.DirectView()
	ar, err := dv.Execute("echo $RANKHUB_RANK")
	if err != nil {
		t.Fatal(err)
	}
	other, err := b.Result(ar.MsgIDs()...)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.Get(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	if got := views.FormatOutputs(other); got != "[stdout:0] 1\n[stdout:1] 2\n" {
		t.Fatalf("second client sees %q", got)
	}
	r = rh(t, dir, "stop", jobDir)
	if r.code != 0 || !strings.Contains(r.stdout, "stopped 2 engines") {
		t.Fatalf("stop: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if err := syscall.Kill(ci.PID, 0); err != syscall.ESRCH {
		t.Fatalf("hub pid %d still running after stop", ci.PID)
	}
	r = rh(t, dir, "px", jobDir, "--", "true")
	if r.code == 0 {
		t.Fatal("px on a stopped job succeeded")
	}
}
