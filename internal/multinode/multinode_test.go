package multinode

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/rankhub/rankhub/jobdir"
)

// conf is the emulated cluster's configuration (scripts/slurm-multi.sh).
const conf = "/etc/slurm-multi/slurm.conf"

var (
	bin     string // rankhub, hello and coll, built once
	root    string // the repository
	whyNot  string // why the cluster cannot be used; "" when it can
	require = os.Getenv("RANKHUB_REQUIRE_MULTINODE") == "1"
)

func TestMain(m *testing.M) {
	_, file, _, _ := runtime.Caller(0)
	root = filepath.Join(filepath.Dir(file), "..", "..")
	whyNot = clusterMissing()
	if whyNot == "" {
		dir, err := os.MkdirTemp("", "rankhub-multinode-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		bin = dir
		for name, pkg := range map[string]string{"rankhub": "./cmd/rankhub", "hello": "./examples/hello", "coll": "./internal/multinode/testdata/coll", "exact": "./internal/multinode/testdata/exact"} {
			cmd := exec.Command("go", "build", "-o", filepath.Join(dir, name), pkg)
			cmd.Dir = root
			if out, err := cmd.CombinedOutput(); err != nil {
				fmt.Fprintf(os.Stderr, "building %s: %v\n%s", pkg, err, out)
				os.Exit(1)
			}
		}
	}
	code := m.Run()
	if bin != "" {
		os.RemoveAll(bin)
	}
	os.Exit(code)
}

// clusterMissing says why the emulated cluster is not usable, or "".
func clusterMissing() string {
	if _, err := os.Stat(conf); err != nil {
		return "the emulated cluster is not up (scripts/slurm-local.sh up --nodes 3)"
	}
	out, err := slurmCmd("sinfo", "-h", "-N", "-o", "%N %T").CombinedOutput()
	if err != nil {
		return fmt.Sprintf("sinfo on the emulated cluster: %v: %s", err, out)
	}
	idle := 0
	for _, l := range strings.Split(string(out), "\n") {
		if f := strings.Fields(l); len(f) == 2 && (f[1] == "idle" || f[1] == "mixed") {
			idle++
		}
	}
	if idle < 3 {
		return fmt.Sprintf("fewer than 3 nodes up in the emulated cluster:\n%s", out)
	}
	return ""
}

func requireCluster(t *testing.T) {
	t.Helper()
	if whyNot == "" {
		return
	}
	if require {
		t.Fatalf("multi-node tier required (RANKHUB_REQUIRE_MULTINODE=1) but %s", whyNot)
	}
	t.Skipf("SKIPPING the multi-node tier: %s (set RANKHUB_REQUIRE_MULTINODE=1 to fail instead)", whyNot)
}

// slurmCmd is a SLURM command aimed at the emulated cluster.
func slurmCmd(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), "SLURM_CONF="+conf)
	return cmd
}

type result struct {
	stdout, stderr string
	code           int
}

// rh runs the rankhub binary in dir against the emulated cluster.
func rh(t *testing.T, dir string, timeout time.Duration, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(bin, "rankhub"), args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "SLURM_CONF="+conf)
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	err := cmd.Run()
	r := result{so.String(), se.String(), cmd.ProcessState.ExitCode()}
	if ctx.Err() != nil {
		t.Fatalf("rankhub %s: no answer within %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), timeout, r.stdout, r.stderr)
	}
	_ = err // the exit code says it
	return r
}

var jobDirRE = regexp.MustCompile(`slurm job (\d+), job directory (.+)`)

// submit writes the job text to dir/name.toml, submits it and returns the
// scheduler id and the job directory.
func submit(t *testing.T, dir, name, text string) (id, jobDir string) {
	t.Helper()
	p := filepath.Join(dir, name+".toml")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	r := rh(t, dir, 30*time.Second, "submit", p)
	m := jobDirRE.FindStringSubmatch(r.stderr + r.stdout)
	if r.code != 0 || m == nil {
		t.Fatalf("rankhub submit: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	id, jobDir = m[1], strings.TrimSpace(m[2])
	t.Cleanup(func() { _ = slurmCmd("scancel", id).Run() })
	return id, jobDir
}

// jobText is a 6-rank job on the 3 nodes, 2 ranks each.
func jobText(name, extra string) string {
	return fmt.Sprintf("[job]\nname = %q\nscheduler = \"slurm\"\nranks = 6\nranks_per_node = 2\nwalltime = \"5m\"\n%s", name, extra)
}

// schedInfo is what `scontrol show job` says of a job.
func schedInfo(t *testing.T, id string) map[string]string {
	t.Helper()
	out, err := slurmCmd("scontrol", "-o", "show", "job", id).Output()
	if err != nil {
		t.Fatalf("scontrol show job %s: %v", id, err)
	}
	info := map[string]string{}
	for _, f := range strings.Fields(string(out)) {
		if k, v, ok := strings.Cut(f, "="); ok {
			info[k] = v
		}
	}
	return info
}

// waitEnded polls until the job has left the running states.
func waitEnded(t *testing.T, id string, timeout time.Duration) map[string]string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		info := schedInfo(t, id)
		switch info["JobState"] {
		case "PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "REQUEUED", "RESIZING", "SUSPENDED":
		default:
			return info
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s still %s after %v", id, info["JobState"], timeout)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// waitOK waits for the job with `rankhub wait` and returns its SLURM
// output, failing the test unless it exited 0 with want in the output.
func waitOK(t *testing.T, dir, id, jobDir, want string) string {
	t.Helper()
	r := rh(t, dir, 120*time.Second, "wait", jobDir)
	out := slurmOut(t, jobDir, id)
	if r.code != 0 || !strings.Contains(out, want) {
		t.Fatalf("rankhub wait: exit %d\n%s%s\nslurm output:\n%s", r.code, r.stdout, r.stderr, out)
	}
	return out
}

func slurmOut(t *testing.T, jobDir, id string) string {
	b, _ := os.ReadFile(filepath.Join(jobDir, "slurm-"+id+".out"))
	return string(b)
}

// peek is `rankhub peek --format json` of a result file.
type peek struct {
	Rows     int    `json:"rows"`
	Failed   int    `json:"failed"`
	Complete bool   `json:"complete"`
	Status   string `json:"status"`
	Groups   []struct {
		Key  []any `json:"key"`
		Rows int   `json:"rows"`
	} `json:"groups"`
}

func peekFile(t *testing.T, dir, path string, by ...string) peek {
	t.Helper()
	args := []string{"peek", path, "--format", "json"}
	if len(by) > 0 {
		args = append(args, "--by", strings.Join(by, ","))
	}
	r := rh(t, dir, 30*time.Second, args...)
	var p peek
	if err := json.Unmarshal([]byte(r.stdout), &p); err != nil {
		t.Fatalf("rankhub peek %s: %v\n%s%s", path, err, r.stdout, r.stderr)
	}
	return p
}

// TestMultiHello: hello on 3 nodes × 2 ranks. Node n1, where the hub runs,
// is multi-homed with Debian's 127.0.1.1 for its name and a second
// interface on a network no other node reaches, listed first: the hub must
// advertise its address on the nodes' network, the one SLURM launched from.
func TestMultiHello(t *testing.T) {
	requireCluster(t)
	dir := t.TempDir()
	id, jobDir := submit(t, dir, "hello", jobText("hello", fmt.Sprintf("program = [%q]\n", filepath.Join(bin, "hello"))))
	out := waitOK(t, dir, id, jobDir, "")
	for _, want := range []string{"engine ids: [0 1 2 3 4]", "[stdout:4] hello from n3"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	for _, host := range []string{"n1", "n2", "n3"} {
		if !strings.Contains(out, " on "+host+"\n") {
			t.Errorf("no engine on %s:\n%s", host, out)
		}
	}
	// The hub's connection file (removed at the end) is not there to read;
	// its log says what it advertised.
	logb, _ := os.ReadFile(filepath.Join(jobDir, "rank-0.log.json"))
	if !strings.Contains(string(logb), `"tcp":"10.231.0.11:`) {
		t.Errorf("the hub on n1 did not advertise 10.231.0.11 (the nodes' network); its log:\n%s", logb)
	}
}

// TestMultiCollectives: an allreduce among 5 engines on 3 nodes (Unix
// sockets and arenas on a node, TCP across), push/pull, scatter/gather of
// 8 MiB, with the network named by job.network.
func TestMultiCollectives(t *testing.T) {
	requireCluster(t)
	dir := t.TempDir()
	id, jobDir := submit(t, dir, "coll", jobText("coll", fmt.Sprintf("program = [%q]\nnetwork = \"10.231.0.0/24\"\n", filepath.Join(bin, "coll"))))
	out := waitOK(t, dir, id, jobDir, "MULTI OK")
	if !strings.Contains(out, "hosts: [n1 n2 n2 n3 n3]") {
		t.Errorf("engines not spread over the 3 nodes:\n%s", out)
	}
}

// sweepText is a shell sweep of tasks tasks, each sleeping for sleep and
// printing its parameter and its node's number.
func sweepText(name string, tasks int, sleep string, extra string) string {
	return jobText(name, extra) + fmt.Sprintf(`
[task]
command = "sleep %s; echo {a} $(hostname | tr -d n)"
outputs = ["a2", "node"]

[sweep]
a = { start = 1, stop = %d, step = 1 }

[results]
path = "%s.arrow"
`, sleep, tasks, name)
}

// TestMultiShellSweep: a shell sweep over the 3 nodes writes every row,
// from engines on every node.
func TestMultiShellSweep(t *testing.T) {
	requireCluster(t)
	dir := t.TempDir()
	id, jobDir := submit(t, dir, "sweep", sweepText("sweep", 60, "0", ""))
	waitOK(t, dir, id, jobDir, "")
	p := peekFile(t, dir, filepath.Join(dir, "sweep.arrow"), "host")
	if p.Rows != 60 || p.Failed != 0 || !p.Complete {
		t.Fatalf("result file: %+v, want 60 rows, none failed, complete", p)
	}
	if len(p.Groups) != 3 {
		t.Errorf("rows came from %d hosts, want 3: %+v", len(p.Groups), p.Groups)
	}
}

// TestMultiNodeCrash: node n3 dies mid-sweep (its slurmd and its ranks,
// at once). The sweep finishes on n1 and n2 with every row, the step does
// not hang on the dead node's tasks, and SLURM does not rerun the job (the
// script says --no-requeue): a rerun used to find its own result file and
// fail.
func TestMultiNodeCrash(t *testing.T) {
	requireCluster(t)
	dir := t.TempDir()
	id, jobDir := submit(t, dir, "crash", sweepText("crash", 80, "0.25", ""))
	t.Cleanup(func() { nodeScript(t, "node-start", "n3") })
	// Kill n3 once the sweep runs there.
	res := filepath.Join(dir, "crash.arrow")
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, err := os.Stat(res); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the sweep did not start in 60 s:\n%s", slurmOut(t, jobDir, id))
		}
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(1500 * time.Millisecond)
	nodeScript(t, "node-kill", "n3")
	killed := time.Now()
	info := waitEnded(t, id, 90*time.Second)
	took := time.Since(killed)
	out := slurmOut(t, jobDir, id)
	t.Logf("job %s ended %s (reason %s, restarts %s) %.1f s after the node died", id, info["JobState"], info["Reason"], info["Restarts"], took.Seconds())
	if info["Restarts"] != "0" || info["Requeue"] != "0" {
		t.Errorf("job %s: Restarts=%s Requeue=%s, want no requeue\n%s", id, info["Restarts"], info["Requeue"], out)
	}
	p := peekFile(t, dir, res)
	if p.Rows != 80 || p.Failed != 0 {
		t.Errorf("result file after losing n3: %+v, want all 80 rows, none failed\nslurm output:\n%s", p, out)
	}
	if strings.Contains(out, "already exists") {
		t.Errorf("the job ran again and refused its own result file:\n%s", out)
	}
	// What happened, in the job's own record: every task ran, a node's
	// engines were lost (not "completed", not "failed").
	st, err := jobdir.Dir{Path: jobDir}.ReadStatus()
	if err != nil {
		t.Fatalf("status.json: %v", err)
	}
	if st.Outcome != jobdir.NodeLost || st.ExitStatus != jobdir.NodeLost.ExitCode() || len(st.Attempts) != 1 {
		t.Errorf("status.json after losing n3: %+v, want one attempt, outcome %s (exit %d)", st, jobdir.NodeLost, jobdir.NodeLost.ExitCode())
	}
}

// nodeScript runs scripts/slurm-multi.sh with args.
func nodeScript(t *testing.T, args ...string) {
	t.Helper()
	cmd := exec.Command("bash", append([]string{filepath.Join(root, "scripts", "slurm-multi.sh")}, args...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("slurm-multi.sh %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// pbsHello submits hello as a Torque job with the mpiexec starter through
// Slurm's wrappers (qsub with SLURM_CONF reaches the emulated cluster) and
// waits for it.
func pbsHello(t *testing.T, dir, name string) (string, string, result) {
	t.Helper()
	text := fmt.Sprintf(`[job]
name = %q
scheduler = "pbs"
pbs_dialect = "torque"
starter = "mpiexec"
ranks = 6
ranks_per_node = 2
walltime = "5m"
program = [%q]

[job.env]
OMPI_ALLOW_RUN_AS_ROOT = "1"
OMPI_ALLOW_RUN_AS_ROOT_CONFIRM = "1"
`, name, filepath.Join(bin, "hello"))
	p := filepath.Join(dir, name+".toml")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	r := rh(t, dir, 30*time.Second, "submit", p)
	m := regexp.MustCompile(`pbs job (\d+), job directory (.+)`).FindStringSubmatch(r.stderr + r.stdout)
	if r.code != 0 || m == nil {
		t.Fatalf("rankhub submit: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	id, jobDir := m[1], strings.TrimSpace(m[2])
	t.Cleanup(func() { _ = slurmCmd("scancel", id).Run() })
	w := rh(t, dir, 120*time.Second, "wait", jobDir)
	o, _ := os.ReadFile(filepath.Join(jobDir, "job.pbs.o"+id))
	e, _ := os.ReadFile(filepath.Join(jobDir, "job.pbs.e"+id))
	return id, string(o) + string(e), w
}

// pbsWithMpiexec runs pbsHello with mpiexec on PATH being the program
// named target (skipped when it is not installed), and checks that all 5
// engines answered and that the output has want.
func pbsWithMpiexec(t *testing.T, name, target, want string) string {
	t.Helper()
	requireCluster(t)
	real, err := exec.LookPath(target)
	if err != nil {
		t.Skipf("SKIPPING: %s is not installed (CI installs openmpi-bin and slurm-wlm-torque)", target)
	}
	dir := t.TempDir()
	d := filepath.Join(dir, "bin")
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(real, filepath.Join(d, "mpiexec")); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", d+":"+os.Getenv("PATH"))
	_, out, w := pbsHello(t, dir, name)
	if w.code != 0 || !strings.Contains(out, "engine ids: [0 1 2 3 4]") || !strings.Contains(out, want) {
		t.Fatalf("rankhub wait: exit %d %s%s\noutput:\n%s", w.code, w.stdout, w.stderr, out)
	}
	return out
}

// TestMultiPBSOpenMPI: the PBS script through Slurm's Torque wrappers,
// ranks started by Open MPI's mpiexec across the 3 nodes (its daemons start
// through srun, so the ranks also see the daemons' SLURM_PROCID).
func TestMultiPBSOpenMPI(t *testing.T) {
	out := pbsWithMpiexec(t, "pbsompi", "mpirun.openmpi", "is openmpi")
	for _, host := range []string{"n1", "n2", "n3"} {
		if !strings.Contains(out, " on "+host+"\n") {
			t.Errorf("no engine on %s:\n%s", host, out)
		}
	}
}

// TestMultiPBSSlurmMpiexec: with Debian's default mpiexec under the Torque
// wrappers, Slurm's mpiexec.slurm, the script starts the ranks with srun.
func TestMultiPBSSlurmMpiexec(t *testing.T) {
	pbsWithMpiexec(t, "pbsslurm", "mpiexec.slurm", "mpiexec is Slurm's mpiexec.slurm")
}

// ranksOf lists the processes whose environment names jobDir: the job's
// ranks and their tasks, on any node (this PID namespace sees them all).
func ranksOf(jobDir string) []string {
	var left []string
	procs, _ := filepath.Glob("/proc/[0-9]*/environ")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err == nil && bytes.Contains(b, []byte("RANKHUB_JOBDIR="+jobDir+"\x00")) {
			cmd, _ := os.ReadFile(filepath.Join(filepath.Dir(p), "cmdline"))
			left = append(left, filepath.Dir(p)+" "+strings.ReplaceAll(string(cmd), "\x00", " "))
		}
	}
	return left
}

// startedSweep submits a sweep of slow tasks and waits until its result
// file exists.
func startedSweep(t *testing.T, dir, name, extra string) (string, string, string) {
	t.Helper()
	id, jobDir := submit(t, dir, name, sweepText(name, 400, "0.5", extra))
	res := filepath.Join(dir, name+".arrow")
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		if _, err := os.Stat(res); err == nil {
			return id, jobDir, res
		}
		if time.Now().After(deadline) {
			t.Fatalf("the sweep did not start in 60 s:\n%s", slurmOut(t, jobDir, id))
		}
	}
}

// TestMultiCancel: scancel of a sweep on 3 nodes ends the job CANCELLED,
// stops every rank on every node, and leaves a readable result file.
func TestMultiCancel(t *testing.T) {
	requireCluster(t)
	dir := t.TempDir()
	id, jobDir, res := startedSweep(t, dir, "cancel", "")
	time.Sleep(time.Second)
	if running := ranksOf(jobDir); len(running) < 6 {
		t.Fatalf("%d processes of the job found while it runs, want the 6 ranks at least:\n%s", len(running), strings.Join(running, "\n"))
	}
	if out, err := slurmCmd("scancel", id).CombinedOutput(); err != nil {
		t.Fatalf("scancel: %v %s", err, out)
	}
	info := waitEnded(t, id, 60*time.Second)
	if info["JobState"] != "CANCELLED" {
		t.Errorf("job %s ended %s, want CANCELLED", id, info["JobState"])
	}
	var left []string
	for end := time.Now().Add(15 * time.Second); time.Now().Before(end); time.Sleep(300 * time.Millisecond) {
		if left = ranksOf(jobDir); len(left) == 0 {
			break
		}
	}
	if len(left) > 0 {
		t.Errorf("processes of the job left 15 s after scancel:\n%s", strings.Join(left, "\n"))
	}
	if p := peekFile(t, dir, res); p.Rows == 0 || p.Rows >= 400 {
		t.Errorf("result file after scancel: %+v, want some of the 400 rows", p)
	}
}

// TestMultiWalltimeWarning: the walltime warning (USR1, signal_lead before
// the walltime) reaches the ranks on every node; the sweep stops, its file
// is closed and readable, long before the walltime. SLURM may send the
// warning up to 60 s early (sbatch(1)), so the walltime leaves a minute
// more than the lead: the warning comes 5 to 65 s after the start, with
// rows written and the 1000 tasks (100 s on 5 engines) not all done (with
// a walltime of 1m and a lead of 55s CI saw it at the start, before a row).
func TestMultiWalltimeWarning(t *testing.T) {
	requireCluster(t)
	dir := t.TempDir()
	const tasks = 1000
	text := strings.Replace(sweepText("warn", tasks, "0.5", "signal_lead = \"55s\"\n"), `walltime = "5m"`, `walltime = "2m"`, 1)
	id, jobDir := submit(t, dir, "warn", text)
	start := time.Now()
	info := waitEnded(t, id, 150*time.Second)
	took := time.Since(start)
	out := slurmOut(t, jobDir, id)
	t.Logf("job %s ended %s after %.1f s", id, info["JobState"], took.Seconds())
	if !strings.Contains(out, "batch shell got SIGUSR1, forwarding it to the ranks") {
		t.Errorf("the batch shell did not forward USR1:\n%s", out)
	}
	if info["JobState"] == "TIMEOUT" || took > 110*time.Second {
		t.Errorf("job %s: %s after %v: the warning did not stop it before the walltime", id, info["JobState"], took)
	}
	if p := peekFile(t, dir, filepath.Join(dir, "warn.arrow")); p.Rows == 0 || p.Rows >= tasks {
		t.Errorf("result file after the warning: %+v, want some of the %d rows", p, tasks)
	}
}

// TestMultiNodeCrashRequeue: with requeue = true SLURM reruns the job after
// the node failure, and the rerun resumes the sweep (SLURM_RESTART_COUNT >
// 0 means --resume) instead of refusing its own result file: every task
// has exactly one row.
func TestMultiNodeCrashRequeue(t *testing.T) {
	requireCluster(t)
	dir := t.TempDir()
	id, jobDir := submit(t, dir, "requeue", sweepText("requeue", 200, "0.25", "requeue = true\n"))
	t.Cleanup(func() { nodeScript(t, "node-start", "n3") })
	res := filepath.Join(dir, "requeue.arrow")
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		if _, err := os.Stat(res); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the sweep did not start in 60 s:\n%s", slurmOut(t, jobDir, id))
		}
	}
	time.Sleep(1500 * time.Millisecond)
	nodeScript(t, "node-kill", "n3")
	// A crashed node stays away until SLURM has declared it down (a slurmd
	// back within SlurmdTimeout leaves the step waiting for tasks that are
	// gone); then it comes back, and the requeued job has its 3 nodes.
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(500 * time.Millisecond) {
		st, _ := slurmCmd("sinfo", "-h", "-N", "-n", "n3", "-o", "%T").Output()
		if strings.HasPrefix(strings.TrimSpace(string(st)), "down") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("n3 not down 60 s after its crash: %s", st)
		}
	}
	nodeScript(t, "node-start", "n3")
	// SLURM holds a requeued job for 2 minutes; once it is requeued, let
	// it start at once.
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
		if info := schedInfo(t, id); info["Restarts"] != "0" && info["JobState"] == "PENDING" {
			slurmCmd("scontrol", "update", "JobId="+id, "StartTime=now").Run()
			break
		} else if info["JobState"] != "RUNNING" && info["JobState"] != "COMPLETING" && info["JobState"] != "REQUEUED" {
			break
		}
	}
	info := waitEnded(t, id, 90*time.Second)
	out := slurmOut(t, jobDir, id)
	t.Logf("job %s ended %s (restarts %s)", id, info["JobState"], info["Restarts"])
	if info["JobState"] != "COMPLETED" || info["Restarts"] == "0" {
		t.Errorf("job %s: %s after %s restarts, want COMPLETED after a requeue\n%s", id, info["JobState"], info["Restarts"], out)
	}
	if strings.Contains(out, "already exists") {
		t.Errorf("the requeued run refused its own result file:\n%s", out)
	}
	p := peekFile(t, dir, res)
	if p.Rows != 200 || p.Failed != 0 {
		t.Errorf("result file: %+v, want exactly 200 rows (one per task), none failed\n%s", p, out)
	}
}
