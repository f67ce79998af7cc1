package sweep

import (
	"testing"

	"github.com/rankhub/rankhub/jobs"
	"github.com/rankhub/rankhub/views"
)

func BenchmarkExecChunkFunction(b *testing.B) {
	views.Register("sweep_bench.tiny", func(p map[string]any) (map[string]float64, error) {
		return map[string]float64{"y": 2}, nil
	})
	job, err := jobs.Parse("b.toml", []byte("[job]\nranks = 2\nprogram = [\"./p\"]\n[task]\nfunction = \"sweep_bench.tiny\"\noutputs = [\"y\"]\n[sweep]\nx = { start = 0, stop = 99999, step = 1 }\n"))
	if err != nil {
		b.Fatal(err)
	}
	pairs := make([]int64, 0, 2*4096)
	for i := range 4096 {
		pairs = append(pairs, int64(i), 0)
	}
	b.ResetTimer()
	for range b.N {
		ExecChunk(nil, job, pairs)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*4096), "ns/task")
}
