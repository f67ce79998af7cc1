package rankhub_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/rankhub/rankhub"
	"github.com/rankhub/rankhub/views"
)

// Views' push, scatter, pull and gather of large numeric Arrow arrays take
// the collective mesh (arenas on one node): tested on real ranks by where
// the received bytes live (/proc/self/maps) and by the hub's arena
// accounting.

// mappingOf names the file mapped at b's first byte ("" for anonymous
// memory such as the Go heap).
func mappingOf(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	p := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return "error: " + err.Error()
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		var lo, hi uintptr
		if _, err := fmt.Sscanf(fs[0], "%x-%x", &lo, &hi); err != nil || p < lo || p >= hi {
			continue
		}
		if len(fs) >= 6 {
			return fs[5]
		}
		return ""
	}
	return "unmapped"
}

type bulkInfo struct {
	Sum     float64
	Len     int
	Mapping string
}

func infoOf(a arrow.Array) bulkInfo {
	f := a.(*array.Float64)
	s := 0.0
	for _, v := range f.Float64Values() {
		s += v
	}
	return bulkInfo{s, f.Len(), mappingOf(f.Data().Buffers()[1].Bytes())}
}

func ramp(n int) arrow.Array {
	b := array.NewFloat64Builder(memory.DefaultAllocator)
	defer b.Release()
	b.Reserve(n)
	for i := 0; i < n; i++ {
		b.UnsafeAppend(float64(i))
	}
	return b.NewArray()
}

func init() {
	registrations = append(registrations, func() {
		rankhub.Register("bulkinfo", func(c *views.Context, name string) (bulkInfo, error) {
			v, ok := c.NS.Get(name)
			if !ok {
				return bulkInfo{}, fmt.Errorf("no %q", name)
			}
			a, ok := v.(arrow.Array)
			if !ok {
				return bulkInfo{}, fmt.Errorf("%q is a %T", name, v)
			}
			return infoOf(a), nil
		})
		// bulkdrop forgets names: once the task is over the engine lets the
		// arrays go and starts a collection, and their memory goes back to
		// the hub's arena.
		rankhub.Register("bulkdrop", func(c *views.Context, names []string) error {
			for _, n := range names {
				c.NS.Delete(n)
			}
			return nil
		})
	})
	drivers["bulk"] = func(ctx context.Context, c *views.Client) error {
		const n = 1 << 20 // 8 MiB of float64
		total := float64(n) * float64(n-1) / 2
		dv, err := c.DirectView()
		if err != nil {
			return err
		}
		w, err := rankhub.World(ctx)
		if err != nil {
			return err
		}
		arena := w.Arena()
		if arena == nil {
			return fmt.Errorf("the hub has no arena")
		}
		x := ramp(n)
		defer x.Release()
		before := arena.InUse()
		if err := dv.Set("x", x); err != nil {
			return err
		}
		if grew := arena.InUse() - before; grew < 8<<20 || grew >= 16<<20 {
			return fmt.Errorf("push to 3 engines: the hub's arena grew by %d bytes, want one copy of 8 MiB", grew)
		}
		got, err := dv.ApplySync("bulkinfo", "x")
		if err != nil {
			return err
		}
		for i, g := range got.([]any) {
			bi, err := views.As[bulkInfo](g)
			if err != nil {
				return err
			}
			if bi.Sum != total || bi.Len != n || bi.Mapping != arena.Path() {
				return fmt.Errorf("engine %d: pushed x: %+v, want sum %g in the hub's arena %s", i, bi, total, arena.Path())
			}
		}
		note("push ok")
		small := ramp(100)
		defer small.Release()
		if err := dv.Set("s", small); err != nil {
			return err
		}
		got, err = dv.ApplySync("bulkinfo", "s")
		if err != nil {
			return err
		}
		if bi, _ := views.As[bulkInfo](got.([]any)[0]); bi.Sum != 4950 || strings.HasPrefix(bi.Mapping, "/dev/shm") {
			return fmt.Errorf("small push: %+v, want sum 4950 in frames", bi)
		}
		pulled, err := dv.Get("x")
		if err != nil {
			return err
		}
		for i, p := range pulled.([]any) {
			bi := infoOf(p.(arrow.Array))
			if bi.Sum != total || !strings.HasPrefix(bi.Mapping, "/dev/shm/") || bi.Mapping == arena.Path() {
				return fmt.Errorf("pull from engine %d: %+v, want sum %g in the engine's arena, not the hub's %s", i, bi, total, arena.Path())
			}
		}
		note("pull ok")
		ar, err := dv.Scatter("p", x)
		if err != nil {
			return err
		}
		if _, err := ar.Get(20 * time.Second); err != nil {
			return err
		}
		ar, err = dv.Gather("p")
		if err != nil {
			return err
		}
		g, err := ar.Get(20 * time.Second)
		if err != nil {
			return err
		}
		ch := g.(*arrow.Chunked)
		s := 0.0
		for _, a := range ch.Chunks() {
			bi := infoOf(a)
			if !strings.HasPrefix(bi.Mapping, "/dev/shm/") {
				return fmt.Errorf("gathered chunk not from an arena: %+v", bi)
			}
			s += bi.Sum
		}
		if s != total || ch.Len() != n {
			return fmt.Errorf("scatter then gather: %d values summing to %g, want %d and %g", ch.Len(), s, n, total)
		}
		note("scatter/gather ok")
		if _, err := dv.ApplySync("bulkdrop", []string{"x", "p"}); err != nil {
			return err
		}
		deadline := time.Now().Add(10 * time.Second)
		for arena.InUse() > before {
			if time.Now().After(deadline) {
				return fmt.Errorf("the hub's arena holds %d bytes after the engines dropped everything, %d before", arena.InUse(), before)
			}
			time.Sleep(20 * time.Millisecond)
		}
		note("released ok")
		return nil
	}
}

func TestViewsMoveLargeArraysThroughArenas(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dir, done := start(t, ctx, "bulk", 4, true)
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
	for _, n := range []string{"push ok", "pull ok", "scatter/gather ok", "released ok"} {
		waitNote(t, dir, n, time.Second)
	}
}
