package sweep

import (
	"math"
	"time"

	"github.com/rankhub/rankhub/jobs"
)

// maxTracked is the most points of a fixed sweep the planner keeps per
// group state for (the ETA by group); beyond it the ETA uses one rate.
const maxTracked = 1 << 20

// Why a group of an adaptive sweep gets no more replicates.
const (
	StopConverged = "converged" // every SEM target met with at least min replicates
	StopMax       = "max"       // max replicates
)

// group is one parameter point's state. It holds no pointers, so that the
// garbage collector need not scan a million of them; the running
// statistics live in Planner.mean and Planner.m2.
type group struct {
	n, failed int     // rows observed, of which failed
	present   int     // fixed sweeps: tasks of the group already in the file
	cost      float64 // seconds spent on its tasks
	stop      uint8   // stopRunning while more replicates may come
	// Adaptive: the next replicate to hand out, and how many were handed
	// out or found in the file.
	next, dispatched int
}

const (
	stopRunning uint8 = iota
	stopConverged
	stopMax
)

var stopNames = [...]string{stopRunning: "", stopConverged: StopConverged, stopMax: StopMax}

// Stats is what is known of one group from rows: the observations of each
// output of the job (NaN for a failed row), in the order of its outputs.
type Stats struct {
	rows [][]float64
	cost []float64
}

// Add records one row of the group.
func (s *Stats) Add(outputs []float64, failed bool, took time.Duration) {
	o := append([]float64(nil), outputs...)
	if failed {
		for i := range o {
			o[i] = math.NaN()
		}
	}
	s.rows = append(s.rows, o)
	s.cost = append(s.cost, took.Seconds())
}

// Prior feeds the planner the rows already in the file (by point key, see
// Continuation.Stats): an adaptive sweep resumes where it stopped, groups
// that converged stay stopped.
func (pl *Planner) Prior(stats map[string]*Stats) {
	if pl.groups == nil || len(stats) == 0 {
		return
	}
	for p := range pl.points {
		s, ok := stats[pl.job.PointKey(pl.job.PointAt(p))]
		if !ok {
			continue
		}
		for i, o := range s.rows {
			pl.observe(p, o, math.IsNaN(firstOr(o)), s.cost[i])
		}
		pl.groups[p].dispatched = pl.groups[p].n
	}
}

// nextAdaptive hands out up to n tasks of an adaptive sweep: passes over
// the groups, one replicate of each group per pass, each group's
// replicates in order 0, 1, 2, ... (skipping those in the file). A group
// gets none once it stopped, and none beyond what its SEM says it needs
// (Estimate) while results are on their way, so a converged group does not
// run far past its target.
func (pl *Planner) nextAdaptive(n int) []Ref {
	var out []Ref
	maxReps := pl.ad.MaxReplicates()
	for idle := 0; len(out) < n && idle < pl.points; {
		p := pl.cur
		pl.cur = (pl.cur + 1) % pl.points
		g := &pl.groups[p]
		if g.stop != stopRunning || g.dispatched >= max(pl.groupNeed(p)+g.n, g.n+1) {
			idle++
			continue
		}
		if len(pl.done) > 0 {
			key := pl.job.PointKey(pl.job.PointAt(p))
			for g.next < maxReps {
				if _, ok := pl.done[jobs.KeyID(key, g.next)]; !ok {
					break
				}
				g.next++
			}
		}
		if g.next >= maxReps {
			idle++
			continue
		}
		out = append(out, Ref{Point: p, Replicate: g.next})
		g.next++
		g.dispatched++
		idle = 0
	}
	pl.issued += len(out)
	return out
}

func firstOr(o []float64) float64 {
	if len(o) == 0 {
		return 0
	}
	return o[0]
}

// Observe records a finished task of this run: its outputs (in the job's
// order), whether it failed, and how long it took.
func (pl *Planner) Observe(ref Ref, outputs []float64, failed bool, took time.Duration) {
	pl.observedRun++
	if ref.Point < 0 || ref.Point >= pl.points {
		return
	}
	pl.observe(ref.Point, outputs, failed, took.Seconds())
}

func (pl *Planner) observe(p int, outputs []float64, failed bool, took float64) {
	pl.observed++
	pl.cost += took
	pl.costN++
	if pl.groups == nil {
		return
	}
	g := &pl.groups[p]
	g.n++
	g.cost += took
	if failed {
		g.failed++
	} else {
		k := float64(g.n - g.failed)
		ns := len(pl.semOut)
		mean, m2 := pl.mean[p*ns:(p+1)*ns], pl.m2[p*ns:(p+1)*ns]
		for i, oi := range pl.semOut {
			if oi < 0 || oi >= len(outputs) {
				continue
			}
			x := outputs[oi]
			d := x - mean[i]
			mean[i] += d / k
			m2[i] += d * (x - mean[i])
		}
	}
	if pl.ad == nil || g.stop != stopRunning {
		return
	}
	switch {
	case pl.converged(p):
		g.stop = stopConverged
	case g.n >= pl.ad.MaxReplicates():
		g.stop = stopMax
	default:
		return
	}
	pl.active--
}

// sem is the standard error of the mean of target i of group p (NaN below
// 2 rows), mean its mean.
func (pl *Planner) sem(p, i int) (sem, mean float64) {
	g := &pl.groups[p]
	j := p*len(pl.semOut) + i
	k := float64(g.n - g.failed)
	if k < 2 {
		return math.NaN(), pl.mean[j]
	}
	return math.Sqrt(pl.m2[j] / (k - 1) / k), pl.mean[j]
}

func (pl *Planner) converged(p int) bool {
	g := &pl.groups[p]
	if g.n-g.failed < pl.ad.Min {
		return false
	}
	for i, t := range pl.ad.SEM {
		if !t.Met(pl.sem(p, i)) {
			return false
		}
	}
	return true
}

// GroupStatus is one group's state in an adaptive sweep.
type GroupStatus struct {
	Point, N, Failed int
	Stop             string    // StopConverged, StopMax, or "" (still running)
	SEM, Limit       []float64 // per SEM target: now, and what the target asks
}

// Status reports group p of an adaptive sweep.
func (pl *Planner) Status(p int) GroupStatus {
	g := pl.groups[p]
	st := GroupStatus{Point: p, N: g.n, Failed: g.failed, Stop: stopNames[g.stop]}
	for i, t := range pl.ad.SEM {
		sem, mean := pl.sem(p, i)
		st.SEM = append(st.SEM, sem)
		st.Limit = append(st.Limit, t.Limit(mean))
	}
	return st
}

// Observed is the number of rows the planner has seen (Prior and Observe).
func (pl *Planner) Observed() int { return pl.observed }

// Active is the number of groups of an adaptive sweep that may get more
// replicates.
func (pl *Planner) Active() int { return pl.active }

// Estimate is how many more tasks the sweep needs. For a fixed sweep it is
// exact (tasks not observed). For adaptive replicates, per active group:
// the replicates its SEM says it needs (n·(sem/target)², at least min, at
// most max) minus those it has; a group with fewer than 2 good rows counts
// min.
func (pl *Planner) Estimate() int {
	if pl.ad == nil {
		return pl.Todo() - pl.observedRun
	}
	left := 0
	for p := range pl.groups {
		if pl.groups[p].stop == stopRunning {
			left += pl.groupNeed(p)
		}
	}
	return left
}

// ETA is the time the remaining work takes on engines: per group, its
// remaining tasks times its measured cost per task (the mean over measured
// groups for a group not yet measured), shared by the engines.
func (pl *Planner) ETA(engines int) time.Duration {
	if pl.costN == 0 {
		return 0
	}
	mean := pl.cost / float64(pl.costN)
	var secs float64
	switch {
	case pl.groups == nil:
		secs = float64(pl.Estimate()) * mean
	case pl.ad != nil:
		// Estimate by group, weighted by the group's own cost.
		for p := range pl.groups {
			g := &pl.groups[p]
			if g.stop != stopRunning {
				continue
			}
			c := mean
			if g.n > 0 {
				c = g.cost / float64(g.n)
			}
			secs += float64(pl.groupNeed(p)) * c
		}
	default:
		for p := range pl.groups {
			g := &pl.groups[p]
			c := mean
			if g.n > 0 {
				c = g.cost / float64(g.n)
			}
			secs += float64(max(pl.reps-g.n-g.present, 0)) * c
		}
	}
	return time.Duration(secs / float64(max(engines, 1)) * float64(time.Second))
}

func (pl *Planner) groupNeed(p int) int {
	g := &pl.groups[p]
	need := pl.ad.Min
	if g.n-g.failed >= 2 {
		for i, t := range pl.ad.SEM {
			sem, mean := pl.sem(p, i)
			lim := t.Limit(mean)
			if lim > 0 && sem > 0 {
				// In floats, clamped before the conversion: a tiny target
				// asks for more replicates than an int holds.
				f := math.Ceil(float64(g.n) * (sem / lim) * (sem / lim))
				need = max(need, int(min(f, float64(pl.ad.MaxReplicates()))))
			}
		}
	}
	return max(min(need, pl.ad.MaxReplicates())-g.n, 0)
}
