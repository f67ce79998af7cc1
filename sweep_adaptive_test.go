package rankhub_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rankhub/rankhub"
	"github.com/rankhub/rankhub/launcher"
	"github.com/rankhub/rankhub/results"
)

// y = x·u with u uniform on [0, 1): sd(y) = 0.289·x. With sem(y) ≤ 0.05,
// x = 0.5 needs ~9 replicates, x = 1 ~34, x = 4 ~535 (more than max).
func adaptiveJob(ms, max int) string {
	return fmt.Sprintf(`[job]
name = "adaptive"
ranks = 3
seed = 11

[task]
function = "tiny"
outputs = ["y", "u"]

[sweep]
x = [0.5, 1.0, 4.0]
ms = [%d]
replicates = { min = 8, max = %d, sem = { y = 0.05 } }

[results]
path = "out.arrow"
flush_rows = 8
flush_interval = "100ms"
`, ms, max)
}

// groupsOf checks every group's rows are replicates 0..n-1 once each and
// returns n by x.
func groupsOf(t *testing.T, path string) map[float64]int {
	t.Helper()
	r, err := results.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	reps := map[float64]map[int]bool{}
	for _, row := range r.Rows() {
		x := row.Values[0].Float
		if reps[x] == nil {
			reps[x] = map[int]bool{}
		}
		if reps[x][row.Replicate] {
			t.Fatalf("x=%v replicate %d twice", x, row.Replicate)
		}
		reps[x][row.Replicate] = true
	}
	n := map[float64]int{}
	for x, rs := range reps {
		for i := range len(rs) {
			if !rs[i] {
				t.Fatalf("x=%v: replicates %d rows but %d is missing", x, len(rs), i)
			}
		}
		n[x] = len(rs)
	}
	return n
}

func checkAdaptive(t *testing.T, n map[float64]int, max int) {
	t.Helper()
	if n[0.5] < 8 || n[0.5] > 40 || n[1] < 20 || n[1] > 90 || n[4] != max {
		t.Fatalf("replicates per group %v: want x=0.5 and x=1 converged (~9, ~34), x=4 at max %d", n, max)
	}
}

func TestSweepAdaptiveStopsPerGroup(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	dir := t.TempDir()
	if err := <-runSweepRanks(t, ctx, dir, adaptiveJob(0, 150), 3, nil); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "out.arrow")
	checkAdaptive(t, groupsOf(t, path), 150)
	// peek's view: why each group stopped, its SEM against the target.
	r, err := results.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	_, groups, err := results.Adaptive(r)
	if err != nil || len(groups) != 3 {
		t.Fatalf("adaptive report %+v, %v", groups, err)
	}
	for _, g := range groups {
		want := results.StopConverged
		if g.Key[0] == 4.0 {
			want = results.StopMax
		}
		if g.Stop != want || (want == results.StopConverged && !(g.SEM[0] <= 1.1*g.Target[0])) || g.Target[0] != 0.05 {
			t.Errorf("group %v: %+v, want %s", g.Key, g, want)
		}
	}
	var b strings.Builder
	if err := results.WriteAdaptive(&b, r); err != nil || !strings.Contains(b.String(), "sem(y) / 0.05") || !strings.Contains(b.String(), "converged") {
		t.Fatalf("table %v:\n%s", err, b.String())
	}
}

// TestSweepAdaptiveResumesAfterKilledHub: SIGKILL of the hub in the middle
// of an adaptive sweep, recover, --resume: the groups end as in one run,
// rows 0..n-1 each once.
func TestSweepAdaptiveResumesAfterKilledHub(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	dir := t.TempDir()
	job := adaptiveJob(3, 200)
	done := runSweepRanks(t, ctx, dir, job, 3, nil)
	waitRows(t, dir, 60, 30*time.Second)
	ci, err := os.ReadFile(filepath.Join(dir, launcher.ConnFile))
	if err != nil {
		t.Fatal(err)
	}
	i := strings.Index(string(ci), `"pid": `)
	hub, _ := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(ci[i+7:]), ",", 2)[0]))
	syscall.Kill(hub, syscall.SIGKILL)
	<-done
	path := filepath.Join(dir, "out.arrow")
	if _, err := results.Recover(path); err != nil {
		t.Fatal(err)
	}
	r, err := results.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	before := r.NumRows()
	_, groups, _ := results.Adaptive(r)
	r.Close()
	for _, g := range groups {
		if g.Key[0] == 4.0 && g.Stop != results.StopTime {
			t.Errorf("x=4 after the kill: %+v, want stopped by time", g)
		}
	}
	if before >= 8+20+200 {
		t.Fatalf("%d rows before the kill: the sweep was over", before)
	}
	os.Remove(filepath.Join(dir, launcher.ConnFile))
	if err := <-runSweepRanks(t, ctx, dir, job, 3, map[string]string{rankhub.EnvResume: "1"}); err != nil {
		t.Fatalf("resume: %v", err)
	}
	n := groupsOf(t, path)
	t.Logf("%d rows before the kill; after the resume %v", before, n)
	checkAdaptive(t, n, 200)
}
