package main

import (
	"fmt"
	"io"

	"github.com/rankhub/rankhub"
)

func init() {
	register(&command{name: "version", summary: "print the version, VCS revision and Go version", usage: "",
		run: func(args []string, stdout, stderr io.Writer) error {
			v, rev, gov := rankhub.BuildInfo()
			fmt.Fprintf(stdout, "rankhub %s\nrevision %s\n%s\n", v, rev, gov)
			return nil
		}})
}
