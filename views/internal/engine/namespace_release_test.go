package engine

import (
	"reflect"
	"runtime"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/rankhub/rankhub/views/internal/codec"
)

// TestNamespaceReleasesReceivedValues: which dropped bulk values the
// namespace gives back at once, at burial, or never (the collector's):
// observed through the checked allocator the received arrays' memory
// comes from.
func TestNamespaceReleasesReceivedValues(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.DefaultAllocator)
	const size = 1024 * 8
	received := func() (arrow.Array, *codec.GCHold) {
		b := array.NewFloat64Builder(mem)
		defer b.Release()
		for i := range 1024 {
			b.Append(float64(i))
		}
		return codec.GCOwnedHold(b.NewArray())
	}
	live := func() int { return mem.CurrentAlloc() / size }
	ns := NewNamespace()
	a, ha := received()
	ns.setReceived("a", a, ha)
	b, hb := received()
	ns.setReceived("a", b, hb) // a: nobody saw it
	if n := live(); n != 1 {
		t.Fatalf("after rebinding a value nobody saw: %d arrays live, want 1", n)
	}
	ns.Delete("a") // b too
	if n := live(); n != 0 {
		t.Fatalf("after deleting it: %d arrays live, want 0", n)
	}
	c, hc := received()
	ns.setReceived("c", c, hc)
	if v, ok := ns.lend("c"); !ok || v != c {
		t.Fatal("lend")
	}
	u, hu := received()
	ns.setReceived("u", u, hu)
	if v, ok := ns.Get("u"); !ok || v != u {
		t.Fatal("Get")
	}
	k := ns.drops()
	ns.Clear()
	if n := live(); n != 2 {
		t.Fatalf("after Clear: %d arrays live, want 2 (one a pull sent, one user code got)", n)
	}
	if ns.buryBefore(k) || live() != 2 {
		t.Fatal("buryBefore a drop count taken before the drops released something")
	}
	if !ns.buryBefore(-1) {
		t.Error("burying the value user code got did not ask for a collection")
	}
	if n := live(); n != 1 {
		t.Fatalf("after burying: %d arrays live, want 1 (user code's: the collector's to free)", n)
	}
	// One array bound under two names is never given back by either.
	d, hd := received()
	ns.setReceived("d1", d, hd)
	ns.setReceived("d2", d, hd)
	ns.Delete("d1")
	ns.buryBefore(-1)
	if v, ok := ns.Get("d2"); !ok || v.(*array.Float64).Value(1023) != 1023 {
		t.Fatal("d2 lost its value")
	}
	runtime.KeepAlive(u)
}

// TestNamespaceBookkeepingIsNotUsers: user code reaches the namespace
// through Context.NS; the methods that give values back to the pool are not
// its to call (a function that kept what it borrowed through an exported
// Lend had its memory reused by the next push), and binding the same
// received array to its name again keeps it.
func TestNamespaceBookkeepingIsNotUsers(t *testing.T) {
	typ := reflect.TypeOf(&Namespace{})
	for _, m := range []string{"Lend", "SetReceived", "Drops", "BuryBefore"} {
		if _, ok := typ.MethodByName(m); ok {
			t.Errorf("Namespace.%s is exported: user code could release memory it still uses", m)
		}
	}
	mem := memory.NewCheckedAllocator(memory.DefaultAllocator)
	b := array.NewFloat64Builder(mem)
	for i := range 1024 {
		b.Append(float64(i))
	}
	a, h := codec.GCOwnedHold(b.NewArray())
	b.Release()
	ns := NewNamespace()
	ns.setReceived("x", a, h)
	ns.setReceived("x", a, h)
	if mem.CurrentAlloc() == 0 {
		t.Fatal("binding the same array to its name again gave it back")
	}
	if v, ok := ns.Get("x"); !ok || v.(*array.Float64).Value(1023) != 1023 {
		t.Fatal("x lost its value")
	}
}
