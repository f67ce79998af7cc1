package export

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/rankhub/rankhub/jobs"
	"github.com/rankhub/rankhub/results"
)

const jobText = `[job]
name = "ising"
ranks = 3
seed = 3

[task]
command = "./ising --L {L} --T {T} --model {model} --seed {seed}"
outputs = ["energy", "mag"]

[sweep]
L = [8, 16]
T = [1.5, 2.5]
model = ["a\tb"]
replicates = 5
`

// writeFile writes tasks [from, to) of jobText with known outputs: energy
// -2 + i/1000, mag i%3 (missing for i%10 == 9); task 7 fails.
func writeFile(t testing.TB, dir, name string, from, to int) string {
	t.Helper()
	job, err := jobs.Parse("ising.toml", []byte(jobText))
	if err != nil {
		t.Fatal(err)
	}
	prov, _ := results.NewProvenance(job)
	path := filepath.Join(dir, name)
	w, err := results.Create(path, job, prov, results.FlushInterval(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	for i := from; i < to; i++ {
		task := job.TaskAt(i % job.NumTasks())
		row := results.Row{Task: i, Values: task.Values, Replicate: task.Replicate, Seed: uint64(i),
			Rank: 1, Host: "n1", Started: time.Unix(1700000000, int64(i)*1000).UTC(), Finished: time.Unix(1700000001, 0).UTC(),
			Attempt: 1, Outputs: []float64{-2 + float64(i)/1000, float64(i % 3)}}
		if i%10 == 9 {
			row.Outputs[1] = math.NaN()
		}
		if i == 7 {
			row.ExitStatus, row.Err, row.Outputs = 2, "line one\nline\ttwo", nil
		}
		if err := w.Write(row); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close("completed"); err != nil {
		t.Fatal(err)
	}
	return path
}

func open(t testing.TB, paths ...string) []*results.Reader {
	t.Helper()
	var rs []*results.Reader
	for _, p := range paths {
		r, err := results.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close() })
		rs = append(rs, r)
	}
	return rs
}

func TestTSV(t *testing.T) {
	rs := open(t, writeFile(t, t.TempDir(), "a.arrow", 0, 20))
	var b bytes.Buffer
	if err := Write(&b, rs, TSV, nil); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	head := strings.Split(strings.TrimPrefix(lines[0], "# "), "\t")
	if !strings.HasPrefix(lines[0], "# task\tL\tT\tmodel\treplicate\tseed\t") || head[len(head)-1] != "mag" {
		t.Fatalf("header %q", lines[0])
	}
	if len(lines) != 21 {
		t.Fatalf("%d lines, want header + 20", len(lines))
	}
	col := func(name string) int {
		for i, h := range head {
			if h == name {
				return i
			}
		}
		t.Fatalf("no column %s", name)
		return -1
	}
	for i, l := range lines[1:] {
		f := strings.Split(l, "\t")
		if len(f) != len(head) {
			t.Fatalf("line %d: %d fields, header %d: %q", i, len(f), len(head), l)
		}
		if f[col("model")] != `a\tb` {
			t.Fatalf("line %d: model %q, want the tab escaped", i, f[col("model")])
		}
		mag := f[col("mag")]
		switch {
		case i == 7:
			if f[col("energy")] != "NaN" || f[col("error")] != `line one\nline\ttwo` {
				t.Fatalf("failed row: %q", l)
			}
		case i%10 == 9:
			if mag != "NaN" {
				t.Fatalf("line %d: missing mag is %q", i, mag)
			}
		default:
			if e, _ := strconv.ParseFloat(f[col("energy")], 64); e != -2+float64(i)/1000 || mag != strconv.Itoa(i%3) || f[col("error")] != "-" {
				t.Fatalf("line %d: %q", i, l)
			}
		}
	}
	b.Reset()
	if err := Write(&b, rs, TSV, []string{"T", "energy"}); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(b.String(), "# T\tenergy\n1.5\t-2\n") {
		t.Fatalf("--columns T,energy:\n%s", b.String())
	}
	if err := Write(&b, rs, TSV, []string{"nope"}); err == nil || !strings.Contains(err.Error(), "the columns are task, L") {
		t.Fatalf("unknown column: %v", err)
	}
}

func TestCSVAndJSON(t *testing.T) {
	rs := open(t, writeFile(t, t.TempDir(), "a.arrow", 0, 12))
	var b bytes.Buffer
	if err := Write(&b, rs, CSV, nil); err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(&b).ReadAll()
	if err != nil || len(recs) != 13 || recs[0][0] != "task" || recs[8][len(recs[8])-1] != "" || recs[10][len(recs[10])-1] != "" {
		t.Fatalf("csv: %v %q", err, recs)
	}
	b.Reset()
	if err := Write(&b, rs, JSON, nil); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 12 {
		t.Fatalf("%d JSON lines", len(lines))
	}
	var row map[string]any
	if err := json.Unmarshal([]byte(lines[9]), &row); err != nil {
		t.Fatal(err)
	}
	if row["mag"] != nil || row["energy"] != -2+9.0/1000 || row["model"] != "a\tb" || row["started"] != "2023-11-14T22:13:20.000009Z" || row["seed"] != 9.0 {
		t.Fatalf("row 9: %v", row)
	}
	if err := json.Unmarshal([]byte(lines[7]), &row); err != nil || row["error"] != "line one\nline\ttwo" || row["energy"] != nil {
		t.Fatalf("row 7 (failed): %v %v", err, row)
	}
	for _, s := range []string{"plain", "quote \" back \\ ctl \x01 nl \n", "ünï \u2028 \xff"} {
		var got string
		if err := json.Unmarshal(appendJSONString(nil, s), &got); err != nil || got != strings.ToValidUTF8(s, "\ufffd") {
			t.Errorf("appendJSONString(%q) = %s: %v %q", s, appendJSONString(nil, s), err, got)
		}
	}
}

// readParquet reads a Parquet file with arrow-go's reader.
func readParquet(t *testing.T, path string) (rows int64, energy []float64) {
	t.Helper()
	pf, err := file.OpenParquetFile(path, false)
	if err != nil {
		t.Fatal(err)
	}
	defer pf.Close()
	fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{}, memory.DefaultAllocator)
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := fr.ReadTable(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer tbl.Release()
	if v := pf.MetaData().KeyValueMetadata().FindValue(results.KeyJob); v == nil || *v != jobText {
		t.Fatal("the Parquet file's key-value metadata lost rankhub.job")
	}
	col := tbl.Column(tbl.Schema().FieldIndices("energy")[0])
	for _, c := range col.Data().Chunks() {
		a := c.(*array.Float64)
		for i := 0; i < a.Len(); i++ {
			energy = append(energy, a.Value(i))
		}
	}
	return tbl.NumRows(), energy
}

// Parquet: arrow-go reads it back; DuckDB's read_parquet gives the same
// groups as peek.
func TestParquetDuckDB(t *testing.T) {
	dir := t.TempDir()
	rs := open(t, writeFile(t, dir, "a.arrow", 0, 20), writeFile(t, dir, "b.arrow", 20, 40))
	path := filepath.Join(dir, "all.parquet")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := Write(f, rs, Parquet, nil); err != nil {
		t.Fatal(err)
	}
	f.Close()
	n, energy := readParquet(t, path)
	if n != 40 || energy[39] != -2+39.0/1000 {
		t.Fatalf("arrow-go reads %d rows from the Parquet file, want 40 (energy %v)", n, energy)
	}

	node, err := exec.LookPath("node")
	script, _ := filepath.Abs(filepath.Join("..", "jsreaders", "duck.mjs"))
	_, derr := os.Stat(filepath.Join("..", "jsreaders", "node_modules", "@duckdb", "node-api"))
	if err != nil || derr != nil {
		if os.Getenv("RANKHUB_REQUIRE_NODE") == "1" {
			t.Fatalf("RANKHUB_REQUIRE_NODE=1 but node (%v) or @duckdb/node-api (%v) is missing", err, derr)
		}
		t.Skip("SKIPPING DuckDB check: node or results/jsreaders/node_modules missing (run `make jsreaders`)")
	}
	var out, stderr bytes.Buffer
	cmd := exec.Command(node, script, path, "L,T", "energy,mag")
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("node duck.mjs: %v\n%s", err, stderr.String())
	}
	var got struct {
		Rows   int
		Groups []map[string]any
	}
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatalf("duck.mjs: %v\n%s", err, out.String())
	}
	s, err := results.PeekFiles(rs, []string{"L", "T"})
	if err != nil {
		t.Fatal(err)
	}
	if got.Rows != 40 || len(got.Groups) != len(s.Groups) {
		t.Fatalf("DuckDB: %d rows, %d groups; peek %d rows, %d groups", got.Rows, len(got.Groups), s.Rows, len(s.Groups))
	}
	num := func(v any) float64 {
		f, _ := strconv.ParseFloat(fmt.Sprint(v), 64)
		return f
	}
	for i, g := range s.Groups {
		d := got.Groups[i]
		if num(d["L"]) != float64(g.Key[0].(int64)) || num(d["T"]) != g.Key[1].(float64) || int(num(d["rows"])) != g.Rows {
			t.Fatalf("group %d: DuckDB %v, peek %v rows %d", i, d, g.Key, g.Rows)
		}
		for k, o := range s.Outputs {
			st := g.Stats[k]
			// DuckDB's avg skips nulls; peek also skips failed rows,
			// whose outputs are null in the file.
			if int(num(d[o+"_n"])) != st.N || math.Abs(num(d[o+"_mean"])-st.Mean) > 1e-12 {
				t.Fatalf("group %v %s: DuckDB n=%v mean=%v, peek n=%d mean=%v", g.Key, o, d[o+"_n"], d[o+"_mean"], st.N, st.Mean)
			}
		}
	}
	t.Logf("DuckDB read_parquet GROUP BY L, T: %d groups equal to peek's", len(got.Groups))
}
