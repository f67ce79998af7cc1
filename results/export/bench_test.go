package export

import (
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rankhub/rankhub/results"
)

var (
	bigOnce sync.Once
	bigPath string
)

// bigFile is a result file of 10^6 rows, written once per test binary.
func bigFile(b *testing.B) string {
	bigOnce.Do(func() {
		dir, err := os.MkdirTemp("", "rankhub-export-bench-")
		if err != nil {
			b.Fatal(err)
		}
		bigPath = writeFile(b, dir, "big.arrow", 0, 1_000_000)
	})
	return bigPath
}

// BenchmarkExport1M times Open plus export of 10^6 rows to each format
// (to a file), and peek (Open plus PeekFiles by L, T). One op is one
// export; run with -benchtime 1x.
func BenchmarkExport1M(b *testing.B) {
	path := bigFile(b)
	for _, format := range []string{TSV, Parquet, CSV, JSON, "peek"} {
		b.Run(format, func(b *testing.B) {
			out := filepath.Join(b.TempDir(), "out")
			for i := 0; i < b.N; i++ {
				start, cpu0 := time.Now(), cpuTime()
				r, err := results.Open(path)
				if err != nil {
					b.Fatal(err)
				}
				if format == "peek" {
					if _, err := results.PeekFiles([]*results.Reader{r}, []string{"L", "T"}); err != nil {
						b.Fatal(err)
					}
				} else {
					f, err := os.Create(out)
					if err != nil {
						b.Fatal(err)
					}
					if err := Write(f, []*results.Reader{r}, format, nil); err != nil {
						b.Fatal(err)
					}
					f.Close()
				}
				r.Close()
				b.ReportMetric(time.Since(start).Seconds(), "s/1M-rows")
				// On a shared machine the wall time includes waiting for a
				// core; the process's CPU time does not.
				b.ReportMetric((cpuTime() - cpu0).Seconds(), "cpu-s/1M-rows")
			}
		})
	}
}

// cpuTime returns the CPU time (user and system) of this process so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
