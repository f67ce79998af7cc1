// Command bench runs rankhub's benchmarks and the anchors of
// ../shared/anchors side by side in one run, and prints a table of both with
// their ratio. `make bench` runs it from the repository root after `make build`.
//
// Environment: ANCHORS (default ../shared/anchors), BENCH_REPS (default 3),
// BENCH_SKIP (comma list of groups to skip: ipp, sock, sweep, sweep1e7; coll skips
// benchmarks/collective/run.sh, which make bench runs after this program).
package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/rankhub/rankhub/results"
)

type sample map[string][]float64 // label → values

func (s sample) add(out []byte) {
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(strings.TrimPrefix(strings.TrimSpace(sc.Text()), "[rank 0] "))
		if len(f) >= 3 && f[0] == "RESULT" {
			if v, err := strconv.ParseFloat(f[2], 64); err == nil {
				s[f[1]] = append(s[f[1]], v)
			}
		}
	}
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	c := append([]float64(nil), v...)
	sort.Float64s(c)
	if len(c)%2 == 1 {
		return c[len(c)/2]
	}
	return (c[len(c)/2-1] + c[len(c)/2]) / 2
}

func run(name string, args []string, env ...string) []byte {
	start := time.Now()
	fmt.Fprintf(os.Stderr, "bench: %s %s\n", name, strings.Join(args, " "))
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: %s failed after %v: %v\n", name, time.Since(start).Round(time.Second), err)
	}
	return out
}

func skip(group string) bool {
	for _, g := range strings.Split(os.Getenv("BENCH_SKIP"), ",") {
		if g == group {
			return true
		}
	}
	return false
}

// row compares one rankhub figure with one anchor figure.
type row struct {
	what, ours, anchor, unit string
	lowerBetter              bool
	target                   string
}

func main() {
	anchors := os.Getenv("ANCHORS")
	if anchors == "" {
		anchors = "../shared/anchors"
	}
	anchors, _ = filepath.Abs(anchors)
	reps := os.Getenv("BENCH_REPS")
	if reps == "" {
		reps = "3"
	}
	tmp, err := os.MkdirTemp("", "rankhub-bench-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer os.RemoveAll(tmp)
	s := sample{}

	// rankhub first, then the anchors, in the same run.
	s.add(run("bin/rankhub", []string{"run", "-n", "3", "--", "bin/rhbench", reps}))
	if !skip("sweep") {
		sweepBench(s, tmp)
		adaptiveBench(s, tmp)
	}
	if !skip("sweep1e7") {
		bigSweepBench(s, tmp)
	}
	if !skip("sock") {
		if out, err := exec.Command("gcc", "-O2", "-o", filepath.Join(tmp, "sockbw"), filepath.Join(anchors, "sockbw.c")).CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "bench: building sockbw: %v\n%s", err, out)
		} else {
			for i := 0; i < 3; i++ {
				s.add(run(filepath.Join(tmp, "sockbw"), []string{"unix", "lat", "20000", "8"}))
				s.add(run(filepath.Join(tmp, "sockbw"), []string{"tcp", "lat", "20000", "8"}))
				s.add(run(filepath.Join(tmp, "sockbw"), []string{"unix", "bw", "8192", "1024"}))
			}
		}
	}
	if !skip("ipp") {
		if err := exec.Command("/usr/bin/python3", "-c", "import ipyparallel, numpy").Run(); err != nil {
			fmt.Fprintln(os.Stderr, "bench: ipyparallel is not installed for /usr/bin/python3: run scripts/bench-deps.sh (or BENCH_SKIP=ipp)")
		} else {
			s.add(run("/usr/bin/python3", []string{filepath.Join(anchors, "ipp_bench.py"), "1"}, "SIZES_MIB=8,64,512"))
		}
	}

	rows := []row{
		{"no-op apply round trip, median", "rankhub_apply_sync_noop_median", "ipp_apply_sync_noop_median", "us", true, "≤ 50 µs, ≥ 50× ipyparallel"},
		{"no-op apply round trip, p90", "rankhub_apply_sync_noop_p90", "ipp_apply_sync_noop_p90", "us", true, ""},
		{"  vs raw Unix socket 8-B RTT", "rankhub_apply_sync_noop_median", "unix_pingpong_8B_rtt_pinnone", "us", true, "(physical floor)"},
		{"  vs raw TCP socket 8-B RTT", "rankhub_apply_sync_noop_median", "tcp_pingpong_8B_rtt_pinnone", "us", true, "(physical floor)"},
		{"LB map, no-op tasks, chunk 1", "rankhub_lbview_map_100k", "ipp_lbview_map_async_10k", "tasks/s", false, "≥ 100,000 tasks/s (ipp: 10k tasks)"},
		{"push 8 MiB", "rankhub_push_8MiB", "ipp_push_8MiB", "GB/s", false, "report vs ipyparallel"},
		{"pull 8 MiB", "rankhub_pull_8MiB", "ipp_pull_8MiB", "GB/s", false, ""},
		{"push 64 MiB", "rankhub_push_64MiB", "ipp_push_64MiB", "GB/s", false, ""},
		{"pull 64 MiB", "rankhub_pull_64MiB", "ipp_pull_64MiB", "GB/s", false, ""},
		{"push 512 MiB", "rankhub_push_512MiB", "ipp_push_512MiB", "GB/s", false, ""},
		{"pull 512 MiB", "rankhub_pull_512MiB", "ipp_pull_512MiB", "GB/s", false, ""},
		{"  push 512 MiB vs raw Unix stream", "rankhub_push_512MiB", "unix_stream_1024KiBwrites_pinnone", "GB/s", false, "(physical limit)"},
		{"push 8 MiB, Arrow (mesh)", "rankhub_push_arrow_8MiB", "ipp_push_8MiB", "GB/s", false, "one copy into the arena"},
		{"pull 8 MiB, Arrow (mesh)", "rankhub_pull_arrow_8MiB", "ipp_pull_8MiB", "GB/s", false, ""},
		{"push 512 MiB, Arrow (mesh)", "rankhub_push_arrow_512MiB", "ipp_push_512MiB", "GB/s", false, ""},
		{"pull 512 MiB, Arrow (mesh)", "rankhub_pull_arrow_512MiB", "ipp_pull_512MiB", "GB/s", false, ""},
		{"push 512 MiB, Arrow in arena", "rankhub_push_arrow_arena_512MiB", "ipp_push_512MiB", "GB/s", false, "no copy"},
		{"pull 512 MiB, Arrow in arena", "rankhub_pull_arrow_arena_512MiB", "ipp_pull_512MiB", "GB/s", false, ""},
		{"sweep, 100k Go-function tasks", "rankhub_sweep_func_100k", "target_sweep_rows", "rows/s", false, "≥ 50,000 rows/s end to end, 2 engines"},
		{"sweep, 10k shell tasks", "rankhub_sweep_shell_10k", "xargs_P2_shell_10k", "tasks/s", false, "bounded by process start: ≈ xargs -P 2"},
		{"sweep, adaptive 100 × ≤1000", "rankhub_sweep_adaptive_100k", "rankhub_sweep_fixed_100x1000", "rows/s", false, "≥ 0.8× the same sweep fixed"},
		{"sweep 10^7 no-op: hub peak RSS", "rankhub_sweep_1e7_hub_rss", "target_sweep_1e7_rss", "MiB", true, "≤ 1 GiB"},
		{"sweep 10^7: time to first task", "rankhub_sweep_1e7_first_task", "target_sweep_1e7_first", "s", true, "≤ 1 s"},
	}
	s["target_sweep_rows"] = []float64{50000}
	s["target_sweep_1e7_rss"] = []float64{1024}
	s["target_sweep_1e7_first"] = []float64{1}
	fmt.Printf("\n%-34s %12s %12s %6s %10s  %s\n", "measure (median of runs)", "rankhub", "anchor", "unit", "ratio", "target")
	for _, r := range rows {
		o, a := median(s[r.ours]), median(s[r.anchor])
		ratio := "n/a"
		if o > 0 && a > 0 {
			if r.lowerBetter {
				ratio = fmt.Sprintf("%.1f× faster", a/o)
				if a < o {
					ratio = fmt.Sprintf("%.2f× slower", o/a)
				}
			} else {
				ratio = fmt.Sprintf("%.2f×", o/a)
			}
		}
		fmt.Printf("%-34s %12s %12s %6s %10s  %s\n", r.what, fmtv(o, len(s[r.ours])), fmtv(a, len(s[r.anchor])), r.unit, ratio, r.target)
	}
	fmt.Println("\nall samples:")
	keys := make([]string, 0, len(s))
	for k := range s {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Printf("  %-40s n=%d median %.4g  %v\n", k, len(s[k]), median(s[k]), s[k])
	}
}

func fmtv(v float64, n int) string {
	if n == 0 {
		return "—"
	}
	return fmt.Sprintf("%.4g", v)
}

// sweepBench times whole `rankhub run` sweeps (start-up included) and the
// same shell commands through xargs -P 2.
func sweepBench(s sample, tmp string) {
	wd, _ := os.Getwd()
	fn := fmt.Sprintf(`[job]
name = "benchfunc"
ranks = 3
program = [%q, "sweep"]
[task]
function = "tiny"
outputs = ["y"]
[sweep]
x = { start = 0, stop = 99999, step = 1 }
[results]
path = "func.arrow"
`, filepath.Join(wd, "bin/rhbench"))
	sh := `[job]
name = "benchshell"
ranks = 3
[task]
command = "echo {x}"
outputs = ["y"]
[sweep]
x = { start = 0, stop = 9999, step = 1 }
[results]
path = "shell.arrow"
`
	for rep := 0; rep < 3; rep++ {
		for _, b := range []struct {
			name, text, label string
			n                 float64
		}{
			{"func", fn, "rankhub_sweep_func_100k", 100000}, {"shell", sh, "rankhub_sweep_shell_10k", 10000}} {
			dir := filepath.Join(tmp, fmt.Sprintf("%s%d", b.name, rep))
			os.MkdirAll(dir, 0o755)
			os.WriteFile(filepath.Join(dir, "job.toml"), []byte(b.text), 0o644)
			t := time.Now()
			cmd := exec.Command(filepath.Join(wd, "bin/rankhub"), "run", "job.toml")
			cmd.Dir = dir
			if out, err := cmd.CombinedOutput(); err != nil {
				fmt.Fprintf(os.Stderr, "bench: %s sweep: %v\n%s", b.name, err, out)
				continue
			}
			s[b.label] = append(s[b.label], b.n/time.Since(t).Seconds())
		}
		t := time.Now()
		cmd := exec.Command("sh", "-c", "seq 0 9999 | xargs -P 2 -I{} sh -c 'echo {}' > /dev/null")
		if err := cmd.Run(); err == nil {
			s["xargs_P2_shell_10k"] = append(s["xargs_P2_shell_10k"], 10000/time.Since(t).Seconds())
		}
	}
}

// sweepJob writes a function-sweep job running bin/rhbench's fn over body
// into dir/job.toml.
func sweepJob(dir, fn, body string) {
	wd, _ := os.Getwd()
	os.MkdirAll(dir, 0o755)
	os.WriteFile(filepath.Join(dir, "job.toml"), []byte(fmt.Sprintf(`[job]
name = "bench"
ranks = 3
program = [%q, "sweep"]
[task]
function = %q
outputs = ["y"]
[sweep]
%s
[results]
path = "out.arrow"
`, filepath.Join(wd, "bin/rhbench"), fn, body)), 0o644)
}

// runSweepDir runs `rankhub run job.toml` in dir; it returns the seconds it
// took and the hub's pid (from hub.json) once known through onHub.
func runSweepDir(dir string, onHub func(pid int)) (float64, error) {
	wd, _ := os.Getwd()
	t := time.Now()
	cmd := exec.Command(filepath.Join(wd, "bin/rankhub"), "run", "job.toml")
	cmd.Dir = dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	if onHub != nil {
		go func() {
			for {
				files, _ := filepath.Glob(filepath.Join(dir, ".rankhub", "*", "hub.json"))
				if len(files) > 0 {
					b, _ := os.ReadFile(files[0])
					if i := bytes.Index(b, []byte(`"pid":`)); i >= 0 {
						f := strings.FieldsFunc(string(b[i+6:]), func(r rune) bool { return r == ',' || r == ' ' || r == '}' || r == '\n' })
						if pid, err := strconv.Atoi(f[0]); err == nil {
							onHub(pid)
							return
						}
					}
				}
				time.Sleep(20 * time.Millisecond)
			}
		}()
	}
	if err := <-done; err != nil {
		return 0, fmt.Errorf("%v\n%s", err, out.String())
	}
	return time.Since(t).Seconds(), nil
}

// adaptiveBench: 100 groups, replicates adaptive up to 1000 (a target no
// group reaches, so all 100,000 run) against the same sweep fixed.
func adaptiveBench(s sample, tmp string) {
	for rep := 0; rep < 3; rep++ {
		for _, b := range []struct{ label, reps string }{
			{"rankhub_sweep_fixed_100x1000", "1000"},
			{"rankhub_sweep_adaptive_100k", "{ min = 8, max = 1000, sem = { y = 1e-12 } }"},
		} {
			dir := filepath.Join(tmp, fmt.Sprintf("%s%d", b.label, rep))
			sweepJob(dir, "tinynoise", "x = { start = 0, stop = 99, step = 1 }\nreplicates = "+b.reps)
			secs, err := runSweepDir(dir, nil)
			if err != nil {
				fmt.Fprintf(os.Stderr, "bench: %s: %v\n", b.label, err)
				continue
			}
			s[b.label] = append(s[b.label], 100000/secs)
		}
	}
}

// bigSweepBench: a sweep of 10^7 no-op function tasks. The hub's peak RSS
// (VmHWM, polled) and the time from "all engines registered" in its log to
// the first task's start in the result file.
func bigSweepBench(s sample, tmp string) {
	dir := filepath.Join(tmp, "sweep1e7")
	sweepJob(dir, "tiny", "x = { start = 0, stop = 9999, step = 1 }\nreplicates = 1000")
	var peak atomic.Int64
	stop := make(chan struct{})
	_, err := runSweepDir(dir, func(pid int) {
		for {
			select {
			case <-stop:
				return
			default:
			}
			b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
			if err != nil {
				return
			}
			for _, l := range strings.Split(string(b), "\n") {
				if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmHWM:" {
					if kb, _ := strconv.ParseInt(f[1], 10, 64); kb > peak.Load() {
						peak.Store(kb)
					}
				}
			}
			time.Sleep(200 * time.Millisecond)
		}
	})
	close(stop)
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: 10^7 sweep: %v\n", err)
		return
	}
	s["rankhub_sweep_1e7_hub_rss"] = append(s["rankhub_sweep_1e7_hub_rss"], float64(peak.Load())/1024)
	logs, _ := filepath.Glob(filepath.Join(dir, ".rankhub", "*", "rank-0.log.json"))
	var registered time.Time
	if len(logs) > 0 {
		b, _ := os.ReadFile(logs[0])
		for _, l := range strings.Split(string(b), "\n") {
			if strings.Contains(l, "all engines registered") {
				if i := strings.Index(l, `"time":"`); i >= 0 {
					registered, _ = time.Parse(time.RFC3339Nano, strings.SplitN(l[i+8:], `"`, 2)[0])
				}
			}
		}
	}
	r, err := results.Open(filepath.Join(dir, "out.arrow"))
	if err != nil || registered.IsZero() {
		fmt.Fprintf(os.Stderr, "bench: 10^7 sweep: no first task time (%v)\n", err)
		return
	}
	defer r.Close()
	first := time.Time{}
	for i, row := range r.Rows() {
		if i > 100000 {
			break
		}
		if first.IsZero() || row.Started.Before(first) {
			first = row.Started
		}
	}
	s["rankhub_sweep_1e7_first_task"] = append(s["rankhub_sweep_1e7_first_task"], first.Sub(registered).Seconds())
}
