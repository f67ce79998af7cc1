package jobs

import "time"

// Job is one decoded and validated job file. Every other package reads it;
// nothing but this package writes it.
type Job struct {
	// File is the path the job was loaded from ("" when parsed from memory).
	File string `toml:"-"`
	// Source is the full text of the job file, kept for provenance.
	Source []byte `toml:"-"`

	Job     JobSpec      `toml:"job"`
	Task    *TaskSpec    `toml:"task"`
	Sweep   *SweepSpec   `toml:"-"` // decoded by hand: parameter order matters
	Results *ResultsSpec `toml:"results"`

	// Warnings are unusual but legal settings found by Parse, Validate or
	// Apply (for example ranks_per_node > ranks), in file order.
	Warnings []Diag `toml:"-"`

	// pos maps a dotted key (toml.Key.String form) to where it is written in
	// Source; nil for jobs built in memory.
	pos map[string]Pos
	// flags maps a dotted key to the CLI flag that last overrode it (Apply),
	// so diagnostics about that key name the flag instead of the file.
	flags map[string]string
	// cmd is the parsed [task].command template (nil without a command).
	cmd []cmdPart
	// decodeWarns are the warnings found while decoding; Validate adds its
	// own to them to form Warnings.
	decodeWarns []Diag
	// engines: every rank is an engine joining a running hub (LoadEngines,
	// submit --join); no rank is a hub.
	engines bool
}

// Engines reports whether the job is an engines job (LoadEngines).
func (j *Job) Engines() bool { return j.engines }

// Scheduler names accepted in [job].scheduler.
const (
	SchedLocal = "local"
	SchedSLURM = "slurm"
	SchedPBS   = "pbs"
)

// JobSpec is the [job] table: what to start, where and with which resources.
type JobSpec struct {
	Name      string `toml:"name"`
	Scheduler string `toml:"scheduler"` // local (default), slurm, pbs

	Ranks        int      `toml:"ranks"`          // total ranks, rank 0 is the hub; >= 2 (>= 1 for an engines job: LoadEngines)
	Nodes        int      `toml:"nodes"`          // 0: derived from ranks / ranks_per_node
	RanksPerNode int      `toml:"ranks_per_node"` // 0: scheduler decides
	CPUsPerRank  int      `toml:"cpus_per_rank"`  // 0: 1
	Memory       string   `toml:"memory"`         // per node, e.g. "4G", "500M"; "" none
	Walltime     Duration `toml:"walltime"`       // "2h", "90m", "1:30:00", "1-00:00:00"

	Partition string `toml:"partition"` // slurm partition
	Queue     string `toml:"queue"`     // pbs queue (partition is accepted as a synonym)
	Account   string `toml:"account"`
	QoS       string `toml:"qos"`
	Email     string `toml:"email"`
	MailType  string `toml:"mail_type"` // slurm --mail-type / pbs -m, e.g. "END,FAIL"
	Output    string `toml:"output"`    // scheduler stdout path; "" = job directory
	Error     string `toml:"error"`     // scheduler stderr path; "" = joined with output

	Setup      []string          `toml:"setup"`      // shell lines before the ranks start
	Env        map[string]string `toml:"env"`        // exported to every rank
	Directives []string          `toml:"directives"` // verbatim extra #SBATCH / #PBS lines
	Template   string            `toml:"template"`   // custom script template (path, relative to the job file)

	// Program is the program every rank runs, with its arguments. Empty means
	// the rankhub binary itself (built-in sweep driver for shell tasks).
	// Relative paths are taken relative to the job file's directory.
	Program []string `toml:"program"`
	Workdir string   `toml:"workdir"` // "" = the job file's directory

	AbortOnError *bool    `toml:"abort_on_error"` // default: true for programs (one failed rank stops all), false for sweeps
	Seed         uint64   `toml:"seed"`           // base seed for sweeps; 0 = 1
	Transport    string   `toml:"transport"`      // "auto" (unix on one node, tcp across), "tcp"
	Heartbeat    Duration `toml:"heartbeat"`      // heartbeat interval; 0 = 1s (timeout = 5 intervals)
	SignalLead   Duration `toml:"signal_lead"`    // walltime warning lead; 0 = 120s
	// GroupReadable makes the job directory 0750 and its files 0640 (the
	// default is 0700 and 0600: the owner alone).
	GroupReadable bool   `toml:"group_readable"`
	Requeue       *bool  `toml:"requeue"` // slurm: let SLURM requeue the job (it then resumes); default false: --no-requeue
	Network       string `toml:"network"` // interface name or CIDR the hub and mesh use across nodes; "" = chosen (see launcher)

	// TLS says which TCP links speak TLS 1.3 (certificate pinned in the
	// 0600 connection file; the HMAC handshake runs inside): "clients"
	// (default: outside clients of the hub), "all" (also engines and the
	// collective mesh across nodes), "off".
	TLS string `toml:"tls"`
	// MaxFrame is the largest message a rank accepts from a peer, with a
	// unit ("512MiB", "8GiB"); "" = half the node's memory.
	MaxFrame string `toml:"max_frame"`

	PBSDialect string `toml:"pbs_dialect"` // "pro" (default) or "torque"
	Starter    string `toml:"starter"`     // pbs: "mpiexec", "pbsdsh", "pbs_tmrsh"; "" = per dialect
}

// TaskSpec is the [task] table of a sweep: a shell command or a registered function.
type TaskSpec struct {
	Command  string   `toml:"command"`  // template with {param} and {seed}
	Function string   `toml:"function"` // name registered in a program built with rankhub
	Outputs  []string `toml:"outputs"`  // named numeric outputs
	Parse    string   `toml:"parse"`    // "last-line" (default), "key-value" or "table" (every line a row; list outputs)
	Timeout  Duration `toml:"timeout"`  // per task; 0 = none
	Retries  int      `toml:"retries"`  // on engine or task failure
	Shell    string   `toml:"shell"`    // "" = /bin/sh
	// Comment starts the lines of stdout that parsing ignores, wherever
	// they are ("" = "#"; see CommentPrefix): a simulation's header and
	// trailing notes are kept in the row's stdout, not read as outputs.
	Comment string `toml:"comment"`
	// Stdin is a file fed to each task's standard input, relative to the
	// job file; its SHA-256 is recorded with the run like Inputs'.
	Stdin string `toml:"stdin"`
	// Inputs are files (globs) the tasks read, relative to the job file:
	// their SHA-256 are recorded per run, rerun and --resume check them.
	Inputs []string `toml:"inputs"`
}

// Table tells whether the task's outputs are lists (parse = "table").
func (t *TaskSpec) Table() bool { return t != nil && t.Parse == "table" }

// CommentPrefix is what starts a comment line of a task's stdout.
func (t *TaskSpec) CommentPrefix() string {
	if t == nil || t.Comment == "" {
		return "#"
	}
	return t.Comment
}

// SweepSpec is the [sweep] table. Params keep the order of the file.
type SweepSpec struct {
	Params     []Param
	Zip        [][]string // groups of parameter names that vary together
	Replicates int        // >= 1; with Adaptive, its MaxReplicates
	// Adaptive, when set, adds replicates per group until a precision is
	// reached (adaptive.go).
	Adaptive *Adaptive

	// Axes is derived by Validate from Params and Zip: the independent
	// dimensions of the cartesian product, in file order.
	Axes []Axis
	// Order is how tasks are dispatched: OrderReplicates (replicate-major,
	// the default: replicate 0 of every point, then replicate 1, ...) or
	// OrderGrid (each point's replicates together, grid order).
	Order string

	// sorted holds the indexes of Params sorted by name (Validate sets it).
	sorted []int
}

// Dispatch orders of [sweep].order.
const (
	OrderReplicates = "replicates"
	OrderGrid       = "grid"
)

// Param is one swept parameter with its expanded values, all of one type.
type Param struct {
	Name   string
	Kind   Kind
	Values []Value
	// Default, when set, is the value a task had before this parameter
	// existed: a task whose value equals it leaves the parameter out of its
	// identity (TaskKey), so adding a parameter with a default to a grown
	// sweep keeps every earlier task and seed. Written
	// x = { values = [...], default = v } or in a range table.
	Default *Value
}

// Axis is one independent dimension of a sweep's cartesian product: a single
// parameter, or a zip group whose parameters vary together. Params holds
// indexes into SweepSpec.Params. Axes are ordered by the first appearance of
// their parameters in the file.
type Axis struct {
	Params []int
	Len    int
}

// Kind is the type of a parameter's values.
type Kind int

const (
	KindInt Kind = iota + 1
	KindFloat
	KindString
	KindBool
)

// Value is one parameter value. Exactly the field matching the Param's Kind is meaningful.
type Value struct {
	Int   int64
	Float float64
	Str   string
	Bool  bool
}

// ResultsSpec is the [results] table.
type ResultsSpec struct {
	Path          string   `toml:"path"`           // relative to the job directory's parent workdir
	GroupBy       []string `toml:"group_by"`       // default peek grouping
	FlushInterval Duration `toml:"flush_interval"` // 0 = 2s
	FlushRows     int      `toml:"flush_rows"`     // 0 = 1024
	// TextLimit bounds the stdout and the stderr kept per row, in bytes
	// (0 = 32 KiB; at least 64): longer text keeps its head and tail
	// around a marked cut. The engine keeps at most 4 KiB + 64 KiB.
	TextLimit int `toml:"text_limit"`
}

// Task is one element of a sweep's expansion.
type Task struct {
	Index     int     // position in this job's grid expansion (TaskAt); not an identity: growth moves it
	Values    []Value // one per SweepSpec.Params, same order
	Replicate int
	Seed      uint64
}

// Duration is a time.Duration that decodes from TOML strings such as "2h",
// "90m", "1:30:00" or SLURM's "1-00:00:00", and from integers (seconds).
type Duration struct{ time.Duration }

// Launch is what a scheduler script needs beyond the job file: where the job
// directory is and what every rank runs. The launcher fills it in.
type Launch struct {
	JobDir      string            // absolute path of the job directory (shared file system)
	RankCommand []string          // argv every rank runs (absolute program path first)
	Env         map[string]string // RANKHUB_* and the job's env, exported to every rank
}

// SchedState is one job's state as a scheduler reports it.
type SchedState struct {
	ID       string
	State    string // PENDING, RUNNING, COMPLETED, FAILED, CANCELLED, TIMEOUT, UNKNOWN
	ExitCode int    // -1 while unknown
	Reason   string // scheduler's reason or comment, if any
	Nodes    string // allocated nodes, scheduler syntax
}
