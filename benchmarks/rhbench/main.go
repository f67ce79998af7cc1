// Command rhbench measures rankhub's views from rank 0 while the other ranks
// serve as engines. Start it with `rankhub run -n 3 -- bin/rhbench [reps]`
// (2 engines, as ipp_bench.py).
// It prints `RESULT <label> <value> <unit>` lines like ../shared/anchors.
package main

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"runtime/trace"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/rankhub/rankhub"
	"github.com/rankhub/rankhub/views"
)

func out(label string, v float64, unit string) {
	fmt.Printf("RESULT %s %.4g %s\n", label, v, unit)
}

func drive(ctx context.Context, c *views.Client) error {
	reps := 3
	if len(os.Args) > 1 {
		reps, _ = strconv.Atoi(os.Args[1])
	}
	e0, err := c.View(0)
	if err != nil {
		return err
	}
	for i := 0; i < 200; i++ { // warm-up
		if _, err := e0.ApplySync("noop"); err != nil {
			return err
		}
	}
	// (a) the no-op apply round trip from the hub to one engine, as
	// ipp_bench.py's rc[0].apply_sync(noop): median and p90 of 1000.
	// $RHBENCH_TRACE names a file for a runtime trace of rank 0 during (a).
	if path := os.Getenv("RHBENCH_TRACE"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			return err
		}
		if err := trace.Start(f); err != nil {
			f.Close()
			return fmt.Errorf("%s: %w", path, err)
		}
		defer f.Close()
		defer trace.Stop() // at the latest; stopped after (a) below
	}
	pm := newProcMeter() // $RHBENCH_PROCSTAT: the ranks' CPU and context switches per round trip
	for r := 0; r < reps; r++ {
		ts := make([]time.Duration, 1000)
		var ms0, ms1 runtime.MemStats
		if pm != nil {
			runtime.ReadMemStats(&ms0)
		}
		pm.begin()
		for i := range ts {
			t := time.Now()
			if _, err := e0.ApplySync("noop"); err != nil {
				return err
			}
			ts[i] = time.Since(t)
		}
		pm.end("apply", len(ts))
		if pm != nil {
			runtime.ReadMemStats(&ms1)
			fmt.Printf("PROC apply r0 mallocs %.2f gc %d\n", float64(ms1.Mallocs-ms0.Mallocs)/float64(len(ts)), ms1.NumGC-ms0.NumGC)
		}
		sort.Slice(ts, func(i, j int) bool { return ts[i] < ts[j] })
		out("rankhub_apply_sync_noop_median", float64(ts[500].Nanoseconds())/1e3, "us")
		out("rankhub_apply_sync_noop_p90", float64(ts[900].Nanoseconds())/1e3, "us")
	}
	if os.Getenv("RHBENCH_TRACE") != "" {
		trace.Stop()
	}
	if os.Getenv("RHBENCH_ONLY") == "apply" {
		return nil
	}
	// (b) tiny tasks through the load-balanced map, one task per element
	// (chunk size 1, as ipyparallel's map_async default).
	lb, err := c.LoadBalancedView()
	if err != nil {
		return err
	}
	xs := make([]int, 100000)
	for i := range xs {
		xs[i] = i
	}
	for r := 0; r < reps; r++ {
		pm.begin()
		t := time.Now()
		res, err := lb.MapSync("noop1", 1, xs)
		if err != nil {
			return err
		}
		pm.end("lbmap", len(xs))
		if len(res) != len(xs) {
			return fmt.Errorf("map returned %d results", len(res))
		}
		out("rankhub_lbview_map_100k", float64(len(xs))/time.Since(t).Seconds(), "tasks/s")
		// The hub keeps results until purged (IPython's hub does too).
		if _, err := c.PurgeAll(); err != nil {
			return err
		}
		runtime.GC()
	}
	// (c) push and pull of float64 arrays to one engine, as ipp_bench.py.
	for _, mib := range sizes() {
		a := make([]float64, mib<<20/8)
		for i := range a {
			a[i] = float64(i)
		}
		for r := 0; r < reps; r++ {
			t := time.Now()
			if err := e0.Set("a", a); err != nil {
				return err
			}
			out(fmt.Sprintf("rankhub_push_%dMiB", mib), float64(len(a)*8)/time.Since(t).Seconds()/1e9, "GB/s")
			t = time.Now()
			v, err := e0.Get("a")
			if err != nil {
				return err
			}
			if got, ok := v.([]float64); !ok || len(got) != len(a) {
				return fmt.Errorf("pull returned %T", v)
			}
			out(fmt.Sprintf("rankhub_pull_%dMiB", mib), float64(len(a)*8)/time.Since(t).Seconds()/1e9, "GB/s")
		}
		e0.Clear()
		// The same values as an Arrow array: it takes the collective mesh
		// (one copy into the hub's arena, the engine maps it; the pull
		// comes back the same way), and from the arena's own allocator
		// with no copy at all.
		for _, src := range []string{"arrow", "arrow_arena"} {
			mem := memory.Allocator(memory.DefaultAllocator)
			if src == "arrow_arena" {
				w, err := rankhub.World(ctx)
				if err != nil || w.Arena() == nil {
					continue
				}
				mem = w.Arena().Allocator()
			}
			b := array.NewFloat64Builder(mem)
			b.AppendValues(a, nil)
			arr := b.NewArray()
			b.Release()
			for r := 0; r < reps; r++ {
				t := time.Now()
				if err := e0.Set("a", arr); err != nil {
					return err
				}
				out(fmt.Sprintf("rankhub_push_%s_%dMiB", src, mib), float64(len(a)*8)/time.Since(t).Seconds()/1e9, "GB/s")
				t = time.Now()
				v, err := e0.Get("a")
				if err != nil {
					return err
				}
				if got, ok := v.(arrow.Array); !ok || got.Len() != len(a) {
					return fmt.Errorf("arrow pull returned %T", v)
				}
				out(fmt.Sprintf("rankhub_pull_%s_%dMiB", src, mib), float64(len(a)*8)/time.Since(t).Seconds()/1e9, "GB/s")
			}
			arr.Release()
			e0.Clear()
			if _, err := c.PurgeAll(); err != nil {
				return err
			}
			runtime.GC()
		}
	}
	return nil
}

func sizes() []int {
	s := os.Getenv("SIZES_MIB")
	if s == "" {
		s = "8,64,512"
	}
	var out []int
	for _, f := range strings.Split(s, ",") {
		if n, err := strconv.Atoi(strings.TrimSpace(f)); err == nil && n > 0 {
			out = append(out, n)
		}
	}
	return out
}

func main() {
	rankhub.Register("noop", func() {})
	rankhub.Register("noop1", func(x int) int { return x })
	// A sweep function as small as one can be: the sweep benchmark measures
	// rankhub's own cost per row (scheduling, transport, result file).
	rankhub.Register("tiny", func(p rankhub.Params) (map[string]float64, error) {
		return map[string]float64{"y": p.Float("x") * 2}, nil
	})
	// The same with noise from the task's seed, for adaptive replicates.
	rankhub.Register("tinynoise", func(p rankhub.Params) (map[string]float64, error) {
		return map[string]float64{"y": p.Float("x") + float64(p.Seed()>>11)/(1<<53)}, nil
	})
	if len(os.Args) > 1 && os.Args[1] == "sweep" {
		rankhub.Main(nil) // the job file's sweep
	}
	rankhub.Main(drive)
}
