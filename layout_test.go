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

// pure are packages that must stay free of IO: a state machine driven by
// events, tested without sockets. They may import no rankhub package and
// none of these standard ones (no sockets, files, processes, locks or
// goroutine plumbing of their own).
var pure = map[string]bool{"views/internal/hubcore": true}

var impure = []string{"net", "os", "os/exec", "os/signal", "sync", "sync/atomic", "syscall", "io", "io/fs", "runtime", "context",
	"log", "github.com/rs/zerolog"}

// Inside views, imports point down too: the client API, hub IO and engine
// (views) sit on the hub core (views/internal/hubcore), never the reverse.
// TestImportDirection checks both with pure.

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
		if rel := strings.TrimPrefix(p.ImportPath, module+"/"); pure[rel] {
			for _, imp := range p.Imports {
				if imp == module || strings.HasPrefix(imp, module+"/") {
					t.Errorf("%s imports %s: a pure core imports no rankhub package", p.ImportPath, imp)
				}
				for _, bad := range impure {
					if imp == bad {
						t.Errorf("%s imports %s: a pure core does no IO, locking or goroutine plumbing", p.ImportPath, imp)
					}
				}
			}
		}
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
