package collective

import (
	"bytes"
	"math"
	"math/rand"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
)

// The AVX2 kernels give the same bytes as the portable ones, for every
// length (whole blocks and tails), for NaN, infinities, -0 and integer
// overflow, with the result in place or apart.
func TestSIMDKernelsMatchPortable(t *testing.T) {
	if !hasSIMD {
		t.Skip("no AVX2 on this CPU: the portable kernels are the only ones")
	}
	portable := map[string]map[arrow.Type]kernel{
		Sum.name:  {arrow.FLOAT64: wrap(sumK[float64]), arrow.FLOAT32: wrap(sumK[float32]), arrow.INT64: wrap(sumK[int64]), arrow.UINT64: wrap(sumK[uint64]), arrow.INT32: wrap(sumK[int32]), arrow.UINT32: wrap(sumK[uint32])},
		Prod.name: {arrow.FLOAT64: wrap(prodK[float64]), arrow.FLOAT32: wrap(prodK[float32])},
	}
	rng := rand.New(rand.NewSource(7))
	specials64 := []float64{math.NaN(), math.Inf(1), math.Inf(-1), math.Copysign(0, -1), 0, math.MaxFloat64, math.SmallestNonzeroFloat64}
	for op, byType := range portable {
		for id, ref := range byType {
			k, err := lookupKernel(Op{name: op}, typeOf(id))
			if err != nil {
				t.Fatal(err)
			}
			w := width(typeOf(id))
			for n := int64(0); n <= 300; n++ {
				a, b := make([]byte, n*w+64), make([]byte, n*w+64)
				rng.Read(a)
				rng.Read(b)
				if id == arrow.FLOAT64 { // sprinkle IEEE specials
					fa := view[float64](a, n)
					for i := range fa {
						if rng.Intn(8) == 0 {
							fa[i] = specials64[rng.Intn(len(specials64))]
						}
					}
				}
				want, got := make([]byte, n*w), make([]byte, n*w)
				ref(want, a, b, n)
				k(got, a, b, n)
				if !bytes.Equal(want, got) {
					t.Fatalf("%s %s n=%d: AVX2 result differs from the portable one", op, typeOf(id), n)
				}
				k(a, a, b, n) // in place
				if !bytes.Equal(want, a[:n*w]) {
					t.Fatalf("%s %s n=%d: in place differs", op, typeOf(id), n)
				}
			}
		}
	}
}

func BenchmarkSumFloat64Kernel(b *testing.B) {
	k, _ := lookupKernel(Sum, arrow.PrimitiveTypes.Float64)
	const n = 1 << 15
	x, y, d := make([]byte, n*8), make([]byte, n*8), make([]byte, n*8)
	b.SetBytes(n * 8 * 2)
	for i := 0; i < b.N; i++ {
		k(d, x, y, n)
	}
}
