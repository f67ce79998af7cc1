package plot

import (
	"encoding/xml"
	"io"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rankhub/rankhub/jobs"
	"github.com/rankhub/rankhub/results"
)

const jobText = `[job]
name = "ising"
ranks = 3
seed = 7
[task]
command = "./ising --L {L} --T {T} --seed {seed}"
outputs = ["energy", "mag"]
[sweep]
L = [16, 32]
T = [2.0, 2.25, 2.5, 3.0]
replicates = 4
`

// summary writes the first n of the job's 32 tasks (closed only when all
// are written) and peeks by L, T.
func summary(t *testing.T, n int) (*results.Summary, int) {
	t.Helper()
	job, err := jobs.Parse("ising.toml", []byte(jobText))
	if err != nil {
		t.Fatal(err)
	}
	prov, _ := results.NewProvenance(job)
	path := filepath.Join(t.TempDir(), "r.arrow")
	w, err := results.Create(path, job, prov, results.FlushRows(5), results.FlushInterval(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		task := job.TaskAt(i)
		L, T := float64(task.Values[0].Int), task.Values[1].Float
		row := results.Row{Task: i, Values: task.Values, Replicate: task.Replicate, Seed: task.Seed, Rank: 1, Host: "h",
			Started: time.Unix(0, 0), Finished: time.Unix(1, 0), Attempt: 1,
			Outputs: []float64{-L * (3 - T) * (1 + 0.01*float64(task.Replicate)), math.Exp(-T) * (1 + 0.02*float64(task.Replicate))}}
		if i == 5 { // one point of L=16 rests on 3 values
			row.ExitStatus, row.Err, row.Outputs = 1, "boom", nil
		}
		if err := w.Write(row); err != nil {
			t.Fatal(err)
		}
	}
	if n == job.NumTasks() {
		if err := w.Close("completed"); err != nil {
			t.Fatal(err)
		}
	} else {
		w.Flush()
		t.Cleanup(func() { w.Close("completed") })
	}
	r, err := results.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	s, err := results.Peek(r, []string{"L", "T"})
	if err != nil {
		t.Fatal(err)
	}
	return s, r.Provenance().Tasks
}

type svgText struct {
	text string
	x    float64 // from the transform's translation
}

// svgStats parses an SVG with encoding/xml and returns its texts and the
// distinct stroke colours of its paths.
func svgStats(t *testing.T, path string) (texts []svgText, strokes map[string]int) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dec := xml.NewDecoder(f)
	strokes = map[string]int{}
	var cur *svgText
	translate := regexp.MustCompile(`translate\(([-0-9.e]+)`)
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("%s is not well-formed XML: %v", path, err)
		}
		switch el := tok.(type) {
		case xml.StartElement:
			cur = nil
			if el.Name.Local == "text" {
				cur = &svgText{x: math.NaN()}
				for _, a := range el.Attr {
					if a.Name.Local == "x" {
						cur.x, _ = strconv.ParseFloat(a.Value, 64)
					}
					if m := translate.FindStringSubmatch(a.Value); a.Name.Local == "transform" && m != nil {
						cur.x, _ = strconv.ParseFloat(m[1], 64)
					}
				}
			}
			if el.Name.Local == "path" {
				for _, a := range el.Attr {
					if a.Name.Local == "style" {
						for _, part := range strings.Split(a.Value, ";") {
							if s, ok := strings.CutPrefix(part, "stroke:"); ok && s != "none" {
								strokes[s]++
							}
						}
					}
				}
			}
		case xml.CharData:
			if cur != nil {
				texts = append(texts, svgText{text: string(el), x: cur.x})
			}
		case xml.EndElement:
			cur = nil
		}
	}
	return texts, strokes
}

func find(texts []svgText, s string) []svgText {
	var out []svgText
	for _, x := range texts {
		if x.text == s {
			out = append(out, x)
		}
	}
	return out
}

func TestPlot(t *testing.T) {
	s, _ := summary(t, 32)
	dir := t.TempDir()
	svg := filepath.Join(dir, "energy.svg")
	if err := SVG(s, Options{X: "T", Y: "energy", Series: []string{"L"}}, svg); err != nil {
		t.Fatal(err)
	}
	texts, strokes := svgStats(t, svg)
	for _, want := range []string{"L=16", "L=32", "T", "energy (mean ± sem)", "marker area ∝ n (max 4)"} {
		if len(find(texts, want)) != 1 {
			t.Errorf("text %q appears %d times; texts %v", want, len(find(texts, want)), texts)
		}
	}
	// Every T swept is a labelled tick.
	maxTick := 0.0
	for _, v := range []string{"2", "2.25", "2.5", "3"} {
		if len(find(texts, v)) == 0 {
			t.Errorf("no x tick labelled %s; texts %v", v, texts)
		}
		for _, x := range find(texts, v) {
			maxTick = max(maxTick, x.x)
		}
	}
	// The legend is right of the data: right of the last x tick.
	for _, e := range []string{"L=16", "L=32"} {
		if l := find(texts, e); len(l) == 1 && !(l[0].x > maxTick+10) {
			t.Errorf("legend entry %s at x=%v, not right of the data (last tick at %v)", e, l[0].x, maxTick)
		}
	}
	colours := 0
	for c := range strokes {
		if c != "#000000" && c != "#808080" { // axes and grid
			colours++
		}
	}
	if colours != 2 {
		t.Errorf("%d series colours, want 2: %v", colours, strokes)
	}
	if len(find(texts, "partial: 32 of 32 rows")) != 0 {
		t.Error("a complete file is called partial")
	}
	for _, bad := range []Options{{X: "T", Y: "nope"}, {X: "L", Y: "energy", Series: []string{"L"}}, {X: "T", Y: "energy", Series: []string{"replicate"}}} {
		if err := SVG(s, bad, filepath.Join(dir, "bad.svg")); err == nil {
			t.Errorf("SVG(%+v) succeeded", bad)
		}
	}
}

// A plot of a partial file says so; log axes work and refuse values <= 0.
func TestPlotPartialAndLog(t *testing.T) {
	s, tasks := summary(t, 21)
	dir := t.TempDir()
	svg := filepath.Join(dir, "mag.svg")
	note := PartialNote(s, tasks)
	if note != "partial: 21 of 32 rows" {
		t.Fatalf("PartialNote = %q", note)
	}
	if err := SVG(s, Options{X: "T", Y: "mag", Series: []string{"L"}, LogY: true, LogX: true, Note: note}, svg); err != nil {
		t.Fatal(err)
	}
	texts, _ := svgStats(t, svg)
	if len(find(texts, note)) != 1 {
		t.Errorf("no %q in %v", note, texts)
	}
	if err := SVG(s, Options{X: "T", Y: "energy", LogY: true}, filepath.Join(dir, "bad.svg")); err == nil || !strings.Contains(err.Error(), "log y axis") {
		t.Errorf("log y of negative energies: %v", err)
	}
}

// Many x values: round-number ticks, not one per value.
func TestNiceTicks(t *testing.T) {
	ts := niceTicks{}.Ticks(0.13, 9.7)
	var labels []string
	for _, tk := range ts {
		if tk.Label != "" {
			labels = append(labels, tk.Label)
		}
	}
	if strings.Join(labels, " ") != "2 4 6 8" {
		t.Fatalf("labels %v", labels)
	}
	if l := xTicks([]float64{1, 2, 3}, false).Ticks(1, 3); len(l) != 3 || l[1].Label != "2" {
		t.Fatalf("few x values: %v", l)
	}
	labels = nil
	for _, tk := range (logTicks{}).Ticks(0.045, 0.14) {
		if tk.Label != "" {
			labels = append(labels, tk.Label)
		}
	}
	if strings.Join(labels, " ") != "0.05 0.06 0.07 0.08 0.09 0.1" {
		t.Fatalf("log ticks within a decade: %v", labels)
	}
}
