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
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/rankhub/rankhub/comm"
	"github.com/rankhub/rankhub/jobs"
	"github.com/rankhub/rankhub/launcher"
	"github.com/rankhub/rankhub/views"
	"github.com/rs/zerolog"
	"golang.org/x/term"
)

// Driver is the program's work, run on rank 0 once every engine registered.
type Driver func(ctx context.Context, c *views.Client) error

// Register makes fn callable by name on the engines (see views.Register).
// It panics on a programming error, like http.HandleFunc.
func Register(name string, fn any) {
	views.MustRegister(name, fn)
	userFuncs.Lock()
	userFuncs.m[name] = reflect.ValueOf(fn)
	userFuncs.Unlock()
}

// Main runs this rank and exits the process with its status.
func Main(driver Driver) {
	if err := Run(context.Background(), driver); err != nil {
		fmt.Fprintf(os.Stderr, "rankhub: %v\n", err)
		os.Exit(1)
	}
	os.Exit(0)
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
		return err
	}
	if o.StartTimeout <= 0 {
		o.StartTimeout = envDuration("RANKHUB_START_TIMEOUT", 2*time.Minute)
	}
	if o.Stderr == nil {
		o.Stderr = os.Stderr
	}
	log, closeLog := rankLogger(id, o.Stderr)
	defer closeLog()

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGUSR1)
	defer signal.Stop(sigs)
	go func() {
		select {
		case s := <-sigs:
			name := s.String()
			if s == syscall.SIGUSR1 {
				name = "SIGUSR1 (the scheduler's walltime warning)"
			} else if s == syscall.SIGTERM {
				name = "SIGTERM"
			}
			log.Warn().Str("signal", name).Msg("signal received; shutting down")
			cancel(&SignalError{Signal: name})
		case <-ctx.Done():
		}
	}()

	hb := envDuration(launcher.EnvHeartbeat, time.Second)
	copts := comm.Options{Heartbeat: hb, HeartbeatMisses: 5, Logger: log, Spin: spinWindow()}
	host, _ := os.Hostname()
	transport := os.Getenv(launcher.EnvTransport)
	join := os.Getenv(launcher.EnvJoin)
	if id.Rank == 0 && join == "" {
		return runHub(ctx, id, driver, copts, o, log, transport, host)
	}
	hubFile := filepath.Join(id.JobDir, launcher.ConnFile)
	if join != "" {
		hubFile = join
	}
	wctx, wcancel := context.WithTimeout(ctx, o.StartTimeout)
	ci, conn, err := launcher.JoinHub(wctx, hubFile, time.Now(), transport, copts)
	wcancel()
	if err == nil {
		cfg := views.EngineConfig{Rank: id.Rank, Host: host, Logger: log, Labels: envLabels(), CaptureOutput: true}
		if join != "" {
			// An engine joining a running hub is no rank of its job: the
			// hub gives it the next free id, and it takes no part in the
			// job's collective world.
			cfg.Rank = -1
		} else {
			key, _ := ci.KeyBytes()
			mesh := startMesh(ctx, id, key, transport, hb, log)
			defer mesh.close()
			cfg.World = mesh.world
		}
		err = views.ServeEngine(ctx, conn, cfg)
	}
	if cause := context.Cause(ctx); cause != nil && errors.As(cause, new(*SignalError)) {
		return nil // stopped on request: not a failure of this rank
	}
	return err
}

// SignalError says the job was stopped by a signal.
type SignalError struct{ Signal string }

func (e *SignalError) Error() string { return "stopped by " + e.Signal }

func runHub(ctx context.Context, id launcher.Identity, driver Driver, copts comm.Options, o Options, log zerolog.Logger, transport, host string) error {
	listen := os.Getenv(launcher.EnvListen)
	if listen == "" && os.Getenv("SLURM_JOB_ID") == "" && os.Getenv("PBS_JOBID") == "" && id.Source == "rankhub" && transport != "tcp" {
		listen = "127.0.0.1:0" // a local run: nobody outside this host
	}
	ep, err := launcher.ListenHub(id, listen, copts)
	if err != nil {
		return err
	}
	defer ep.Close()
	mesh := startMesh(ctx, id, ep.Key, transport, copts.Heartbeat, log)
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
		recordEnd(id.JobDir, "failed", err.Error())
		return fmt.Errorf("rank 0: %w", err)
	}
	log.Info().Ints("engines", client.IDs()).Msg("all engines registered")
	if driver == nil {
		driver, err = defaultDriver(id, log)
		if err != nil {
			recordEnd(id.JobDir, "failed", err.Error())
			return err
		}
	}
	err = driver(ctx, client)
	cause := context.Cause(ctx)
	var se *SignalError
	switch {
	case cause != nil && errors.As(cause, &se):
		recordEnd(id.JobDir, "signalled", se.Error())
		if err != nil && !errors.Is(err, context.Canceled) {
			return err
		}
		return nil
	case err != nil:
		recordEnd(id.JobDir, "failed", err.Error())
		return err
	}
	recordEnd(id.JobDir, "completed", "")
	return nil
}

func recordEnd(jobDir, state, reason string) {
	if jobDir == "" {
		return
	}
	s := fmt.Sprintf("{\"state\": %q, \"reason\": %q, \"time\": %q}\n", state, reason, time.Now().UTC().Format(time.RFC3339))
	os.WriteFile(filepath.Join(jobDir, launcher.EndStatusFile), []byte(s), 0o644)
}

func envDuration(name string, def time.Duration) time.Duration {
	if s := os.Getenv(name); s != "" {
		if d, err := time.ParseDuration(s); err == nil && d > 0 {
			return d
		}
		if n, err := strconv.Atoi(s); err == nil && n > 0 {
			return time.Duration(n) * time.Second
		}
	}
	return def
}

// rankLogger logs JSON to rank-N.log.json in the job directory and a human
// console to stderr (colour only on a terminal).
func rankLogger(id launcher.Identity, stderr io.Writer) (zerolog.Logger, func()) {
	// The console shows warnings and errors unless RANKHUB_LOG_LEVEL says
	// otherwise; the JSON file keeps everything from info up.
	consoleLevel := zerolog.WarnLevel
	if l, err := zerolog.ParseLevel(os.Getenv("RANKHUB_LOG_LEVEL")); err == nil && os.Getenv("RANKHUB_LOG_LEVEL") != "" {
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
		if f, err := os.OpenFile(filepath.Join(id.JobDir, fmt.Sprintf("rank-%d.log.json", id.Rank)), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644); err == nil {
			writers = append(writers, &zerolog.FilteredLevelWriter{Writer: zerolog.LevelWriterAdapter{Writer: f}, Level: min(consoleLevel, zerolog.InfoLevel)})
			closer = func() { f.Close() }
		}
	}
	l := zerolog.New(zerolog.MultiLevelWriter(writers...)).Level(min(consoleLevel, zerolog.InfoLevel)).With().Timestamp().Int("rank", id.Rank).Logger()
	return l, closer
}

// defaultDriver is what rank 0 runs when the program has no driver: the
// job's sweep when it has a [task], else it serves outside clients until
// it is stopped (as ipcluster start does).
func defaultDriver(id launcher.Identity, log zerolog.Logger) (Driver, error) {
	p := os.Getenv(launcher.EnvJobFile)
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

// spinWindow is how long hub and engines poll for a reply after sending
// (comm.Options.Spin): RANKHUB_SPIN, default 100µs; 0 turns it off.
func spinWindow() time.Duration {
	s := os.Getenv("RANKHUB_SPIN")
	if s == "" {
		return 100 * time.Microsecond
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 100 * time.Microsecond
	}
	return d
}
