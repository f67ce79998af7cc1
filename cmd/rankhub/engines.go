package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"time"

	"github.com/rankhub/rankhub/comm"
	"github.com/rankhub/rankhub/launcher"
	"github.com/rankhub/rankhub/views"
)

type enginesFlags struct {
	n       int
	labels  string
	timeout time.Duration
}

func newEnginesFlags(fl *enginesFlags) *flag.FlagSet {
	fs := flag.NewFlagSet("engines", flag.ContinueOnError)
	fs.IntVar(&fl.n, "n", 0, "number of engines to start on this host (required)")
	fs.StringVar(&fl.labels, "label", "", "labels of these engines, comma-separated (such as gpu), for TaskOptions.Require")
	fs.DurationVar(&fl.timeout, "timeout", time.Minute, "how long to wait for the engines to register")
	return fs
}

func init() {
	register(&command{name: "engines", summary: "start engines on this host that join a running hub (like ipcluster engines); they serve until the hub stops or this command is interrupted",
		usage: "JOBDIR|hub.json -n N [--label L] [-- program args...]", run: runEngines})
	flagSets["engines"] = func() *flag.FlagSet { return newEnginesFlags(&enginesFlags{}) }
}

func runEngines(args []string, stdout, stderr io.Writer) error {
	var fl enginesFlags
	fs := newEnginesFlags(&fl)
	// The hub's file may come before or after the flags.
	var target string
	if len(args) > 0 && args[0] != "--" && (len(args[0]) == 0 || args[0][0] != '-') {
		target, args = args[0], args[1:]
	}
	if err := parseFlags("engines", fs, args, stdout); err != nil {
		return err
	}
	rest := fs.Args()
	if target == "" && len(rest) > 0 && !dashBefore(args, rest[0]) {
		target, rest = rest[0], rest[1:]
		if len(rest) > 0 && rest[0] == "--" {
			rest = rest[1:]
		}
	}
	if len(rest) > 0 && !dashBefore(args, rest[0]) {
		return &usageError{msg: fmt.Sprintf("unexpected argument %q (a program goes after --)", rest[0])}
	}
	if target == "" {
		return &usageError{msg: "give the running hub's job directory or its hub.json"}
	}
	if fl.n < 1 {
		return &usageError{msg: "-n N is required (N engines to start)"}
	}
	path, ci, c, err := liveHub(target)
	if err != nil {
		return err
	}
	defer c.Close()
	before := c.IDs()

	self, err := os.Executable()
	if err != nil {
		return err
	}
	argv := []string{self, "rank"}
	if len(rest) > 0 {
		p, err := programPath(rest[0])
		if err != nil {
			return err
		}
		argv = append([]string{p}, rest[1:]...)
	}
	// The engines' logs go beside the hub's, in a directory of their own.
	host, _ := os.Hostname()
	logDir := filepath.Join(filepath.Dir(path), fmt.Sprintf("engines-%s-%s-%d", time.Now().UTC().Format("20060102T150405"), host, os.Getpid()))
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return err
	}
	env := map[string]string{launcher.EnvJoin: path}
	if fl.labels != "" {
		env[launcher.EnvLabels] = fl.labels
	}
	wd, _ := os.Getwd()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ran := make(chan error, 1)
	go func() {
		ran <- launcher.RunLocal(ctx, launcher.LocalConfig{
			Ranks: fl.n, Command: argv, Env: env, JobDir: logDir, Workdir: wd,
			JobID: ci.JobID + "-engines-" + strconv.Itoa(os.Getpid()), Stdout: stderr, Stderr: stderr,
		})
	}()
	joined, err := waitJoined(ctx, c, before, fl.n, fl.timeout, ran)
	if err != nil {
		stop()
		<-ran
		return fmt.Errorf("%w (logs: %s)", err, logDir)
	}
	c.Close()
	fmt.Fprintf(stdout, "engines %v joined the hub at %s; logs: %s\n", joined, ci.TCP, logDir)
	err = <-ran
	if err != nil && ctx.Err() == nil {
		return err
	}
	return nil
}

// liveHub finds the connection file of target (a job directory or the
// file itself) and connects to its hub, which must answer now: engines
// would otherwise wait their whole start timeout for nothing. path is
// absolute.
func liveHub(target string) (path string, ci *comm.ConnInfo, c *views.Client, err error) {
	path = target
	if st, err := os.Stat(target); err == nil && st.IsDir() {
		path = filepath.Join(target, launcher.ConnFile)
	}
	if path, err = filepath.Abs(path); err != nil {
		return "", nil, nil, err
	}
	if ci, err = comm.ReadConnInfo(path); err != nil {
		return "", nil, nil, fmt.Errorf("%s: no hub to join: %w", target, err)
	}
	if c, err = views.Connect(path); err != nil {
		return "", nil, nil, fmt.Errorf("the hub of %s (%s, pid %d on %s, written %s) does not answer: %w",
			path, ci.TCP, ci.PID, ci.Host, ci.Created.Format(time.RFC3339), err)
	}
	return path, ci, c, nil
}

// waitJoined waits until n engines not in before are registered and
// returns their ids, or fails when the engines end first or time runs out.
func waitJoined(ctx context.Context, c *views.Client, before []int, n int, timeout time.Duration, ran <-chan error) ([]int, error) {
	deadline := time.After(timeout)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		var joined []int
		for _, e := range c.Engines() {
			if !e.Dead && !slices.Contains(before, e.ID) && e.Host != "" {
				joined = append(joined, e.ID)
			}
		}
		if len(joined) >= n {
			return joined, nil
		}
		select {
		case err := <-ran:
			return nil, fmt.Errorf("the engines ended before %d joined (%d did): %v", n, len(joined), err)
		case <-deadline:
			return nil, fmt.Errorf("%d of %d engines joined within %v", len(joined), n, timeout)
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-tick.C:
		}
	}
}
