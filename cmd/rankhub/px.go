package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/rankhub/rankhub/views"
)

type pxFlags struct {
	targets string
	timeout time.Duration
}

func newPxFlags(fl *pxFlags) *flag.FlagSet {
	fs := flag.NewFlagSet("px", flag.ContinueOnError)
	fs.StringVar(&fl.targets, "t", "", "engine ids, comma-separated (negative counts from the end; default: all)")
	fs.DurationVar(&fl.timeout, "timeout", 0, "give up waiting for the output after this long (0: no limit)")
	return fs
}

func init() {
	register(&command{name: "px", summary: "run a shell command on the engines of a running job; output as [stdout:N] (like %px)",
		usage: "[-t ids] [--timeout D] jobdir -- command [args...]", run: runPx})
	flagSets["px"] = func() *flag.FlagSet { return newPxFlags(&pxFlags{}) }
}

func runPx(args []string, stdout, stderr io.Writer) error {
	var fl pxFlags
	fs := newPxFlags(&fl)
	if err := parseFlags("px", fs, args, stdout); err != nil {
		return err
	}
	rest := fs.Args()
	if len(rest) < 2 {
		return &usageError{msg: "give a job directory and a command after --"}
	}
	jobDir, cmdArgs := rest[0], rest[1:]
	if cmdArgs[0] == "--" {
		cmdArgs = cmdArgs[1:]
	}
	if len(cmdArgs) == 0 {
		return &usageError{msg: "no command after --"}
	}
	var ids []int
	if fl.targets != "" {
		for _, s := range strings.Split(fl.targets, ",") {
			id, err := strconv.Atoi(strings.TrimSpace(s))
			if err != nil {
				return &usageError{msg: fmt.Sprintf("-t: %q is not an engine id", s)}
			}
			ids = append(ids, id)
		}
	}
	ref, err := resolveJob(jobDir)
	if err != nil {
		return err
	}
	c, _, err := connectJob(ref.dir.Path)
	if err != nil {
		return err
	}
	defer c.Close()
	var dv *views.DirectView
	if len(ids) > 0 {
		dv, err = c.View(ids...)
	} else {
		dv, err = c.DirectView()
	}
	if err != nil {
		return err
	}
	line := cmdArgs[0]
	if len(cmdArgs) > 1 {
		line = shellJoin(cmdArgs)
	}
	ar, err := dv.Execute(line)
	if err != nil {
		return err
	}
	timeout := time.Duration(-1)
	if fl.timeout > 0 {
		timeout = fl.timeout
	}
	_, err = ar.Get(timeout)
	if errors.Is(err, views.ErrTimeout) {
		return fmt.Errorf("no answer from every engine within %v", fl.timeout)
	}
	fmt.Fprint(stdout, views.FormatOutputs(ar))
	if err != nil {
		failed := 0
		for _, m := range ar.Metadata() {
			if m.Error != nil {
				failed++
				fmt.Fprintf(stderr, "[engine %d] %v\n", m.EngineID, m.Error)
			}
		}
		return &exitError{code: 1, err: fmt.Errorf("the command failed on %d of %d engines", failed, len(ar.Metadata()))}
	}
	return nil
}
