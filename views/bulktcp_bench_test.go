package views

import (
	"fmt"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"
)

// BenchmarkBulkTCP: push a float64 array to one engine and pull it back to
// the in-process driver over a collective mesh on loopback TCP, the path
// between nodes (receive buffers protected in place, or copied into
// read-only memory before that).
func BenchmarkBulkTCP(b *testing.B) {
	cl := tcpMeshCluster(b, 1)
	dv := must[*DirectView](b)(cl.View(0))
	for _, size := range []int{2 << 20, 32 << 20} {
		x := roRamp(size / 8)
		b.Run(fmt.Sprintf("push/%dMiB", size>>20), func(b *testing.B) {
			b.SetBytes(int64(size))
			for i := 0; i < b.N; i++ {
				if _, err := must[*AsyncResult](b)(dv.Push(map[string]any{"x": x})).Get(-1); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("pull/%dMiB", size>>20), func(b *testing.B) {
			b.SetBytes(int64(size))
			for i := 0; i < b.N; i++ {
				v, err := must[*AsyncResult](b)(dv.Pull("x")).Get(10 * time.Second)
				if err != nil {
					b.Fatal(err)
				}
				if v.(*array.Float64).Len() != size/8 {
					b.Fatal("short array")
				}
				cl.PurgeAll()
			}
		})
		x.Release()
	}
}
