package rankhub_test

import (
	"context"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/rankhub/rankhub"
	"github.com/rankhub/rankhub/collective"
	"github.com/rankhub/rankhub/views"
)

func float64s(vs ...float64) arrow.Array {
	b := array.NewFloat64Builder(memory.DefaultAllocator)
	defer b.Release()
	b.AppendValues(vs, nil)
	return b.NewArray()
}

func allreduceRank(ctx context.Context, c *collective.Comm) (float64, error) {
	in := float64s(float64(c.WorldRank(c.Rank())), 1)
	defer in.Release()
	out, err := c.Allreduce(ctx, in, collective.Sum)
	if err != nil {
		return 0, err
	}
	defer out.Release()
	v := out.(*array.Float64)
	return v.Value(0)*1000 + v.Value(1), nil // sum of ranks, members
}

func init() {
	registrations = append(registrations, func() {
		// targetsum: an allreduce among the engines of the call, no hub.
		rankhub.Register("targetsum", func(c *views.Context) (float64, error) {
			comm, err := c.Comm()
			if err != nil {
				return 0, err
			}
			return allreduceRank(c, comm)
		})
		// worldsum: an allreduce over every rank, rank 0's driver included.
		rankhub.Register("worldsum", func(c *views.Context) (float64, error) {
			w, err := c.World()
			if err != nil {
				return 0, err
			}
			return allreduceRank(c, w)
		})
	})
	drivers["collectives"] = func(ctx context.Context, c *views.Client) error {
		all, err := c.DirectView()
		if err != nil {
			return err
		}
		got, err := all.ApplySync("targetsum")
		if err != nil {
			return err
		}
		// ranks 1+2+3 = 6, 3 members
		if want := []any{6003.0, 6003.0, 6003.0}; !reflect.DeepEqual(got, want) {
			return fmt.Errorf("allreduce over all engines: %v, want %v", got, want)
		}
		some, _ := c.View(0, 2)
		got, err = some.ApplySync("targetsum")
		if err != nil {
			return err
		}
		if want := []any{4002.0, 4002.0}; !reflect.DeepEqual(got, want) { // ranks 1+3
			return fmt.Errorf("allreduce over engines 0 and 2: %v, want %v", got, want)
		}
		note("targets ok")
		ar, err := all.Apply("worldsum")
		if err != nil {
			return err
		}
		w, err := rankhub.World(ctx)
		if err != nil {
			return err
		}
		mine, err := allreduceRank(ctx, w)
		if err != nil {
			return err
		}
		vals, err := ar.Values(20 * time.Second)
		if err != nil {
			return err
		}
		if mine != 6004 || !reflect.DeepEqual(vals, []any{6004.0, 6004.0, 6004.0}) { // 0+1+2+3, 4 members
			return fmt.Errorf("world allreduce: driver %v, engines %v", mine, vals)
		}
		note("world ok")
		return nil
	}
}

func TestEnginesAllreduceAmongTargetsAndWorld(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dir, done := start(t, ctx, "collectives", 4, true)
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
	waitNote(t, dir, "targets ok", time.Second)
	waitNote(t, dir, "world ok", time.Second)
}
