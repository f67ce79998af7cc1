package jobs

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/BurntSushi/toml"
)

// Pos is a position in a job file: 1-based line and 1-based byte column.
type Pos struct{ Line, Col int }

// Diag is one diagnostic about a job: an error or a warning. Key is the
// dotted TOML key it is about ("job.ranks", "sweep.T.num") or, after Apply,
// the command-line flag ("--walltime"). Line and Col are 0 when the job was
// not parsed from a file or the value came from a flag.
type Diag struct {
	File string
	Line int
	Col  int
	Key  string
	Msg  string
}

// String formats d as "file:line:col: key: msg", leaving out the parts that
// are unknown.
func (d Diag) String() string {
	var b strings.Builder
	if d.File != "" || d.Line > 0 {
		file := d.File
		if file == "" {
			file = "<input>"
		}
		b.WriteString(file)
		if d.Line > 0 {
			fmt.Fprintf(&b, ":%d:%d", d.Line, d.Col)
		}
		b.WriteString(": ")
	}
	if d.Key != "" {
		b.WriteString(d.Key)
		b.WriteString(": ")
	}
	b.WriteString(d.Msg)
	return b.String()
}

// Errors is every error found in a job, in file order. Parse, Load,
// Validate and Apply return it (as error) when anything is wrong.
type Errors struct {
	Diags []Diag
}

// Error joins the diagnostics, one per line.
func (e *Errors) Error() string {
	lines := make([]string, len(e.Diags))
	for i, d := range e.Diags {
		lines[i] = d.String()
	}
	return strings.Join(lines, "\n")
}

// diags collects errors and warnings for one job while it is decoded or
// validated.
type diags struct {
	file  string
	pos   map[string]Pos
	flags map[string]string
	errs  []Diag
	warns []Diag
	// failed holds the keys with errors, so later checks can skip them.
	failed map[string]bool
}

func newDiags(file string, pos map[string]Pos, flags map[string]string) *diags {
	return &diags{file: file, pos: pos, flags: flags, failed: map[string]bool{}}
}

// at builds a diagnostic about key (a path). A key overridden by a flag is
// reported under the flag's name; otherwise the position is the key's own, or
// that of its nearest written parent when the key itself is missing.
func (d *diags) at(key []string, format string, args ...any) Diag {
	name := keyString(key)
	msg := fmt.Sprintf(format, args...)
	if flag, ok := d.flags[name]; ok {
		return Diag{Key: flag, Msg: msg}
	}
	diag := Diag{File: d.file, Key: name, Msg: msg}
	for n := len(key); n > 0; n-- {
		if p, ok := d.pos[keyString(key[:n])]; ok {
			diag.Line, diag.Col = p.Line, p.Col
			break
		}
	}
	if diag.Line == 0 && d.pos != nil {
		diag.Line, diag.Col = 1, 1
	}
	return diag
}

func (d *diags) errorf(key []string, format string, args ...any) {
	diag := d.at(key, format, args...)
	d.errs = append(d.errs, diag)
	d.failed[diag.Key] = true
}

// failedUnder tells whether key, or a table holding it, has an error.
func (d *diags) failedUnder(key string) bool {
	for k := range d.failed {
		if key == k || strings.HasPrefix(key, k+".") {
			return true
		}
	}
	return false
}

func (d *diags) warnf(key []string, format string, args ...any) {
	d.warns = append(d.warns, d.at(key, format, args...))
}

// sortDiags orders diagnostics by position (flags first), keeping the order
// of discovery for equal positions.
func sortDiags(ds []Diag) {
	slices.SortStableFunc(ds, func(a, b Diag) int {
		if c := cmp.Compare(a.Line, b.Line); c != 0 {
			return c
		}
		return cmp.Compare(a.Col, b.Col)
	})
}

// err returns the collected errors, sorted, or nil.
func (d *diags) err() error {
	if len(d.errs) == 0 {
		return nil
	}
	sortDiags(d.errs)
	return &Errors{Diags: d.errs}
}

// keyString formats a key path the way TOML writes it, quoting segments
// that are not bare keys.
func keyString(key []string) string {
	return toml.Key(key).String()
}

// sub appends segments to a key path without aliasing the original.
func sub(key []string, more ...string) []string {
	out := make([]string, 0, len(key)+len(more))
	return append(append(out, key...), more...)
}
