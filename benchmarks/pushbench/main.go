// Command pushbench times, in one job, the driver's Push of one float64
// Arrow array to every engine (DirectView.Set) and rankhub's own world
// Bcast of the same array from rank 0, so that the two can be compared
// (issue 15: Push no slower than Bcast + 10%). Start it as a rankhub
// program (rank 0 drives, the others are engines), e.g. on the emulated
// 3-node cluster with ranks = 6, ranks_per_node = 2. SIZES_MIB (default
// 8,64,512) and REPS (default 3) choose what runs, ARENA=1 builds the
// array in the driver's arena (as collbench does) instead of the Go heap;
// it prints
//
//	RESULT rankhub_np<N>_{push,bcast}_<MiB>MiB_time <median ms> ms
//
// and the round trip of an apply of a no-op to every engine (what both
// carry beside the data: the bcast runs inside an apply).
package main

import (
	"context"
	"fmt"
	"os"
	"runtime"
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

func main() {
	rankhub.Register("bcast", func(c *views.Context, mib int) (float64, error) {
		w, err := rankhub.World(c)
		if err != nil {
			return 0, err
		}
		got, err := w.Bcast(c, 0, nil)
		if err != nil {
			return 0, err
		}
		defer got.Release()
		// timed: no pass over the data (pushes are not summed either); the
		// driver checks the length and a few values
		return probe(got), nil
	})
	rankhub.Register("noop", func() int { return 0 })
	rankhub.Register("sumof", func(c *views.Context, name string) (float64, error) {
		v, ok := c.NS.Get(name)
		if !ok {
			return 0, fmt.Errorf("no %s", name)
		}
		a, ok := v.(arrow.Array)
		if !ok {
			return 0, fmt.Errorf("%s is a %T", name, v)
		}
		return probe(a), nil
	})
	rankhub.Main(drive)
}

// probe is the array's length plus its first, middle and last values
// (the driver sends a ramp).
func probe(a arrow.Array) float64 {
	v := a.(*array.Float64).Float64Values()
	n := len(v)
	if n == 0 {
		return 0
	}
	return float64(n) + v[0] + v[n/2] + v[n-1]
}

func want(n int) float64 { return float64(n) + 0 + float64(n/2) + float64(n-1) }

func median(d []time.Duration) float64 {
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	return float64(d[len(d)/2].Microseconds()) / 1000
}

func drive(ctx context.Context, c *views.Client) error {
	reps := 3
	if s, err := strconv.Atoi(os.Getenv("REPS")); err == nil && s > 0 {
		reps = s
	}
	sizes := os.Getenv("SIZES_MIB")
	if sizes == "" {
		sizes = "8,64,512"
	}
	dv, err := c.DirectView()
	if err != nil {
		return err
	}
	w, err := rankhub.World(ctx)
	if err != nil {
		return err
	}
	np := w.Size()
	for _, f := range strings.Split(sizes, ",") {
		mib, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || mib <= 0 {
			return fmt.Errorf("SIZES_MIB: bad size %q", f)
		}
		n := mib << 20 / 8
		mem := memory.Allocator(memory.DefaultAllocator)
		if os.Getenv("ARENA") != "" && w.Arena() != nil {
			mem = w.Arena().Allocator() // node-mates alias it: no staging copy
		}
		b := array.NewFloat64Builder(mem)
		b.Reserve(n)
		for i := 0; i < n; i++ {
			b.UnsafeAppend(float64(i))
		}
		arr := b.NewArray()
		b.Release()
		var push, bc, noop []time.Duration
		for r := 0; r < reps; r++ {
			t0 := time.Now()
			if _, err := dv.ApplySync("noop"); err != nil {
				return err
			}
			noop = append(noop, time.Since(t0))
			t := time.Now()
			if err := dv.Set("a", arr); err != nil {
				return fmt.Errorf("push %d MiB: %w", mib, err)
			}
			push = append(push, time.Since(t))
			got, err := dv.ApplySync("sumof", "a")
			if err != nil {
				return err
			}
			for i, g := range got.([]any) {
				if g.(float64) != want(n) {
					return fmt.Errorf("push %d MiB: engine %d probes %v, want %v", mib, i, g, want(n))
				}
			}
			if err := dv.Clear(); err != nil {
				return err
			}
			runtime.GC()

			ar, err := dv.Apply("bcast", mib)
			if err != nil {
				return err
			}
			t = time.Now()
			out, err := w.Bcast(ctx, 0, arr)
			if err != nil {
				return fmt.Errorf("bcast %d MiB: %w", mib, err)
			}
			got, err = ar.Get(-1)
			bc = append(bc, time.Since(t))
			out.Release()
			if err != nil {
				return err
			}
			for i, g := range got.([]any) {
				if g.(float64) != want(n) {
					return fmt.Errorf("bcast %d MiB: engine %d probes %v, want %v", mib, i, g, want(n))
				}
			}
			runtime.GC()
		}
		arr.Release()
		fmt.Printf("RESULT rankhub_np%d_push_%dMiB_time %.4g ms\n", np, mib, median(push))
		fmt.Printf("RESULT rankhub_np%d_apply_noop_time %.4g ms\n", np, median(noop))
		fmt.Printf("RESULT rankhub_np%d_bcast_%dMiB_time %.4g ms\n", np, mib, median(bc))
	}
	return nil
}
