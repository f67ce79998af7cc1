package batch

import (
	"fmt"
	"regexp"
	"strings"
)

// safeWord matches words the shell takes literally without quotes. Unlike
// jobs.ShellQuote it leaves '%' unquoted, which SLURM file patterns use.
var safeWord = regexp.MustCompile(`^[A-Za-z0-9_@%+=:,./-]+$`)

// ShellQuote returns s as one shell word: unchanged when it holds only safe
// characters, otherwise in single quotes with embedded quotes escaped.
func ShellQuote(s string) string {
	if s != "" && safeWord.MatchString(s) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// ShellJoin quotes every argument and joins them with spaces.
func ShellJoin(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = ShellQuote(a)
	}
	return strings.Join(q, " ")
}

// DirectiveQuote returns s as one argument of an #SBATCH or #PBS line.
// sbatch and qsub split directive lines at blanks, honour double quotes and
// backslash escapes, and treat an unquoted '#' as the start of a comment.
func DirectiveQuote(s string) string {
	if s != "" && safeWord.MatchString(s) {
		return s
	}
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`)
	return `"` + r.Replace(s) + `"`
}

// CheckLine reports an error when a value would break out of its line.
func CheckLine(field, v string) error {
	if strings.ContainsAny(v, "\n\r\x00") {
		return fmt.Errorf("%s %q: newline or NUL not allowed", field, v)
	}
	return nil
}
