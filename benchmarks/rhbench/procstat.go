package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// procStat is what the kernel counted for one process, summed over its
// threads (/proc/PID/task/*): CPU time and time spent waiting for a CPU
// (schedstat, in ns), times it ran on a CPU, context switches. Load-robust
// measures of a round trip: they count what the ranks did, not how long
// the other users of the machine made them wait.
type procStat struct {
	cpuNs, waitNs, slices int64
	vol, invol            int64
	threads, ran          int // threads; threads that ran since the previous sample
}

// sampleProc reads pid's counters; prev (may be nil) is the sample before,
// to count the threads that ran in between.
func sampleProc(pid int, prev map[string]int64) (procStat, map[string]int64) {
	var s procStat
	runs := map[string]int64{}
	dir := fmt.Sprintf("/proc/%d/task", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return s, runs
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name(), "schedstat"))
		if err != nil {
			continue
		}
		f := strings.Fields(string(b))
		if len(f) < 3 {
			continue
		}
		cpu, _ := strconv.ParseInt(f[0], 10, 64)
		wait, _ := strconv.ParseInt(f[1], 10, 64)
		sl, _ := strconv.ParseInt(f[2], 10, 64)
		s.cpuNs += cpu
		s.waitNs += wait
		s.slices += sl
		s.threads++
		runs[e.Name()] = sl
		if p, ok := prev[e.Name()]; !ok || p != sl {
			s.ran++
			if verbose && prev != nil {
				fmt.Printf("PROC   pid %d tid %s slices +%d\n", pid, e.Name(), sl-p)
			}
		}
		st, err := os.ReadFile(filepath.Join(dir, e.Name(), "status"))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(st), "\n") {
			k, v, ok := strings.Cut(line, ":")
			if !ok {
				continue
			}
			n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			switch k {
			case "voluntary_ctxt_switches":
				s.vol += n
			case "nonvoluntary_ctxt_switches":
				s.invol += n
			}
		}
	}
	return s, runs
}

var verbose = os.Getenv("RHBENCH_PROCSTAT") == "v"

// peers are this rank's process and its sibling ranks (the other children
// of the process that started it: `rankhub run`'s local ranks), rank 0
// first; nil when they cannot be found.
func peers() []int {
	self := os.Getpid()
	ppid := os.Getppid()
	pids := []int{self}
	// A child is listed under the thread of the parent that forked it.
	ts, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", ppid))
	for _, t := range ts {
		b, err := os.ReadFile(t)
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			if n, err := strconv.Atoi(f); err == nil && n != self {
				pids = append(pids, n)
			}
		}
	}
	return pids
}

// procMeter samples the ranks' counters around a timed loop
// ($RHBENCH_PROCSTAT set): start, then report per iteration.
type procMeter struct {
	pids  []int
	start []procStat
	prev  []map[string]int64
}

func newProcMeter() *procMeter {
	if os.Getenv("RHBENCH_PROCSTAT") == "" {
		return nil
	}
	return &procMeter{pids: peers()}
}

func (m *procMeter) begin() {
	if m == nil {
		return
	}
	m.start, m.prev = m.start[:0], m.prev[:0]
	for _, pid := range m.pids {
		s, runs := sampleProc(pid, nil)
		m.start = append(m.start, s)
		m.prev = append(m.prev, runs)
	}
}

// end prints, per rank (r0 is this one, the hub), per iteration: CPU µs,
// µs waiting for a CPU, times run on a CPU, voluntary and involuntary
// context switches; and the threads that ran during the loop.
func (m *procMeter) end(label string, n int) {
	if m == nil {
		return
	}
	for i, pid := range m.pids {
		s, _ := sampleProc(pid, m.prev[i])
		d := float64(n)
		b := m.start[i]
		fmt.Printf("PROC %s r%d cpu_us %.2f wait_us %.2f slices %.2f vcsw %.2f ivcsw %.3f threads %d ran %d\n",
			label, i, float64(s.cpuNs-b.cpuNs)/1e3/d, float64(s.waitNs-b.waitNs)/1e3/d, float64(s.slices-b.slices)/d,
			float64(s.vol-b.vol)/d, float64(s.invol-b.invol)/d, s.threads, s.ran)
	}
}
