package results

import (
	"bytes"
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"
)

// damaged is a result file of 2000 rows in batches of 500: closed is the
// file as closed, killed as it was after its last flush (writer killed),
// and last the byte range of that last flush.
type damaged struct {
	closed, killed []byte
	last           [2]int
}

// corruptions return damaged bytes of a file.
var corruptions = []struct {
	name string
	bad  func(d damaged) []byte
}{
	// Zeros over the end of a closed file: the footer, the closing batch
	// and the end of the last data batch's buffers.
	{"zeroed-last-4KiB", func(d damaged) []byte {
		b := bytes.Clone(d.closed)
		clear(b[len(b)-4096:])
		return b
	}},
	// A killed writer's file followed by bytes that look like a batch: a
	// copy of the last flush with some of its values changed.
	{"garbage-tail", func(d damaged) []byte {
		g := bytes.Clone(d.killed[d.last[0]:d.last[1]])
		for i := len(g) / 3; i < len(g)/3+64; i++ {
			g[i] ^= 0x5a
		}
		return append(bytes.Clone(d.killed[:d.last[1]]), g...)
	}},
	// Bytes changed inside a data batch's buffers: task 1234's "mag".
	{"flipped-bytes-in-a-batch", func(d damaged) []byte {
		b := bytes.Clone(d.closed)
		v := binary.LittleEndian.AppendUint64(nil, math.Float64bits(testRow(1234).Outputs[1]))
		i := bytes.Index(b, v)
		b[i+6] ^= 0x01
		return b
	}},
}

func makeDamaged(t *testing.T, n int) damaged {
	t.Helper()
	dir := t.TempDir()
	d := damaged{closed: readAll(t, writeFile(t, dir, n, 500))}
	path := filepath.Join(dir, "killed.arrow")
	w, err := Create(path, testJob(), testProv(), FlushRows(500), FlushInterval(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		if err := w.Write(testRow(i)); err != nil {
			t.Fatal(err)
		}
		if i == n-501 || i == n-1 {
			st, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if i == n-501 {
				d.last[0] = int(st.Size())
			} else {
				d.last[1] = int(st.Size())
			}
		}
	}
	d.killed = readAll(t, path)
	if err := w.Close("completed"); err != nil {
		t.Fatal(err)
	}
	return d
}

// A damaged file never gives a wrong row: Open, Recover and Append keep
// only rows whose batch checksum holds, and say what they left out.
func TestCorruptionCaught(t *testing.T) {
	const n = 2000
	d := makeDamaged(t, n)
	orig := d.closed
	for _, c := range corruptions {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "bad.arrow")
			if err := writeBytes(path, c.bad(d)); err != nil {
				t.Fatal(err)
			}
			checkNoWrongRow := func(what string, rows []Row) {
				t.Helper()
				if len(rows) > n {
					t.Fatalf("%s: %d rows, the file had %d", what, len(rows), n)
				}
				for _, row := range rows {
					if row.Task < 0 || row.Task >= n || !sameRow(row, testRow(row.Task)) {
						t.Fatalf("%s: task %d: row differs from what was written", what, row.Task)
					}
				}
			}
			r, err := Open(path)
			if err != nil {
				t.Fatal(err)
			}
			rows := r.Rows()
			checkNoWrongRow("Open", rows)
			if len(r.Corrupt()) == 0 && r.TailError() == nil {
				t.Fatalf("Open: %d of %d rows and no corruption reported", len(rows), n)
			}
			if c.name == "flipped-bytes-in-a-batch" {
				cb := r.Corrupt()
				if len(cb) != 1 || cb[0].Offset <= 0 || cb[0].Offset > int64(bytes.Index(orig, binary.LittleEndian.AppendUint64(nil, math.Float64bits(123.4)))) {
					t.Fatalf("Corrupt() = %+v, want the one batch holding task 1234", cb)
				}
				t.Logf("reported: %v", cb[0])
			} else {
				t.Logf("reported: tail %v, corrupt %v", r.TailError(), r.Corrupt())
			}
			s, err := Peek(r, []string{"L", "T"})
			if err != nil {
				t.Fatal(err)
			}
			total := 0
			for _, g := range s.Groups {
				total += g.Rows
			}
			if total != len(rows) {
				t.Fatalf("peek counts %d rows, the reader %d", total, len(rows))
			}
			r.Close()

			// Resume counts only verified rows as done, and the
			// continued file holds nothing else.
			w, done, err := Append(path, testJob(), testProv())
			if err != nil {
				t.Fatal(err)
			}
			ok := 0
			for _, row := range rows {
				if !row.Failed() {
					ok++
				}
			}
			if len(done) != ok {
				t.Fatalf("Append: %d tasks done, %d verified successful rows", len(done), ok)
			}
			if err := w.Close("completed"); err != nil {
				t.Fatal(err)
			}
			r2, err := Open(path)
			if err != nil {
				t.Fatal(err)
			}
			checkNoWrongRow("after Append", r2.Rows())
			if len(r2.Corrupt()) != 0 || r2.TailError() != nil || r2.NumRows() != len(rows) {
				t.Fatalf("after Append: %d rows (want %d), corrupt %v, tail %v", r2.NumRows(), len(rows), r2.Corrupt(), r2.TailError())
			}
			r2.Close()

			// Recover drops the damage as well.
			if err := writeBytes(path, c.bad(d)); err != nil {
				t.Fatal(err)
			}
			kept, err := Recover(path)
			if err != nil {
				t.Fatal(err)
			}
			r3, err := Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer r3.Close()
			checkNoWrongRow("after Recover", r3.Rows())
			if kept != len(rows) || r3.NumRows() != kept || len(r3.Corrupt()) != 0 {
				t.Fatalf("Recover kept %d, reads %d, want %d; corrupt %v", kept, r3.NumRows(), len(rows), r3.Corrupt())
			}
		})
	}
}

// Bytes changed anywhere in a file never give a wrong row or wrong
// provenance, and never a panic: Open fails, or every row it gives is one
// that was written.
func TestRandomDamageNeverWrongRows(t *testing.T) {
	const n = 300
	orig := readAll(t, writeFile(t, t.TempDir(), n, 40))
	want := testProv()
	want.ResultsVersion = ResultsVersion
	x := uint64(88172645463325252)
	next := func(m int) int { // xorshift: reproducible positions
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		return int(x % uint64(m))
	}
	iters := 400
	if testing.Short() {
		iters = 50
	}
	opened, lost := 0, 0
	for it := 0; it < iters; it++ {
		b := bytes.Clone(orig)
		for k := 0; k < 1+next(3); k++ {
			b[next(len(b))] ^= byte(1 + next(255))
		}
		r, err := openReaderAt("damaged", bytes.NewReader(b), int64(len(b)), memory.DefaultAllocator)
		if err != nil {
			continue
		}
		opened++
		p := r.Provenance()
		if p.JobText != want.JobText || p.ProgramSHA256 != want.ProgramSHA256 || p.Seed != want.Seed || r.Params()[1] != "T" {
			t.Fatalf("iteration %d: provenance or schema damaged but accepted (mode %d, %d rows, problems %v): %+v", it, r.mode, r.NumRows(), r.Problems(), p)
		}
		rows := r.Rows()
		for _, row := range rows {
			if row.Task < 0 || row.Task >= n || !sameRow(row, testRow(row.Task)) {
				t.Fatalf("iteration %d: task %d: a damaged row was accepted", it, row.Task)
			}
		}
		if len(rows) < n {
			lost++
			if len(r.Problems()) == 0 {
				t.Fatalf("iteration %d: %d of %d rows and no problem reported", it, len(rows), n)
			}
		}
		r.Close()
	}
	t.Logf("%d damaged files: %d opened, %d of those with rows left out (each reported)", iters, opened, lost)
}
