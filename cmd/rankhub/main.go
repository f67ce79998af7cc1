// Command rankhub runs MPI-style jobs of rank processes with an
// IPython.parallel-like hub at rank 0, locally or under SLURM or PBS.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
)

// command is one subcommand; each lives in its own file.
type command struct {
	name    string
	summary string
	usage   string // after "rankhub <name> "
	hidden  bool
	run     func(args []string, stdout, stderr io.Writer) error
}

var commands = map[string]*command{}

func register(c *command) { commands[c.name] = c }

// exitError carries a process exit status through run.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// usageError marks bad command-line use (exit status 2).
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		if len(args) > 1 {
			if c, ok := commands[args[1]]; ok {
				c.help(stdout)
				return 0
			}
		}
		help(stdout)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	if args[0] == "--version" || args[0] == "-version" {
		args[0] = "version"
	}
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "rankhub: unknown command %q\n\n", args[0])
		help(stderr)
		return 2
	}
	err := c.run(args[1:], stdout, stderr)
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return 0
	}
	var ue *usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(stderr, "rankhub %s: %v\n", c.name, ue.msg)
		fmt.Fprintf(stderr, "usage: rankhub %s %s\n", c.name, c.usage)
		return 2
	}
	fmt.Fprintf(stderr, "rankhub %s: %v\n", c.name, err)
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return 1
}

func help(w io.Writer) {
	fmt.Fprintln(w, "rankhub: MPI-style jobs with an IPython.parallel-like hub, locally or under SLURM/PBS.")
	fmt.Fprintln(w, "\nusage: rankhub <command> [flags] [args]\n\ncommands:")
	names := make([]string, 0, len(commands))
	for n, c := range commands {
		if !c.hidden {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w, "\nrankhub help <command> or rankhub <command> -h shows a command's flags.")
}

func (c *command) help(w io.Writer) {
	fmt.Fprintf(w, "usage: rankhub %s %s\n\n%s\n", c.name, c.usage, c.summary)
	fs := c.flags(w)
	if fs != nil {
		fmt.Fprintln(w, "\nflags:")
		fs.PrintDefaults()
	}
}

// flagSets lets help print a command's flags without running it.
var flagSets = map[string]func() *flag.FlagSet{}

func (c *command) flags(w io.Writer) *flag.FlagSet {
	mk, ok := flagSets[c.name]
	if !ok {
		return nil
	}
	fs := mk()
	fs.SetOutput(w)
	return fs
}

// parseFlags parses a command's flags; -h prints its help.
func parseFlags(name string, fs *flag.FlagSet, args []string, stdout io.Writer) error {
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			commands[name].help(stdout)
			return flag.ErrHelp
		}
		return &usageError{msg: err.Error()}
	}
	return nil
}
