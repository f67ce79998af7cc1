package collective

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

const benchRanks = 4

// benchWorld: goroutine ranks over the local network with arenas.
func benchWorld(b *testing.B) ([]*Comm, func()) {
	ts := NewLocalNetwork(benchRanks, LocalOptions{SameNode: true})
	dir := b.TempDir()
	var comms []*Comm
	var arenas []*Arena
	for r := 0; r < benchRanks; r++ {
		a, err := NewArena(dir, fmt.Sprintf("b%d", r), 512<<20)
		if err != nil {
			b.Fatal(err)
		}
		c, err := New(ts[r], WithArena(a))
		if err != nil {
			b.Fatal(err)
		}
		comms, arenas = append(comms, c), append(arenas, a)
	}
	return comms, func() {
		for i := range comms {
			comms[i].Close()
			arenas[i].Close()
			ts[i].Close()
		}
	}
}

func float64Array(mem memory.Allocator, n int) arrow.Array {
	buf := memory.NewResizableBuffer(mem)
	buf.Resize(n * 8)
	v := view[float64](buf.Bytes(), int64(n))
	for i := range v {
		v[i] = float64(i)
	}
	d := array.NewData(arrow.PrimitiveTypes.Float64, n, []*memory.Buffer{nil, buf}, nil, 0, 0)
	buf.Release()
	a := array.MakeFromData(d)
	d.Release()
	return a
}

func benchColl(b *testing.B, size int, fn func(ctx context.Context, c *Comm, a arrow.Array) error) {
	comms, done := benchWorld(b)
	defer done()
	arrs := make([]arrow.Array, benchRanks)
	for r := range arrs {
		arrs[r] = float64Array(memory.DefaultAllocator, size/8)
		defer arrs[r].Release()
	}
	ctx := context.Background()
	b.SetBytes(int64(size))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var wg sync.WaitGroup
		errs := make([]error, benchRanks)
		for r, c := range comms {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[r] = fn(ctx, c, arrs[r])
			}()
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				b.Fatal(err)
			}
		}
	}
}

func BenchmarkCollectives(b *testing.B) {
	for _, mib := range []int{8, 64} {
		size := mib << 20
		b.Run(fmt.Sprintf("bcast/%dMiB", mib), func(b *testing.B) {
			benchColl(b, size, func(ctx context.Context, c *Comm, a arrow.Array) error {
				r, err := c.Bcast(ctx, 0, a)
				if err == nil {
					r.Release()
				}
				return err
			})
		})
		b.Run(fmt.Sprintf("scatter/%dMiB", mib), func(b *testing.B) {
			benchColl(b, size, func(ctx context.Context, c *Comm, a arrow.Array) error {
				r, err := c.Scatter(ctx, 0, a)
				if err == nil {
					r.Release()
				}
				return err
			})
		})
		b.Run(fmt.Sprintf("gather/%dMiB", mib), func(b *testing.B) {
			benchColl(b, size, func(ctx context.Context, c *Comm, a arrow.Array) error {
				part := array.NewSlice(a, int64(c.Rank()*a.Len()/benchRanks), int64((c.Rank()+1)*a.Len()/benchRanks))
				defer part.Release()
				r, err := c.Gather(ctx, 0, part)
				if err == nil && r != nil {
					r.Release()
				}
				return err
			})
		})
		b.Run(fmt.Sprintf("reduce/%dMiB", mib), func(b *testing.B) {
			benchColl(b, size, func(ctx context.Context, c *Comm, a arrow.Array) error {
				r, err := c.Reduce(ctx, 0, a, Sum)
				if err == nil && r != nil {
					r.Release()
				}
				return err
			})
		})
		b.Run(fmt.Sprintf("allreduce/%dMiB", mib), func(b *testing.B) {
			benchColl(b, size, func(ctx context.Context, c *Comm, a arrow.Array) error {
				r, err := c.Allreduce(ctx, a, Sum)
				if err == nil {
					r.Release()
				}
				return err
			})
		})
	}
}

// TestHuge3GiB moves a 3 GiB array (more than 2^31 bytes and elements)
// through shared memory: bcast aliases the root's arena, scatter sends
// slices of it. Needs RANKHUB_HUGE=1 and about 3.2 GiB of /dev/shm.
func TestHuge3GiB(t *testing.T) {
	if os.Getenv("RANKHUB_HUGE") == "" || testing.Short() {
		t.Skip("set RANKHUB_HUGE=1 to run the 3 GiB test")
	}
	const n = 3 << 30
	ts := NewLocalNetwork(2, LocalOptions{SameNode: true})
	dir := "/dev/shm"
	a0, err := NewArena(dir, "huge0", n+(1<<20))
	if err != nil {
		t.Fatal(err)
	}
	defer a0.Close()
	a1, err := NewArena(dir, "huge1", 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer a1.Close()
	c0, _ := New(ts[0], WithArena(a0))
	c1, _ := New(ts[1], WithArena(a1))
	buf := memory.NewResizableBuffer(a0.Allocator())
	buf.Resize(n)
	bs := buf.Bytes()
	for i := 0; i < n; i += 4096 {
		bs[i] = byte(i / 4096)
	}
	bs[n-1] = 0xAB
	d := array.NewData(arrow.PrimitiveTypes.Uint8, n, []*memory.Buffer{nil, buf}, nil, 0, 0)
	buf.Release()
	src := array.MakeFromData(d)
	d.Release()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		r, err := c0.Bcast(ctx, 0, src)
		if err != nil {
			t.Error(err)
			return
		}
		r.Release()
		s, err := c0.Scatter(ctx, 0, src)
		if err != nil {
			t.Error(err)
			return
		}
		s.Release()
	}()
	got, err := c1.Bcast(ctx, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	u := got.(*array.Uint8)
	if u.Len() != n || u.Value(n-1) != 0xAB || u.Value(4096*1000) != byte(1000%256) {
		t.Errorf("bcast: len %d last %x", u.Len(), u.Value(n-1))
	}
	got.Release()
	half, err := c1.Scatter(ctx, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if half.Len() != n/2 || half.(*array.Uint8).Value(n/2-1) != 0xAB {
		t.Errorf("scatter: len %d", half.Len())
	}
	half.Release()
	wg.Wait()
	src.Release()
	deadline := time.Now().Add(5 * time.Second)
	for a0.InUse() != 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if a0.InUse() != 0 {
		t.Errorf("arena still holds %d bytes", a0.InUse())
	}
	c0.Close()
	c1.Close()
}
