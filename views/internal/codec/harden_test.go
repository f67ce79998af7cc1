package codec

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// Hardening tests of the decoders (issue 12): hostile payloads, hints from
// the wire.

// The crasher FuzzDecodeArrow found (issue 12, row 1): a record whose column
// has fewer rows than the record announces. It is an error naming the
// column, never a panic.
func TestDecodeArrowRecordRowMismatchIsAnError(t *testing.T) {
	ctrl := []byte{tArrow, arrowRecord, 1, 1, 0, 0, byte(arrow.INT8), 0, 0, 0, 0, 0}
	_, err := DecodeValues(ctrl, [][]byte{nil}, 1)
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), `record column "" has 0 rows, want 1`) {
		t.Fatalf("got %v", err)
	}
}

// A validity bitmap that disagrees with the null count it comes with is
// refused: the array would otherwise report nulls that are not there.
func TestDecodeArrowNullCountMustMatchBitmap(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	f := float64s(mem, 20, 3) // 7 nulls
	defer f.Release()
	ctrl, bufs, err := EncodeValues(f)
	if err != nil {
		t.Fatal(err)
	}
	// the null count is the fourth byte: tArrow, kind, type, length, nulls
	if ctrl[4] != 7 {
		t.Fatalf("layout changed: %v", ctrl)
	}
	ctrl[4] = 2
	if _, err := DecodeValues(ctrl, bufs, 1); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "null count") {
		t.Fatalf("got %v", err)
	}
}

// allocated reports the bytes fn allocates.
func allocated(fn func()) uint64 {
	var a, b runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&a)
	fn()
	runtime.ReadMemStats(&b)
	return b.TotalAlloc - a.TotalAlloc
}

// Counts from the wire are hints capped by what remains of the payload
// (issue 12, row 3): payloads announcing 2^40 elements or 60 M map entries
// cost the decoder less than 64 MiB and are refused with a clear error.
func TestDecodeHintsBoundedByPayload(t *testing.T) {
	uv := func(tag byte, n uint64, fill []byte) []byte {
		return append(binary.AppendUvarint([]byte{tag}, n), fill...)
	}
	ffs := bytes.Repeat([]byte{0xff}, 60<<20) // after the count: an unknown tag, or a bad length
	cases := []struct {
		name string
		ctrl []byte
		want string
	}{
		{"map of 60M entries in 60 MiB", uv(tMapStr, 60_000_000, ffs), "bad uvarint"},
		{"struct of 60M fields in 60 MiB", append(uv(tStruct, 0, nil), uv(0, 60_000_000, ffs)[1:]...), "bad uvarint"},
		{"map of 60M any entries", uv(tMapAny, 60_000_000, ffs), "unknown tag 255"},
		{"list of 60M", uv(tList, 60_000_000, ffs), "unknown tag 255"},
		{"strings of 60M", uv(tStrings, 60_000_000, ffs), "bad uvarint"},
		{"list of 2^40", uv(tList, 1<<40, nil), "count beyond payload"},
		{"numeric slice of 2^40", append([]byte{tNumSlice, tFloat64}, binary.AppendUvarint(nil, 1<<40)...), "beyond payload"},
		{"Arrow array of 2^40 rows", append(append([]byte{tArrow, arrowArray, byte(arrow.INT64)}, binary.AppendUvarint(nil, 1<<40)...), 0, 0, 0, 0), "data buffer too short"},
		{"Arrow record of 2^40 fields", append([]byte{tArrow, arrowRecord, 0}, binary.AppendUvarint(nil, 1<<40)...), "count beyond payload"},
		{"Arrow record of 60M fields", append(append([]byte{tArrow, arrowRecord, 0}, binary.AppendUvarint(nil, 60_000_000)...), ffs...), "bad uvarint"},
		{"Arrow chunked of 60M chunks", append(append([]byte{tArrow, arrowChunked, byte(arrow.INT8)}, binary.AppendUvarint(nil, 60_000_000)...), ffs...), "unexpected Arrow type 255"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var err error
			n := allocated(func() { _, err = DecodeValues(c.ctrl, [][]byte{make([]byte, 8)}, 1) })
			if err == nil || !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v, want one saying %q", err, c.want)
			}
			if n >= 64<<20 {
				t.Errorf("the decoder allocated %d MiB", n>>20)
			}
			t.Logf("%s: %d KiB allocated: %v", c.name, n>>10, err)
		})
	}
}

func TestCodecRoundTrip(t *testing.T) {
	type inner struct {
		X []int32
		M map[string]float64
	}
	now := time.Now().UTC()
	vals := []any{nil, true, false, 0, -1, int8(-8), int16(300), int32(-7), int64(math.MinInt64), uint(3), uint8(255),
		uint16(65535), uint32(1 << 31), uint64(math.MaxUint64), float32(1.5), math.Inf(-1), "héllo", []byte("raw"),
		make([]byte, 10000), []float64{1, 2.5}, make([]float64, 1000), []int{1, -2}, []string{"a", ""},
		[]any{1, "x", []any{nil}}, map[string]any{"k": 1.0}, map[int]string{1: "one"}, now, 3 * time.Second, Ref{"a"},
		[3]int16{1, 2, 3}}
	ctrl, bufs, err := EncodeValues(vals...)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeValues(ctrl, bufs, len(vals))
	if err != nil {
		t.Fatal(err)
	}
	want := append([]any(nil), vals...)
	want[len(want)-5] = map[any]any{1: "one"}
	want[len(want)-1] = []int16{1, 2, 3}
	for i := range want {
		if !reflect.DeepEqual(got[i], want[i]) {
			t.Errorf("value %d: got %#v, want %#v", i, got[i], want[i])
		}
	}
	// Structs travel by field name and convert back.
	ctrl, bufs, _ = EncodeValues(inner{X: []int32{4}, M: map[string]float64{"z": 2}})
	g, _ := DecodeValues(ctrl, bufs, 1)
	back, err := As[inner](g[0])
	if err != nil || back.X[0] != 4 || back.M["z"] != 2 {
		t.Fatalf("struct: %+v %v", back, err)
	}
	if _, _, err := EncodeValues(map[string]any{"c": make(chan int)}); !errors.Is(err, ErrNotSendable) || !strings.Contains(err.Error(), `["c"]`) {
		t.Fatalf("chan: %v", err)
	}
}

func FuzzDecodeValues(f *testing.F) {
	for _, s := range ValuesFuzzSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		DecodeValues(b, nil, 4)
	})
}
