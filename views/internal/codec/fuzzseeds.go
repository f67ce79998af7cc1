package codec

import (
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// ArrowFuzzSeeds are FuzzDecodeArrow's seeds: ctrl and three buffers.
// views sends them to a live hub and engines (its hostile-corpus test).
func ArrowFuzzSeeds() [][4][]byte {
	mem := memory.NewGoAllocator()
	b := array.NewFloat64Builder(mem)
	for i := 0; i < 20; i++ {
		if i%3 == 0 {
			b.AppendNull()
		} else {
			b.Append(float64(i))
		}
	}
	fb := b.NewFloat64Array()
	b.Release()
	sb := array.NewStringBuilder(mem)
	sb.AppendValues([]string{"x", "yz", ""}, nil)
	s := sb.NewStringArray()
	var out [][4][]byte
	for _, v := range []any{fb, array.NewSlice(fb, 3, 11), s} {
		ctrl, bufs, err := EncodeValues(v)
		if err != nil {
			panic(err) // these values are sendable
		}
		for len(bufs) < 3 {
			bufs = append(bufs, nil)
		}
		out = append(out, [4][]byte{ctrl, bufs[0], bufs[1], bufs[2]})
	}
	// a bulk reference: refused without a mesh, whatever follows it
	out = append(out, [4][]byte{{tArrow, arrowArray, arrowBulk, byte(arrow.FLOAT64), 0, 1}})
	return out
}

// ValuesFuzzSeeds are FuzzDecodeValues' seeds.
func ValuesFuzzSeeds() [][]byte {
	ctrl, _, _ := EncodeValues(1, "x", []any{1.5, map[string]any{"a": []int{1}}}, time.Now())
	return [][]byte{ctrl}
}
