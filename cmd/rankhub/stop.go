package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"syscall"
	"time"
)

func init() {
	register(&command{name: "stop", summary: "shut down the hub and engines of a running job (started with rankhub start)",
		usage: "[--timeout D] jobdir", run: runStop})
	flagSets["stop"] = func() *flag.FlagSet {
		fs := flag.NewFlagSet("stop", flag.ContinueOnError)
		fs.Duration("timeout", 10*time.Second, "how long the engines get to leave")
		return fs
	}
}

func runStop(args []string, stdout, stderr io.Writer) error {
	fs := flagSets["stop"]()
	if err := parseFlags("stop", fs, args, stdout); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return &usageError{msg: "give one job directory"}
	}
	timeout := fs.Lookup("timeout").Value.(flag.Getter).Get().(time.Duration)
	ref, err := resolveJob(fs.Arg(0))
	if err != nil {
		return err
	}
	c, ci, err := connectJob(ref.dir.Path)
	if err != nil {
		return err
	}
	engines := len(c.IDs())
	if err := c.Shutdown(timeout); err != nil {
		return fmt.Errorf("shutting down the hub of %s: %w", ref.dir, err)
	}
	// The hub has stopped its engines and closed its connections; rank 0's
	// process ends on SIGTERM as on a scheduler's cancel. It can only be
	// signalled from its own host.
	host, _ := os.Hostname()
	if ci.Host == host && ci.PID > 0 {
		if err := waitGone(ci.PID, 200*time.Millisecond); err != nil {
			syscall.Kill(ci.PID, syscall.SIGTERM)
			if err := waitGone(ci.PID, timeout); err != nil {
				return fmt.Errorf("the hub (pid %d) did not exit within %v", ci.PID, timeout)
			}
		}
	}
	fmt.Fprintf(stdout, "stopped %d engines and the hub of %s\n", engines, ref.dir)
	return nil
}

// waitGone waits until process pid no longer exists.
func waitGone(pid int, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		if err := syscall.Kill(pid, 0); err == syscall.ESRCH {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("pid %d still running", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
