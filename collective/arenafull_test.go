package collective

import (
	"fmt"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/rankhub/rankhub/comm"
)

// TestMeshArenaFullFallsBackToPool: when a mesh rank's arena is full, what
// its allocator hands out (a multicast leader's assembled array, a
// reduction's result) comes from the rank's receive pool, zeroed, not from
// the Go heap: Protect then makes it read-only in place and Release gives
// it back to the pool. On the emulated cluster each node's /dev/shm is
// 2 GiB (arenas of 1 GiB), so every second push of 512 MiB to 3 x 2 found
// the leaders' arenas full, and each leader copied the array it had
// assembled on the heap into fresh read-only memory (Push 1.7-2.3 s on
// those repetitions, 0.9-1.2 s on the others).
func TestMeshArenaFullFallsBackToPool(t *testing.T) {
	key, _ := comm.NewKey()
	dir := t.TempDir()
	ms := twoMeshes(t, key, func(c *MeshConfig) {
		c.ForceTCP, c.ArenaDir, c.ArenaSize, c.Name = false, dir, 4<<20, fmt.Sprintf("af%d", c.Rank)
	})
	w := ms[0].World()
	if w.Arena() == nil {
		t.Fatal("no arena: the ranks are not on one node")
	}
	mem := w.Arena().Allocator()
	hold, err := w.Arena().Alloc(3 << 20) // the arena is nearly full
	if err != nil {
		t.Fatal(err)
	}
	defer mem.Free(hold)
	pool := ms[0].Pool()
	for round := range 2 { // the second reuses the first's (written) mapping
		live := pool.Live()
		buf := memory.NewResizableBuffer(mem) // as the assembler takes it: data, no validity
		buf.Resize(2 << 20)                   // more than the arena has left
		vals := arrow.Float64Traits.CastFromBytes(buf.Bytes())
		if round == 0 {
			for i := range vals {
				vals[i] = float64(i + 1)
			}
		}
		d := array.NewData(arrow.PrimitiveTypes.Float64, len(vals), []*memory.Buffer{nil, buf}, nil, 0, 0)
		buf.Release()
		a := array.MakeFromData(d)
		d.Release()
		if got := pool.Live(); got != live+1 {
			t.Fatalf("round %d: %d receive-pool buffers in use, want %d (the array's)", round, got, live+1)
		}
		if round == 1 {
			for i, v := range a.(*array.Float64).Float64Values() {
				if v != 0 {
					t.Fatalf("element %d of a new buffer is %g: the fallback memory was not zeroed", i, v)
				}
			}
		}
		if !w.Protect(a) {
			t.Fatalf("round %d: an array from the full arena's fallback could not be made read-only in place", round)
		}
		a.Release()
		if got := pool.Live(); got != live {
			t.Fatalf("round %d: %d receive-pool buffers in use after Release, want %d", round, got, live)
		}
	}
}
