package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/rankhub/rankhub/jobdir"
	"golang.org/x/term"
)

// startProgressBar draws a sweep's progress on a terminal from the
// progress.json that rank 0 keeps in the job directory. Off a terminal it
// draws nothing: rank 0 logs a progress line at a bounded interval instead.
func startProgressBar(w io.Writer, jobDir string) (stop func()) {
	f, ok := w.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return func() {}
	}
	quit := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		drawn := false
		for {
			select {
			case <-quit:
				if drawn {
					fmt.Fprintln(f)
				}
				return
			case <-t.C:
			}
			p, err := jobdir.Dir{Path: jobDir}.ReadProgress()
			if err != nil || p.Total == 0 {
				continue
			}
			fmt.Fprint(f, "\r"+progressLine(p, 30)+"\x1b[K")
			drawn = true
		}
	}()
	return func() { close(quit); <-finished }
}

func progressLine(p jobdir.Progress, width int) string {
	done := p.Done + p.Skipped
	frac := float64(done) / float64(p.Total)
	n := int(frac * float64(width))
	bar := strings.Repeat("█", n) + strings.Repeat("░", width-n)
	s := fmt.Sprintf("%s %d/%d (%.0f%%) %.0f tasks/s", bar, done, p.Total, 100*frac, p.Rate)
	if p.Failed > 0 {
		s += fmt.Sprintf(", %d failed", p.Failed)
	}
	if p.Interrupted > 0 {
		s += fmt.Sprintf(", %d interrupted (left for --resume)", p.Interrupted)
	}
	if p.ETA > 0 && done < p.Total {
		s += ", ETA " + (time.Duration(p.ETA) * time.Second).Round(time.Second).String()
	}
	return s
}
