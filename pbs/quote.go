package pbs

import (
	"fmt"
	"math"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/rankhub/rankhub/jobs"
)

// safeWord matches words the shell takes literally without quotes.
var safeWord = regexp.MustCompile(`^[A-Za-z0-9_@%+=:,./-]+$`)

// envName matches a valid shell variable name.
var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// shellQuote returns s as one shell word: unchanged when it holds only safe
// characters, otherwise in single quotes with embedded quotes escaped.
func shellQuote(s string) string {
	if s != "" && safeWord.MatchString(s) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// shellJoin quotes every argument and joins them with spaces.
func shellJoin(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = shellQuote(a)
	}
	return strings.Join(q, " ")
}

// directiveQuote returns s as one argument of a #PBS line. qsub (and sbatch,
// which reads #PBS lines under the Torque wrappers) splits
// directive lines at blanks and honours double quotes; a backslash escapes a
// quote. An unquoted '#' may start a comment.
func directiveQuote(s string) string {
	if s != "" && safeWord.MatchString(s) {
		return s
	}
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`)
	return `"` + r.Replace(s) + `"`
}

// checkLine reports an error when a value would break out of its line.
func checkLine(field, v string) error {
	if strings.ContainsAny(v, "\n\r\x00") {
		return fmt.Errorf("pbs: %s %q: newline or NUL not allowed", field, v)
	}
	return nil
}

var memPattern = regexp.MustCompile(`^\s*([0-9]+)\s*([KkMmGgTt]?)(?:[Ii]?[Bb])?\s*$`)

// pbsMemory converts a job memory string ("4G", "500MB", "2GiB", "1024")
// to PBS's size syntax ("4gb"), multiplied by factor; a bare number means
// megabytes, as in SLURM.
func pbsMemory(m string, factor int) (string, error) {
	g := memPattern.FindStringSubmatch(m)
	if g == nil {
		return "", fmt.Errorf("pbs: job.memory %q: want a number with an optional unit K, M, G or T (e.g. \"4G\")", m)
	}
	n, err := strconv.ParseInt(g[1], 10, 64)
	if err != nil || n > math.MaxInt64/int64(max(factor, 1)) {
		return "", fmt.Errorf("pbs: job.memory %q: too large", m)
	}
	unit := strings.ToLower(g[2])
	if unit == "" {
		unit = "m"
	}
	return strconv.FormatInt(n*int64(max(factor, 1)), 10) + unit + "b", nil
}

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
	keys := make([]string, 0, len(all))
	for k := range all {
		if !envName.MatchString(k) {
			return nil, fmt.Errorf("pbs: job.env: %q is not a valid environment variable name", k)
		}
		if strings.ContainsRune(all[k], 0) {
			return nil, fmt.Errorf("pbs: job.env.%s: NUL byte not allowed", k)
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

// templatePath resolves job.template relative to the job file's directory.
func templatePath(job *jobs.Job) string {
	t := job.Job.Template
	if t == "" || filepath.IsAbs(t) || job.File == "" {
		return t
	}
	return filepath.Join(filepath.Dir(job.File), t)
}

// itoa is strconv.Itoa, short for templates and directives.
func itoa(i int) string { return strconv.Itoa(i) }
