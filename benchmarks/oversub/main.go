// Command oversub measures how rankhub degrades when ranks outnumber the
// cores: run as `rankhub run -n N -- bin/oversub` (benchmarks/oversub/run.sh
// does it for 9, 65, 257 and 1025 ranks), its driver prints the start time
// (from OVERSUB_T0, the launch time in Unix nanoseconds, to every engine
// registered) and the median round trip of a no-op apply on every engine.
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

func drive(ctx context.Context, c *views.Client) error {
	ready := time.Now()
	start := time.Duration(-1)
	if t0, err := strconv.ParseInt(os.Getenv("OVERSUB_T0"), 10, 64); err == nil {
		start = ready.Sub(time.Unix(0, t0))
	}
	dv, err := c.DirectView()
	if err != nil {
		return err
	}
	var rtts []time.Duration
	for i := 0; i < 5; i++ {
		t := time.Now()
		got, err := dv.ApplySync("noop")
		if err != nil {
			return err
		}
		if n := len(got.([]any)); n != len(c.IDs()) {
			return fmt.Errorf("apply on every engine: %d answers from %d engines", n, len(c.IDs()))
		}
		rtts = append(rtts, time.Since(t))
	}
	sort.Slice(rtts, func(i, j int) bool { return rtts[i] < rtts[j] })
	fmt.Printf("OVERSUB ranks=%d start=%.2fs apply_all_median=%.1fms apply_all_max=%.1fms\n",
		len(c.IDs())+1, start.Seconds(), float64(rtts[2].Microseconds())/1000, float64(rtts[4].Microseconds())/1000)
	return nil
}

func main() {
	rankhub.Register("noop", func(*views.Context) (int, error) { return 0, nil })
	rankhub.Main(drive)
}
