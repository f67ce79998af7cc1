package codec

import (
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// bigArray is a float64 array over mem (no copy).
func bigArray(mem []byte) arrow.Array {
	d := array.NewData(arrow.PrimitiveTypes.Float64, len(mem)/8,
		[]*memory.Buffer{nil, memory.NewBufferBytes(mem)}, nil, 0, 0)
	defer d.Release()
	return array.MakeFromData(d)
}

// idleGC waits until no collection for bulk arrays is scheduled and
// clears the count of bytes received since the last.
func idleGC(t *testing.T) {
	t.Helper()
	for end := time.Now().Add(10 * time.Second); gcPending.Load(); {
		if time.Now().After(end) {
			t.Fatal("a collection for bulk arrays stays scheduled")
		}
		time.Sleep(time.Millisecond)
	}
	bulkSinceGC.Store(0)
}

// Arrays given back at once (the engine's namespace replacing a push)
// start no collection however many bytes of them arrive; arrays left to
// the collector still do.
func TestReleasedBulkArraysStartNoCollection(t *testing.T) {
	mem := make([]byte, bulkGCBytes/4)
	idleGC(t)
	epoch := gcEpoch.Load()
	for range 12 { // 3 x bulkGCBytes, each given back before the next
		_, h := GCOwnedHold(bigArray(mem))
		h.Release()
	}
	if gcPending.Load() || gcEpoch.Load() != epoch {
		t.Fatalf("a collection was started for %d bytes of arrays given back at once", 3*bulkGCBytes)
	}
	var keep []arrow.Array
	for range 5 { // left to the collector
		a, _ := GCOwnedHold(bigArray(mem))
		keep = append(keep, a)
	}
	if !gcPending.Load() && gcEpoch.Load() == epoch {
		t.Fatalf("no collection started for %d bytes of arrays left to the collector", 5*len(mem))
	}
	_ = keep
}
