// Package plot draws peek summaries of rankhub result files as SVG figures
// one would put in a paper: mean ± standard error against a parameter, one
// series per combination of other parameters, the legend beside the data,
// ticks at the values swept (or at round numbers when there are many), an
// optional log axis, marker area proportional to the number of values
// behind each point, and a visible note such as "partial: 37 of 120 rows"
// while a sweep runs.
//
// Only the CLI imports it: gonum/plot and its fonts stay out of the rank
// binaries.
//
// Usage:
//
//	s, err := results.Peek(r, []string{"T", "L"})
//	err = plot.SVG(s, plot.Options{X: "T", Y: "energy", Series: []string{"L"},
//		Note: plot.PartialNote(s, r.Provenance().Tasks)}, "energy.svg")
package plot

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgsvg"

	"github.com/rankhub/rankhub/results"
)

// Figure size.
const (
	width  = 18 * vg.Centimeter
	height = 11 * vg.Centimeter
)

// Options says what to draw.
type Options struct {
	X, Y       string   // a numeric grouping column of the summary; an output
	Series     []string // grouping columns that make one series per value combination
	LogX, LogY bool     // logarithmic axes (every value must be > 0)
	Note       string   // drawn under the title, e.g. PartialNote's
}

// PartialNote returns "partial: 37 of 120 rows" for a summary of a file
// that is not complete (tasks is the sweep's size), "" otherwise.
func PartialNote(s *results.Summary, tasks int) string {
	if s.Complete {
		return ""
	}
	if tasks > 0 {
		return fmt.Sprintf("partial: %d of %d rows", s.Rows, tasks)
	}
	return fmt.Sprintf("partial: %d rows so far", s.Rows)
}

type point struct {
	x  float64
	st results.Stat
}

type series struct {
	key    []any
	points []point // sorted by x, only points with values
}

// SVG writes an SVG file at path showing the mean of output o.Y against
// the grouping column o.X with ± SEM error bars, one line per combination
// of the o.Series columns. Groups of s that differ only in columns outside
// X and Series are pooled (their statistics merged exactly). Points with no
// values are left out; a point with fewer than 2 values has no error bar.
func SVG(s *results.Summary, o Options, path string) error {
	all, err := collect(s, o)
	if err != nil {
		return err
	}
	p := plot.New()
	p.Title.Text = o.Y + " vs " + o.X
	if o.Note != "" {
		p.Title.Text += "\n" + o.Note
	}
	p.X.Label.Text = o.X
	p.Y.Label.Text = o.Y + " (mean ± sem)"
	p.Add(plotter.NewGrid())

	var xs []float64
	maxN := 1
	for _, se := range all {
		for _, pt := range se.points {
			if !slices.Contains(xs, pt.x) {
				xs = append(xs, pt.x)
			}
			maxN = max(maxN, pt.st.N)
		}
	}
	slices.Sort(xs)
	if o.LogX {
		if len(xs) > 0 && xs[0] <= 0 {
			return fmt.Errorf("results: plot: log x axis, but %s takes the value %g", o.X, xs[0])
		}
		p.X.Scale = plot.LogScale{}
	}
	p.X.Tick.Marker = xTicks(xs, o.LogX)
	if o.LogY {
		p.Y.Scale = plot.LogScale{}
		p.Y.Tick.Marker = logTicks{}
	} else {
		p.Y.Tick.Marker = niceTicks{}
	}

	var entries []string
	for i, se := range all {
		var pts plotutil.ErrorPoints
		for _, pt := range se.points {
			e := pt.st.SEM
			if math.IsNaN(e) {
				e = 0
			}
			if o.LogY && pt.st.Mean <= 0 {
				return fmt.Errorf("results: plot: log y axis, but the mean of %s is %g at %s = %g", o.Y, pt.st.Mean, o.X, pt.x)
			}
			if o.LogY && pt.st.Mean-e <= 0 {
				e = 0 // the lower bar would leave the axis
			}
			pts.XYs = append(pts.XYs, plotter.XY{X: pt.x, Y: pt.st.Mean})
			pts.YErrors = append(pts.YErrors, struct{ Low, High float64 }{Low: e, High: e})
		}
		line, err := plotter.NewLine(pts.XYs)
		if err != nil {
			return fmt.Errorf("results: plot: %w", err)
		}
		c := plotutil.Color(i)
		line.Color = c
		bars, err := plotter.NewYErrorBars(&pts)
		if err != nil {
			return fmt.Errorf("results: plot: %w", err)
		}
		bars.Color = c
		p.Add(line, bars)
		// Marker area ∝ n: the points that rest on more values weigh more.
		for k, pt := range se.points {
			sc, err := plotter.NewScatter(plotter.XYs{pts.XYs[k]})
			if err != nil {
				return fmt.Errorf("results: plot: %w", err)
			}
			sc.Color, sc.Shape = c, plotutil.Shape(i)
			sc.Radius = vg.Points(1.5 + 2.5*math.Sqrt(float64(pt.st.N)/float64(maxN)))
			p.Add(sc)
			if k == 0 {
				thumb, _ := plotter.NewScatter(plotter.XYs{{}})
				thumb.Color, thumb.Shape, thumb.Radius = c, sc.Shape, vg.Points(3)
				name := seriesName(o.Series, se.key, o.Y)
				p.Legend.Add(name, line, thumb)
				entries = append(entries, name)
			}
		}
	}
	pad(&p.X, o.LogX)
	pad(&p.Y, o.LogY)
	nNote := fmt.Sprintf("marker area ∝ n (max %d)", maxN)
	p.Legend.Add(nNote)
	return write(p, append(entries, nNote), path)
}

// collect pools the summary's groups into series of points.
func collect(s *results.Summary, o Options) ([]*series, error) {
	xi := slices.Index(s.By, o.X)
	if xi < 0 {
		return nil, fmt.Errorf("results: plot: x %q is not a grouping column of the summary (%s); peek with it in by", o.X, strings.Join(s.By, ", "))
	}
	yi := slices.Index(s.Outputs, o.Y)
	if yi < 0 {
		return nil, fmt.Errorf("results: plot: y %q is not an output; outputs: %s", o.Y, strings.Join(s.Outputs, ", "))
	}
	byIdx := make([]int, len(o.Series))
	for i, b := range o.Series {
		j := slices.Index(s.By, b)
		switch {
		case b == o.X:
			return nil, fmt.Errorf("results: plot: %q is both x and a series column", b)
		case j < 0:
			return nil, fmt.Errorf("results: plot: series column %q is not a grouping column of the summary (%s)", b, strings.Join(s.By, ", "))
		case slices.Contains(o.Series[:i], b):
			return nil, fmt.Errorf("results: plot: series column %q given twice", b)
		}
		byIdx[i] = j
	}
	type acc struct {
		key    []any
		points map[float64]*results.Stat
	}
	var all []*acc
	index := map[string]*acc{}
	for _, g := range s.Groups {
		xv, ok := numeric(g.Key[xi])
		if !ok {
			return nil, fmt.Errorf("results: plot: x %q has non-numeric value %v", o.X, g.Key[xi])
		}
		key := make([]any, len(byIdx))
		for i, j := range byIdx {
			key[i] = g.Key[j]
		}
		ks := fmt.Sprintf("%#v", key)
		a := index[ks]
		if a == nil {
			a = &acc{key: key, points: map[float64]*results.Stat{}}
			index[ks] = a
			all = append(all, a)
		}
		st := a.points[xv]
		if st == nil {
			n := results.NewStat()
			st = &n
			a.points[xv] = st
		}
		st.Merge(g.Stats[yi])
	}
	slices.SortFunc(all, func(a, b *acc) int { return results.CompareKeys(a.key, b.key) })
	var out []*series
	for _, a := range all {
		se := &series{key: a.key}
		for xv, st := range a.points {
			if st.N > 0 {
				se.points = append(se.points, point{x: xv, st: *st})
			}
		}
		slices.SortFunc(se.points, func(a, b point) int { return cmpFloat(a.x, b.x) })
		if len(se.points) > 0 {
			out = append(out, se)
		}
	}
	return out, nil
}

// pad widens an axis by 5% of its range on each side, so that no point
// sits on the frame.
func pad(a *plot.Axis, log bool) {
	if log {
		if a.Min > 0 && a.Max > 0 {
			f := math.Pow(a.Max/a.Min, 0.05)
			if f == 1 {
				f = 1.1
			}
			a.Min, a.Max = a.Min/f, a.Max*f
		}
		return
	}
	d := (a.Max - a.Min) * 0.05
	if d == 0 {
		d = math.Max(math.Abs(a.Max)*0.05, 0.5)
	}
	a.Min, a.Max = a.Min-d, a.Max+d
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// write draws p with its legend, whose entries are named entries, in a
// column right of the data and writes the SVG to path through a temporary
// file.
func write(p *plot.Plot, entries []string, path string) error {
	legendW := vg.Length(0)
	for _, e := range entries {
		legendW = max(legendW, p.Legend.TextStyle.Width(e))
	}
	// Viewers substitute fonts whose text runs wider than the metrics
	// gonum measures with: leave a quarter more room.
	legendW = legendW*5/4 + p.Legend.ThumbnailWidth + p.Legend.Padding*2 + vg.Points(12)
	p.Legend.Top, p.Legend.Left = true, true

	c := vgsvg.New(width, height)
	dc := draw.New(c)
	legend := p.Legend
	p.Legend = plot.NewLegend()
	p.Legend.TextStyle = legend.TextStyle // no entries: plot.Draw draws none
	p.Draw(draw.Crop(dc, 0, -legendW, 0, 0))
	titleH := p.Title.TextStyle.Height(p.Title.Text) + p.Title.Padding
	legend.Draw(draw.Crop(dc, width-legendW+vg.Points(6), 0, 0, -titleH))

	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("results: plot: %w", err)
	}
	if _, err := c.WriteTo(tmp); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return fmt.Errorf("results: plot: write %s: %w", path, err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return fmt.Errorf("results: plot: write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("results: plot: write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("results: plot: write %s: %w", path, err)
	}
	return nil
}

func numeric(v any) (float64, bool) {
	switch v := v.(type) {
	case int64:
		return float64(v), true
	case float64:
		return v, true
	}
	return 0, false
}

// seriesName is "L=16, J=1", or the output's name when there is one series.
func seriesName(by []string, key []any, y string) string {
	if len(by) == 0 {
		return y
	}
	parts := make([]string, len(by))
	for i, b := range by {
		parts[i] = b + "=" + results.FormatKey(key[i])
	}
	return strings.Join(parts, ", ")
}

// xTicks labels every x value swept when there are at most 12 (a sweep's
// grid is what the reader wants to see), round numbers otherwise.
func xTicks(xs []float64, log bool) plot.Ticker {
	if len(xs) > 0 && len(xs) <= 12 {
		ts := make(plot.ConstantTicks, len(xs))
		for i, x := range xs {
			ts[i] = plot.Tick{Value: x, Label: strconv.FormatFloat(x, 'g', 6, 64)}
		}
		return ts
	}
	if log {
		return logTicks{}
	}
	return niceTicks{}
}

// logTicks ticks 1 to 9 times each power of ten in range, labelled at 1,
// 2 and 5 times (at every tick when the range spans less than a decade,
// at powers of ten only when it spans more than four).
type logTicks struct{}

func (logTicks) Ticks(lo, hi float64) []plot.Tick {
	if !(lo > 0) || !(hi > lo) {
		return plot.LogTicks{Prec: -1}.Ticks(lo, hi)
	}
	k0, k1 := math.Floor(math.Log10(lo)), math.Ceil(math.Log10(hi))
	decades := math.Log10(hi / lo)
	var ts []plot.Tick
	for k := k0; k <= k1; k++ {
		for m := 1.0; m <= 9; m++ {
			v := m * math.Pow(10, k)
			if v < lo*(1-1e-9) || v > hi*(1+1e-9) {
				continue
			}
			t := plot.Tick{Value: v}
			if decades < 1 || m == 1 || (decades <= 4 && (m == 2 || m == 5)) {
				t.Label = strconv.FormatFloat(v, 'g', 6, 64)
			}
			ts = append(ts, t)
		}
	}
	return ts
}

// niceTicks labels 4 to 10 ticks at 1, 2 or 5 times a power of ten, with
// unlabelled ticks between.
type niceTicks struct{}

func (niceTicks) Ticks(lo, hi float64) []plot.Tick {
	if !(hi > lo) || math.IsInf(hi-lo, 0) {
		return []plot.Tick{{Value: lo, Label: strconv.FormatFloat(lo, 'g', 6, 64)}}
	}
	raw := (hi - lo) / 6
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	step := mag
	for _, m := range []float64{1, 2, 5, 10} {
		if step = m * mag; step >= raw {
			break
		}
	}
	var ts []plot.Tick
	minor := step / 2
	for v := math.Ceil(lo/minor) * minor; v <= hi+minor*1e-9; v += minor {
		t := plot.Tick{Value: v}
		if k := v / step; math.Abs(k-math.Round(k)) < 1e-6 {
			if math.Abs(v) < step*1e-9 {
				v = 0
			}
			t.Label = strconv.FormatFloat(v, 'g', 6, 64)
		}
		ts = append(ts, t)
	}
	return ts
}
