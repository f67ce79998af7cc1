package rankhub_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/rankhub/rankhub"
	"github.com/rankhub/rankhub/internal/faulttest"
	"github.com/rankhub/rankhub/views"
)

// Received Arrow arrays of at least a page are read-only on real ranks, on
// every path: frames (4 KiB), the collective mesh through arenas (8 MiB on
// one node) and through sockets (8 MiB with RANKHUB_TRANSPORT=tcp, as
// between nodes); on the engines that received a push and for the driver
// on rank 0 that pulled it.

// faults writes v into xs[0] and reports whether the write faulted.
func faults(xs []float64, v float64) bool { return faulttest.Faults(func() { xs[0] = v }) }

func init() {
	registrations = append(registrations, func() {
		rankhub.Register("rowrite", func(c *views.Context, name string) (bool, error) {
			v, ok := c.NS.Get(name)
			if !ok {
				return false, fmt.Errorf("no %q", name)
			}
			a, ok := v.(*array.Float64)
			if !ok {
				return false, fmt.Errorf("%q is a %T", name, v)
			}
			return faults(a.Float64Values(), -1), nil
		})
	})
	drivers["readonly"] = func(ctx context.Context, c *views.Client) error {
		dv, err := c.DirectView()
		if err != nil {
			return err
		}
		for _, n := range []int{4096 / 8, 1 << 20} {
			x := ramp(n)
			defer x.Release()
			if err := dv.Set("x", x); err != nil {
				return err
			}
			got, err := dv.ApplySync("rowrite", "x")
			if err != nil {
				return err
			}
			for i, f := range got.([]any) {
				if f != true {
					return fmt.Errorf("engine %d: a write into a pushed array of %d bytes did not fault", i, 8*n)
				}
			}
			pulled, err := dv.Get("x")
			if err != nil {
				return err
			}
			for i, p := range pulled.([]any) {
				a := p.(*array.Float64)
				if !faults(a.Float64Values(), -2) {
					return fmt.Errorf("rank 0: a write into an array of %d bytes pulled from engine %d did not fault", 8*n, i)
				}
				if a.Value(0) != 0 || a.Len() != n {
					return fmt.Errorf("rank 0: the array pulled from engine %d holds %d values from %g", i, a.Len(), a.Value(0))
				}
			}
			note("readonly %d ok", 8*n)
		}
		return nil
	}
}

func TestReceivedArraysReadOnlyOnRanks(t *testing.T) {
	for _, transport := range []string{"auto", "tcp"} {
		t.Run(transport, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			dir, done := startEnv(t, ctx, "readonly", 3, true, map[string]string{"RANKHUB_TRANSPORT": transport})
			if err := <-done; err != nil {
				t.Fatalf("run: %v", err)
			}
			for _, n := range []string{"readonly 4096 ok", "readonly 8388608 ok"} {
				waitNote(t, dir, n, time.Second)
			}
		})
	}
}
