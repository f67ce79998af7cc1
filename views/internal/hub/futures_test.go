package hub

import (
	"math/rand/v2"
	"testing"
)

// The future table answers like a map whatever the order of puts and
// drops, and its slice starts at the oldest id it holds.
func TestFutureTableLikeAMap(t *testing.T) {
	for seed := range uint64(20) {
		r := rand.New(rand.NewPCG(seed, 1))
		var ft futureTable
		want := map[uint64]*Task{}
		next := uint64(1 + r.IntN(3))
		for range 2000 {
			switch k := r.IntN(10); {
			case k < 5: // the core's next id
				tk := &Task{ID: next}
				ft.put(next, tk)
				want[next] = tk
				next += uint64(1 + r.IntN(2)) // sometimes an id without a future
			case k < 9 && len(want) > 0: // purge one
				for id := range want {
					ft.drop(id)
					delete(want, id)
					break
				}
			default: // an id not from the sequence
				id := uint64(r.IntN(int(next) + 5))
				if want[id] == nil {
					tk := &Task{ID: id}
					ft.put(id, tk)
					want[id] = tk
					next = max(next, id+1)
				}
			}
			for id := uint64(0); id < next+3; id++ {
				if got := ft.get(id); got != want[id] {
					t.Fatalf("seed %d: get(%d) = %v, want %v", seed, id, got, want[id])
				}
			}
			if len(ft.ts) > 0 && ft.ts[0] == nil {
				t.Fatalf("seed %d: the table starts with a purged slot (base %d)", seed, ft.base)
			}
		}
	}
}
