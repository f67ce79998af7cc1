package batch

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"text/template"

	"github.com/rankhub/rankhub/jobs"
)

// Field is a job or launch value that a script puts on one line. It is an
// alias of an unnamed struct so that field tables can list bare pairs.
type Field = struct{ Name, Value string }

// Check refuses a job and launch no batch script can hold: fewer than one
// rank, no job directory or rank command, a newline or NUL in one of fields,
// job.directives or job.setup, a NUL in the rank command. job must not be nil.
func Check(job *jobs.Job, l jobs.Launch, fields []Field) error {
	j := &job.Job
	if j.Ranks < 1 {
		return fmt.Errorf("job.ranks = %d: need at least 1", j.Ranks)
	}
	if l.JobDir == "" {
		return errors.New("launch has no job directory")
	}
	if len(l.RankCommand) == 0 {
		return errors.New("launch has an empty rank command")
	}
	for _, f := range fields {
		if err := CheckLine(f.Name, f.Value); err != nil {
			return err
		}
	}
	for i, d := range j.Directives {
		if err := CheckLine(fmt.Sprintf("job.directives[%d]", i), d); err != nil {
			return err
		}
	}
	for i, s := range j.Setup {
		if err := CheckLine(fmt.Sprintf("job.setup[%d]", i), s); err != nil {
			return err
		}
	}
	for i, a := range l.RankCommand {
		if strings.ContainsRune(a, 0) {
			return fmt.Errorf("rank command argument %d: NUL byte not allowed", i)
		}
	}
	return nil
}

// Shell is the shell side of a batch script, the same for every scheduler;
// every string is already quoted.
type Shell struct {
	JobDir          string      // the job directory
	SchedulerIDFile string      // <jobdir>/scheduler-id
	Workdir         string      // where the ranks start; "" when unknown
	Env             [][2]string // job.env overlaid by the launch env, sorted by name, unquoted
	Exports         []string    // `export NAME=value` lines for Env
	RankCommand     string      // the rank argv, quoted and joined
}

// NewShell computes the Shell of job and l, after checking every
// environment variable.
func NewShell(job *jobs.Job, l jobs.Launch) (*Shell, error) {
	env, err := mergedEnv(job, l)
	if err != nil {
		return nil, err
	}
	s := &Shell{
		JobDir:          ShellQuote(l.JobDir),
		SchedulerIDFile: ShellQuote(filepath.Join(l.JobDir, "scheduler-id")),
		Env:             env,
		RankCommand:     ShellJoin(l.RankCommand),
	}
	if w := workdir(job); w != "" {
		s.Workdir = ShellQuote(w)
	}
	for _, kv := range env {
		s.Exports = append(s.Exports, "export "+kv[0]+"="+ShellQuote(kv[1]))
	}
	return s, nil
}

// envNetwork carries job.network to the ranks (launcher.EnvNetwork, which
// this package cannot import).
const envNetwork = "RANKHUB_NETWORK"

// envName matches a valid shell variable name.
var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// mergedEnv returns the job's env overlaid with the launch env, sorted by
// name, after checking every name.
func mergedEnv(job *jobs.Job, l jobs.Launch) ([][2]string, error) {
	all := map[string]string{}
	for k, v := range job.Job.Env {
		all[k] = v
	}
	for k, v := range l.Env {
		all[k] = v
	}
	if n := job.Job.Network; n != "" {
		all[envNetwork] = n
	}
	keys := make([]string, 0, len(all))
	for k := range all {
		if !envName.MatchString(k) {
			return nil, fmt.Errorf("job.env: %q is not a valid environment variable name", k)
		}
		if strings.ContainsRune(all[k], 0) {
			return nil, fmt.Errorf("job.env.%s: NUL byte not allowed", k)
		}
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([][2]string, len(keys))
	for i, k := range keys {
		out[i] = [2]string{k, all[k]}
	}
	return out, nil
}

// workdir resolves job.workdir against the job file's directory; "" when
// neither is known (the scheduler's submit directory then applies).
func workdir(job *jobs.Job) string {
	w := job.Job.Workdir
	base := ""
	if job.File != "" {
		base = filepath.Dir(job.File)
		if abs, err := filepath.Abs(base); err == nil {
			base = abs
		}
	}
	switch {
	case w == "":
		return base
	case filepath.IsAbs(w) || base == "":
		return w
	default:
		return filepath.Join(base, w)
	}
}

// Directives returns job.directives without the prefix ("#SBATCH", "#PBS")
// and surrounding blanks, empty ones dropped.
func Directives(job *jobs.Job, prefix string) []string {
	var out []string
	for _, v := range job.Job.Directives {
		v = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), prefix))
		if v != "" {
			out = append(out, v)
		}
	}
	return out
}

var memPattern = regexp.MustCompile(`^\s*([0-9]+)\s*([KkMmGgTt]?)(?:[Ii]?[Bb])?\s*$`)

// Memory splits a job memory string ("4G", "500MB", "2GiB", "1024") into
// its digits and an upper-case unit K, M, G or T; a bare number means
// megabytes, as in SLURM.
func Memory(m string) (digits, unit string, err error) {
	g := memPattern.FindStringSubmatch(m)
	if g == nil {
		return "", "", fmt.Errorf("job.memory %q: want a number with an optional unit K, M, G or T (e.g. \"4G\")", m)
	}
	unit = strings.ToUpper(g[2])
	if unit == "" {
		unit = "M"
	}
	return g[1], unit, nil
}

// funcs are the template functions offered to built-in and custom templates.
var funcs = template.FuncMap{
	"quote":     ShellQuote,
	"quoteArgs": ShellJoin,
	"join":      strings.Join,
}

// Render executes the custom template job.template (relative to the job
// file's directory) or, without one, the built-in text named name, on data.
// Templates may use the functions quote, quoteArgs and join; a missing map
// key is an error.
func Render(job *jobs.Job, name, builtin string, data any) (string, error) {
	text := builtin
	if p := templatePath(job); p != "" {
		b, err := os.ReadFile(p)
		if err != nil {
			return "", fmt.Errorf("job.template: %w", err)
		}
		name, text = p, string(b)
	}
	t, err := template.New(filepath.Base(name)).Funcs(funcs).Option("missingkey=error").Parse(text)
	if err != nil {
		return "", fmt.Errorf("job.template %s: %w", name, err)
	}
	var buf bytes.Buffer
	if err := t.Execute(&buf, data); err != nil {
		return "", fmt.Errorf("job.template %s: %w", name, err)
	}
	return buf.String(), nil
}

// templatePath resolves job.template relative to the job file's directory.
func templatePath(job *jobs.Job) string {
	t := job.Job.Template
	if t == "" || filepath.IsAbs(t) || job.File == "" {
		return t
	}
	return filepath.Join(filepath.Dir(job.File), t)
}
