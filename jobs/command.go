package jobs

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// cmdPart is a piece of a command template: literal text, or a placeholder
// when name is set.
type cmdPart struct {
	text string
	name string
}

// parseTemplate splits a command into literal text and {name} placeholders.
// "{{" and "}}" stand for literal braces.
func parseTemplate(s string) ([]cmdPart, error) {
	var (
		parts []cmdPart
		lit   strings.Builder
	)
	flush := func() {
		if lit.Len() > 0 {
			parts = append(parts, cmdPart{text: lit.String()})
			lit.Reset()
		}
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '{' && strings.HasPrefix(s[i:], "{{"):
			lit.WriteByte('{')
			i++
		case c == '}' && strings.HasPrefix(s[i:], "}}"):
			lit.WriteByte('}')
			i++
		case c == '}':
			return nil, fmt.Errorf("unmatched } at byte %d: write }} for a literal brace", i)
		case c == '{':
			end := strings.IndexByte(s[i+1:], '}')
			if end < 0 {
				return nil, fmt.Errorf("unclosed { at byte %d: write {{ for a literal brace", i)
			}
			name := s[i+1 : i+1+end]
			if !isIdent(name) {
				return nil, fmt.Errorf("{%s} at byte %d is not a placeholder: names are identifiers; write {{ and }} for literal braces", name, i)
			}
			flush()
			parts = append(parts, cmdPart{name: name})
			i += end + 1
		default:
			lit.WriteByte(c)
		}
	}
	flush()
	return parts, nil
}

// Command renders the task's shell command: {param} becomes the task's value
// of that sweep parameter, {seed}, {replicate} and {index} the task's own.
// Integers are written in decimal, floats as the shortest text that reads
// back as the same float64 (so a rerun from the command line is exact),
// booleans as true or false. A string value is single-quoted for the shell
// (see ShellQuote) when it holds anything outside [A-Za-z0-9._,+:/=@-].
func (j *Job) Command(t Task) (string, error) {
	if j.Task == nil || j.Task.Command == "" {
		return "", errors.New("jobs: the job has no [task] command")
	}
	parts := j.cmd
	if parts == nil {
		var err error
		if parts, err = parseTemplate(j.Task.Command); err != nil {
			return "", fmt.Errorf("jobs: task.command: %w", err)
		}
	}
	var b strings.Builder
	for _, p := range parts {
		if p.name == "" {
			b.WriteString(p.text)
			continue
		}
		v, err := j.placeholder(t, p.name)
		if err != nil {
			return "", err
		}
		b.WriteString(v)
	}
	return b.String(), nil
}

func (j *Job) placeholder(t Task, name string) (string, error) {
	switch name {
	case "seed":
		return strconv.FormatUint(t.Seed, 10), nil
	case "replicate":
		return strconv.Itoa(t.Replicate), nil
	case "index":
		return strconv.Itoa(t.Index), nil
	}
	if j.Sweep != nil {
		for pi, p := range j.Sweep.Params {
			if p.Name != name {
				continue
			}
			if pi >= len(t.Values) {
				return "", fmt.Errorf("jobs: task %d has %d values, want %d", t.Index, len(t.Values), len(j.Sweep.Params))
			}
			s := t.Values[pi].Format(p.Kind)
			if p.Kind == KindString {
				s = ShellQuote(s)
			}
			return s, nil
		}
	}
	return "", fmt.Errorf("jobs: task.command: {%s} is not a sweep parameter", name)
}

// ShellQuote returns s unchanged when it is not empty and consists only of
// [A-Za-z0-9._,+:/=@-]; otherwise s in single quotes, where each single
// quote of s closes the quoting, adds an escaped quote and reopens it:
//
//	ShellQuote("it's 1") == `'it'\''s 1'`
func ShellQuote(s string) string {
	safe := s != ""
	for i := 0; i < len(s) && safe; i++ {
		c := s[i]
		safe = c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			strings.IndexByte("._,+:/=@-", c) >= 0
	}
	if safe {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// placeholders lists the names a command may use, for messages.
func (j *Job) placeholders() []string {
	var names []string
	if j.Sweep != nil {
		for _, p := range j.Sweep.Params {
			names = append(names, p.Name)
		}
	}
	return append(names, reservedNames...)
}

// validateCommand parses the command and checks every placeholder names a
// parameter, seed, replicate or index.
func (j *Job) validateCommand(d *diags) {
	j.cmd = nil
	if j.Task == nil || j.Task.Command == "" {
		return
	}
	key := []string{"task", "command"}
	parts, err := parseTemplate(j.Task.Command)
	if err != nil {
		d.errorf(key, "%v", err)
		return
	}
	known := j.placeholders()
	reported := map[string]bool{}
	for _, p := range parts {
		if p.name == "" || slices.Contains(known, p.name) || reported[p.name] {
			continue
		}
		reported[p.name] = true
		d.errorf(key, "{%s} is not a sweep parameter (placeholders: %s)", p.name, strings.Join(known, ", "))
	}
	j.cmd = parts
	if j.Sweep == nil {
		return
	}
	used := map[string]bool{}
	for _, p := range parts {
		used[p.name] = true
	}
	for _, p := range j.Sweep.Params {
		if !used[p.Name] {
			d.warnf([]string{"sweep", p.Name}, "no placeholder {%s} in task.command uses this parameter: its values all run the same command (a misspelt key?)", p.Name)
		}
	}
}
