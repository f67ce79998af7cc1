package results

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"math"
	"path/filepath"
	"strings"
	"testing"
)

// refStats computes the expected statistics of output k per (L, T) group
// directly from testRow, the two-pass way.
func refStats(n, k int) map[[2]float64][]float64 {
	vals := map[[2]float64][]float64{}
	for i := 0; i < n; i++ {
		r := testRow(i)
		key := [2]float64{float64(r.Values[0].Int), r.Values[1].Float}
		if _, ok := vals[key]; !ok {
			vals[key] = nil
		}
		if r.Failed() || math.IsNaN(r.Outputs[k]) {
			continue
		}
		vals[key] = append(vals[key], r.Outputs[k])
	}
	return vals
}

func TestPeek(t *testing.T) {
	const n = 72
	path := writeFile(t, t.TempDir(), n, 10)
	mem := checkedMem(t)
	r, err := Open(path, Allocator(mem))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()

	if _, err := Peek(r, []string{"L", "nope"}); err == nil || !strings.Contains(err.Error(), `"nope"`) || !strings.Contains(err.Error(), "available: task, L, T, model, fast, replicate, rank, host") {
		t.Fatalf("unknown column: %v", err)
	}
	if _, err := Peek(r, []string{"energy"}); err == nil {
		t.Fatal("grouping by an output accepted")
	}

	s, err := Peek(r, []string{"L", "T"})
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Groups) != 6 || s.Rows != n || !s.Complete || s.Status != "completed" {
		t.Fatalf("%d groups, %d rows, complete %v, status %q", len(s.Groups), s.Rows, s.Complete, s.Status)
	}
	for k := range s.Outputs {
		ref := refStats(n, k)
		for _, g := range s.Groups {
			key := [2]float64{float64(g.Key[0].(int64)), g.Key[1].(float64)}
			vs := ref[key]
			st := g.Stats[k]
			if st.N != len(vs) {
				t.Fatalf("%v %s: n %d, want %d", key, s.Outputs[k], st.N, len(vs))
			}
			var sum float64
			mn, mx := math.Inf(1), math.Inf(-1)
			for _, v := range vs {
				sum += v
				mn, mx = math.Min(mn, v), math.Max(mx, v)
			}
			mean := sum / float64(len(vs))
			var ss float64
			for _, v := range vs {
				ss += (v - mean) * (v - mean)
			}
			sem := math.Sqrt(ss/float64(len(vs)-1)) / math.Sqrt(float64(len(vs)))
			if math.Abs(st.Mean-mean) > 1e-12*math.Max(1, math.Abs(mean)) || math.Abs(st.SEM-sem) > 1e-12*math.Max(1, sem) || st.Min != mn || st.Max != mx {
				t.Fatalf("%v %s: got %+v, want mean %v sem %v min %v max %v", key, s.Outputs[k], st, mean, sem, mn, mx)
			}
		}
	}
	failed := 0
	for _, g := range s.Groups {
		failed += g.Failed
	}
	if failed != n/7 || s.Failed != n/7 {
		t.Fatalf("failed %d / %d, want %d", failed, s.Failed, n/7)
	}
	// Sorted numerically: L 16 before 32, T 2 < 2.5 < 3.
	var keys []string
	for _, g := range s.Groups {
		keys = append(keys, formatKey(g.Key[0])+"/"+formatKey(g.Key[1]))
	}
	if got := strings.Join(keys, " "); got != "16/2 16/2.5 16/3 32/2 32/2.5 32/3" {
		t.Fatalf("group order %s", got)
	}

	// Numbers sort numerically, not as text: rank 1..3 by host; task 0..71.
	s2, err := Peek(r, []string{"task"})
	if err != nil {
		t.Fatal(err)
	}
	for i, g := range s2.Groups {
		if g.Key[0].(int64) != int64(i) {
			t.Fatalf("task group %d has key %v", i, g.Key[0])
		}
		if g.Stats[0].N == 1 && !math.IsNaN(g.Stats[0].SEM) {
			t.Fatalf("sem of one value: %v", g.Stats[0].SEM)
		}
	}

	var tbl bytes.Buffer
	if err := s.WriteTable(&tbl); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(tbl.String(), "\n"), "\n")
	if len(lines) != 7 || !strings.Contains(lines[1], "±") {
		t.Fatalf("table:\n%s", tbl.String())
	}
	col := strings.Index(lines[0], "energy")
	for _, l := range lines[1:] {
		if r := []rune(l); len(r) <= col || r[col-1] != ' ' {
			t.Fatalf("table not aligned at the energy column:\n%s", tbl.String())
		}
	}

	var cb bytes.Buffer
	if err := s.WriteCSV(&cb); err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(&cb).ReadAll()
	if err != nil || len(recs) != 7 || len(recs[0]) != 2+2+2*5 || recs[0][4] != "energy_n" {
		t.Fatalf("csv %v %v", recs, err)
	}

	var jb bytes.Buffer
	if err := s2.WriteJSON(&jb); err != nil {
		t.Fatal(err)
	}
	var js struct {
		By     []string
		Groups []struct {
			Key   []any
			Stats map[string]struct {
				N    int
				Mean *float64
				SEM  *float64
			}
		}
	}
	if err := json.Unmarshal(jb.Bytes(), &js); err != nil {
		t.Fatal(err)
	}
	if len(js.Groups) != n || js.Groups[0].Stats["energy"].SEM != nil || js.Groups[0].Stats["energy"].Mean == nil {
		t.Fatalf("json: %s", jb.String()[:300])
	}
}

func TestStatMergeMatchesSequential(t *testing.T) {
	xs := []float64{3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5}
	for split := 0; split <= len(xs); split++ {
		a, b, all := newStat(), newStat(), newStat()
		for i, x := range xs {
			all.add(x)
			if i < split {
				a.add(x)
			} else {
				b.add(x)
			}
		}
		a.merge(b)
		a.finish()
		all.finish()
		if a.N != all.N || math.Abs(a.Mean-all.Mean) > 1e-12 || math.Abs(a.SEM-all.SEM) > 1e-12 || a.Min != all.Min || a.Max != all.Max {
			t.Fatalf("split %d: merged %+v, sequential %+v", split, a, all)
		}
	}
}

func TestPeekTornFile(t *testing.T) {
	path := writeFile(t, t.TempDir(), 40, 10)
	data := readAll(t, path)
	cut := filepath.Join(t.TempDir(), "cut.arrow")
	if err := writeBytes(cut, data[:len(data)-300]); err != nil {
		t.Fatal(err)
	}
	r, err := Open(cut)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	s, err := Peek(r, nil)
	if err != nil {
		t.Fatal(err)
	}
	if s.Complete || s.Rows != r.NumRows() || len(s.Groups) != 1 || s.Rows == 0 {
		t.Fatalf("%+v", s)
	}
}
