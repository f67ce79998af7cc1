package main

import (
	"context"
	"io"

	"github.com/rankhub/rankhub"
	"github.com/rankhub/rankhub/jobdir"
)

func init() {
	register(&command{name: "rank", hidden: true, summary: "run as one rank of a job (started by rankhub run or a batch script)", usage: "",
		run: func(args []string, stdout, stderr io.Writer) error {
			// The rank's exit status is its outcome's (jobdir's table).
			if err := rankhub.RunWith(context.Background(), nil, rankhub.Options{Stderr: stderr}); err != nil {
				return &exitError{code: jobdir.OutcomeOf(err).ExitCode(), err: err}
			}
			return nil
		}})
}
