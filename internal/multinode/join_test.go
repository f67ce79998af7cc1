package multinode

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rankhub/rankhub/comm"
	"github.com/rankhub/rankhub/jobdir"
	"github.com/rankhub/rankhub/views"
)

// TestMultiJoin: a hub started on the host with --listen on the cluster's
// bridge address (10.231.0.254), and `submit engines.toml --join` on the 3
// nodes: an engine on each node joins across the namespaces with a new
// id; scancel takes them away and the hub's own engine serves on.
func TestMultiJoin(t *testing.T) {
	requireCluster(t)
	dir := t.TempDir()
	r := rh(t, dir, 60*time.Second, "start", "-n", "2", "--listen", "10.231.0.254")
	if r.code != 0 {
		t.Fatalf("rankhub start: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	hubDir := strings.TrimSpace(r.stdout)
	hubFile := filepath.Join(hubDir, "hub.json")
	ci, err := comm.ReadConnInfo(hubFile)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		rh(t, dir, 30*time.Second, "stop", hubDir)
		syscall.Kill(ci.PID, syscall.SIGKILL)
	})
	if !strings.HasPrefix(ci.TCP, "10.231.0.254:") {
		t.Fatalf("the hub advertises %s, want 10.231.0.254", ci.TCP)
	}
	c, err := views.Connect(hubFile)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	p := filepath.Join(dir, "engines.toml")
	os.WriteFile(p, []byte("[job]\nname = \"engines\"\nscheduler = \"slurm\"\nranks = 3\nranks_per_node = 1\nwalltime = \"5m\"\n"), 0o644)
	r = rh(t, dir, 30*time.Second, "submit", p, "--join", hubDir)
	m := jobDirRE.FindStringSubmatch(r.stderr + r.stdout)
	if r.code != 0 || m == nil {
		t.Fatalf("rankhub submit --join: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	id, jobDir := m[1], strings.TrimSpace(m[2])
	t.Cleanup(func() { _ = slurmCmd("scancel", id).Run() })
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if err := c.WaitForEngines(ctx, 4); err != nil {
		t.Fatalf("the engines on the nodes did not join: %v\n%s", err, slurmOut(t, jobDir, id))
	}
	var hosts []string
	for _, e := range c.Engines() {
		if e.ID > 0 && !e.Dead {
			hosts = append(hosts, e.Host)
		}
	}
	slices.Sort(hosts)
	if !slices.Equal(hosts, []string{"n1", "n2", "n3"}) {
		t.Fatalf("joined engines on %v, want n1 n2 n3", hosts)
	}
	dv, err := c.View(1, 2, 3)
	if err != nil {
		t.Fatal(err)
	}
	xr, err := dv.Execute("hostname")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := xr.Get(30 * time.Second); err != nil {
		t.Fatalf("execute on the joined engines: %v", err)
	}
	if out := views.FormatOutputs(xr); !strings.Contains(out, "n3") {
		t.Errorf("hostname on the joined engines:\n%s", out)
	}
	if out, err := slurmCmd("scancel", id).CombinedOutput(); err != nil {
		t.Fatalf("scancel: %v %s", err, out)
	}
	deadline := time.Now().Add(40 * time.Second)
	for !slices.Equal(c.IDs(), []int{0}) && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if ids := c.IDs(); !slices.Equal(ids, []int{0}) {
		t.Fatalf("after scancel: engines %v, want [0]", ids)
	}
	if _, err := c.DirectView(); err != nil {
		t.Fatal(err)
	}
	one, _ := c.View(0)
	if xr, err := one.Execute("true"); err != nil {
		t.Fatal(err)
	} else if _, err := xr.Get(30 * time.Second); err != nil {
		t.Fatalf("the hub's own engine after scancel: %v", err)
	}
	waitEnded(t, id, 60*time.Second)
	var st jobdir.Status
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		if st, err = (jobdir.Dir{Path: jobDir}).ReadStatus(); err == nil {
			break
		}
	}
	if err != nil || len(st.Attempts) == 0 || st.Attempts[len(st.Attempts)-1].Outcome != jobdir.Terminated {
		t.Errorf("status.json of the engines job: %+v, %v", st, err)
	}
}
