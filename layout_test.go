package rankhub_test

import (
	"encoding/json"
	"io"
	"os/exec"
	"strings"
	"testing"
)

// allowed is DESIGN.md's layout: which rankhub packages each may import.
// Imports point down only; a package may always import its own subpackages.
var allowed = map[string][]string{
	"jobs":       {},
	"comm":       {},
	"internal":   {"jobs"},
	"slurm":      {"jobs", "internal"},
	"pbs":        {"jobs", "internal"},
	"jobdir":     {"jobs"},
	"launcher":   {"jobs", "jobdir", "slurm", "pbs", "comm"},
	"collective": {"comm"},
	"views":      {"collective", "comm"},
	"results":    {"jobs", "internal"},
	"sweep":      {"jobs", "jobdir", "results", "views", "collective", "comm"},
	// The root package is the program entry: it ties the launcher's
	// bootstrap to the views' hub and engine and runs the sweep driver.
	"":           {"jobs", "jobdir", "comm", "launcher", "collective", "views", "results", "sweep", "internal"},
	"examples":   {"", "jobs", "comm", "collective", "views", "results"},
	"benchmarks": {"*"},
	"cmd":        {"*"},
}

// cliOnly are packages that only the CLI may import: they link large
// libraries (gonum/plot and its fonts, the Parquet writer) that rank
// binaries must not carry.
var cliOnly = []string{"results/plot", "results/export"}

const module = "github.com/rankhub/rankhub"

func top(path string) string {
	rel := strings.TrimPrefix(strings.TrimPrefix(path, module), "/")
	top, _, _ := strings.Cut(rel, "/")
	return top
}

func TestImportDirection(t *testing.T) {
	out, err := exec.Command("go", "list", "-json", "./...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for {
		var p struct {
			ImportPath string
			Imports    []string
		}
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		from := top(p.ImportPath)
		ok, known := allowed[from]
		if !known {
			t.Errorf("package %s is in no folder of the layout (add it to DESIGN.md's table and to this test)", p.ImportPath)
			continue
		}
		for _, imp := range p.Imports {
			if imp != module && !strings.HasPrefix(imp, module+"/") {
				continue
			}
			for _, c := range cliOnly {
				if imp == module+"/"+c && from != "cmd" && !strings.HasPrefix(p.ImportPath, module+"/"+c) {
					t.Errorf("%s imports %s, which only cmd may import", p.ImportPath, imp)
				}
			}
			to := top(imp)
			if to == from {
				continue
			}
			permitted := false
			for _, a := range ok {
				if a == "*" || a == to {
					permitted = true
				}
			}
			if !permitted {
				t.Errorf("%s imports %s: %q may import only %v", p.ImportPath, imp, from, ok)
			}
		}
	}
}

// Rank binaries do not link plotting or Parquet.
func TestRankBinaryLinksNoPlotting(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "./examples/hello").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		if strings.HasPrefix(dep, "gonum.org/v1/plot") || strings.Contains(dep, "arrow-go/v18/parquet") {
			t.Errorf("examples/hello links %s", dep)
		}
	}
}
