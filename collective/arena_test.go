package collective

import (
	"math/rand"
	"os"
	"testing"
)

func writeFile(p string) error { return os.WriteFile(p, []byte("x"), 0o600) }

func TestArenaAllocatorCoalesces(t *testing.T) {
	a, err := NewArena(t.TempDir(), "alloc", 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	rng := rand.New(rand.NewSource(4))
	var live [][]byte
	for i := 0; i < 2000; i++ {
		if len(live) > 0 && rng.Intn(2) == 0 {
			j := rng.Intn(len(live))
			a.Allocator().Free(live[j])
			live = append(live[:j], live[j+1:]...)
			continue
		}
		size := 1 + rng.Intn(20000)
		if rng.Intn(8) == 0 {
			size = pageAlignMin + rng.Intn(3*pageAlignMin)
		}
		b, err := a.Alloc(int64(size))
		if err != nil {
			continue
		}
		if off := a.offsetOf(b); off%arenaAlign != 0 || (len(b) >= pageAlignMin && off%int64(pageSize) != 0) {
			t.Fatalf("offset %d of %d bytes not aligned", off, len(b))
		}
		live = append(live, b)
	}
	for _, b := range live {
		a.Allocator().Free(b)
	}
	if a.InUse() != 0 || len(a.free) != 1 {
		t.Fatalf("after freeing all: in use %d, %d free spans", a.InUse(), len(a.free))
	}
}

func FuzzParseHeader(f *testing.F) {
	h := header{kind: kindRecord, aux: 3, fields: []fieldMeta{{"x", true}}, cols: []colMeta{{typ: 9, n: 10, nulls: 1, hasValid: true}}, refs: []bufRef{{n: 2}, {n: 80}}}
	f.Add(h.marshal())
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = parseHeader(b)
	})
}
