package main

import (
	"flag"
	"fmt"
	"io"

	"github.com/rankhub/rankhub/results"
)

func init() {
	register(&command{name: "results", summary: "result file maintenance: recover a file whose writer was killed",
		usage: "recover results.arrow", run: runResults})
	flagSets["results"] = func() *flag.FlagSet { return flag.NewFlagSet("results", flag.ContinueOnError) }
}

func runResults(args []string, stdout, stderr io.Writer) error {
	fs := flagSets["results"]()
	if err := parseFlags("results", fs, args, stdout); err != nil {
		return err
	}
	if fs.NArg() != 2 || fs.Arg(0) != "recover" {
		return &usageError{msg: "want: rankhub results recover FILE"}
	}
	path := fs.Arg(1)
	r, err := results.Open(path)
	if err != nil {
		return err
	}
	problems := r.Problems()
	r.Close()
	for _, p := range problems {
		fmt.Fprintf(stderr, "rankhub results recover: dropping: %s\n", p)
	}
	kept, err := results.Recover(path)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: recovered, %d rows kept\n", path, kept)
	return nil
}
