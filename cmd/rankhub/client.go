package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/rankhub/rankhub/comm"
	"github.com/rankhub/rankhub/jobdir"
	"github.com/rankhub/rankhub/views"
)

// Commands that act on a running job as an outside client of its hub
// (start, stop, px, and the live part of status) share these helpers.

func init() {
	liveView = hubStatus
}

// connectJob connects to the hub of a job directory through its connection
// file.
func connectJob(jobDir string) (*views.Client, *comm.ConnInfo, error) {
	path := filepath.Join(jobDir, jobdir.ConnFile)
	ci, err := comm.ReadConnInfo(path)
	if err != nil {
		if os.IsNotExist(err) || strings.Contains(err.Error(), "no such file") {
			return nil, nil, fmt.Errorf("%s has no connection file: the hub is not running (or has not started yet)", jobDir)
		}
		return nil, nil, err
	}
	c, err := views.Connect(path)
	if err != nil {
		return nil, nil, err
	}
	return c, ci, nil
}

// hubStatus prints the hub's live view: engines, their queues, tasks done.
func hubStatus(w io.Writer, jobDir string) error {
	c, ci, err := connectJob(jobDir)
	if err != nil {
		return err
	}
	defer c.Close()
	engines := c.Engines()
	if engines == nil {
		return fmt.Errorf("the hub at %s did not answer", ci.TCP)
	}
	qs, unassigned, err := c.QueueStatus()
	if err != nil {
		return err
	}
	pending, completed, err := c.ResultStatus()
	if err != nil {
		return err
	}
	live := 0
	for _, e := range engines {
		if !e.Dead {
			live++
		}
	}
	queued := map[int]int{}
	for _, q := range qs {
		queued[q.EngineID] = q.Queued
	}
	fmt.Fprintf(w, "hub        %s pid %d, %s\n", ci.Host, ci.PID, ci.TCP)
	fmt.Fprintf(w, "engines    %d live of %d\n", live, len(engines))
	fmt.Fprintf(w, "  %-6s %-5s %-20s %-8s %-7s %-7s %s\n", "engine", "rank", "host", "pid", "queued", "done", "state")
	for _, e := range engines {
		state := "live"
		if e.Dead {
			state = "gone: " + e.DeadWhy
		}
		fmt.Fprintf(w, "  %-6d %-5d %-20s %-8d %-7d %-7d %s\n", e.ID, e.Rank, e.Host, e.PID, e.Queued, e.Done, state)
	}
	fmt.Fprintf(w, "tasks      %d done, %d pending (%d waiting for an engine) in the hub's history\n", len(completed), len(pending), unassigned)
	return nil
}
