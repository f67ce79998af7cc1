package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/rankhub/rankhub/comm"
	"github.com/rankhub/rankhub/jobdir"
	"github.com/rankhub/rankhub/jobs"
	"github.com/rankhub/rankhub/launcher"
	"github.com/rankhub/rankhub/views"
)

type startFlags struct {
	ranks      int
	workdir    string
	scheme     string
	hwm        int
	foreground bool
	jobDir     string // set when the background process runs the job
	timeout    time.Duration
	listen     string
	iface      string
	labels     string
}

func newStartFlags(fl *startFlags) *flag.FlagSet {
	fs := flag.NewFlagSet("start", flag.ContinueOnError)
	fs.IntVar(&fl.ranks, "n", 0, "number of ranks: the hub and n-1 engines (required)")
	fs.StringVar(&fl.workdir, "workdir", "", "directory the engines run in and the job directory goes under (default: here)")
	fs.StringVar(&fl.scheme, "scheme", "", "load-balancing scheme: leastload (default), roundrobin, random")
	fs.IntVar(&fl.hwm, "hwm", 0, "most load-balanced tasks in flight per engine (0: no limit)")
	fs.BoolVar(&fl.foreground, "foreground", false, "stay in the foreground until the job is stopped")
	fs.DurationVar(&fl.timeout, "timeout", time.Minute, "how long to wait for the engines to register")
	fs.StringVar(&fl.listen, "listen", "", "the hub's TCP address, host[:port] (0.0.0.0: every interface); default 127.0.0.1, this host only")
	fs.StringVar(&fl.iface, "interface", "", "listen on this network interface's address (such as eth0, ib0)")
	fs.StringVar(&fl.labels, "label", "", "labels of the engines, comma-separated (such as gpu), for TaskOptions.Require")
	fs.StringVar(&fl.jobDir, "jobdir", "", "(internal) run the job of this directory")
	return fs
}

func init() {
	register(&command{name: "start", summary: "start a hub and n-1 engines on this machine that wait for clients (like ipcluster start)",
		usage: "-n N [--listen ADDR | --interface IF] [--label L] [--scheme S] [--hwm H] [--foreground] [--workdir dir] [-- program args...]", run: runStart})
	flagSets["start"] = func() *flag.FlagSet { return newStartFlags(&startFlags{}) }
}

func runStart(args []string, stdout, stderr io.Writer) error {
	var fl startFlags
	fs := newStartFlags(&fl)
	if err := parseFlags("start", fs, args, stdout); err != nil {
		return err
	}
	if fl.ranks < 1 {
		return &usageError{msg: "-n N is required (N ranks: the hub and N-1 engines)"}
	}
	prog := fs.Args() // the program every rank runs: rankhub itself without one
	if len(prog) > 0 && !dashBefore(args, prog[0]) {
		return &usageError{msg: fmt.Sprintf("unexpected argument %q (a program goes after --)", prog[0])}
	}
	if fl.listen != "" && fl.iface != "" {
		return &usageError{msg: "give --listen or --interface, not both"}
	}
	if fl.iface != "" {
		addr, err := launcher.InterfaceAddr(fl.iface)
		if err != nil {
			return &usageError{msg: err.Error()}
		}
		fl.listen = addr
	}
	if _, err := views.ParseScheme(fl.scheme); err != nil {
		return &usageError{msg: err.Error()}
	}
	if fl.jobDir != "" {
		return serveStarted(fl, stderr)
	}
	wd := fl.workdir
	if wd == "" {
		wd, _ = os.Getwd()
	}
	wd, err := filepath.Abs(wd)
	if err != nil {
		return err
	}
	src := fmt.Sprintf("# rankhub start -n %d\n[job]\nname = \"start\"\nranks = %d\nworkdir = %q\n", fl.ranks, fl.ranks, wd)
	if len(prog) > 0 {
		p, err := programPath(prog[0])
		if err != nil {
			return err
		}
		src += "program = " + tomlStrings(append([]string{p}, prog[1:]...)) + "\n"
	}
	job, err := jobs.Parse(filepath.Join(wd, "start.toml"), []byte(src))
	if err != nil {
		return err
	}
	jd, err := launcher.NewJobDir(job, wd)
	if err != nil {
		return err
	}
	jobDir := jd.Path
	self, err := os.Executable()
	if err != nil {
		return err
	}
	childArgs := []string{"start", "-n", strconv.Itoa(fl.ranks), "--jobdir", jobDir, "--workdir", wd, "--hwm", strconv.Itoa(fl.hwm)}
	if fl.scheme != "" {
		childArgs = append(childArgs, "--scheme", fl.scheme)
	}
	if fl.listen != "" {
		childArgs = append(childArgs, "--listen", fl.listen)
	}
	if fl.labels != "" {
		childArgs = append(childArgs, "--label", fl.labels)
	}
	if fl.foreground {
		fl.jobDir = jobDir
		fmt.Fprintln(stdout, jobDir)
		return serveStarted(fl, stderr)
	}
	// Detach: a new session, output to the job directory.
	logf, err := jd.Create(jobdir.StartLog)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(self, childArgs...)
	cmd.Dir = wd
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting the job in the background: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	ctx, cancel := context.WithTimeout(context.Background(), fl.timeout)
	defer cancel()
	ready := make(chan error, 1)
	go func() {
		ci, err := launcher.WaitConnInfo(ctx, jobDir, time.Now().Add(-time.Minute))
		if err != nil {
			ready <- err
			return
		}
		c, err := views.Connect(filepath.Join(jobDir, jobdir.ConnFile))
		if err != nil {
			ready <- err
			return
		}
		defer c.Close()
		_ = ci
		ready <- c.WaitForEngines(ctx, fl.ranks-1)
	}()
	select {
	case err := <-ready:
		if err != nil {
			cmd.Process.Signal(syscall.SIGTERM)
			return fmt.Errorf("the job did not come up: %w (log: %s)", err, filepath.Join(jobDir, "start.log"))
		}
	case err := <-exited:
		return fmt.Errorf("the job ended while starting: %v (log: %s)", err, filepath.Join(jobDir, "start.log"))
	}
	ci, _ := comm.ReadConnInfo(filepath.Join(jobDir, launcher.ConnFile))
	where := ""
	if ci != nil {
		where = " at " + ci.TCP
	}
	fmt.Fprintf(stderr, "rankhub: hub%s and %d engines running; more join with: rankhub engines %s -n N; stop them with: rankhub stop %s\n", where, fl.ranks-1, jobDir, jobDir)
	fmt.Fprintln(stdout, jobDir)
	return nil
}

// serveStarted runs the ranks of a started job until they are stopped.
func serveStarted(fl startFlags, stderr io.Writer) error {
	job, err := jobs.Load(filepath.Join(fl.jobDir, jobdir.JobFile))
	if err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	argv, err := launcher.RankCommand(job, self)
	if err != nil {
		return err
	}
	env := map[string]string{}
	if fl.listen != "" {
		env[launcher.EnvListen] = fl.listen
	}
	if fl.labels != "" {
		env[launcher.EnvLabels] = fl.labels
	}
	if fl.scheme != "" {
		env["RANKHUB_SCHEME"] = fl.scheme
	}
	if fl.hwm > 0 {
		env["RANKHUB_HWM"] = strconv.Itoa(fl.hwm)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err = launcher.RunLocal(ctx, launcher.LocalConfig{
		Ranks: fl.ranks, Command: argv, Env: env, JobDir: fl.jobDir, Workdir: launcher.JobWorkdir(job),
		JobID: filepath.Base(fl.jobDir), AbortOnError: false, Stdout: stderr, Stderr: stderr,
	})
	if err != nil && ctx.Err() == nil {
		return err
	}
	return nil
}

// dashBefore says whether "--" comes before arg in args: what follows it is
// a program, not a stray argument.
func dashBefore(args []string, arg string) bool {
	for _, a := range args {
		if a == "--" {
			return true
		}
		if a == arg {
			return false
		}
	}
	return false
}

// programPath makes a program given with a path absolute (the ranks run in
// the work directory); a bare name is looked up on PATH.
func programPath(p string) (string, error) {
	if !strings.Contains(p, "/") {
		abs, err := exec.LookPath(p)
		if err != nil {
			return "", fmt.Errorf("program %q: %w", p, err)
		}
		return abs, nil
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(abs); err != nil {
		return "", fmt.Errorf("program: %w", err)
	}
	return abs, nil
}

// tomlStrings renders a TOML array of basic strings.
func tomlStrings(ss []string) string {
	q := make([]string, len(ss))
	for i, v := range ss {
		q[i] = strconv.Quote(v)
	}
	return "[" + strings.Join(q, ", ") + "]"
}
