// Command coll is the multi-node tier's program: an allreduce among the
// engines and over the world, then push, pull, scatter and gather of an
// 8 MiB Arrow array, every result checked exactly. It prints "MULTI OK"
// when all of it held.
package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/rankhub/rankhub"
	"github.com/rankhub/rankhub/collective"
	"github.com/rankhub/rankhub/views"
)

func ramp(n int) arrow.Array {
	b := array.NewFloat64Builder(memory.DefaultAllocator)
	defer b.Release()
	for i := 0; i < n; i++ {
		b.Append(float64(i))
	}
	return b.NewArray()
}

func sum(a arrow.Array) float64 {
	s := 0.0
	for _, v := range a.(*array.Float64).Float64Values() {
		s += v
	}
	return s
}

// allreduce returns the sum of the world ranks of c's members and their count.
func allreduce(ctx context.Context, c *collective.Comm) ([2]float64, error) {
	b := array.NewFloat64Builder(memory.DefaultAllocator)
	b.AppendValues([]float64{float64(c.WorldRank(c.Rank())), 1}, nil)
	in := b.NewArray()
	b.Release()
	defer in.Release()
	out, err := c.Allreduce(ctx, in, collective.Sum)
	if err != nil {
		return [2]float64{}, err
	}
	defer out.Release()
	v := out.(*array.Float64)
	return [2]float64{v.Value(0), v.Value(1)}, nil
}

func drive(ctx context.Context, c *views.Client) error {
	dv, err := c.DirectView()
	if err != nil {
		return err
	}
	n := len(c.IDs())
	size := n + 1
	hosts, err := dv.ApplySync("host")
	if err != nil {
		return err
	}
	fmt.Println("hosts:", hosts)
	got, err := dv.ApplySync("enginesum")
	if err != nil {
		return fmt.Errorf("allreduce among the engines: %w", err)
	}
	want := [2]float64{float64(size * (size - 1) / 2), float64(n)}
	for i, g := range got.([]any) {
		v, err := views.As[[2]float64](g)
		if err != nil || v != want {
			return fmt.Errorf("allreduce among the engines: engine %d got %v (%v), want %v", i, g, err, want)
		}
	}
	fmt.Println("allreduce ok")

	const m = 1 << 20 // 8 MiB of float64
	total := float64(m) * float64(m-1) / 2
	x := ramp(m)
	defer x.Release()
	if err := dv.Set("x", x); err != nil {
		return fmt.Errorf("push: %w", err)
	}
	pulled, err := dv.Get("x")
	if err != nil {
		return fmt.Errorf("pull: %w", err)
	}
	for i, p := range pulled.([]any) {
		if s := sum(p.(arrow.Array)); s != total {
			return fmt.Errorf("push then pull, engine %d: sum %g, want %g", i, s, total)
		}
	}
	fmt.Println("push/pull ok")
	ar, err := dv.Scatter("p", x)
	if err != nil {
		return err
	}
	if _, err := ar.Get(60 * time.Second); err != nil {
		return fmt.Errorf("scatter: %w", err)
	}
	ar, err = dv.Gather("p")
	if err != nil {
		return err
	}
	g, err := ar.Get(60 * time.Second)
	if err != nil {
		return fmt.Errorf("gather: %w", err)
	}
	ch := g.(*arrow.Chunked)
	s := 0.0
	for _, a := range ch.Chunks() {
		s += sum(a)
	}
	if s != total || ch.Len() != m {
		return fmt.Errorf("scatter then gather: %d values summing to %g, want %d and %g", ch.Len(), s, m, total)
	}
	fmt.Println("scatter/gather ok")
	fmt.Println("MULTI OK")
	return nil
}

func main() {
	rankhub.Register("host", func(*views.Context) (string, error) { return os.Hostname() })
	rankhub.Register("enginesum", func(c *views.Context) ([2]float64, error) {
		comm, err := c.Comm()
		if err != nil {
			return [2]float64{}, err
		}
		return allreduce(c, comm)
	})
	rankhub.Main(drive)
}
