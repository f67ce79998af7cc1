package rankhub_test

import (
	"encoding/json"
	"fmt"
	"io"
	"os/exec"
	"slices"
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

// Inside views, imports point down too, along its seams: the client API
// (views) sits on the hub's IO (views/internal/hub: connections, outboxes,
// outside clients, the owner of the hub core, the task records), which
// sits on the engine (views/internal/engine: its
// connection to the hub, registry, Context, namespace, output capture),
// which sits on the protocol (views/internal/proto: engine↔hub frames,
// typed client↔hub messages) and the bulk path (views/internal/bulk: large
// arrays over the collective mesh); the protocol sits on the hub core's
// types (views/internal/hubcore) and the codec (views/internal/codec:
// values to bytes, Arrow without a copy, read-only received memory), the
// bulk path on the codec only. A package under views may import only the
// ones listed for it; one not listed is an error (add it here and to
// views/doc.go's overview). TestImportDirection checks it with pure.
var viewsAllowed = map[string][]string{
	"views":                  {"views/internal/hub", "views/internal/hubcore", "views/internal/engine", "views/internal/proto", "views/internal/bulk", "views/internal/codec"},
	"views/internal/hub":     {"views/internal/hubcore", "views/internal/engine", "views/internal/proto", "views/internal/bulk", "views/internal/codec"},
	"views/internal/bulk":    {"views/internal/codec"},
	"views/internal/engine":  {"views/internal/proto", "views/internal/bulk", "views/internal/codec"},
	"views/internal/proto":   {"views/internal/hubcore", "views/internal/codec"},
	"views/internal/hubcore": {},
	"views/internal/codec":   {},
}

// viewsImports returns the errors of one package's imports against
// viewsAllowed (none for a package outside views).
func viewsImports(path string, imports []string) []string {
	rel := strings.TrimPrefix(path, module+"/")
	if top(path) != "views" {
		return nil
	}
	ok, known := viewsAllowed[rel]
	if !known {
		return []string{fmt.Sprintf("package %s is in no layer of views (add it to viewsAllowed and views/doc.go)", path)}
	}
	var errs []string
	for _, imp := range imports {
		to, inside := strings.CutPrefix(imp, module+"/")
		if !inside || top(imp) != "views" || to == rel {
			continue
		}
		if !slices.Contains(ok, to) {
			errs = append(errs, fmt.Sprintf("%s imports %s: inside views, %q may import only %v", path, imp, rel, ok))
		}
	}
	return errs
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
		for _, e := range viewsImports(p.ImportPath, p.Imports) {
			t.Error(e)
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

// The views layers refuse an import that points up, and a package in no
// layer.
func TestViewsLayersRefuseUpwardImports(t *testing.T) {
	for _, c := range []struct {
		from    string
		imports []string
		want    string
	}{
		{"views/internal/codec", []string{module + "/views"}, `"views/internal/codec" may import only []`},
		{"views/internal/codec", []string{module + "/views/internal/proto"}, `"views/internal/codec" may import only []`},
		{"views/internal/proto", []string{module + "/views/internal/codec", module + "/views"}, `"views/internal/proto" may import only`},
		{"views/internal/proto", []string{module + "/views/internal/engine"}, `"views/internal/proto" may import only`},
		{"views/internal/engine", []string{module + "/views/internal/hubcore"}, `"views/internal/engine" may import only`},
		{"views/internal/engine", []string{module + "/views/internal/bulk", module + "/views"}, `"views/internal/engine" may import only`},
		{"views/internal/hubcore", []string{module + "/views/internal/codec"}, `may import only []`},
		{"views/internal/bulk", []string{module + "/views/internal/codec", module + "/views"}, `"views/internal/bulk" may import only`},
		{"views/internal/bulk", []string{module + "/views/internal/proto"}, `"views/internal/bulk" may import only`},
		{"views/internal/bulk", []string{module + "/views/internal/engine"}, `"views/internal/bulk" may import only`},
		{"views/internal/codec", []string{module + "/views/internal/bulk"}, `"views/internal/codec" may import only []`},
		{"views/internal/hub", []string{module + "/views/internal/proto", module + "/views"}, `"views/internal/hub" may import only`},
		{"views/internal/engine", []string{module + "/views/internal/hub"}, `"views/internal/engine" may import only`},
		{"views/internal/proto", []string{module + "/views/internal/hub"}, `"views/internal/proto" may import only`},
		{"views/internal/bulk", []string{module + "/views/internal/hub"}, `"views/internal/bulk" may import only`},
		{"views/internal/hubcore", []string{module + "/views/internal/hub"}, `may import only []`},
		{"views/internal/codec", []string{module + "/views/internal/hub"}, `"views/internal/codec" may import only []`},
		{"views/internal/unlisted", nil, "in no layer of views"},
	} {
		errs := viewsImports(module+"/"+c.from, c.imports)
		if len(errs) != 1 || !strings.Contains(errs[0], c.want) {
			t.Errorf("%s importing %v: %q, want one error saying %q", c.from, c.imports, errs, c.want)
		}
	}
	if errs := viewsImports(module+"/views", []string{module + "/views/internal/codec", module + "/comm"}); len(errs) != 0 {
		t.Errorf("views importing the codec: %q", errs)
	}
	down := []string{module + "/views/internal/engine", module + "/views/internal/proto", module + "/views/internal/bulk",
		module + "/views/internal/hubcore", module + "/views/internal/codec"}
	if errs := viewsImports(module+"/views", []string{module + "/views/internal/hub"}); len(errs) != 0 {
		t.Errorf("views importing the hub: %q", errs)
	}
	if errs := viewsImports(module+"/views/internal/hub", down); len(errs) != 0 {
		t.Errorf("the hub importing the layers below it: %q", errs)
	}
}
