// Package rankhub is the entry point of programs built with rankhub: every
// rank runs the same binary, Main bootstraps it from the environment, rank 0
// becomes the hub and runs the driver, the other ranks become engines.
//
// Usage:
//
//	func main() {
//		rankhub.Register("norm", norm) // on every rank
//		rankhub.Main(func(ctx context.Context, c *views.Client) error {
//			dv, err := c.DirectView()
//			...
//		})
//	}
//
// Start it with `rankhub run -n 4 -- ./prog` or from a job file.
package rankhub

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/rankhub/rankhub/comm"
	"github.com/rankhub/rankhub/jobdir"
	"github.com/rankhub/rankhub/jobs"
	"github.com/rankhub/rankhub/launcher"
	"github.com/rankhub/rankhub/views"
	"github.com/rs/zerolog"
	"golang.org/x/term"
)

// Driver is the program's work, run on rank 0 once every engine registered.
type Driver func(ctx context.Context, c *views.Client) error

// Register makes fn callable by name on the engines (see views.Register),
// from views and from sweeps alike: there is one registry. It panics on a
// programming error, like http.HandleFunc.
func Register(name string, fn any) { views.MustRegister(name, fn) }

// Main runs this rank and exits the process with its status: 0, or the
// exit status of the outcome its error stands for (jobdir's table: a
// signal gives 130, 143 or the walltime status; a driver's *jobdir.Error
// its own; any other error 5, a rank failed).
func Main(driver Driver) {
	err := Run(context.Background(), driver)
	if err != nil {
		fmt.Fprintf(os.Stderr, "rankhub: %v\n", err)
	}
	os.Exit(jobdir.OutcomeOf(err).ExitCode())
}

// Options tune Run. Environment variables set the defaults.
type Options struct {
	// StartTimeout bounds the wait for the connection file and for all
	// engines to register (RANKHUB_START_TIMEOUT, default 2m).
	StartTimeout time.Duration
	Stderr       io.Writer
}

// Run is Main without exiting: it returns the rank's error.
func Run(ctx context.Context, driver Driver) error {
	return RunWith(ctx, driver, Options{})
}

// RunWith is Run with options.
func RunWith(ctx context.Context, driver Driver, o Options) error {
	if spec := os.Getenv(EnvCall); spec != "" {
		return callMode(spec)
	}
	id, err := launcher.IdentityFromEnv(nil)
	if err != nil {
		return jobdir.Fail(jobdir.BadInput, err)
	}
	set, err := launcher.ParseRankSettings(nil)
	if err != nil {
		return jobdir.Fail(jobdir.BadInput, err)
	}
	if o.StartTimeout <= 0 {
		o.StartTimeout = set.StartTimeout
	}
	if o.Stderr == nil {
		o.Stderr = os.Stderr
	}
	log, closeLog := rankLogger(id, set.LogLevel, o.Stderr)
	defer closeLog()

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGUSR1)
	defer signal.Stop(sigs)
	go func() {
		select {
		case s := <-sigs:
			se := signalError(s.(syscall.Signal))
			log.Warn().Str("signal", se.Signal).Msg("signal received; shutting down")
			cancel(se)
		case <-ctx.Done():
		}
	}()

	// Spinning (launcher.SpinFor for the mesh, ViewsSpinFor for the hub's
	// and engines' connections): off when the ranks outnumber the cores,
	// twice over for the views.
	spin := set.SpinFor(id.Size, runtime.GOMAXPROCS(0), runtime.NumCPU())
	vspin := set.ViewsSpinFor(id.Size, runtime.GOMAXPROCS(0), runtime.NumCPU())
	copts := comm.Options{Heartbeat: set.Heartbeat, HeartbeatMisses: launcher.HeartbeatMisses, Logger: log, Spin: max(vspin, 0)}
	host, _ := os.Hostname()
	transport := set.Transport
	join := os.Getenv(launcher.EnvJoin)
	if id.Rank == 0 && join == "" {
		err := runHub(ctx, id, driver, copts, spin, o, log, set, host)
		if jobdir.OutcomeOf(err) == jobdir.NodeLost && id.Source == "slurm" {
			// The job is over and recorded; engines the hub declared dead
			// may still run (hung) and hold the step. Only when the ranks
			// are the step's tasks (not local ranks started inside an
			// allocation, whose step is the user's shell).
			if ok, kerr := launcher.StopOwnStep(); ok {
				log.Warn().Err(kerr).Msg("engines were lost: stopping the rest of the job step")
			}
		}
		return err
	}
	hubFile := filepath.Join(id.JobDir, launcher.ConnFile)
	if join != "" {
		hubFile = join
	}
	wctx, wcancel := context.WithTimeout(ctx, o.StartTimeout)
	ci, conn, err := launcher.JoinHub(wctx, hubFile, time.Now(), transport, copts, set.RankTLS())
	wcancel()
	joined := err == nil
	if err == nil {
		cfg := views.EngineConfig{Rank: id.Rank, Host: host, Logger: log, Labels: envLabels(), CaptureOutput: true}
		if join != "" {
			// An engine joining a running hub is no rank of its job: the
			// hub gives it the next free id, and it takes no part in the
			// job's collective world.
			cfg.Rank = -1
		} else {
			key, _ := ci.KeyBytes()
			mesh := startMesh(ctx, id, key, transport, copts.Heartbeat, spin, set.RankTLS(), log)
			defer mesh.close()
			cfg.World = mesh.world
		}
		rankStop.Store(&struct{ ctx context.Context }{ctx}) // sweep chunks stop at the signal
		ectx, served := lingerOnSignal(ctx)
		err = views.ServeEngine(ectx, conn, cfg)
		served()
	}
	if join != "" && id.Source != "rankhub" {
		// A batch job of engines joining a running hub (submit --join):
		// the hub going away ends their service, not in failure; rank 0
		// records how the job ended.
		if id.Rank == 0 {
			return joinEnd(id.JobDir, join, joined, context.Cause(ctx), err)
		}
		if joined {
			return nil
		}
	}
	if cause := context.Cause(ctx); cause != nil && errors.As(cause, new(*SignalError)) {
		return nil // stopped on request: not a failure of this rank
	}
	return err
}

// joinEnd records in status.json how a batch job of engines that joined
// the hub of hubFile ended, and returns rank 0's error: the engines could
// not join (start-failed); a signal stopped them (scancel, qdel, the
// walltime: its outcome); or the hub shut them down or went away, which
// ends their service (completed, the reason says which).
func joinEnd(jobDir, hubFile string, joined bool, cause, err error) error {
	var se *SignalError
	switch {
	case errors.As(cause, &se):
		recordEnd(jobDir, se.Outcome, fmt.Sprintf("stopped by %s: the engines left the hub of %s", se.Signal, hubFile))
		return nil
	case !joined:
		err = jobdir.Failf(jobdir.StartFailed, "could not join the hub of %s: %v", hubFile, err)
		recordEnd(jobDir, jobdir.StartFailed, err.Error())
		return err
	case err != nil:
		recordEnd(jobDir, jobdir.Completed, fmt.Sprintf("the hub of %s went away (%v): the engines' service ended", hubFile, err))
		return nil
	}
	recordEnd(jobDir, jobdir.Completed, fmt.Sprintf("the hub of %s shut its engines down", hubFile))
	return nil
}

// engineLinger is how long an engine stays connected after a signal,
// waiting for the hub to shut it down. A scheduler signals every rank at
// once (scancel, the walltime warning): engines that dropped at once made
// the hub see "every engine died" before its own signal, and the job ended
// failed instead of signalled. Shorter than the launcher's grace (5 s).
const engineLinger = 3 * time.Second

// lingerOnSignal is ctx for an engine's serving: cancelled with ctx, except
// when a signal cancelled it; then when the hub closes the connection
// (ServeEngine returns) or engineLinger later.
// Call served when serving has returned.
func lingerOnSignal(ctx context.Context) (ectx context.Context, served func()) {
	ectx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	go func() {
		defer cancel()
		select {
		case <-ctx.Done():
		case <-ectx.Done():
			return
		}
		if errors.As(context.Cause(ctx), new(*SignalError)) {
			select {
			case <-time.After(engineLinger):
			case <-ectx.Done():
			}
		}
	}()
	return ectx, cancel
}

// SignalError says the job was stopped by a signal.
type SignalError struct {
	Signal  string
	Outcome jobdir.Outcome // Interrupted, Terminated or Walltime
}

func (e *SignalError) Error() string { return "stopped by " + e.Signal }

// signalError names a signal that stops a rank and the outcome it means.
func signalError(s syscall.Signal) *SignalError {
	switch s {
	case syscall.SIGUSR1:
		return &SignalError{"SIGUSR1 (the scheduler's walltime warning)", jobdir.Walltime}
	case syscall.SIGINT:
		return &SignalError{"SIGINT", jobdir.Interrupted}
	}
	return &SignalError{"SIGTERM", jobdir.Terminated}
}

func runHub(ctx context.Context, id launcher.Identity, driver Driver, copts comm.Options, spin time.Duration, o Options, log zerolog.Logger, set launcher.RankSettings, host string) error {
	transport := set.Transport
	listen := os.Getenv(launcher.EnvListen)
	if listen == "" && os.Getenv("SLURM_JOB_ID") == "" && os.Getenv("PBS_JOBID") == "" && id.Source == "rankhub" && transport != "tcp" {
		listen = "127.0.0.1:0" // a local run: nobody outside this host
	}
	ep, err := launcher.ListenHub(id, listen, copts, set.HubTLS())
	if err != nil {
		return err
	}
	defer ep.Close()
	mesh := startMesh(ctx, id, ep.Key, transport, copts.Heartbeat, spin, set.RankTLS(), log)
	defer mesh.close()
	hub := views.NewHub(views.HubConfig{Host: host, Logger: log, World: mesh.world, Rank: id.Rank})
	go hub.Serve(ep.Listener)
	defer hub.Shutdown(5 * time.Second)
	client := views.NewClient(hub)
	log.Info().Str("tcp", ep.Info.TCP).Str("unix", ep.Info.Unix).Int("ranks", id.Size).Msg("hub listening")

	wctx, wcancel := context.WithTimeout(ctx, o.StartTimeout)
	err = client.WaitForEngines(wctx, id.Size-1)
	wcancel()
	if err != nil {
		return endJob(ctx, id, client, jobdir.Fail(jobdir.StartFailed, startFailure(id, client.Engines(), o.StartTimeout, err)))
	}
	log.Info().Ints("engines", client.IDs()).Msg("all engines registered")
	if driver == nil {
		driver, err = defaultDriver(id, log)
		if err != nil {
			return endJob(ctx, id, client, jobdir.Fail(jobdir.BadInput, err))
		}
	}
	return endJob(ctx, id, client, driver(ctx, client))
}

// endJob decides the job's outcome from the driver's error and the
// context's cause, records it in status.json and returns the error rank 0
// exits with (Main turns it into the outcome's exit status):
//   - stopped by a signal: its outcome (interrupted, terminated, walltime),
//     whatever the driver made of the cancelled context;
//   - the driver's error: its outcome (jobdir.OutcomeOf; a plain error is a
//     rank failure);
//   - success with engines lost on the way (their tasks ran elsewhere):
//     node-lost, naming them;
//   - else completed.
func endJob(ctx context.Context, id launcher.Identity, client *views.Client, err error) error {
	var se *SignalError
	if cause := context.Cause(ctx); cause != nil && errors.As(cause, &se) {
		reason := se.Error()
		if err != nil && !errors.Is(err, context.Canceled) {
			reason += "; " + err.Error()
		}
		err = jobdir.Fail(se.Outcome, errors.New(reason))
	}
	if err == nil {
		err = lostEngines(client)
	}
	o, reason := jobdir.OutcomeOf(err), ""
	if err != nil {
		reason = err.Error()
	}
	recordEnd(id.JobDir, o, reason)
	return err
}

// lostEngines is a node-lost error naming the engines that died while the
// job ran, nil when none did or the hub was shut down on request.
func lostEngines(c *views.Client) error {
	select {
	case <-c.Done():
		return nil
	default:
	}
	var lost []string
	for _, e := range c.Engines() {
		if e.Dead {
			lost = append(lost, fmt.Sprintf("engine %d (rank %d on %s): %s", e.ID, e.Rank, e.Host, e.DeadWhy))
		}
	}
	if len(lost) == 0 {
		return nil
	}
	return jobdir.Failf(jobdir.NodeLost, "completed, but %d engine(s) were lost and their tasks re-run: %s", len(lost), strings.Join(lost, "; "))
}

// recordEnd appends this run's attempt to status.json in the job directory.
func recordEnd(jobDir string, o jobdir.Outcome, reason string) {
	if jobDir == "" {
		return
	}
	d, err := jobdir.Open(jobDir)
	if err == nil {
		host, _ := os.Hostname()
		err = d.AppendAttempt(jobdir.Attempt{Outcome: o, Reason: reason, Started: started, Host: host, PID: os.Getpid(),
			SchedID: firstSet(os.Getenv("SLURM_JOB_ID"), os.Getenv("PBS_JOBID")), By: "rank 0"})
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "rankhub: recording the job's end: %v\n", err)
	}
}

// started is when this rank's process started.
var started = time.Now().UTC()

func firstSet(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}

// rankLogger logs JSON to rank-N.log.json in the job directory and a human
// console to stderr (colour only on a terminal).
func rankLogger(id launcher.Identity, level string, stderr io.Writer) (zerolog.Logger, func()) {
	// The console shows warnings and errors unless RANKHUB_LOG_LEVEL says
	// otherwise; the JSON file keeps everything from info up.
	consoleLevel := zerolog.WarnLevel
	if l, err := zerolog.ParseLevel(level); err == nil && level != "" {
		consoleLevel = l
	}
	zerolog.TimeFieldFormat = time.RFC3339Nano
	noColor := true
	if f, ok := stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		noColor = false
	}
	console := zerolog.ConsoleWriter{Out: stderr, NoColor: noColor, TimeFormat: "15:04:05.000"}
	writers := []io.Writer{&zerolog.FilteredLevelWriter{Writer: zerolog.LevelWriterAdapter{Writer: console}, Level: consoleLevel}}
	closer := func() {}
	if id.JobDir != "" {
		if f, err := openRankLog(id); err == nil {
			writers = append(writers, &zerolog.FilteredLevelWriter{Writer: zerolog.LevelWriterAdapter{Writer: f}, Level: min(consoleLevel, zerolog.InfoLevel)})
			closer = func() { f.Close() }
		}
	}
	l := zerolog.New(zerolog.MultiLevelWriter(writers...)).Level(min(consoleLevel, zerolog.InfoLevel)).With().Timestamp().Int("rank", id.Rank).Logger()
	return l, closer
}

// openRankLog opens rank-N.log.json for appending, with the job
// directory's file mode.
func openRankLog(id launcher.Identity) (*os.File, error) {
	d, err := jobdir.Open(id.JobDir)
	if err != nil {
		return nil, err
	}
	return d.Append(jobdir.RankLog(id.Rank))
}

// defaultDriver is what rank 0 runs when the program has no driver: the
// job's sweep when it has a [task], else it serves outside clients until
// it is stopped (as ipcluster start does).
func defaultDriver(id launcher.Identity, log zerolog.Logger) (Driver, error) {
	set, _ := launcher.ParseRankSettings(nil) // parsed without error by RunWith
	p := set.JobFile
	if p != "" {
		job, err := jobs.Load(p)
		if err != nil {
			return nil, err
		}
		if job.Task != nil && job.Sweep != nil {
			return sweepDriver(job, id, log), nil
		}
	}
	return func(ctx context.Context, c *views.Client) error {
		log.Info().Msg("no driver and no sweep: serving clients until stopped")
		select {
		case <-ctx.Done(): // a signal (scancel, Ctrl-C)
		case <-c.Done(): // a client shut the hub down (rankhub stop)
		}
		return nil
	}, nil
}

// envLabels are the engine's labels from RANKHUB_LABELS (comma-separated).
func envLabels() []string {
	var out []string
	for _, l := range strings.Split(os.Getenv(launcher.EnvLabels), ",") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// starters names who starts the ranks, by where their identity came from.
var starters = map[string]string{
	"rankhub": "rankhub's local launcher",
	"slurm":   "srun (SLURM)",
	"openmpi": "Open MPI's mpiexec",
	"pmi":     "a PMI launcher (mpiexec of MPICH/Hydra, or srun --mpi)",
	"pbs":     "the PBS starter (pbsdsh, pbs_tmrsh or mpiexec)",
}

// startFailure says which ranks never reached the hub within the start
// timeout, and who was to start them, instead of only a count.
func startFailure(id launcher.Identity, engines []views.EngineInfo, timeout time.Duration, err error) error {
	seen := map[int]bool{}
	for _, e := range engines {
		seen[e.Rank] = true
	}
	var missing []string
	for r := 1; r < id.Size; r++ {
		if !seen[r] {
			missing = append(missing, strconv.Itoa(r))
		}
	}
	if len(missing) == 0 {
		return fmt.Errorf("rank 0: %w", err)
	}
	who := starters[id.Source]
	if who == "" {
		who = "the starter (" + id.Source + ")"
	}
	const show = 32
	list := strings.Join(missing[:min(len(missing), show)], " ")
	if len(missing) > show {
		list += fmt.Sprintf(" ... (%d in all)", len(missing))
	}
	return fmt.Errorf("rank 0: %d of %d engine ranks never reached the hub within %v; missing ranks: %s; they are started by %s: see its output and the ranks' logs in %s (%w)",
		len(missing), id.Size-1, timeout, list, who, id.JobDir, err)
}
