package jobs

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
)

// A task of a sweep is known by its parameter values and its replicate
// number, never by its position in the expansion: positions move when a
// sweep grows, identities do not.
//
// The identity of a task's parameter point is its canonical key, a text:
//
//	key = concat over the sweep's parameters sorted by name (byte order),
//	      skipping every parameter whose value equals its default,
//	      of  name "=" text ";"
//
// where text is, for a number (int or float kind alike), the decimal integer
// when the value is integral and |v| < 2^53 ("-0" for negative zero), and
// otherwise the shortest text that parses back to the same float64
// (strconv 'g', -1); for a string, the Go-quoted string (strconv.Quote); for
// a bool, true or false. So L = 16 and L = 16.0 have one key, and a
// parameter turned from integers into floats by an added value keeps its
// tasks.
//
// The task's identity is (key, replicate); see TaskID for its hash and
// TaskSeed for its seed. Reordering keys in the file, adding values to any
// list or range, adding replicates, and adding a parameter with a default
// (x = { values = [...], default = v }) change no existing task's key.

// TaskID is a task's identity in a fixed size: the first 16 bytes of the
// SHA-256 of its point's canonical key, and its replicate. Two tasks have
// the same TaskID exactly when they have the same key and replicate (short
// of a 128-bit hash collision).
type TaskID struct {
	Hi, Lo    uint64
	Replicate int64
}

// ValueText is the canonical text of v for a parameter of kind k (see the
// identity rules above).
func ValueText(k Kind, v Value) string {
	switch k {
	case KindInt:
		return strconv.FormatInt(v.Int, 10)
	case KindFloat:
		f := v.Float
		if f == math.Trunc(f) && math.Abs(f) < 1<<53 {
			if f == 0 && math.Signbit(f) {
				return "-0"
			}
			return strconv.FormatInt(int64(f), 10)
		}
		return strconv.FormatFloat(f, 'g', -1, 64)
	case KindString:
		return strconv.Quote(v.Str)
	case KindBool:
		return strconv.FormatBool(v.Bool)
	}
	return ""
}

// byName returns the indexes of the sweep's parameters sorted by name.
func (s *SweepSpec) byName() []int {
	if s.sorted != nil && len(s.sorted) == len(s.Params) {
		return s.sorted
	}
	idx := make([]int, len(s.Params))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int { return strings.Compare(s.Params[a].Name, s.Params[b].Name) })
	return idx
}

// PointKey is the canonical key of the parameter point values (one value
// per SweepSpec.Params, in their order).
func (j *Job) PointKey(values []Value) string {
	if j.Sweep == nil {
		return ""
	}
	var b strings.Builder
	for _, pi := range j.Sweep.byName() {
		p := j.Sweep.Params[pi]
		if pi >= len(values) {
			continue
		}
		text := ValueText(p.Kind, values[pi])
		if p.Default != nil && text == ValueText(p.Kind, *p.Default) {
			continue
		}
		b.WriteString(p.Name)
		b.WriteByte('=')
		b.WriteString(text)
		b.WriteByte(';')
	}
	return b.String()
}

// KeyID hashes a canonical key (PointKey) with a replicate into a TaskID.
func KeyID(key string, replicate int) TaskID {
	h := sha256.Sum256([]byte(key))
	return TaskID{Hi: binary.BigEndian.Uint64(h[:8]), Lo: binary.BigEndian.Uint64(h[8:16]), Replicate: int64(replicate)}
}

// ID is the identity of task t of this job.
func (j *Job) ID(t Task) TaskID { return KeyID(j.PointKey(t.Values), t.Replicate) }

// KeyOfColumns is the canonical key, under this job's parameters and
// defaults, of a row read from a result file whose parameter columns are
// names (of kinds) holding vals. A parameter of the job that the file lacks
// takes its default; without a default the row cannot be placed and the
// error names the parameter. A column the job no longer has is kept in the
// key (such a row is no task of this job).
func (j *Job) KeyOfColumns(names []string, kinds []Kind, vals []Value) (string, error) {
	type entry struct{ name, text string }
	var es []entry
	have := make(map[string]bool, len(names))
	for i, n := range names {
		have[n] = true
		text := ValueText(kinds[i], vals[i])
		if p := j.param(n); p != nil && p.Default != nil && text == ValueText(p.Kind, *p.Default) {
			continue
		}
		es = append(es, entry{n, text})
	}
	if j.Sweep != nil {
		for _, p := range j.Sweep.Params {
			if !have[p.Name] && p.Default == nil {
				return "", fmt.Errorf("the file has no column %q and the job gives it no default", p.Name)
			}
		}
	}
	slices.SortStableFunc(es, func(a, b entry) int { return strings.Compare(a.name, b.name) })
	var b strings.Builder
	for _, e := range es {
		b.WriteString(e.name)
		b.WriteByte('=')
		b.WriteString(e.text)
		b.WriteByte(';')
	}
	return b.String(), nil
}

func (j *Job) param(name string) *Param {
	if j.Sweep == nil {
		return nil
	}
	for i := range j.Sweep.Params {
		if j.Sweep.Params[i].Name == name {
			return &j.Sweep.Params[i]
		}
	}
	return nil
}

// NumPoints is the number of parameter points (tasks without replicates).
func (j *Job) NumPoints() int {
	if j.Task == nil {
		return 0
	}
	if j.Sweep == nil {
		return 1
	}
	n := 1
	for _, a := range j.Sweep.dims() {
		n *= a.Len
	}
	return n
}

// PointAt returns the values of parameter point p (0 <= p < NumPoints) in
// grid order: the cartesian product of the axes in file order, the last
// axis varying fastest. It builds nothing else.
func (j *Job) PointAt(p int) []Value {
	if j.Sweep == nil {
		return nil
	}
	vals := make([]Value, len(j.Sweep.Params))
	dims := j.Sweep.dims()
	for ai := len(dims) - 1; ai >= 0; ai-- {
		a := dims[ai]
		if a.Len == 0 {
			continue
		}
		k := p % a.Len
		p /= a.Len
		for _, pi := range a.Params {
			if pi < len(j.Sweep.Params) && k < len(j.Sweep.Params[pi].Values) {
				vals[pi] = j.Sweep.Params[pi].Values[k]
			}
		}
	}
	return vals
}

// PointTask is the task of point p and replicate r, with its grid Index
// (p·replicates + r) and its seed.
func (j *Job) PointTask(p, r int) Task {
	t := Task{Index: p*j.replicates() + r, Values: j.PointAt(p), Replicate: r}
	t.Seed = TaskSeed(j.Job.Seed, j.ID(t))
	return t
}

func (j *Job) replicates() int {
	if j.Sweep == nil {
		return 1
	}
	return max(j.Sweep.Replicates, 1)
}

// valuesTable decodes x = { values = [...], default = v } (the default is
// handled by param).
func (dec *decoder) valuesTable(p *Param, key []string, t map[string]any) bool {
	ok := true
	for _, k := range dec.keys(key, t) {
		if k != "values" {
			dec.unknown(sub(key, k), []string{"default", "values"})
			ok = false
		}
	}
	vs, isList := t["values"].([]any)
	if !isList {
		dec.d.errorf(sub(key, "values"), "want a list of values, got %s", tomlType(t["values"]))
		return false
	}
	return dec.list(p, sub(key, "values"), vs) && ok
}

// setDefault checks and sets a parameter's default once its values are known.
func (dec *decoder) setDefault(p *Param, key []string, raw any) bool {
	var v Value
	switch r := raw.(type) {
	case int64:
		switch p.Kind {
		case KindInt:
			v.Int = r
		case KindFloat:
			v.Float = float64(r)
		default:
			dec.d.errorf(key, "want a value of the parameter's kind (%s), got an integer", p.Kind)
			return false
		}
	case float64:
		if p.Kind != KindFloat {
			dec.d.errorf(key, "want a value of the parameter's kind (%s), got a float", p.Kind)
			return false
		}
		if math.IsInf(r, 0) || math.IsNaN(r) {
			dec.d.errorf(key, "%v is not a finite number", r)
			return false
		}
		v.Float = r
	case string:
		if p.Kind != KindString {
			dec.d.errorf(key, "want a value of the parameter's kind (%s), got a string", p.Kind)
			return false
		}
		v.Str = r
	case bool:
		if p.Kind != KindBool {
			dec.d.errorf(key, "want a value of the parameter's kind (%s), got a boolean", p.Kind)
			return false
		}
		v.Bool = r
	default:
		dec.d.errorf(key, "want a value of the parameter's kind (%s), got %s", p.Kind, tomlType(raw))
		return false
	}
	p.Default = &v
	text := ValueText(p.Kind, v)
	if !slices.ContainsFunc(p.Values, func(x Value) bool { return ValueText(p.Kind, x) == text }) {
		dec.d.warnf(key, "the default %s is not among the values: the tasks of earlier runs, which had no %s, are not part of this sweep",
			v.Format(p.Kind), p.Name)
	}
	return true
}

// ErrorAt is an error about key (a dotted path such as sweep.x) of this
// job, with the key's file:line:col, as Validate reports them.
func (j *Job) ErrorAt(key []string, format string, args ...any) error {
	d := newDiags(j.File, j.pos, j.flags)
	d.errorf(key, format, args...)
	return d.err()
}
