package multinode

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// exactJob is the job text of testdata/exact on nodes x per ranks.
func exactJob(name string, nodes, per int, args ...string) string {
	prog := append([]string{filepath.Join(bin, "exact")}, args...)
	q := make([]string, len(prog))
	for i, a := range prog {
		q[i] = fmt.Sprintf("%q", a)
	}
	return fmt.Sprintf("[job]\nname = %q\nscheduler = \"slurm\"\nranks = %d\nranks_per_node = %d\nwalltime = \"5m\"\nnetwork = \"10.231.0.0/24\"\nprogram = [%s]\n",
		name, nodes*per, per, strings.Join(q, ", "))
}

var exactLine = regexp.MustCompile(`(?m)^(?:\[rank 0\] )?EXACT (\S+-f64-\d+) ([0-9a-f]+)$`)

// hashes are the EXACT lines of a run: the float64 reductions' hashes.
func hashes(t *testing.T, out string) map[string]string {
	t.Helper()
	h := map[string]string{}
	for _, m := range exactLine.FindAllStringSubmatch(out, -1) {
		h[m[1]] = m[2]
	}
	if len(h) == 0 {
		t.Fatalf("no EXACT hash lines in the output:\n%s", out)
	}
	return h
}

// exactOnOneNode runs testdata/exact as ranks processes on this machine
// (the local backend: one node, shared memory between all ranks).
func exactOnOneNode(t *testing.T, ranks int) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(bin, "rankhub"), "run", "-n", fmt.Sprint(ranks), "--", filepath.Join(bin, "exact"))
	cmd.Dir = t.TempDir()
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "EXACT OK") {
		t.Fatalf("rankhub run -n %d -- exact: %v\n%s", ranks, err, out)
	}
	return string(out)
}

// TestMultiExact: every collective and the views' push, pull, scatter and
// gather across the nodes in both layouts, integer results exact and
// float64 reductions bit for bit the documented order (the program checks
// both on every rank); the float64 results of 3 nodes x 2 ranks equal those
// of 6 ranks on one node, and 3 x 1 equals 3 on one node. The 3 x 1 job also
// broadcasts 2.1 GiB (beyond every 32-bit length) and checks every byte on
// every rank.
func TestMultiExact(t *testing.T) {
	requireCluster(t)
	for _, l := range []struct {
		nodes, per int
		args       []string
	}{{3, 1, []string{"-big"}}, {3, 2, nil}} {
		t.Run(fmt.Sprintf("%dx%d", l.nodes, l.per), func(t *testing.T) {
			dir := t.TempDir()
			name := fmt.Sprintf("exact%dx%d", l.nodes, l.per)
			id, jobDir := submit(t, dir, name, exactJob(name, l.nodes, l.per, l.args...))
			out := waitOK(t, dir, id, jobDir, "EXACT OK")
			if l.args != nil && !strings.Contains(out, "EXACT bcast of 2252341248 bytes checked on 3 ranks") {
				t.Errorf("no 2.1 GiB bcast in the output:\n%s", out)
			}
			multi := hashes(t, out)
			one := hashes(t, exactOnOneNode(t, l.nodes*l.per))
			for k, v := range one {
				if multi[k] != v {
					t.Errorf("%s: %d ranks as %dx%d gave %s, on one node %s: the reduction order depends on the layout", k, l.nodes*l.per, l.nodes, l.per, multi[k], v)
				}
			}
		})
	}
}
