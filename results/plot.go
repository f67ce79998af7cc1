package results

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// Plot size.
const (
	plotWidth  = 16 * vg.Centimeter
	plotHeight = 11 * vg.Centimeter
)

// Plot writes an SVG file at path showing the mean of output y against the
// grouping column x, with ± SEM error bars, one line per combination of the
// by columns, with a legend and axis labels. x must be a numeric column of
// s.By and by other columns of s.By; groups of s that differ only in
// columns outside x and by are pooled (their statistics merged exactly).
// Points with no values are left out; a point with fewer than 2 values has
// no error bar.
func Plot(s *Summary, x, y string, by []string, path string) error {
	xi := slices.Index(s.By, x)
	if xi < 0 {
		return fmt.Errorf("results: plot: x %q is not a grouping column of the summary (%s); peek with it in by", x, strings.Join(s.By, ", "))
	}
	yi := slices.Index(s.Outputs, y)
	if yi < 0 {
		return fmt.Errorf("results: plot: y %q is not an output; outputs: %s", y, strings.Join(s.Outputs, ", "))
	}
	byIdx := make([]int, len(by))
	for i, b := range by {
		j := slices.Index(s.By, b)
		switch {
		case b == x:
			return fmt.Errorf("results: plot: %q is both x and a series column", b)
		case j < 0:
			return fmt.Errorf("results: plot: series column %q is not a grouping column of the summary (%s)", b, strings.Join(s.By, ", "))
		case slices.Contains(by[:i], b):
			return fmt.Errorf("results: plot: series column %q given twice", b)
		}
		byIdx[i] = j
	}

	type point struct {
		x  float64
		st Stat
	}
	type series struct {
		key    []any
		points map[float64]*point
	}
	var all []*series
	index := map[string]*series{}
	for _, g := range s.Groups {
		xv, ok := numeric(g.Key[xi])
		if !ok {
			return fmt.Errorf("results: plot: x %q has non-numeric value %v", x, g.Key[xi])
		}
		key := make([]any, len(byIdx))
		for i, j := range byIdx {
			key[i] = g.Key[j]
		}
		ks := fmt.Sprintf("%#v", key)
		se := index[ks]
		if se == nil {
			se = &series{key: key, points: map[float64]*point{}}
			index[ks] = se
			all = append(all, se)
		}
		p := se.points[xv]
		if p == nil {
			p = &point{x: xv, st: newStat()}
			se.points[xv] = p
		}
		p.st.merge(g.Stats[yi])
	}
	slices.SortFunc(all, func(a, b *series) int { return compareKeys(a.key, b.key) })

	p := plot.New()
	p.Title.Text = y + " vs " + x
	p.X.Label.Text = x
	p.Y.Label.Text = y + " (mean ± sem)"
	p.Legend.Top = true
	p.Add(plotter.NewGrid())
	for i, se := range all {
		var pts plotutil.ErrorPoints
		xs := make([]float64, 0, len(se.points))
		for xv := range se.points {
			xs = append(xs, xv)
		}
		slices.Sort(xs)
		for _, xv := range xs {
			st := se.points[xv].st
			if st.N == 0 {
				continue
			}
			st.finish()
			e := st.SEM
			if math.IsNaN(e) {
				e = 0
			}
			pts.XYs = append(pts.XYs, plotter.XY{X: xv, Y: st.Mean})
			pts.YErrors = append(pts.YErrors, struct{ Low, High float64 }{Low: e, High: e})
		}
		if len(pts.XYs) == 0 {
			continue
		}
		line, scatter, err := plotter.NewLinePoints(pts.XYs)
		if err != nil {
			return fmt.Errorf("results: plot: %w", err)
		}
		c := plotutil.Color(i)
		line.Color, scatter.Color = c, c
		scatter.Shape = plotutil.Shape(i)
		bars, err := plotter.NewYErrorBars(&pts)
		if err != nil {
			return fmt.Errorf("results: plot: %w", err)
		}
		bars.Color = c
		p.Add(line, scatter, bars)
		p.Legend.Add(seriesName(by, se.key, y), line, scatter)
	}
	wt, err := p.WriterTo(plotWidth, plotHeight, "svg")
	if err != nil {
		return fmt.Errorf("results: plot: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("results: plot: %w", err)
	}
	if _, err := wt.WriteTo(tmp); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return fmt.Errorf("results: plot: write %s: %w", path, err)
	}
	if err := replace(tmp, path); err != nil {
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
		parts[i] = b + "=" + formatKey(key[i])
	}
	return strings.Join(parts, ", ")
}
