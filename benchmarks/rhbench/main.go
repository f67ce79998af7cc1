// Command rhbench measures rankhub's views from rank 0 while the other ranks
// serve as engines. Start it with `rankhub run -n 2 -- bin/rhbench [reps]`.
// It prints `RESULT <label> <value> <unit>` lines like ../shared/anchors.
package main

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strconv"
	"time"

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
	for r := 0; r < reps; r++ {
		ts := make([]time.Duration, 1000)
		for i := range ts {
			t := time.Now()
			if _, err := e0.ApplySync("noop"); err != nil {
				return err
			}
			ts[i] = time.Since(t)
		}
		sort.Slice(ts, func(i, j int) bool { return ts[i] < ts[j] })
		out("rankhub_apply_sync_noop_median", float64(ts[500].Nanoseconds())/1e3, "us")
		out("rankhub_apply_sync_noop_p90", float64(ts[900].Nanoseconds())/1e3, "us")
	}
	return nil
}

func main() {
	rankhub.Register("noop", func() {})
	// A sweep function as small as one can be: the sweep benchmark measures
	// rankhub's own cost per row (scheduling, transport, result file).
	rankhub.Register("tiny", func(p rankhub.Params) (map[string]float64, error) {
		return map[string]float64{"y": p.Float("x") * 2}, nil
	})
	if len(os.Args) > 1 && os.Args[1] == "sweep" {
		rankhub.Main(nil) // the job file's sweep
	}
	rankhub.Main(drive)
}
