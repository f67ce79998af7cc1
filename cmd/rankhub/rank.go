package main

import (
	"context"
	"io"

	"github.com/rankhub/rankhub"
)

func init() {
	register(&command{name: "rank", hidden: true, summary: "run as one rank of a job (started by rankhub run or a batch script)", usage: "",
		run: func(args []string, stdout, stderr io.Writer) error {
			return rankhub.RunWith(context.Background(), nil, rankhub.Options{Stderr: stderr})
		}})
}
