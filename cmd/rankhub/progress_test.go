package main

import (
	"strings"
	"testing"

	"github.com/rankhub/rankhub/jobdir"
)

func TestProgressLine(t *testing.T) {
	got := progressLine(jobdir.Progress{Done: 40, Skipped: 10, Total: 200, Failed: 2, Rate: 125.4, ETA: 1.2}, 20)
	for _, want := range []string{"█████░░░░░░░░░░░░░░░", "50/200 (25%)", "125 tasks/s", "2 failed", "ETA 1s"} {
		if !strings.Contains(got, want) {
			t.Errorf("%q lacks %q", got, want)
		}
	}
	if got := progressLine(jobdir.Progress{Done: 10, Total: 10, Rate: 5, ETA: 0}, 10); strings.Contains(got, "ETA") || !strings.Contains(got, "(100%)") {
		t.Errorf("finished: %q", got)
	}
	// Tasks a stop interrupted are not failed ones: they wait for --resume.
	if got := progressLine(jobdir.Progress{Done: 8, Total: 10, Interrupted: 2}, 10); strings.Contains(got, "failed") || !strings.Contains(got, "2 interrupted (left for --resume)") {
		t.Errorf("interrupted: %q", got)
	}
}
