package jobs

import (
	"math"
	"slices"
	"strconv"
	"strings"
)

// Adaptive replicates. In [sweep],
//
//	replicates = { min = 8, max = 100000, sem = { energy = 1e-3, magnetization = "1%" } }
//
// keeps adding replicates to each group (parameter point) until the
// standard error of the mean of every named output is at most its target,
// or the group has max replicates, or the run is stopped (the walltime
// warning, SIGTERM). A number is an absolute target; a string "p%" is
// relative: p percent of the absolute value of the output's mean. min
// (default 4, at least 2) replicates run before a group may stop. Without
// max the sweep is open-ended: it runs until every group converged or the
// time is up (at most OpenReplicates per group).
//
// Replicates always run in order: the rows of a group are replicates
// 0..n-1, whatever n turned out to be, so the seeds of the rows never depend
// on timing; only how far each group got does.

// OpenReplicates bounds the replicates of a group in an open-ended adaptive
// sweep (no max); it is also the replicate count used to number its tasks.
const OpenReplicates = 1 << 20

// Adaptive is an adaptive replicate policy (SweepSpec.Adaptive).
type Adaptive struct {
	Min, Max int // Max 0: open-ended (OpenReplicates)
	SEM      []SEMTarget
}

// SEMTarget is the precision asked of one output.
type SEMTarget struct {
	Output   string
	Value    float64 // absolute SEM, or a fraction of |mean| when Relative
	Relative bool
}

// Met reports whether sem meets the target for an output whose mean is mean.
func (t SEMTarget) Met(sem, mean float64) bool {
	if math.IsNaN(sem) {
		return false
	}
	if t.Relative {
		return sem <= t.Value*math.Abs(mean)
	}
	return sem <= t.Value
}

// Limit is the SEM the target asks for at mean.
func (t SEMTarget) Limit(mean float64) float64 {
	if t.Relative {
		return t.Value * math.Abs(mean)
	}
	return t.Value
}

// String writes the target as the job file does.
func (t SEMTarget) String() string {
	if t.Relative {
		return strconv.FormatFloat(100*t.Value, 'g', -1, 64) + "%"
	}
	return strconv.FormatFloat(t.Value, 'g', -1, 64)
}

// MaxReplicates is the most replicates a group of this policy runs.
func (a *Adaptive) MaxReplicates() int {
	if a.Max > 0 {
		return a.Max
	}
	return OpenReplicates
}

// adaptive decodes replicates = { min, max, sem = { output = target } }.
func (dec *decoder) adaptive(s *SweepSpec, key []string, t map[string]any) {
	a := &Adaptive{Min: 4}
	ok := true
	for _, k := range dec.keys(key, t) {
		kk := sub(key, k)
		switch k {
		case "min", "max":
			n, isInt := t[k].(int64)
			if !isInt || n < 1 || n > OpenReplicates {
				dec.d.errorf(kk, "want an integer from 1 to %d, got %v", OpenReplicates, t[k])
				ok = false
				continue
			}
			if k == "min" {
				a.Min = int(n)
			} else {
				a.Max = int(n)
			}
		case "sem":
			m, isTable := t[k].(map[string]any)
			if !isTable || len(m) == 0 {
				dec.d.errorf(kk, `want a table of targets such as { energy = 1e-3, magnetization = "1%%" }`)
				ok = false
				continue
			}
			for _, out := range dec.keys(kk, m) {
				tk := sub(kk, out)
				target := SEMTarget{Output: out}
				switch v := m[out].(type) {
				case int64:
					target.Value = float64(v)
				case float64:
					target.Value = v
				case string:
					f, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(v, "%")), 64)
					if err != nil || !strings.HasSuffix(v, "%") {
						dec.d.errorf(tk, `want a number (absolute SEM) or a percentage such as "1%%" (relative to |mean|), got %q`, v)
						ok = false
						continue
					}
					target.Value, target.Relative = f/100, true
				default:
					dec.d.errorf(tk, `want a number (absolute SEM) or a percentage such as "1%%", got %s`, tomlType(v))
					ok = false
					continue
				}
				if !(target.Value > 0) || math.IsInf(target.Value, 0) {
					dec.d.errorf(tk, "the SEM target must be a positive finite number, got %s", target)
					ok = false
					continue
				}
				a.SEM = append(a.SEM, target)
			}
		default:
			dec.unknown(kk, []string{"max", "min", "sem"})
			ok = false
		}
	}
	if _, has := t["sem"]; !has {
		dec.d.errorf(key, `an adaptive replicates table needs sem = { output = target }; for a fixed count write replicates = N`)
		ok = false
	}
	if a.Min < 2 {
		dec.d.errorf(sub(key, "min"), "a standard error needs at least 2 replicates; want min >= 2")
		ok = false
	}
	if a.Max > 0 && a.Min > a.Max {
		dec.d.errorf(sub(key, "min"), "min = %d is more than max = %d", a.Min, a.Max)
		ok = false
	}
	if ok {
		s.Adaptive = a
		s.Replicates = a.MaxReplicates()
	}
}

// validateAdaptive checks that every SEM target names an output.
func (j *Job) validateAdaptive(d *diags) {
	if j.Sweep == nil || j.Sweep.Adaptive == nil {
		return
	}
	var outs []string
	if j.Task != nil {
		outs = j.Task.Outputs
	}
	for _, t := range j.Sweep.Adaptive.SEM {
		if !slices.Contains(outs, t.Output) {
			d.errorf([]string{"sweep", "replicates", "sem", t.Output}, "%q is not an output of the task (outputs: %s)", t.Output, strings.Join(outs, ", "))
		}
	}
}
