package launcher

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/rankhub/rankhub/comm"
	"github.com/rankhub/rankhub/jobs"
)

// The rank environment: the launchers build it (RankSettings.Env and
// IdentityEnv) and ranks parse it (ParseRankSettings, IdentityFromEnv),
// here and nowhere else. The variables besides the identity's:
const (
	EnvStartTimeout = "RANKHUB_START_TIMEOUT" // Go duration or seconds; default 2m
	EnvSpin         = "RANKHUB_SPIN"          // Go duration; "0" turns spinning off
	EnvLogLevel     = "RANKHUB_LOG_LEVEL"     // zerolog level of the console
	EnvTLS          = "RANKHUB_TLS"           // [job] tls: clients (default), all, off
	EnvMaxFrame     = comm.EnvMaxFrame        // bytes; read by comm itself
)

// Defaults of the rank settings.
const (
	DefaultStartTimeout = 2 * time.Minute
	DefaultSpin         = 100 * time.Microsecond
)

// RankSettings are what a rank reads from the environment besides its
// identity.
type RankSettings struct {
	JobFile      string        // the job file inside the job directory
	Transport    string        // "auto" or "tcp"; "" = auto
	Heartbeat    time.Duration // default jobs.DefaultHeartbeat
	StartTimeout time.Duration // default DefaultStartTimeout
	// Spin is the window hub, engines and the mesh poll for a reply after
	// sending: >0 that long, <0 never, 0 not set (SpinFor decides).
	Spin     time.Duration
	LogLevel string
	// TLS is [job] tls: which TCP links speak TLS ("" = jobs.TLSClients).
	TLS string
	// MaxFrame is [job] max_frame in bytes (0: comm's default).
	MaxFrame int64
}

// ParseRankSettings reads the settings; a variable set to something
// unusable is an error naming it (a rank must not run with a setting its
// launcher did not mean).
func ParseRankSettings(getenv func(string) string) (RankSettings, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	s := RankSettings{JobFile: getenv(EnvJobFile), Transport: getenv(EnvTransport), LogLevel: getenv(EnvLogLevel),
		Heartbeat: jobs.DefaultHeartbeat, StartTimeout: DefaultStartTimeout, TLS: getenv(EnvTLS)}
	var errs []error
	dur := func(name string, min time.Duration, zeroOK bool) (time.Duration, bool) {
		v := strings.TrimSpace(getenv(name))
		if v == "" {
			return 0, false
		}
		d, err := time.ParseDuration(v)
		if n, aerr := strconv.Atoi(v); err != nil && aerr == nil {
			d, err = time.Duration(n)*time.Second, nil
		}
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("launcher: %s=%q is not a duration (e.g. \"1s\")", name, v))
		case d == 0 && zeroOK:
			return 0, true
		case d < min || d < 0:
			errs = append(errs, fmt.Errorf("launcher: %s=%q is below the minimum %v", name, v, min))
		default:
			return d, true
		}
		return 0, false
	}
	if d, ok := dur(EnvHeartbeat, jobs.MinHeartbeat, false); ok {
		s.Heartbeat = d
	}
	if d, ok := dur(EnvStartTimeout, time.Second, false); ok {
		s.StartTimeout = d
	}
	if d, ok := dur(EnvSpin, 0, true); ok {
		s.Spin = d
		if d == 0 {
			s.Spin = -1
		}
	}
	if s.Transport != "" && s.Transport != "auto" && s.Transport != "tcp" {
		errs = append(errs, fmt.Errorf("launcher: %s=%q: want auto or tcp", EnvTransport, s.Transport))
	}
	switch s.TLS {
	case "":
		s.TLS = jobs.TLSClients
	case jobs.TLSClients, jobs.TLSAll, jobs.TLSOff:
	default:
		errs = append(errs, fmt.Errorf("launcher: %s=%q: want %s, %s or %s", EnvTLS, s.TLS, jobs.TLSClients, jobs.TLSAll, jobs.TLSOff))
	}
	if v := strings.TrimSpace(getenv(EnvMaxFrame)); v != "" {
		n, err := comm.ParseSize(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("launcher: %s: %w", EnvMaxFrame, err))
		}
		s.MaxFrame = n
	}
	return s, errors.Join(errs...)
}

// SpinFor is the spin window of a rank among size ranks of procs Go
// processors each on cpus cores, the one rule for the views and the
// collective mesh: the setting when there is one, else DefaultSpin when
// the ranks' schedulers fit the cores, else none (-1): a spinning rank
// takes CPU time from the peer it waits for, and with ranks outnumbering
// the cores the hub starved (513 ranks on 2 cores failed on heartbeats).
func (s RankSettings) SpinFor(size, procs, cpus int) time.Duration {
	if s.Spin != 0 {
		return s.Spin
	}
	if size*max(procs, 1) > cpus {
		return -1
	}
	return DefaultSpin
}

// ViewsOversubscription is how many Go schedulers per core the hub's and
// the engines' connections still spin with. Their readers wait for one
// small reply at a time, and a hub with two engines on the project's 2-core
// machine (3 ranks) answers an apply in 12-19 µs spinning against 21-22 µs
// sleeping (rhbench, same run); the collective mesh moves bulk data between
// ranks that all wait at once, and keeps SpinFor's 1.
const ViewsOversubscription = 2

// ViewsSpinFor is SpinFor for the hub's and the engines' connections: the
// setting when there is one, else DefaultSpin while the ranks' schedulers
// are at most ViewsOversubscription per core, else none (-1).
func (s RankSettings) ViewsSpinFor(size, procs, cpus int) time.Duration {
	if s.Spin != 0 {
		return s.Spin
	}
	if size*max(procs, 1) > ViewsOversubscription*cpus {
		return -1
	}
	return DefaultSpin
}

// Env is the settings as variables for a rank's environment (zero fields
// are left out, so the rank's defaults apply).
func (s RankSettings) Env() map[string]string {
	env := map[string]string{}
	set := func(k, v string) {
		if v != "" {
			env[k] = v
		}
	}
	set(EnvJobFile, s.JobFile)
	set(EnvTransport, s.Transport)
	set(EnvLogLevel, s.LogLevel)
	set(EnvTLS, s.TLS)
	if s.MaxFrame > 0 {
		env[EnvMaxFrame] = strconv.FormatInt(s.MaxFrame, 10)
	}
	if s.Heartbeat > 0 {
		env[EnvHeartbeat] = s.Heartbeat.String()
	}
	if s.StartTimeout > 0 {
		env[EnvStartTimeout] = s.StartTimeout.String()
	}
	switch {
	case s.Spin > 0:
		env[EnvSpin] = s.Spin.String()
	case s.Spin < 0:
		env[EnvSpin] = "0"
	}
	return env
}

// IdentityEnv is the identity of a rank rankhub starts itself (the local
// launcher); under a scheduler the ranks read the scheduler's variables.
func IdentityEnv(id Identity) map[string]string {
	env := map[string]string{EnvRank: strconv.Itoa(id.Rank), EnvSize: strconv.Itoa(id.Size), EnvJobDir: id.JobDir}
	if id.LocalRank >= 0 {
		env[EnvLocalRank] = strconv.Itoa(id.LocalRank)
	}
	if id.Node >= 0 {
		env[EnvNode] = strconv.Itoa(id.Node)
	}
	if id.JobID != "" {
		env[EnvJobID] = id.JobID
	}
	return env
}

// JobSettings are the rank settings a job file asks for (the flags of
// `rankhub run` may override Transport and Heartbeat afterwards).
func JobSettings(job *jobs.Job, jobFile string) RankSettings {
	mf, _ := job.Job.MaxFrameBytes() // validated with the job
	return RankSettings{JobFile: jobFile, Transport: job.Job.Transport, Heartbeat: job.Job.Heartbeat.Duration,
		TLS: job.Job.TLS, MaxFrame: mf}
}

// HubTLS is the TLS mode of the hub's TCP socket for a job's tls setting:
// clients may always use TLS (the connection file pins the certificate),
// and with "all" engines must too.
func (s RankSettings) HubTLS() comm.TLSMode {
	switch s.TLS {
	case jobs.TLSOff:
		return comm.TLSOff
	case jobs.TLSAll:
		return comm.TLSRequire
	}
	return comm.TLSAllow
}

// RankTLS tells whether rank-to-rank TCP links (engines to the hub, the
// collective mesh across nodes) speak TLS.
func (s RankSettings) RankTLS() bool { return s.TLS == jobs.TLSAll }
