package results

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// jsNode returns the node binary for the scripts in results/jsreaders, and
// skips the test when node or their packages are missing (fails instead
// when RANKHUB_REQUIRE_NODE=1).
func jsNode(t *testing.T) string {
	t.Helper()
	skip := func(why string) {
		if os.Getenv("RANKHUB_REQUIRE_NODE") == "1" {
			t.Fatalf("RANKHUB_REQUIRE_NODE=1 but %s", why)
		}
		t.Skipf("SKIPPING foreign-reader check: %s (run `make jsreaders`)", why)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		skip("node is not on PATH")
	}
	for _, dep := range []string{"apache-arrow", "@duckdb/node-api"} {
		if _, err := os.Stat(filepath.Join("jsreaders", "node_modules", dep)); err != nil {
			skip("jsreaders/node_modules/" + dep + " is missing")
		}
	}
	return node
}

// TestForeignReaders reads a result file with Arrow JS and DuckDB through
// results/jsreaders/check.mjs and compares with our own reading and Peek.
// It skips when node or node_modules are missing, and fails instead when
// RANKHUB_REQUIRE_NODE=1.
func TestForeignReaders(t *testing.T) {
	node := jsNode(t)
	script, _ := filepath.Abs(filepath.Join("jsreaders", "check.mjs"))

	const n = 60
	path := writeFile(t, t.TempDir(), n, 16)
	var out, stderr bytes.Buffer
	cmd := exec.Command(node, script, path, "L,T")
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("node check.mjs: %v\n%s", err, stderr.String())
	}
	var got struct {
		Arrow struct {
			Rows    int
			Columns []struct {
				Name, Type string
				Nullable   bool
			}
			Metadata map[string]string
			Batches  []int
		}
		DuckDB struct {
			Rows         int
			FirstStarted string `json:"first_started"`
			Outputs      []string
			Groups       []map[string]any
		}
	}
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatalf("check.mjs output: %v\n%s", err, out.String())
	}

	r, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if got.Arrow.Rows != n || got.DuckDB.Rows != n {
		t.Fatalf("rows: Arrow JS %d, DuckDB %d, want %d", got.Arrow.Rows, got.DuckDB.Rows, n)
	}
	fields := r.Schema().Fields()
	if len(got.Arrow.Columns) != len(fields) {
		t.Fatalf("Arrow JS sees %d columns, want %d", len(got.Arrow.Columns), len(fields))
	}
	jsType := map[string]string{
		"int64": "Int64", "uint64": "Uint64", "int32": "Int32", "float64": "Float64",
		"utf8": "Utf8", "bool": "Bool", "timestamp[us, tz=UTC]": "Timestamp<MICROSECOND, UTC>",
	}
	for i, c := range got.Arrow.Columns {
		f := fields[i]
		if c.Name != f.Name || c.Type != jsType[f.Type.String()] || c.Nullable != f.Nullable {
			t.Errorf("column %d: Arrow JS %s %s nullable=%v, want %s %s nullable=%v", i, c.Name, c.Type, c.Nullable, f.Name, jsType[f.Type.String()], f.Nullable)
		}
	}
	md := r.Schema().Metadata()
	if len(got.Arrow.Metadata) != md.Len() {
		t.Errorf("Arrow JS sees %d rankhub.* metadata keys, want %d", len(got.Arrow.Metadata), md.Len())
	}
	for i, k := range md.Keys() {
		if got.Arrow.Metadata[k] != md.Values()[i] {
			t.Errorf("metadata %s: Arrow JS %q, want %q", k, got.Arrow.Metadata[k], md.Values()[i])
		}
	}
	if got.Arrow.Metadata[KeyJob] != testJobText {
		t.Errorf("job text through Arrow JS: %q", got.Arrow.Metadata[KeyJob])
	}
	// Timestamps survive as microseconds: the earliest start is task 0's.
	first, err := time.Parse("2006-01-02 15:04:05-07", strings.TrimSuffix(got.DuckDB.FirstStarted, ":00"))
	if err != nil || !first.Equal(testRow(0).Started) {
		t.Errorf("DuckDB min(started) = %q (%v), want %v", got.DuckDB.FirstStarted, err, testRow(0).Started)
	}

	s, err := Peek(r, []string{"L", "T"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got.DuckDB.Groups) != len(s.Groups) {
		t.Fatalf("DuckDB %d groups, Peek %d", len(got.DuckDB.Groups), len(s.Groups))
	}
	num := func(v any) float64 {
		switch v := v.(type) {
		case float64:
			return v
		case string: // BIGINT comes as a string in row-object JSON
			var f float64
			if err := json.Unmarshal([]byte(v), &f); err == nil {
				return f
			}
		}
		return math.NaN()
	}
	for i, g := range s.Groups {
		dg := got.DuckDB.Groups[i]
		if num(dg["L"]) != float64(g.Key[0].(int64)) || num(dg["T"]) != g.Key[1].(float64) {
			t.Fatalf("group %d: DuckDB key %v %v, Peek %v", i, dg["L"], dg["T"], g.Key)
		}
		if int(num(dg["rows"])) != g.Rows {
			t.Errorf("group %v: DuckDB %v rows, Peek %d", g.Key, dg["rows"], g.Rows)
		}
		for k, o := range s.Outputs {
			st := g.Stats[k]
			dn, dm := num(dg[o+"_n"]), num(dg[o+"_mean"])
			if int(dn) != st.N || math.Abs(dm-st.Mean) > 1e-12*math.Max(1, math.Abs(st.Mean)) {
				t.Errorf("group %v %s: DuckDB n=%v mean=%v, Peek n=%d mean=%v", g.Key, o, dn, dm, st.N, st.Mean)
			}
		}
	}
}
