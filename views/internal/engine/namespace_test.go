package engine

import (
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// constArray is an Arrow array of n float64 (their values do not matter
// here: only that they are Arrow).
func constArray(n int, _ float64) arrow.Array {
	return array.MakeArrayOfNull(memory.DefaultAllocator, arrow.PrimitiveTypes.Float64, n)
}

func TestNamespaceKeepsDroppedValuesUntilBuried(t *testing.T) {
	ns := NewNamespace()
	a, b := constArray(10, 1), constArray(10, 2)
	ns.Set("x", a)
	ns.Set("x", b) // a dropped
	ns.Set("y", 7)
	ns.Delete("y")
	ns.Clear() // b dropped
	if len(ns.dropped) != 3 || ns.drops() != 3 || len(ns.Names()) != 0 {
		t.Fatalf("dropped %d values, names %v", len(ns.dropped), ns.Names())
	}
	if !ns.buryBefore(1) || len(ns.dropped) != 2 || ns.drops() != 3 {
		t.Fatal("buryBefore(1) did not forget exactly the first (Arrow) value")
	}
	if ns.buryBefore(2) || len(ns.dropped) != 1 {
		t.Fatal("buryBefore(2) reported an Arrow value among plain ones, or kept it")
	}
	if !ns.buryBefore(-1) || len(ns.dropped) != 0 || ns.drops() != 3 {
		t.Fatal("buryBefore(-1) did not forget the rest")
	}
	ns.Set("z", []any{1, map[string]any{"a": constArray(3, 1)}})
	ns.Delete("z")
	if !ns.buryBefore(-1) {
		t.Fatal("an Arrow value nested in a list and a map was not reported")
	}
}

// ---- hub and engines in process, with a collective world ----
