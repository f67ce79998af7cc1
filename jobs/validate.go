package jobs

import (
	"fmt"
	"math"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Default values, applied by Defaults.
const (
	DefaultScheduler     = SchedLocal
	DefaultTransport     = "auto"
	DefaultHeartbeat     = time.Second
	DefaultSignalLead    = 120 * time.Second
	DefaultSeed          = 1
	DefaultPBSDialect    = "pro"
	DefaultParse         = "last-line"
	DefaultShell         = "/bin/sh"
	DefaultFlushInterval = 2 * time.Second
	DefaultFlushRows     = 1024
)

// Minimums of the durations a job sets. Below them a job cannot work: a
// heartbeat of 1ns floods the ranks and they never register; a task timeout
// of 1µs fails every task; SLURM's --signal counts whole seconds.
const (
	MinHeartbeat     = 100 * time.Millisecond // the timeout is 5 heartbeats
	MinTaskTimeout   = 10 * time.Millisecond
	MinSignalLead    = time.Second
	MinWalltime      = time.Second
	MinFlushInterval = 10 * time.Millisecond
)

// SLURMSignalSlack is how early SLURM may send the walltime warning of
// --signal (sbatch(1): "up to 60 seconds earlier than specified").
const SLURMSignalSlack = 60 * time.Second

// tooShort reports a duration key set below its minimum.
func tooShort(d *diags, key []string, v, min time.Duration, why string) {
	if v > 0 && v < min {
		d.errorf(key, "%v is below the minimum %v: %s", v, min, why)
	}
}

// Accepted values of the enumerated keys.
var (
	schedulers  = []string{SchedLocal, SchedSLURM, SchedPBS}
	transports  = []string{"auto", "tcp"}
	tlsModes    = []string{TLSClients, TLSAll, TLSOff}
	pbsDialects = []string{"pro", "torque"}
	starters    = []string{"mpiexec", "pbsdsh", "pbs_tmrsh"}
	parsers     = []string{"last-line", "key-value", "table"}
)

// Defaults fills every unset field with its default, in one place:
// name from the file name (see DefaultName), scheduler "local", transport
// "auto", heartbeat 1s, signal_lead 120s, seed 1, abort_on_error true for a program and false for a sweep,
// cpus_per_rank 1, pbs_dialect "pro", a missing queue from partition and a
// missing partition from queue (they are synonyms); for a job with a
// [task]: parse "last-line", shell "/bin/sh", replicates 1, results path
// "<name>.arrow", flush every 2s or 1024 rows. Defaults is idempotent; Parse
// calls it before Validate.
func (j *Job) Defaults() {
	s := &j.Job
	if s.Name == "" {
		s.Name = DefaultName(j.File)
	}
	if s.Scheduler == "" {
		s.Scheduler = DefaultScheduler
	}
	if s.Transport == "" {
		s.Transport = DefaultTransport
	}
	if s.TLS == "" {
		s.TLS = TLSClients
	}
	if s.Heartbeat.Duration == 0 {
		s.Heartbeat.Duration = DefaultHeartbeat
	}
	if s.SignalLead.Duration == 0 {
		s.SignalLead.Duration = DefaultSignalLead
	}
	if s.Seed == 0 {
		s.Seed = DefaultSeed
	}
	if s.AbortOnError == nil {
		// A program's ranks are one computation (MPI's rule: one failed rank
		// ends the job). A sweep's engines are interchangeable workers: the
		// hub retries a dead engine's tasks elsewhere, so the job goes on.
		abort := j.Task == nil
		s.AbortOnError = &abort
	}
	if s.CPUsPerRank == 0 {
		s.CPUsPerRank = 1
	}
	if s.PBSDialect == "" {
		s.PBSDialect = DefaultPBSDialect
	}
	if s.Queue == "" {
		s.Queue = s.Partition
	}
	if s.Partition == "" {
		s.Partition = s.Queue
	}
	if j.Sweep != nil && j.Sweep.Replicates == 0 {
		j.Sweep.Replicates = 1
	}
	if j.Task == nil {
		return
	}
	if j.Task.Parse == "" {
		j.Task.Parse = DefaultParse
	}
	if j.Task.Shell == "" {
		j.Task.Shell = DefaultShell
	}
	if j.Results == nil {
		j.Results = &ResultsSpec{}
	}
	if j.Results.Path == "" {
		j.Results.Path = s.Name + ".arrow"
	}
	if j.Results.FlushInterval.Duration == 0 {
		j.Results.FlushInterval.Duration = DefaultFlushInterval
	}
	if j.Results.FlushRows == 0 {
		j.Results.FlushRows = DefaultFlushRows
	}
}

// DefaultName derives a job name from its file: the base name without
// extension, every character outside [A-Za-z0-9_-] replaced by '_'; "job"
// when nothing is left.
func DefaultName(file string) string {
	base := filepath.Base(file)
	base = strings.TrimSuffix(base, filepath.Ext(base))
	var b strings.Builder
	for _, r := range base {
		if isNameChar(r) {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	name := strings.Trim(b.String(), "_")
	if name == "" || file == "" {
		return "job"
	}
	return name
}

func isNameChar(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-'
}

// ParseMemory reads a memory size as SLURM and PBS write it: a whole number
// with an optional unit K, M, G or T (powers of 1024; a trailing B or iB and
// any letter case are accepted: "4G", "4gb", "500MiB"). A bare number is in
// megabytes, SLURM's default. It returns bytes.
func ParseMemory(s string) (int64, error) {
	t := strings.ToUpper(strings.TrimSpace(s))
	t = strings.TrimSuffix(strings.TrimSuffix(t, "B"), "I")
	unit := int64(1) << 20
	if n := len(t); n > 0 {
		if i := strings.IndexByte("KMGT", t[n-1]); i >= 0 {
			unit = int64(1) << (10 * (i + 1))
			t = t[:n-1]
		}
	}
	if !isDigits(t) {
		return 0, fmt.Errorf("memory %q: want a size such as \"4G\" or \"500M\"", s)
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n > math.MaxInt64/unit {
		return 0, fmt.Errorf("memory %q is too large", s)
	}
	if n == 0 {
		return 0, fmt.Errorf("memory %q is zero", s)
	}
	return n * unit, nil
}

// Dir is the directory relative paths of the job are taken from: the job
// file's directory ("." for a job parsed from memory).
func (j *Job) Dir() string { return jobDir(j.File) }

// Path resolves a path written in the job file (program, template,
// workdir): absolute paths are kept, relative ones are joined to Dir.
func (j *Job) Path(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(j.Dir(), p)
}

// written tells whether key appears in the job file.
func (j *Job) written(key ...string) bool {
	_, ok := j.pos[keyString(key)]
	return ok
}

func oneOf(v string, allowed []string) bool {
	return v == "" || slices.Contains(allowed, v)
}

// Validate checks the whole job and derives what expansion needs (the
// sweep's axes, the parsed command). It works on jobs from Parse and on jobs
// built in memory (positions are then unknown), and sets Job.Warnings. The
// error, if any, is an *Errors with every problem found, in file order.
func (j *Job) Validate() error {
	d := newDiags(j.File, j.pos, j.flags)
	j.validateJob(d)
	j.validateTask(d)
	if j.Sweep != nil {
		if j.Task == nil {
			d.errorf([]string{"sweep"}, "a sweep needs a [task] to run at each point")
		}
		validateSweep(j.Sweep, d)
		j.validateAdaptive(d)
	}
	j.validateCommand(d)
	j.validateResults(d)
	j.Warnings = append(slices.Clone(j.decodeWarns), d.warns...)
	sortDiags(j.Warnings)
	return d.err()
}

func (j *Job) validateJob(d *diags) {
	s := &j.Job
	key := func(k string) []string { return []string{"job", k} }
	switch {
	case s.Name == "":
		d.errorf(key("name"), "empty name")
	case strings.IndexFunc(s.Name, func(r rune) bool { return !isNameChar(r) }) >= 0:
		d.errorf(key("name"), "%q may hold only letters, digits, _ and - (it names directories and scheduler jobs); for example %q",
			s.Name, DefaultName(s.Name))
	}
	if !oneOf(s.Scheduler, schedulers) {
		d.errorf(key("scheduler"), "unknown scheduler %q (want %s)", s.Scheduler, strings.Join(schedulers, ", "))
	}
	minRanks, need := 2, "a job needs at least 2 ranks (rank 0 is the hub)"
	if j.engines {
		minRanks, need = 1, "an engines job (--join) needs at least 1 rank (every rank is an engine of the hub it joins)"
	}
	switch {
	case s.Ranks == 0 && !j.written("job", "ranks") && j.flags["job.ranks"] == "":
		d.errorf(key("ranks"), "missing: %s", need)
	case s.Ranks < minRanks:
		d.errorf(key("ranks"), "%d is too few: %s", s.Ranks, need)
	}
	switch {
	case s.RanksPerNode < 0:
		d.errorf(key("ranks_per_node"), "%d is negative", s.RanksPerNode)
	case s.RanksPerNode > s.Ranks && s.Ranks >= minRanks:
		d.warnf(key("ranks_per_node"), "%d is more than ranks (%d): only %d rank(s) will run per node", s.RanksPerNode, s.Ranks, s.Ranks)
	}
	switch {
	case s.Nodes < 0:
		d.errorf(key("nodes"), "%d is negative", s.Nodes)
	case s.Nodes > 0 && s.RanksPerNode > 0 && s.Nodes*s.RanksPerNode < s.Ranks:
		d.errorf(key("nodes"), "%d nodes × %d ranks_per_node hold %d ranks, fewer than ranks = %d",
			s.Nodes, s.RanksPerNode, s.Nodes*s.RanksPerNode, s.Ranks)
	case s.Nodes > s.Ranks && s.Ranks >= minRanks:
		d.warnf(key("nodes"), "%d nodes for %d ranks: some nodes get no rank", s.Nodes, s.Ranks)
	}
	if s.CPUsPerRank < 0 {
		d.errorf(key("cpus_per_rank"), "%d is negative", s.CPUsPerRank)
	}
	if s.Memory != "" {
		if _, err := ParseMemory(s.Memory); err != nil {
			d.errorf(key("memory"), "%v", err)
		}
	}
	tooShort(d, key("walltime"), s.Walltime.Duration, MinWalltime, "no job starts that fast")
	if s.Walltime.Duration < 0 {
		d.errorf(key("walltime"), "negative")
	} else if s.Walltime.Duration == 0 && (j.written("job", "walltime") || j.flags["job.walltime"] != "") {
		d.errorf(key("walltime"), "must be positive (leave it out for the scheduler's default)")
	}
	if s.Scheduler != SchedLocal && s.Scheduler != "" && s.Walltime.Duration == 0 {
		d.warnf(key("walltime"), "no walltime: the %s default limit applies", s.Scheduler)
	}
	if s.Walltime.Duration > 0 && s.SignalLead.Duration >= s.Walltime.Duration {
		d.warnf(key("signal_lead"), "%v is not shorter than the walltime %v: the warning signal comes at the start",
			s.SignalLead.Duration, s.Walltime.Duration)
	} else if s.Scheduler == SchedSLURM && s.Walltime.Duration > 0 && s.Walltime.Duration-s.SignalLead.Duration < SLURMSignalSlack {
		// sbatch(1), --signal: "the signal may be sent up to 60 seconds
		// earlier than specified" (slurmctld checks time limits periodically).
		d.warnf(key("signal_lead"), "%v before the walltime %v: SLURM may send its warning up to %v early, at the start of the job",
			s.SignalLead.Duration, s.Walltime.Duration, SLURMSignalSlack)
	}
	if s.SignalLead.Duration < 0 {
		d.errorf(key("signal_lead"), "negative")
	}
	tooShort(d, key("signal_lead"), s.SignalLead.Duration, MinSignalLead, "the scheduler's warning counts whole seconds")
	if s.Heartbeat.Duration < 0 {
		d.errorf(key("heartbeat"), "negative")
	}
	tooShort(d, key("heartbeat"), s.Heartbeat.Duration, MinHeartbeat,
		"a rank is declared dead after 5 missed heartbeats, and shorter ones flood the ranks before they register")
	if !oneOf(s.Transport, transports) {
		d.errorf(key("transport"), "unknown transport %q (want %s)", s.Transport, strings.Join(transports, ", "))
	}
	if !oneOf(s.TLS, tlsModes) {
		d.errorf(key("tls"), "unknown tls %q (want %s)", s.TLS, strings.Join(tlsModes, ", "))
	}
	if s.MaxFrame != "" {
		if _, err := s.MaxFrameBytes(); err != nil {
			d.errorf(key("max_frame"), "%v", err)
		}
	}
	if err := checkNetwork(s.Network); err != nil {
		d.errorf(key("network"), "%v", err)
	}
	if s.Requeue != nil && s.Scheduler != SchedSLURM {
		d.warnf(key("requeue"), "ignored: scheduler is %q, only SLURM requeues jobs", s.Scheduler)
	}
	if !oneOf(s.PBSDialect, pbsDialects) {
		d.errorf(key("pbs_dialect"), "unknown pbs_dialect %q (want %s)", s.PBSDialect, strings.Join(pbsDialects, ", "))
	}
	if !oneOf(s.Starter, starters) {
		d.errorf(key("starter"), "unknown starter %q (want %s)", s.Starter, strings.Join(starters, ", "))
	}
	if s.Scheduler != SchedPBS {
		for _, k := range []string{"pbs_dialect", "starter"} {
			if j.written("job", k) {
				d.warnf(key(k), "ignored: scheduler is %q, not \"pbs\"", s.Scheduler)
			}
		}
	} else if s.Starter == "pbs_tmrsh" && s.PBSDialect == "torque" {
		d.warnf(key("starter"), "pbs_tmrsh comes with PBS Pro and OpenPBS; Torque has pbsdsh and mpiexec")
	}
	if s.Email != "" && !strings.Contains(s.Email, "@") {
		d.errorf(key("email"), "%q is not an email address", s.Email)
	}
	for _, name := range sortedKeys(s.Env) {
		k := sub(key("env"), name)
		switch {
		case !isIdent(name):
			d.errorf(k, "not a valid environment variable name")
		case strings.HasPrefix(name, "RANKHUB_"):
			d.errorf(k, "RANKHUB_* variables are set by rankhub")
		}
		if strings.ContainsRune(s.Env[name], 0) {
			d.errorf(k, "value holds a NUL byte")
		}
	}
	// Fields that end up on one line of a batch script or a command line.
	for _, f := range []struct{ name, v string }{{"name", s.Name}, {"partition", s.Partition}, {"queue", s.Queue},
		{"account", s.Account}, {"qos", s.QoS}, {"email", s.Email}, {"mail_type", s.MailType}, {"memory", s.Memory},
		{"output", s.Output}, {"error", s.Error}, {"template", s.Template}, {"workdir", s.Workdir}} {
		_, written := d.pos["job."+f.name]
		_, byFlag := d.flags["job."+f.name]
		synonym := (f.name == "partition" || f.name == "queue") && s.Partition == s.Queue
		if strings.ContainsAny(f.v, "\n\r\x00") && (!synonym || written || byFlag) {
			d.errorf(key(f.name), "holds a line break or NUL byte: it must fit on one line of the batch script")
		}
	}
	for i, line := range s.Directives {
		switch {
		case strings.ContainsAny(line, "\n\r\x00"):
			d.errorf(key("directives"), "element %d holds a line break: one directive per element", i)
		case strings.HasPrefix(strings.TrimSpace(line), "#"):
			d.warnf(key("directives"), "element %d starts with #: write the option only (%q); the #SBATCH or #PBS prefix is added",
				i, directiveOption(line))
		}
	}
	for i, arg := range s.Program {
		switch {
		case i == 0 && arg == "":
			d.errorf(key("program"), "element 0 (the program) is empty")
		case strings.ContainsRune(arg, 0):
			d.errorf(key("program"), "element %d holds a NUL byte", i)
		}
	}
}

func sortedKeys(m map[string]string) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

func (j *Job) validateTask(d *diags) {
	t := j.Task
	if t == nil {
		return
	}
	key := func(k string) []string { return []string{"task", k} }
	switch {
	case t.Command != "" && t.Function != "":
		d.errorf(key("function"), "give command or function, not both")
	case t.Command == "" && t.Function == "":
		d.errorf([]string{"task"}, "needs command (a shell command) or function (a Go function registered in job.program)")
	case t.Function != "" && strings.ContainsAny(t.Function, " \t\r\n{}"):
		d.errorf(key("function"), "%q is not a function name", t.Function)
	case t.Function != "" && len(j.Job.Program) == 0:
		d.warnf(key("function"), "functions are registered in a program built with rankhub: set job.program to it")
	}
	seen := map[string]bool{}
	params := map[string]bool{}
	if j.Sweep != nil {
		for _, p := range j.Sweep.Params {
			params[p.Name] = true
		}
	}
	for i, name := range t.Outputs {
		switch {
		case !isIdent(name):
			d.errorf(key("outputs"), "element %d: %q is not an identifier ([A-Za-z_][A-Za-z0-9_]*)", i, name)
		case seen[name]:
			d.errorf(key("outputs"), "element %d: %q is listed twice", i, name)
		case slices.Contains(reservedNames, name):
			d.errorf(key("outputs"), "element %d: %q is reserved for rankhub's own column", i, name)
		case params[name]:
			d.errorf(key("outputs"), "element %d: %q is also a sweep parameter; result columns need distinct names", i, name)
		}
		seen[name] = true
	}
	if !oneOf(t.Parse, parsers) {
		d.errorf(key("parse"), "unknown parse %q (want %s)", t.Parse, strings.Join(parsers, ", "))
	}
	if t.Parse == "table" && t.Function != "" {
		d.errorf(key("parse"), `"table" reads a shell command's stdout; a function returns its outputs itself`)
	}
	if t.Parse == "table" && j.Sweep != nil && j.Sweep.Adaptive != nil {
		d.errorf(key("parse"), `"table" outputs are lists; adaptive replicates need one number per output (use last-line or key-value)`)
	}
	if t.Retries < 0 {
		d.errorf(key("retries"), "%d is negative", t.Retries)
	}
	if t.Timeout.Duration < 0 {
		d.errorf(key("timeout"), "negative")
	}
	tooShort(d, key("timeout"), t.Timeout.Duration, MinTaskTimeout, "no task starts that fast; leave it out for no limit")
}

func (j *Job) validateResults(d *diags) {
	r := j.Results
	if r == nil {
		return
	}
	key := func(k string) []string { return []string{"results", k} }
	if j.Task == nil {
		d.warnf([]string{"results"}, "no [task]: rankhub writes no sweep rows (a program may still write results itself)")
	}
	if strings.ContainsRune(r.Path, 0) {
		d.errorf(key("path"), "holds a NUL byte")
	}
	params := map[string]bool{}
	if j.Sweep != nil {
		for _, p := range j.Sweep.Params {
			params[p.Name] = true
		}
	}
	seen := map[string]bool{}
	for i, name := range r.GroupBy {
		switch {
		case !params[name]:
			d.errorf(key("group_by"), "element %d: %q is not a sweep parameter", i, name)
		case seen[name]:
			d.errorf(key("group_by"), "element %d: %q is listed twice", i, name)
		}
		seen[name] = true
	}
	if r.TextLimit != 0 && r.TextLimit < 64 {
		d.errorf(key("text_limit"), "%d bytes: keep at least 64 of each task's stdout and stderr (0 = the default, 32 KiB)", r.TextLimit)
	}
	if r.FlushRows < 0 {
		d.errorf(key("flush_rows"), "%d is negative", r.FlushRows)
	}
	if r.FlushInterval.Duration < 0 {
		d.errorf(key("flush_interval"), "negative")
	}
	tooShort(d, key("flush_interval"), r.FlushInterval.Duration, MinFlushInterval, "every flush is an fsync")
}

// directiveOption strips a written-out "#SBATCH" or "#PBS" prefix.
func directiveOption(line string) string {
	l := strings.TrimSpace(line)
	for _, p := range []string{"#SBATCH", "#PBS", "#"} {
		if rest, ok := strings.CutPrefix(l, p); ok {
			return strings.TrimSpace(rest)
		}
	}
	return l
}

// checkNetwork accepts "" (rankhub chooses), an interface name ("eth1") or
// a network in CIDR form ("10.1.0.0/16"): what job.network and
// RANKHUB_NETWORK may hold.
func checkNetwork(n string) error {
	if n == "" {
		return nil
	}
	if strings.Contains(n, "/") {
		if _, _, err := net.ParseCIDR(n); err != nil {
			return fmt.Errorf("%q is not a network in CIDR form (e.g. \"10.1.0.0/16\") nor an interface name", n)
		}
		return nil
	}
	if len(n) > 15 || strings.ContainsAny(n, " \t\n\r\x00/") {
		return fmt.Errorf("%q is not an interface name (at most 15 characters, no blanks or slashes) nor a network in CIDR form", n)
	}
	return nil
}

// The values of [job] tls.
const (
	TLSClients = "clients" // outside clients of the hub (the default)
	TLSAll     = "all"     // every TCP link: clients, engines, the collective mesh
	TLSOff     = "off"
)

// MinMaxFrame is the smallest max_frame accepted: below it ordinary control
// messages (a hub's tables, a task's arguments) would not fit.
const MinMaxFrame = 1 << 20

// MaxFrameBytes is max_frame in bytes; 0 when unset. A unit is required
// (a bare number would read as megabytes to SLURM and as bytes elsewhere).
func (s *JobSpec) MaxFrameBytes() (int64, error) {
	v := strings.TrimSpace(s.MaxFrame)
	if v == "" {
		return 0, nil
	}
	if c := v[len(v)-1]; c >= '0' && c <= '9' {
		return 0, fmt.Errorf("max_frame %q: give a unit, e.g. \"512MiB\" or \"8GiB\"", s.MaxFrame)
	}
	n, err := ParseMemory(v)
	if err != nil {
		return 0, fmt.Errorf("max_frame %q: want a size such as \"512MiB\" or \"8GiB\"", s.MaxFrame)
	}
	if n < MinMaxFrame {
		return 0, fmt.Errorf("max_frame %q is below the minimum 1MiB", s.MaxFrame)
	}
	return n, nil
}
