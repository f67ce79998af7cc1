package jobdir

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/rankhub/rankhub/jobs"
)

// Root is the folder under a job's workdir that holds its job directories.
const Root = ".rankhub"

// Files of a job directory. Per-rank files are named by RankOut, RankErr
// and RankLog.
const (
	JobFile      = "job.toml"      // the job file's text, as submitted
	ConnFile     = "hub.json"      // the hub's addresses and the job key (comm.WriteConnInfo writes it, 0600)
	SchedIDFile  = "scheduler-id"  // the scheduler's job id, one line
	JoinFile     = "join"          // an engines job's (submit --join) hub: its connection file, one line
	StatusFile   = "status.json"   // how the job ended, every attempt (Status)
	ProgressFile = "progress.json" // a sweep's progress while it runs (Progress)
	StartLog     = "start.log"     // rankhub start's detached launcher
	SlurmScript  = "job.sbatch"
	PBSScript    = "job.pbs"
)

// RankOut is the name of rank r's captured stdout.
func RankOut(r int) string { return fmt.Sprintf("rank-%d.out", r) }

// RankErr is the name of rank r's captured stderr.
func RankErr(r int) string { return fmt.Sprintf("rank-%d.err", r) }

// RankLog is the name of rank r's JSON log.
func RankLog(r int) string { return fmt.Sprintf("rank-%d.log.json", r) }

// Script is the name of the batch script of a scheduler.
func Script(scheduler string) string {
	if scheduler == jobs.SchedPBS {
		return PBSScript
	}
	return SlurmScript
}

// Perm is the modes of a job directory and of the files rankhub writes in it.
type Perm struct{ Dir, File fs.FileMode }

var (
	// Private is the default: the owner alone.
	Private = Perm{Dir: 0o700, File: 0o600}
	// GroupReadable is [job].group_readable = true.
	GroupReadable = Perm{Dir: 0o750, File: 0o640}
)

// PermOf is the job's choice of modes.
func PermOf(job *jobs.Job) Perm {
	if job != nil && job.Job.GroupReadable {
		return GroupReadable
	}
	return Private
}

// Dir is one job directory.
type Dir struct {
	Path string // absolute
	Perm Perm
}

// Create makes <workdir>/.rankhub/<name>-<time>-<random>/ with the job's
// modes and writes the job file's text into it. An empty workdir is the
// job's (launcher.JobWorkdir).
func Create(job *jobs.Job, workdir string) (Dir, error) {
	var r [2]byte
	rand.Read(r[:])
	name := fmt.Sprintf("%s-%s-%s", job.Job.Name, time.Now().Format("20060102-150405"), hex.EncodeToString(r[:]))
	d := Dir{Perm: PermOf(job)}
	// .rankhub itself lists the jobs' names: the owner's too, unless a job
	// is group-readable (the group then needs to pass through it).
	root := filepath.Join(workdir, Root)
	if err := os.MkdirAll(root, d.Perm.Dir); err != nil {
		return Dir{}, fmt.Errorf("jobdir: %w", err)
	}
	if st, err := os.Stat(root); err == nil && d.Perm == GroupReadable && st.Mode().Perm()&0o010 == 0 {
		os.Chmod(root, st.Mode().Perm()|0o050)
	}
	path, err := filepath.Abs(filepath.Join(root, name))
	if err != nil {
		return Dir{}, fmt.Errorf("jobdir: %w", err)
	}
	d.Path = path
	if err := os.Mkdir(path, d.Perm.Dir); err != nil {
		return Dir{}, fmt.Errorf("jobdir: %w", err)
	}
	// The umask may have taken bits away from a group-readable directory:
	// the mode is what the job asked for, exactly.
	if err := os.Chmod(path, d.Perm.Dir); err != nil {
		return Dir{}, fmt.Errorf("jobdir: %w", err)
	}
	if err := d.WriteFile(JobFile, job.Source); err != nil {
		return Dir{}, err
	}
	return d, nil
}

// Open is an existing job directory; its modes are read from the
// directory itself (group bits set: GroupReadable).
func Open(path string) (Dir, error) {
	st, err := os.Stat(path)
	if err != nil {
		return Dir{}, fmt.Errorf("jobdir: %w", err)
	}
	if !st.IsDir() {
		return Dir{}, fmt.Errorf("jobdir: %s is not a directory", path)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return Dir{}, fmt.Errorf("jobdir: %w", err)
	}
	d := Dir{Path: abs, Perm: Private}
	if st.Mode().Perm()&0o050 != 0 {
		d.Perm = GroupReadable
	}
	return d, nil
}

// File is the path of a file of the job directory.
func (d Dir) File(name string) string { return filepath.Join(d.Path, name) }

// Create creates (or truncates) a file of the job directory with the
// directory's file mode.
func (d Dir) Create(name string) (*os.File, error) {
	return d.open(name, os.O_CREATE|os.O_WRONLY|os.O_TRUNC)
}

// Append opens a file of the job directory for appending, creating it with
// the directory's file mode.
func (d Dir) Append(name string) (*os.File, error) {
	return d.open(name, os.O_CREATE|os.O_WRONLY|os.O_APPEND)
}

func (d Dir) open(name string, flag int) (*os.File, error) {
	f, err := os.OpenFile(d.File(name), flag, d.Perm.File)
	if err != nil {
		return nil, fmt.Errorf("jobdir: %w", err)
	}
	if err := f.Chmod(d.Perm.File); err != nil {
		f.Close()
		return nil, fmt.Errorf("jobdir: %w", err)
	}
	return f, nil
}

// WriteFile replaces a file of the job directory atomically (a reader sees
// the old or the new content, never a part), with the directory's file mode.
func (d Dir) WriteFile(name string, data []byte) error {
	return d.writeMode(name, data, d.Perm.File)
}

// WriteScript writes the batch script: the file mode plus the owner's
// execute bit (0700, or 0750 group-readable).
func (d Dir) WriteScript(name string, data []byte) error {
	return d.writeMode(name, data, d.Perm.File|0o100|(d.Perm.File&0o040)>>2)
}

func (d Dir) writeMode(name string, data []byte, mode fs.FileMode) error {
	tmp, err := os.CreateTemp(d.Path, "."+name+".tmp-*")
	if err != nil {
		return fmt.Errorf("jobdir: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Chmod(mode)
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), d.File(name))
	}
	if err != nil {
		return fmt.Errorf("jobdir: writing %s: %w", d.File(name), err)
	}
	return nil
}

// WriteSchedID records the scheduler's job id.
func (d Dir) WriteSchedID(id string) error { return d.WriteFile(SchedIDFile, []byte(id+"\n")) }

// SchedID is the recorded scheduler job id, "" when the job was not
// submitted to a scheduler.
func (d Dir) SchedID() string {
	b, err := os.ReadFile(d.File(SchedIDFile))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// WriteJoin records that the job is an engines job joining the hub whose
// connection file is hubFile (submit --join).
func (d Dir) WriteJoin(hubFile string) error { return d.WriteFile(JoinFile, []byte(hubFile+"\n")) }

// Join is the connection file of the hub an engines job joins, "" when the
// job is not one (WriteJoin).
func (d Dir) Join() string {
	b, err := os.ReadFile(d.File(JoinFile))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// LoadJob loads the job file of the job directory, as an engines job
// (jobs.LoadEngines) when it is one.
func (d Dir) LoadJob() (*jobs.Job, error) {
	if d.Join() != "" {
		return jobs.LoadEngines(d.File(JobFile))
	}
	return jobs.Load(d.File(JobFile))
}

// Progress is what a sweep's driver reports in progress.json while it runs.
type Progress struct {
	Done    int `json:"done"`
	Failed  int `json:"failed"`
	Total   int `json:"total"`
	Skipped int `json:"skipped"` // already in the file when resuming
	// Interrupted counts tasks whose engine was stopping (SIGTERM, a
	// requeue, the walltime warning) while they ran: no row, left for
	// --resume; never counted in Failed.
	Interrupted int       `json:"interrupted,omitempty"`
	Rate        float64   `json:"rate"` // rows per second since the start
	ETA         float64   `json:"eta_seconds"`
	Updated     time.Time `json:"updated"`
	Results     string    `json:"results"`
	// Adaptive sweeps: Total is done plus the estimate of what remains;
	// Active counts the groups that have not stopped.
	Adaptive bool `json:"adaptive,omitempty"`
	Active   int  `json:"active_groups,omitempty"`
}

// WriteProgress replaces progress.json.
func (d Dir) WriteProgress(p Progress) error {
	b, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("jobdir: %w", err)
	}
	return d.WriteFile(ProgressFile, b)
}

// ReadProgress reads progress.json; fs.ErrNotExist when there is none.
func (d Dir) ReadProgress() (Progress, error) {
	var p Progress
	b, err := os.ReadFile(d.File(ProgressFile))
	if err != nil {
		return p, err
	}
	if err := json.Unmarshal(b, &p); err != nil {
		return p, fmt.Errorf("jobdir: %s: %w", d.File(ProgressFile), err)
	}
	return p, nil
}

// ErrNoStatus is returned by ReadStatus when the job has recorded no end.
var ErrNoStatus = errors.New("jobdir: no status.json: the job has not ended (or no rank recorded it)")

// String is the directory's path.
func (d Dir) String() string { return d.Path }
