package results

import (
	"encoding/xml"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// svgStats parses an SVG with encoding/xml and returns its text contents
// and the distinct stroke colours of its paths.
func svgStats(t *testing.T, path string) (texts []string, strokes map[string]int) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dec := xml.NewDecoder(f)
	strokes = map[string]int{}
	inText := false
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
			inText = el.Name.Local == "text"
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
			if inText {
				texts = append(texts, string(el))
			}
		case xml.EndElement:
			inText = false
		}
	}
	return texts, strokes
}

func TestPlot(t *testing.T) {
	dir := t.TempDir()
	path := writeFile(t, dir, 48, 10)
	r, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	s, err := Peek(r, []string{"L", "T", "replicate"})
	if err != nil {
		t.Fatal(err)
	}

	svg := filepath.Join(dir, "energy.svg")
	if err := Plot(s, "T", "energy", []string{"L"}, svg); err != nil {
		t.Fatal(err)
	}
	texts, strokes := svgStats(t, svg)
	count := func(s string) int {
		n := 0
		for _, x := range texts {
			if x == s {
				n++
			}
		}
		return n
	}
	for _, want := range []string{"L=16", "L=32", "T", "energy (mean ± sem)"} {
		if count(want) != 1 {
			t.Errorf("text %q appears %d times; texts %q", want, count(want), texts)
		}
	}
	if count("L=64") != 0 {
		t.Error("legend entry for a series that does not exist")
	}
	// Two series: two plot colours besides the black axes and the grey grid.
	colours := 0
	for c := range strokes {
		if c != "#000000" && c != "#808080" { // axes and grid
			colours++
		}
	}
	if colours != 2 {
		t.Errorf("%d series colours, want 2: %v", colours, strokes)
	}

	// One series per (L, replicate) pair: 8 legend entries.
	svg2 := filepath.Join(dir, "by2.svg")
	if err := Plot(s, "T", "mag", []string{"L", "replicate"}, svg2); err != nil {
		t.Fatal(err)
	}
	texts, _ = svgStats(t, svg2)
	n := 0
	for _, x := range texts {
		if strings.HasPrefix(x, "L=") && strings.Contains(x, ", replicate=") {
			n++
		}
	}
	if n != 8 {
		t.Errorf("%d legend entries, want 8", n)
	}

	for _, bad := range []struct{ x, y string }{{"host", "energy"}, {"T", "nope"}, {"model", "energy"}} {
		if err := Plot(s, bad.x, bad.y, nil, filepath.Join(dir, "bad.svg")); err == nil {
			t.Errorf("Plot(x=%s, y=%s) succeeded", bad.x, bad.y)
		}
	}
}
