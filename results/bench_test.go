package results

import (
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkWrite measures rows/s end to end: Write from 2 goroutines,
// batches of the default 1024 rows, each flush written and fsynced, Close.
func BenchmarkWrite(b *testing.B) {
	rows := make([]Row, 1024)
	for i := range rows {
		rows[i] = testRow(i)
	}
	path := filepath.Join(b.TempDir(), "bench.arrow")
	w, err := Create(path, testJob(), testProv(), FlushInterval(time.Hour))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if err := w.Write(rows[i%len(rows)]); err != nil {
				b.Error(err)
				return
			}
			i++
		}
	})
	if err := w.Close("completed"); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "rows/s")
}

// BenchmarkChecksum measures what batch checksums add to writing: the
// CRC32C of one 1024-row batch (done once per flush), reported per row to
// compare with BenchmarkWrite's ns/op (one row per op).
func BenchmarkChecksum(b *testing.B) {
	path := filepath.Join(b.TempDir(), "bench.arrow")
	w, err := Create(path, testJob(), testProv(), FlushRows(1<<30), FlushInterval(time.Hour))
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close("completed")
	w.mu.Lock()
	for i := 0; i < 1024; i++ {
		w.append(testRow(i))
	}
	rec := w.bld.NewRecordBatch()
	w.mu.Unlock()
	defer rec.Release()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		batchChecksum(rec, nil, nil)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1024, "ns/row")
}
