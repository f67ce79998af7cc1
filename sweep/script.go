package sweep

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/rankhub/rankhub/jobs"
	"github.com/rankhub/rankhub/results"
)

// interpreter matches the programs that run a script named on their
// command line: shells, Python, Perl, Ruby, R, Julia, Node, Tcl.
var interpreter = regexp.MustCompile(`^(sh|bash|dash|ksh|zsh|csh|tcsh|fish|python[0-9.]*|pypy[0-9.]*|perl[0-9.]*|ruby[0-9.]*|Rscript|julia|node|tclsh[0-9.]*|env)$`)

var shells = regexp.MustCompile(`^(sh|bash|dash|ksh|zsh|csh|tcsh|fish)$`)

// CommandScript is the script file a shell task's command runs through an
// interpreter (`sh x.sh`, `python3 -u x.py`, `bash -c "./x.sh ..."`,
// `./x.sh` itself), resolved against dir (the tasks' working directory);
// "" when the command names none. Its hash goes into the provenance beside
// the interpreter's: an edit of the script alters what tasks compute.
func CommandScript(job *jobs.Job, dir string) string {
	if job.Task == nil || job.Task.Command == "" || job.NumTasks() == 0 {
		return ""
	}
	line, err := job.Command(job.TaskAt(0))
	if err != nil {
		return ""
	}
	return scriptIn(strings.Fields(line), dir, 0)
}

func scriptIn(words []string, dir string, depth int) string {
	if len(words) == 0 || depth > 3 {
		return ""
	}
	first := unquote(words[0])
	if !interpreter.MatchString(filepath.Base(first)) {
		// The command's own program, when it is a script file here.
		if strings.ContainsRune(first, '/') && isScript(filepath.Join(dir, first), first) {
			return abs(dir, first)
		}
		return ""
	}
	for i := 1; i < len(words); i++ {
		w := unquote(words[i])
		switch {
		case w == "-c":
			// The command string: its first word may be a script.
			return scriptIn(strings.Fields(unquote(strings.Join(words[i+1:], " "))), dir, depth+1)
		case w == "-m", (w == "-e" || w == "--eval") && !shells.MatchString(filepath.Base(first)):
			return "" // a module or an inline program, not a file
		case strings.HasPrefix(w, "-"), strings.Contains(w, "="):
			continue // an option, or env's NAME=value
		}
		if filepath.Base(first) == "env" {
			return scriptIn(words[i:], dir, depth+1)
		}
		if isScript(filepath.Join(dir, w), w) {
			return abs(dir, w)
		}
		return ""
	}
	return ""
}

func unquote(s string) string { return strings.Trim(s, `'"`) }

func isScript(joined, w string) bool {
	p := joined
	if filepath.IsAbs(w) {
		p = w
	}
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}

func abs(dir, w string) string {
	if filepath.IsAbs(w) {
		return w
	}
	p, err := filepath.Abs(filepath.Join(dir, w))
	if err != nil {
		return filepath.Join(dir, w)
	}
	return p
}

// InputPatterns are the files a job's tasks read, as HashInputs takes them:
// [task] stdin first, then inputs.
func InputPatterns(job *jobs.Job) []string {
	if job.Task == nil {
		return nil
	}
	var p []string
	if job.Task.Stdin != "" {
		p = append(p, job.Task.Stdin)
	}
	return append(p, job.Task.Inputs...)
}

// HashInputs is the SHA-256 of every file the job's tasks read (stdin and
// inputs, relative to dir: the tasks' working directory), nil when it names
// none; a missing file is an error at its key's position in the job file.
func HashInputs(job *jobs.Job, dir string) (map[string]string, error) {
	pats := InputPatterns(job)
	if len(pats) == 0 {
		return nil, nil
	}
	sums, err := results.HashInputs(dir, pats)
	if err != nil {
		key := "inputs"
		if _, serr := results.HashInputs(dir, pats[:1]); job.Task.Stdin != "" && serr != nil {
			key = "stdin"
		}
		return nil, job.ErrorAt([]string{"task", key}, "%v", err)
	}
	return sums, nil
}
