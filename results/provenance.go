package results

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/rankhub/rankhub/internal/buildinfo"
	"github.com/rankhub/rankhub/jobs"
)

// ResultsVersion is the version of the result file layout this package
// writes, stored as rankhub.results_version. It changes when columns or
// metadata keys change meaning.
const ResultsVersion = "2" // 2: checksums, segments and the segment column, identity seeds, stdout/stderr columns

// Metadata keys of the schema (written once, at the start of the file).
const (
	KeyJob            = "rankhub.job"             // full text of the job file
	KeyJobFile        = "rankhub.job_file"        // path the job was loaded from
	KeyVersion        = "rankhub.version"         // rankhub version
	KeyRevision       = "rankhub.revision"        // VCS revision of the program
	KeyGoVersion      = "rankhub.go_version"      // Go toolchain that built it
	KeyProgram        = "rankhub.program"         // program path
	KeyProgramSHA256  = "rankhub.program_sha256"  // hex SHA-256 of the program file
	KeyHosts          = "rankhub.hosts"           // JSON array of host names
	KeyJobID          = "rankhub.job_id"          // scheduler job id
	KeyScheduler      = "rankhub.scheduler"       // local, slurm, pbs
	KeyStarted        = "rankhub.started"         // RFC 3339, UTC
	KeySeed           = "rankhub.seed"            // base seed, decimal
	KeyTasks          = "rankhub.tasks"           // tasks in the sweep, decimal
	KeyOrder          = "rankhub.order"           // how the sweep expands to task indices
	KeyResultsVersion = "rankhub.results_version" // ResultsVersion
	KeyResumes        = "rankhub.resumes"         // JSON array of Resume
	KeyInputs         = "rankhub.inputs"          // JSON object: input file path → hex SHA-256
	KeyScript         = "rankhub.script"          // script the task command runs through an interpreter
	KeyScriptSHA256   = "rankhub.script_sha256"   // hex SHA-256 of that script
)

// Metadata keys of the closing record batch (zero rows), written by Close
// and by Recover. See the package documentation.
const (
	KeyStatus = "rankhub.status" // final status given to Close
	KeyEnded  = "rankhub.ended"  // RFC 3339, UTC
	KeyRows   = "rankhub.rows"   // rows in the file, decimal
)

// Provenance is what a result file records about how it was made, so that
// any number in it can be reproduced from the file alone.
type Provenance struct {
	JobText       string    // full text of the job file
	JobFile       string    // path the job was loaded from
	Version       string    // rankhub version ("(devel)" for a source build)
	Revision      string    // VCS revision, "-dirty" appended for a modified tree
	GoVersion     string    // Go toolchain version
	Program       string    // absolute path of the program the ranks ran
	ProgramSHA256 string    // hex SHA-256 of the program file
	Hosts         []string  // hosts of the allocation
	JobID         string    // scheduler job id ("" for local runs)
	Scheduler     string    // local, slurm, pbs
	Started       time.Time // when the job started
	Seed          uint64    // base seed of the sweep
	Tasks         int       // number of tasks in the whole sweep
	Order         string    // how task indices follow from parameters and replicates
	// ResultsVersion is the file layout version; Create sets it, readers
	// fill it from the file.
	ResultsVersion string
	// Resumes lists the later runs that appended to the file, oldest first.
	Resumes []Resume
	// Inputs maps each input file of the tasks (the job's stdin and inputs,
	// as paths relative to the job file) to its hex SHA-256 (HashInputs).
	Inputs map[string]string
	// Script is the script file the task command runs through an
	// interpreter (sh x.sh, python3 x.py), ScriptSHA256 its hex SHA-256;
	// "" when there is none.
	Script, ScriptSHA256 string
	// Segments lists every run of the file, the first included (segment.go).
	Segments []Segment
}

// Resume records one run that continued a result file with Append.
type Resume struct {
	Started        time.Time `json:"started"`
	JobID          string    `json:"job_id,omitempty"`
	Scheduler      string    `json:"scheduler,omitempty"`
	Hosts          []string  `json:"hosts,omitempty"`
	Version        string    `json:"version,omitempty"`
	Revision       string    `json:"revision,omitempty"`
	ProgramSHA256  string    `json:"program_sha256,omitempty"`
	PreviousStatus string    `json:"previous_status"` // status of the file before; "" when torn
	RowsBefore     int       `json:"rows_before"`
	Forced         bool      `json:"forced,omitempty"` // job text, program, script or inputs differed
	// Inputs and ScriptSHA256 of this run, when they differ from the
	// file's (a forced resume).
	Inputs       map[string]string `json:"inputs,omitempty"`
	ScriptSHA256 string            `json:"script_sha256,omitempty"`
}

// Status is what the closing record batch says; a file whose writer has not
// closed it (still running, or killed) has none.
type Status struct {
	State string    // the status given to Close, or "interrupted" after Recover
	Ended time.Time // when the file was closed
	Rows  int       // rows in the file when it was closed
}

// NewProvenance fills a Provenance from job and the running process: job
// text and file, rankhub version and revision and Go version from the build
// information, this executable's path and SHA-256, the host name, the start
// time (now), the base seed, the number of tasks (jobs.Job.NumTasks) and the
// expansion order (ExpansionOrder). The caller sets JobID and Hosts (the
// scheduler's job id, the allocation's hosts) when it knows them.
func NewProvenance(job *jobs.Job) (Provenance, error) {
	if job == nil {
		return Provenance{}, fmt.Errorf("results: provenance: no job")
	}
	p := Provenance{
		JobText:   string(job.Source),
		JobFile:   job.File,
		GoVersion: runtime.Version(),
		Scheduler: job.Job.Scheduler,
		Started:   time.Now().UTC(),
		Seed:      job.Job.Seed,
		Tasks:     job.NumTasks(),
		Order:     ExpansionOrder,
	}
	if p.Scheduler == "" {
		p.Scheduler = jobs.SchedLocal
	}
	if p.Seed == 0 {
		p.Seed = 1
	}
	p.Version, p.Revision = buildinfo.Get()
	if h, err := os.Hostname(); err == nil {
		p.Hosts = []string{h}
	}
	exe, err := os.Executable()
	if err != nil {
		return p, fmt.Errorf("results: provenance: program path: %w", err)
	}
	p.Program = exe
	sum, err := FileSHA256(exe)
	if err != nil {
		return p, fmt.Errorf("results: provenance: %w", err)
	}
	p.ProgramSHA256 = sum
	return p, nil
}

// ExpansionOrder is the default Provenance.Order: how the jobs package
// numbers a sweep's tasks (see jobs.Job.TaskAt).
const ExpansionOrder = "task = point·replicates + replicate, points the cartesian product of the parameter axes " +
	"in job file order (a zip group is one axis, at its first parameter), last axis varying fastest; " +
	"a task's seed is jobs.TaskSeed(seed, its canonical parameter values by name and replicate), not its position"

// HashInputs returns the hex SHA-256 of every file matched by patterns
// (paths or filepath.Match globs, relative to dir unless absolute), keyed
// by the pattern's directory joined with the file name as matched. A
// pattern that matches no file, or a directory, is an error naming it.
func HashInputs(dir string, patterns []string) (map[string]string, error) {
	out := map[string]string{}
	for _, pat := range patterns {
		full := pat
		if !filepath.IsAbs(pat) {
			full = filepath.Join(dir, pat)
		}
		matches, err := filepath.Glob(full)
		if err != nil {
			return nil, fmt.Errorf("results: input %q: %w", pat, err)
		}
		if len(matches) == 0 {
			return nil, fmt.Errorf("results: input %q: no file matches (in %s)", pat, dir)
		}
		for _, m := range matches {
			st, err := os.Stat(m)
			if err != nil {
				return nil, fmt.Errorf("results: input %q: %w", pat, err)
			}
			if st.IsDir() {
				return nil, fmt.Errorf("results: input %q: %s is a directory", pat, m)
			}
			sum, err := FileSHA256(m)
			if err != nil {
				return nil, fmt.Errorf("results: input %q: %w", pat, err)
			}
			key := m
			if rel, err := filepath.Rel(dir, m); err == nil && !filepath.IsAbs(pat) {
				key = rel
			}
			out[key] = sum
		}
	}
	return out, nil
}

// ChangedInputs lists, sorted, the files whose hash differs between was
// and now, or that only one of them has.
func ChangedInputs(was, now map[string]string) []string {
	var out []string
	for k, v := range was {
		if now[k] != v {
			out = append(out, k)
		}
	}
	for k := range now {
		if _, ok := was[k]; !ok {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// FileSHA256 returns the hex SHA-256 of a file's content.
func FileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("hash %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// metadata encodes p as schema metadata.
func (p Provenance) metadata() arrow.Metadata {
	hosts, _ := json.Marshal(nonNil(p.Hosts))
	kv := [][2]string{
		{KeyJob, p.JobText},
		{KeyJobFile, p.JobFile},
		{KeyVersion, p.Version},
		{KeyRevision, p.Revision},
		{KeyGoVersion, p.GoVersion},
		{KeyProgram, p.Program},
		{KeyProgramSHA256, p.ProgramSHA256},
		{KeyHosts, string(hosts)},
		{KeyJobID, p.JobID},
		{KeyScheduler, p.Scheduler},
		{KeyStarted, formatTime(p.Started)},
		{KeySeed, strconv.FormatUint(p.Seed, 10)},
		{KeyTasks, strconv.Itoa(p.Tasks)},
		{KeyOrder, p.Order},
		{KeyResultsVersion, ResultsVersion},
	}
	if len(p.Resumes) > 0 {
		rs, _ := json.Marshal(p.Resumes)
		kv = append(kv, [2]string{KeyResumes, string(rs)})
	}
	if k, v, ok := segmentsMetadata(p); ok {
		kv = append(kv, [2]string{k, v})
	}
	if len(p.Inputs) > 0 {
		in, _ := json.Marshal(p.Inputs) // keys sorted
		kv = append(kv, [2]string{KeyInputs, string(in)})
	}
	if p.Script != "" || p.ScriptSHA256 != "" {
		kv = append(kv, [2]string{KeyScript, p.Script}, [2]string{KeyScriptSHA256, p.ScriptSHA256})
	}
	keys := make([]string, len(kv))
	vals := make([]string, len(kv))
	for i, e := range kv {
		keys[i], vals[i] = e[0], e[1]
	}
	return arrow.NewMetadata(keys, vals)
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// provenanceFrom decodes schema metadata. Missing keys stay zero; a key that
// is present but malformed is an error naming it.
func provenanceFrom(md arrow.Metadata) (Provenance, error) {
	get := func(k string) string {
		if i := md.FindKey(k); i >= 0 {
			return md.Values()[i]
		}
		return ""
	}
	p := Provenance{
		JobText:        get(KeyJob),
		JobFile:        get(KeyJobFile),
		Version:        get(KeyVersion),
		Revision:       get(KeyRevision),
		GoVersion:      get(KeyGoVersion),
		Program:        get(KeyProgram),
		ProgramSHA256:  get(KeyProgramSHA256),
		JobID:          get(KeyJobID),
		Scheduler:      get(KeyScheduler),
		Order:          get(KeyOrder),
		ResultsVersion: get(KeyResultsVersion),
		Script:         get(KeyScript),
		ScriptSHA256:   get(KeyScriptSHA256),
	}
	if p.ResultsVersion == "" {
		return p, fmt.Errorf("no %s metadata: not a rankhub result file", KeyResultsVersion)
	}
	var errs []string
	if s := get(KeyHosts); s != "" {
		if err := json.Unmarshal([]byte(s), &p.Hosts); err != nil {
			errs = append(errs, fmt.Sprintf("%s: %v", KeyHosts, err))
		}
	}
	if s := get(KeyStarted); s != "" {
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			errs = append(errs, fmt.Sprintf("%s: %v", KeyStarted, err))
		}
		p.Started = t
	}
	if s := get(KeySeed); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			errs = append(errs, fmt.Sprintf("%s: %v", KeySeed, err))
		}
		p.Seed = v
	}
	if s := get(KeyTasks); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil {
			errs = append(errs, fmt.Sprintf("%s: %v", KeyTasks, err))
		}
		p.Tasks = v
	}
	if s := get(KeyResumes); s != "" {
		if err := json.Unmarshal([]byte(s), &p.Resumes); err != nil {
			errs = append(errs, fmt.Sprintf("%s: %v", KeyResumes, err))
		}
	}
	if err := segmentsFrom(get(KeySegments), &p); err != nil {
		errs = append(errs, err.Error())
	}
	if s := get(KeyInputs); s != "" {
		if err := json.Unmarshal([]byte(s), &p.Inputs); err != nil {
			errs = append(errs, fmt.Sprintf("%s: %v", KeyInputs, err))
		}
	}
	if len(errs) > 0 {
		return p, fmt.Errorf("bad provenance metadata: %s", strings.Join(errs, "; "))
	}
	return p, nil
}

// statusMetadata encodes the closing batch's metadata.
func statusMetadata(s Status) arrow.Metadata {
	return arrow.NewMetadata(
		[]string{KeyStatus, KeyEnded, KeyRows},
		[]string{s.State, formatTime(s.Ended), strconv.Itoa(s.Rows)},
	)
}

// statusFrom decodes a closing batch's metadata; ok is false when md is not one.
func statusFrom(md arrow.Metadata) (Status, bool) {
	i := md.FindKey(KeyStatus)
	if i < 0 {
		return Status{}, false
	}
	s := Status{State: md.Values()[i]}
	if j := md.FindKey(KeyEnded); j >= 0 {
		s.Ended, _ = time.Parse(time.RFC3339Nano, md.Values()[j])
	}
	if j := md.FindKey(KeyRows); j >= 0 {
		s.Rows, _ = strconv.Atoi(md.Values()[j])
	}
	return s, true
}

// ReadProvenance returns the provenance recorded in the result file at path,
// whether complete, still being written or torn.
func ReadProvenance(path string) (Provenance, error) {
	r, err := Open(path)
	if err != nil {
		return Provenance{}, err
	}
	defer r.Close()
	return r.Provenance(), nil
}
