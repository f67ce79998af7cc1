package jobs

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/cpmech/gosl/utl"
)

// Limits on a sweep's size, checked by Validate.
const (
	// MaxParamValues is the most values one parameter may take.
	MaxParamValues = 1_000_000
	// MaxTasks is the most tasks a sweep may expand to.
	MaxTasks = 1_000_000_000
)

// Names a sweep parameter may not take: they are placeholders of their own.
var reservedNames = []string{"seed", "replicate", "index"}

// String names the kind as job files and results write it.
func (k Kind) String() string {
	switch k {
	case KindInt:
		return "int"
	case KindFloat:
		return "float"
	case KindString:
		return "string"
	case KindBool:
		return "bool"
	default:
		return fmt.Sprintf("Kind(%d)", int(k))
	}
}

// Interface returns the value as int64, float64, string or bool for kind k
// (nil for an unknown kind).
func (v Value) Interface(k Kind) any {
	switch k {
	case KindInt:
		return v.Int
	case KindFloat:
		return v.Float
	case KindString:
		return v.Str
	case KindBool:
		return v.Bool
	default:
		return nil
	}
}

// Format writes the value for kind k the way a command receives it:
// integers in decimal, floats as the shortest text that parses back to the
// same float64 (strconv 'g', -1), strings as they are, true or false.
func (v Value) Format(k Kind) string {
	switch k {
	case KindInt:
		return strconv.FormatInt(v.Int, 10)
	case KindFloat:
		return strconv.FormatFloat(v.Float, 'g', -1, 64)
	case KindString:
		return v.Str
	case KindBool:
		return strconv.FormatBool(v.Bool)
	default:
		return ""
	}
}

// formatScalar formats a TOML scalar as Value.Format would.
func formatScalar(v any) string {
	switch v := v.(type) {
	case int64:
		return strconv.FormatInt(v, 10)
	case float64:
		return strconv.FormatFloat(v, 'g', -1, 64)
	case bool:
		return strconv.FormatBool(v)
	case string:
		return v
	default:
		return fmt.Sprint(v)
	}
}

// round15 rounds a computed grid value to 15 significant digits, so that
// accumulated binary rounding (0.1*3 = 0.30000000000000004) does not leak
// into commands and result files: 15 digits are exact for every decimal
// a person writes, and the rounded value is what tasks receive and results
// record.
func round15(v float64) float64 {
	r, err := strconv.ParseFloat(strconv.FormatFloat(v, 'g', 15, 64), 64)
	if err != nil {
		return v
	}
	return r
}

func isIdent(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '_' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || i > 0 && c >= '0' && c <= '9' {
			continue
		}
		return false
	}
	return true
}

// sweep decodes [sweep]: parameters in file order, zip and replicates.
func (dec *decoder) sweep(s *SweepSpec, path []string, t map[string]any) {
	for _, k := range dec.keys(path, t) {
		key := sub(path, k)
		v := t[k]
		switch k {
		case "replicates":
			if m, isTable := v.(map[string]any); isTable {
				dec.adaptive(s, key, m)
				continue
			}
			n, ok := v.(int64)
			switch {
			case !ok:
				dec.d.errorf(key, "want an integer, got %s", tomlType(v))
			case n < 1 || n > MaxTasks:
				dec.d.errorf(key, "%d is out of range: want 1 to %d", n, MaxTasks)
			default:
				s.Replicates = int(n)
			}
		case "zip":
			dec.zip(s, key, v)
		case "order":
			o, ok := v.(string)
			if !ok || o != OrderReplicates && o != OrderGrid {
				dec.d.errorf(key, "want %q (replicate 0 of every point first: groups fill evenly) or %q (each point's replicates together), got %v",
					OrderReplicates, OrderGrid, v)
			} else {
				s.Order = o
			}
		default:
			// A parameter that fails to decode is kept without values, so
			// that {name} and group_by still find it.
			p, ok := dec.param(key, v)
			if !ok {
				p = Param{Name: k}
				dec.d.failed[keyString(key)] = true
			}
			s.Params = append(s.Params, p)
		}
	}
}

func (dec *decoder) zip(s *SweepSpec, key []string, v any) {
	outer, ok := v.([]any)
	if !ok {
		dec.d.errorf(key, `want an array of name arrays such as [["a", "b"]], got %s`, tomlType(v))
		return
	}
	for i, g := range outer {
		inner, ok := g.([]any)
		if !ok {
			dec.d.errorf(key, `group %d: want an array of parameter names such as ["a", "b"], got %s`, i, tomlType(g))
			continue
		}
		group := make([]string, 0, len(inner))
		for _, e := range inner {
			name, ok := e.(string)
			if !ok {
				dec.d.errorf(key, "group %d: want parameter names (strings), got %s", i, tomlType(e))
				group = nil
				break
			}
			group = append(group, name)
		}
		if group != nil {
			s.Zip = append(s.Zip, group)
		}
	}
}

// param decodes one swept parameter: a list, a range table or a single
// scalar (a constant).
func (dec *decoder) param(key []string, v any) (Param, bool) {
	p := Param{Name: key[len(key)-1]}
	switch v := v.(type) {
	case []any:
		return p, dec.list(&p, key, v)
	case map[string]any:
		rest := make(map[string]any, len(v))
		for k, e := range v {
			if k != "default" {
				rest[k] = e
			}
		}
		var ok bool
		if _, isValues := v["values"]; isValues {
			ok = dec.valuesTable(&p, key, rest)
		} else {
			ok = dec.rangeParam(&p, key, rest)
		}
		if raw, has := v["default"]; has && ok {
			ok = dec.setDefault(&p, sub(key, "default"), raw)
		}
		return p, ok
	case int64, float64, string, bool:
		return p, dec.list(&p, key, []any{v})
	default:
		dec.d.errorf(key, "want a list of values or a range table {start, stop, num|step}, got %s", tomlType(v))
		return p, false
	}
}

func (dec *decoder) list(p *Param, key []string, vs []any) bool {
	if len(vs) == 0 {
		dec.d.errorf(key, "no values")
		return false
	}
	if len(vs) > MaxParamValues {
		dec.d.errorf(key, "%d values; at most %d", len(vs), MaxParamValues)
		return false
	}
	kinds := map[string]bool{}
	for i, e := range vs {
		switch e := e.(type) {
		case int64:
			kinds["integer"] = true
		case float64:
			if math.IsInf(e, 0) || math.IsNaN(e) {
				dec.d.errorf(key, "element %d: %v is not a finite number", i, e)
				return false
			}
			kinds["float"] = true
		case string:
			kinds["string"] = true
		case bool:
			kinds["boolean"] = true
		default:
			dec.d.errorf(key, "element %d: want a number, string or boolean, got %s", i, tomlType(e))
			return false
		}
	}
	switch {
	case len(kinds) == 1 && kinds["integer"]:
		p.Kind = KindInt
	case len(kinds) == 1 && kinds["string"]:
		p.Kind = KindString
	case len(kinds) == 1 && kinds["boolean"]:
		p.Kind = KindBool
	case len(kinds) == 1 && kinds["float"], len(kinds) == 2 && kinds["integer"] && kinds["float"]:
		p.Kind = KindFloat
	default:
		names := make([]string, 0, len(kinds))
		for k := range kinds {
			names = append(names, k)
		}
		slices.Sort(names)
		dec.d.errorf(key, "mixes %s values: one kind per parameter (integers and floats may mix)", strings.Join(names, " and "))
		return false
	}
	p.Values = make([]Value, len(vs))
	for i, e := range vs {
		switch e := e.(type) {
		case int64:
			if p.Kind == KindFloat {
				p.Values[i].Float = float64(e)
			} else {
				p.Values[i].Int = e
			}
		case float64:
			p.Values[i].Float = e
		case string:
			p.Values[i].Str = e
		case bool:
			p.Values[i].Bool = e
		}
	}
	return true
}

// number reads a finite TOML number at key; isInt tells whether it was an
// integer.
func (dec *decoder) number(key []string, v any) (f float64, i int64, isInt, ok bool) {
	switch v := v.(type) {
	case int64:
		return float64(v), v, true, true
	case float64:
		if math.IsInf(v, 0) || math.IsNaN(v) {
			dec.d.errorf(key, "%v is not a finite number", v)
			return 0, 0, false, false
		}
		return v, 0, false, true
	default:
		dec.d.errorf(key, "want a number, got %s", tomlType(v))
		return 0, 0, false, false
	}
}

// rangeParam expands a range table:
//
//   - {start, stop, num}: num evenly spaced floats from start to stop, both
//     included (gosl's utl.LinSpace);
//   - {start, stop, num, log = true}: num geometrically spaced floats from
//     start to stop, both included; start and stop must be positive;
//   - {start, stop, step}: start, start+step, ... up to the grid point
//     nearest to stop: stop is included when it lies within half a step of
//     the grid, so float rounding never drops or adds an end point. A
//     warning says when stop is not on the grid. When start, stop and step
//     are all integers the values are integers.
//
// Computed floats are rounded to 15 significant digits (see round15); the
// end points are exactly start and stop.
func (dec *decoder) rangeParam(p *Param, key []string, t map[string]any) bool {
	var (
		start, stop, step    float64
		istart, istop, istep int64
		intStart, intStop    bool
		intStep              bool
		num                  int64
		log                  bool
		has                  = map[string]bool{}
		ok                   = true
	)
	for _, k := range dec.keys(key, t) {
		kk := sub(key, k)
		v := t[k]
		good := true
		switch k {
		case "start":
			start, istart, intStart, good = dec.number(kk, v)
		case "stop":
			stop, istop, intStop, good = dec.number(kk, v)
		case "step":
			step, istep, intStep, good = dec.number(kk, v)
			if good && step == 0 {
				dec.d.errorf(kk, "step must not be zero")
				good = false
			}
		case "num":
			n, isInt := v.(int64)
			switch {
			case !isInt:
				dec.d.errorf(kk, "want an integer, got %s", tomlType(v))
				good = false
			case n < 1 || n > MaxParamValues:
				dec.d.errorf(kk, "%d is out of range: want 1 to %d", n, MaxParamValues)
				good = false
			default:
				num = n
			}
		case "log":
			b, isBool := v.(bool)
			if !isBool {
				dec.d.errorf(kk, "want true or false, got %s", tomlType(v))
				good = false
			}
			log = b
		default:
			dec.unknown(kk, []string{"default", "log", "num", "start", "step", "stop", "values"})
			good = false
		}
		has[k] = true
		ok = ok && good
	}
	for _, k := range []string{"start", "stop"} {
		if !has[k] {
			dec.d.errorf(key, "range needs %s", k)
			ok = false
		}
	}
	switch {
	case has["num"] && has["step"]:
		dec.d.errorf(sub(key, "step"), "give num or step, not both")
		return false
	case !has["num"] && !has["step"]:
		dec.d.errorf(key, "range needs num (how many values) or step")
		return false
	case log && has["step"]:
		dec.d.errorf(sub(key, "log"), "a log range takes num, not step")
		return false
	}
	if !ok {
		return false
	}
	if has["num"] && num == 1 && start != stop {
		dec.d.errorf(sub(key, "num"), "num = 1 with start ≠ stop: write a list [%s] for a single value", formatScalar(start))
		return false
	}
	if log && (start <= 0 || stop <= 0) {
		dec.d.errorf(key, "a log range needs positive start and stop")
		return false
	}
	switch {
	case has["num"] && log:
		p.Kind = KindFloat
		lo, hi := math.Log10(start), math.Log10(stop)
		n := int(num)
		p.Values = make([]Value, n)
		for i := range n {
			p.Values[i].Float = round15(math.Pow(10, lo+(hi-lo)*float64(i)/float64(max(n-1, 1))))
		}
		p.Values[0].Float, p.Values[n-1].Float = start, stop
	case has["num"]:
		p.Kind = KindFloat
		xs := utl.LinSpace(start, stop, int(num))
		p.Values = make([]Value, len(xs))
		for i, x := range xs {
			if i > 0 && i < len(xs)-1 {
				x = round15(x)
			}
			p.Values[i].Float = x
		}
	case intStart && intStop && intStep:
		return dec.intStepRange(p, key, istart, istop, istep)
	default:
		return dec.floatStepRange(p, key, start, stop, step)
	}
	return true
}

func (dec *decoder) intStepRange(p *Param, key []string, start, stop, step int64) bool {
	// Keep every bound within ±2^62 so that stop-start and the last grid
	// point (at most half a step past stop) cannot overflow int64.
	const limit = 1 << 62
	if abs64(start) > limit || abs64(stop) > limit || abs64(step) > limit {
		dec.d.errorf(key, "integer range bounds must lie within ±2^62")
		return false
	}
	q := (float64(stop) - float64(start)) / float64(step)
	if q < 0 {
		dec.d.errorf(sub(key, "step"), "step %d moves away from stop %d", step, stop)
		return false
	}
	if q+1 > MaxParamValues {
		dec.d.errorf(key, "range has %.0f values; at most %d", q+1, MaxParamValues)
		return false
	}
	n := (stop - start) / step
	if rem := (stop - start) % step; rem != 0 && 2*abs64(rem) >= abs64(step) {
		n++
	}
	p.Kind = KindInt
	p.Values = make([]Value, n+1)
	for i := range p.Values {
		p.Values[i].Int = start + int64(i)*step
	}
	if last := p.Values[n].Int; last != stop {
		dec.d.warnf(key, "stop %d is not on the grid start + k·step; the last value is %d", stop, last)
	}
	return true
}

func abs64(x int64) int64 {
	if x < 0 {
		if x == math.MinInt64 {
			return math.MaxInt64
		}
		return -x
	}
	return x
}

func (dec *decoder) floatStepRange(p *Param, key []string, start, stop, step float64) bool {
	q := (stop - start) / step
	if q < 0 {
		dec.d.errorf(sub(key, "step"), "step %s moves away from stop %s", formatScalar(step), formatScalar(stop))
		return false
	}
	if math.IsInf(q, 0) || q+1 > MaxParamValues {
		dec.d.errorf(key, "range has %.0f values; at most %d", q+1, MaxParamValues)
		return false
	}
	n := int(math.Floor(q + 0.5))
	p.Kind = KindFloat
	p.Values = make([]Value, n+1)
	for i := range p.Values {
		p.Values[i].Float = round15(start + float64(i)*step)
	}
	p.Values[0].Float = start
	last := start + float64(n)*step
	if math.Abs(last-stop) <= 1e-9*math.Abs(step) {
		p.Values[n].Float = stop
	} else {
		dec.d.warnf(key, "stop %s is not on the grid start + k·step; the last value is %s",
			formatScalar(stop), formatScalar(p.Values[n].Float))
	}
	return true
}

// validateSweep checks a sweep (decoded or built in memory) and derives its
// axes. Positions come from the job's keys under [sweep].
func validateSweep(s *SweepSpec, d *diags) {
	path := []string{"sweep"}
	if s.Replicates < 1 {
		d.errorf(sub(path, "replicates"), "%d is out of range: want at least 1", s.Replicates)
	}
	index := make(map[string]int, len(s.Params))
	for i, p := range s.Params {
		key := sub(path, p.Name)
		switch {
		case !isIdent(p.Name):
			d.errorf(key, "parameter name must be an identifier ([A-Za-z_][A-Za-z0-9_]*) to be written {%s}", p.Name)
		case slices.Contains(reservedNames, p.Name):
			d.errorf(key, "%q is reserved: {seed}, {replicate} and {index} are set by rankhub", p.Name)
		}
		if _, dup := index[p.Name]; dup {
			d.errorf(key, "parameter defined twice")
		}
		index[p.Name] = i
		if p.Kind < KindInt || p.Kind > KindBool {
			d.errorf(key, "unknown kind %d", int(p.Kind))
		}
		if len(p.Values) == 0 {
			d.errorf(key, "no values")
		}
		if len(p.Values) > MaxParamValues {
			d.errorf(key, "%d values; at most %d", len(p.Values), MaxParamValues)
		}
		if p.Kind == KindFloat {
			for _, v := range p.Values {
				if math.IsInf(v.Float, 0) || math.IsNaN(v.Float) {
					d.errorf(key, "%v is not a finite number", v.Float)
					break
				}
			}
		}
	}
	zipKey := sub(path, "zip")
	inGroup := make(map[string]int, len(s.Params))
	for g, group := range s.Zip {
		if len(group) == 0 {
			d.errorf(zipKey, "group %d is empty", g)
			continue
		}
		if len(group) == 1 {
			d.warnf(zipKey, "group %d has only %q: zipping one parameter changes nothing", g, group[0])
		}
		first := -1
		for _, name := range group {
			pi, ok := index[name]
			if !ok {
				d.errorf(zipKey, "group %d: %q is not a sweep parameter", g, name)
				continue
			}
			if prev, dup := inGroup[name]; dup {
				if prev == g {
					d.errorf(zipKey, "group %d names %q twice", g, name)
				} else {
					d.errorf(zipKey, "%q is in groups %d and %d: a parameter may be zipped once", name, prev, g)
				}
				continue
			}
			inGroup[name] = g
			if len(s.Params[pi].Values) == 0 {
				continue
			}
			if first < 0 {
				first = pi
			} else if a, b := len(s.Params[first].Values), len(s.Params[pi].Values); a != b {
				d.errorf(zipKey, "group %d: %q has %d values but %q has %d; zipped parameters need equal lengths",
					g, s.Params[first].Name, a, name, b)
			}
		}
	}
	s.Axes = axes(s, index)
	s.sorted = nil
	s.sorted = s.byName()
	for _, a := range s.Axes {
		// Two equal points would be one task identity (see identity.go).
		if i, j, dup := duplicatePoint(s, a); dup {
			var vs []string
			for _, pi := range a.Params {
				vs = append(vs, ValueText(s.Params[pi].Kind, s.Params[pi].Values[j]))
			}
			d.errorf(sub(path, s.Params[a.Params[0]].Name), "values %d and %d are equal (%s): a task is known by its values, so each must differ",
				i, j, strings.Join(vs, ", "))
		}
	}
	total := float64(max(s.Replicates, 1))
	if s.Adaptive != nil && s.Adaptive.Max == 0 {
		total = float64(s.Adaptive.Min) // open-ended: bounded by time
	}
	if s.Adaptive != nil && s.Order == OrderGrid {
		d.errorf(sub(path, "order"), `adaptive replicates run replicate by replicate; drop order = "grid"`)
	}
	for _, a := range s.Axes {
		total *= float64(a.Len)
	}
	if total > MaxTasks {
		d.errorf(path, "sweep expands to %.0f tasks; at most %d", total, MaxTasks)
		s.Axes = nil
	}
}

// axes groups parameters into the product's dimensions: each zip group is
// one axis placed where its first parameter appears; other parameters are
// axes of their own. Parameters in no valid position are skipped.
func axes(s *SweepSpec, index map[string]int) []Axis {
	group := make(map[int]int, len(s.Params)) // param index → zip group
	for g, names := range s.Zip {
		for _, name := range names {
			if pi, ok := index[name]; ok {
				if _, seen := group[pi]; !seen {
					group[pi] = g
				}
			}
		}
	}
	var out []Axis
	placed := make(map[int]bool)
	for pi, p := range s.Params {
		g, zipped := group[pi]
		if !zipped {
			out = append(out, Axis{Params: []int{pi}, Len: len(p.Values)})
			continue
		}
		if placed[g] {
			continue
		}
		placed[g] = true
		a := Axis{Len: len(p.Values)}
		for pj := range s.Params {
			if gj, ok := group[pj]; ok && gj == g {
				a.Params = append(a.Params, pj)
				a.Len = min(a.Len, len(s.Params[pj].Values))
			}
		}
		out = append(out, a)
	}
	return out
}

// dims returns the axes Validate derived or, for a sweep built in memory and
// never validated, derives them now without storing them.
func (s *SweepSpec) dims() []Axis {
	if s.Axes != nil || len(s.Params) == 0 {
		return s.Axes
	}
	index := make(map[string]int, len(s.Params))
	for i, p := range s.Params {
		if _, dup := index[p.Name]; !dup {
			index[p.Name] = i
		}
	}
	return axes(s, index)
}

// NumTasks is the number of tasks the sweep expands to, without building
// them: the product of the axes' lengths times the replicates. A job with a
// [task] and no [sweep] has one task; a job without a [task] has none.
func (j *Job) NumTasks() int {
	if j.Task == nil {
		return 0
	}
	if j.Sweep == nil {
		return 1
	}
	n := max(j.Sweep.Replicates, 1)
	for _, a := range j.Sweep.dims() {
		n *= a.Len
	}
	return n
}

// TaskAt builds task i (0 <= i < NumTasks) without expanding the others.
//
// The order, which never changes for a given job file: the cartesian product
// of the axes in file order (a zip group counts once, where its first
// parameter is written), the LAST axis varying fastest, and the replicates
// innermost. With L = [8, 16], T = [1, 2] and replicates = 2 the tasks are
// (8,1,r0) (8,1,r1) (8,2,r0) (8,2,r1) (16,1,r0) ... This index is a
// position in this job's grid, not an identity: a task's seed is
// TaskSeed(job seed, its TaskID), a function of its parameter values and
// replicate only (see identity.go), so growing the sweep keeps it.
func (j *Job) TaskAt(i int) Task {
	if j.Sweep == nil {
		t := Task{Index: i}
		t.Seed = TaskSeed(j.Job.Seed, j.ID(t))
		return t
	}
	reps := j.replicates()
	return j.PointTask(i/reps, i%reps)
}

// Expand builds every task in order (see TaskAt). For very large sweeps,
// prefer NumTasks and TaskAt.
func (j *Job) Expand() []Task {
	n := j.NumTasks()
	if n == 0 {
		return nil
	}
	out := make([]Task, n)
	for i := range out {
		out[i] = j.TaskAt(i)
	}
	return out
}

// Args returns a task's parameters by name as int64, float64, string or
// bool, plus "seed" (uint64), "replicate" and "index" (int): what a
// registered function receives.
func (j *Job) Args(t Task) map[string]any {
	args := map[string]any{"seed": t.Seed, "replicate": t.Replicate, "index": t.Index}
	if j.Sweep != nil {
		for pi, p := range j.Sweep.Params {
			if pi < len(t.Values) {
				args[p.Name] = t.Values[pi].Interface(p.Kind)
			}
		}
	}
	return args
}

// duplicatePoint finds two positions of axis a with equal values (equal
// canonical texts, see ValueText). Strictly monotonic number axes, such as
// ranges, are checked without a map.
func duplicatePoint(s *SweepSpec, a Axis) (int, int, bool) {
	if len(a.Params) == 1 {
		p := s.Params[a.Params[0]]
		vs := p.Values[:min(a.Len, len(p.Values))]
		num := func(v Value) float64 {
			if p.Kind == KindInt {
				return float64(v.Int)
			}
			return v.Float
		}
		if p.Kind == KindInt || p.Kind == KindFloat {
			up, down := true, true
			for i := 1; i < len(vs) && (up || down); i++ {
				up = up && num(vs[i]) > num(vs[i-1])
				down = down && num(vs[i]) < num(vs[i-1])
			}
			if up || down {
				return 0, 0, false // strictly monotonic: all different
			}
		}
	}
	seen := make(map[string]int, a.Len)
	for k := 0; k < a.Len; k++ {
		var b strings.Builder
		for _, pi := range a.Params {
			if k < len(s.Params[pi].Values) {
				b.WriteString(ValueText(s.Params[pi].Kind, s.Params[pi].Values[k]))
			}
			b.WriteByte(';')
		}
		if prev, dup := seen[b.String()]; dup {
			return prev, k, true
		}
		seen[b.String()] = k
	}
	return 0, 0, false
}
