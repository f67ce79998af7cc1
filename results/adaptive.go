package results

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/rankhub/rankhub/jobs"
)

// Why a group of an adaptive sweep has the rows it has (AdaptiveGroup.Stop).
const (
	StopConverged = "converged" // every SEM target met with at least min replicates
	StopMax       = "max"       // max replicates ran
	StopTime      = "time"      // the run ended first (walltime warning, SIGTERM, failure)
	StopRunning   = "running"   // the file is still being written
)

// AdaptiveGroup is one parameter point of an adaptive sweep as the file
// has it.
type AdaptiveGroup struct {
	Key    []any // one value per parameter
	N      int   // rows without failure
	Stop   string
	SEM    []float64 // per target, now
	Target []float64 // per target, the SEM asked for (relative ones at the current mean)
}

// Adaptive reports, for a file written by an adaptive sweep (the policy of
// its last segment), each group's replicates, standard errors against their
// targets and why it stopped; nil when the sweep is not adaptive.
func Adaptive(r *Reader) (*jobs.Adaptive, []AdaptiveGroup, error) {
	p := r.Provenance()
	text := p.JobText
	if n := len(p.Segments); n > 0 {
		text = p.Segments[n-1].JobText
	}
	job, err := jobs.Parse("job of "+r.Path(), []byte(text))
	if err != nil || job.Sweep == nil || job.Sweep.Adaptive == nil {
		return nil, nil, nil
	}
	ad := job.Sweep.Adaptive
	s, err := Peek(r, r.Params())
	if err != nil {
		return nil, nil, err
	}
	// A group converged when the sweep stopped it: some prefix of its
	// replicates (0..k-1, k >= min) met every target. Rows that were in
	// flight then may move the SEM of all rows a little past the target.
	outIdx := make([]int, len(ad.SEM))
	for i, t := range ad.SEM {
		outIdx[i] = slices.Index(r.Outputs(), t.Output)
	}
	prefixMet := map[string]bool{}
	byKey := map[string][]Row{}
	for _, row := range r.Rows() {
		k := fmt.Sprint(row.Values)
		byKey[k] = append(byKey[k], row)
	}
	for k, rows := range byKey {
		slices.SortFunc(rows, func(a, b Row) int { return a.Replicate - b.Replicate })
		st := make([]Stat, len(ad.SEM))
		for i := range st {
			st[i] = newStat()
		}
		for _, row := range rows {
			if row.Failed() {
				continue
			}
			all := true
			for i, t := range ad.SEM {
				if outIdx[i] >= 0 {
					st[i].add(row.Outputs[outIdx[i]])
					st[i].finish()
				}
				all = all && st[i].N >= ad.Min && t.Met(st[i].SEM, st[i].Mean)
			}
			if all {
				prefixMet[k] = true
				break
			}
		}
	}
	var out []AdaptiveGroup
	for _, g := range s.Groups {
		ag := AdaptiveGroup{Key: g.Key, N: g.Rows - g.Failed}
		met := prefixMet[fmt.Sprint(keyValues(g.Key))]
		for _, t := range ad.SEM {
			i := slices.Index(s.Outputs, t.Output)
			if i < 0 {
				return nil, nil, fmt.Errorf("%s: the SEM target names %q, which is no output column", r.Path(), t.Output)
			}
			st := g.Stats[i]
			ag.SEM = append(ag.SEM, st.SEM)
			ag.Target = append(ag.Target, t.Limit(st.Mean))
		}
		switch {
		case met:
			ag.Stop = StopConverged
		case g.Rows >= ad.MaxReplicates():
			ag.Stop = StopMax
		case r.Complete():
			ag.Stop = StopTime
		default:
			ag.Stop = StopRunning
		}
		out = append(out, ag)
	}
	return ad, out, nil
}

// WriteAdaptive writes Adaptive's report as a table (nothing for a sweep
// that is not adaptive): the parameters, n, why the group stopped, and per
// target "sem / target".
func WriteAdaptive(w io.Writer, r *Reader) error {
	ad, groups, err := Adaptive(r)
	if err != nil || ad == nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	head := append(slices.Clone(r.Params()), "n", "stopped")
	for _, t := range ad.SEM {
		head = append(head, "sem("+t.Output+") / "+t.String())
	}
	fmt.Fprintln(w)
	fmt.Fprintln(tw, strings.Join(head, "\t"))
	for _, g := range groups {
		cells := make([]string, 0, len(head))
		for _, k := range g.Key {
			cells = append(cells, formatKey(k))
		}
		cells = append(cells, strconv.Itoa(g.N), g.Stop)
		for i := range g.SEM {
			cells = append(cells, formatNum(g.SEM[i])+" / "+formatNum(g.Target[i]))
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	return tw.Flush()
}

// keyValues turns a Peek key over every parameter back into the row's
// parameter values, to match byKey.
func keyValues(key []any) []jobs.Value {
	vals := make([]jobs.Value, len(key))
	for i, k := range key {
		switch v := k.(type) {
		case int64:
			vals[i].Int = v
		case float64:
			vals[i].Float = v
		case string:
			vals[i].Str = v
		case bool:
			vals[i].Bool = v
		}
	}
	return vals
}
