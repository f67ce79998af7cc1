package results

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

const (
	childEnv = "RANKHUB_RESULTS_TEST_CHILD"
	paceEnv  = "RANKHUB_RESULTS_TEST_PACE"
)

func TestMain(m *testing.M) {
	if path := os.Getenv(childEnv); path != "" {
		os.Exit(childWriter(path))
	}
	os.Exit(m.Run())
}

// childWriter writes rows in order as fast as it can (or with a pause of
// $RANKHUB_RESULTS_TEST_PACE after each flush), flushing every 3 rows and
// reporting "F <last task>" after each flush, until it is killed.
func childWriter(path string) int {
	pace, _ := time.ParseDuration(os.Getenv(paceEnv))
	w, err := Create(path, testJob(), testProv(), FlushRows(1<<30), FlushInterval(time.Hour))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	out := bufio.NewWriter(os.Stdout)
	for i := 0; i < 1_000_000; i++ {
		if err := w.Write(testRow(i)); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		if i%3 == 2 {
			if err := w.Flush(); err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 2
			}
			fmt.Fprintf(out, "F %d\n", i)
			out.Flush()
			time.Sleep(pace)
		}
	}
	fmt.Fprintln(os.Stderr, "child was not killed")
	return 3
}

// killedFile runs the child writer and SIGKILLs it once it has reported at
// least minFlushed flushed rows; it returns the file and the last task
// reported flushed.
func killedFile(t *testing.T, dir string, minFlushed int) (string, int) {
	return killedFileWhile(t, dir, minFlushed, 0, nil)
}

// killedFileWhile is killedFile with the child pausing pace after each
// flush, and while (when not nil) called with the file once minFlushed rows
// are flushed, before the kill.
func killedFileWhile(t *testing.T, dir string, minFlushed int, pace time.Duration, while func(path string)) (string, int) {
	t.Helper()
	path := filepath.Join(dir, "killed.arrow")
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+path, paceEnv+"="+pace.String())
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	last := -1
	sc := bufio.NewScanner(stdout)
	for last < minFlushed && sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 2 && f[0] == "F" {
			last, _ = strconv.Atoi(f[1])
		}
	}
	if last < minFlushed {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("child stopped after task %d: %s", last, stderr.String())
	}
	// The child keeps writing; read on so it never blocks on the pipe, and
	// kill it in the middle of whatever it is doing.
	lastc := make(chan int, 1)
	go func() {
		l := last
		for sc.Scan() {
			if f := strings.Fields(sc.Text()); len(f) == 2 && f[0] == "F" {
				l, _ = strconv.Atoi(f[1])
			}
		}
		io.Copy(io.Discard, stdout)
		lastc <- l
	}()
	if while != nil {
		while(path)
	}
	time.Sleep(3 * time.Millisecond)
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	err = cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("child did not die of SIGKILL: %v; stderr: %s", err, stderr.String())
	}
	return path, <-lastc
}

// checkPrefix checks that rows are tasks 0..len-1 in order, each once and
// intact, and at least through task last.
func checkPrefix(t *testing.T, rows []Row, last int) {
	t.Helper()
	if len(rows) <= last {
		t.Fatalf("%d rows, but task %d was flushed before the kill", len(rows), last)
	}
	for i, r := range rows {
		if r.Task != i {
			t.Fatalf("row %d is task %d", i, r.Task)
		}
		if !sameRow(r, testRow(i)) {
			t.Fatalf("row %d differs:\n got %+v\nwant %+v", i, r, testRow(i))
		}
	}
}

func TestKilledWriter(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a child process")
	}
	dir := t.TempDir()
	torn, last := killedFile(t, dir, 600)
	mem := checkedMem(t)

	r, err := Open(torn, Allocator(mem))
	if err != nil {
		t.Fatalf("open killed file: %v", err)
	}
	if r.Complete() {
		t.Fatal("killed file reads as complete")
	}
	if _, ok := r.Status(); ok {
		t.Fatal("killed file has a status")
	}
	rows := r.Rows()
	r.Close()
	checkPrefix(t, rows, last)
	m := len(rows)
	t.Logf("killed after task %d was reported flushed; %d rows in the file", last, m)

	t.Run("recover", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "a.arrow")
		if err := writeBytes(path, readAll(t, torn)); err != nil {
			t.Fatal(err)
		}
		kept, err := Recover(path, Allocator(mem))
		if err != nil || kept != m {
			t.Fatalf("Recover = %d, %v; want %d", kept, err, m)
		}
		r, err := Open(path, Allocator(mem))
		if err != nil {
			t.Fatal(err)
		}
		st, ok := r.Status()
		if !r.Complete() || !ok || st.State != StatusInterrupted || st.Rows != m {
			t.Fatalf("recovered: complete %v status %+v", r.Complete(), st)
		}
		checkPrefix(t, r.Rows(), m-1)
		r.Close()
		if kept, err := Recover(path, Allocator(mem)); err != nil || kept != m {
			t.Fatalf("second Recover = %d, %v", kept, err)
		}
		resume(t, path, m)
	})
	t.Run("append-torn", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "b.arrow")
		if err := writeBytes(path, readAll(t, torn)); err != nil {
			t.Fatal(err)
		}
		resume(t, path, m)
	})
}

// resume continues a file holding tasks 0..m-1 with tasks m..m+19.
func resume(t *testing.T, path string, m int) {
	t.Helper()
	mem := checkedMem(t)
	prov := testProv()
	prov.JobID = "4243"
	prov.Started = time.Date(2025, 3, 2, 0, 0, 0, 0, time.UTC)
	w, present, err := Append(path, testJob(), prov, Allocator(mem), FlushRows(4))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < m+20; i++ {
		if want := i < m && !testRow(i).Failed(); present[i] != want {
			t.Fatalf("present[%d] = %v, want %v", i, present[i], want)
		}
	}
	// While the resumed writer runs, the file holds every old row.
	r, err := Open(path, Allocator(mem))
	if err != nil {
		t.Fatal(err)
	}
	if r.NumRows() != m || r.Complete() {
		t.Fatalf("during resume: %d rows (want %d), complete %v", r.NumRows(), m, r.Complete())
	}
	r.Close()
	if _, err := Recover(path); !errors.Is(err, ErrLocked) {
		t.Fatalf("Recover under a live writer: %v", err)
	}
	if _, _, err := Append(path, testJob(), prov); !errors.Is(err, ErrLocked) {
		t.Fatalf("Append under a live writer: %v", err)
	}
	for i := m; i < m+20; i++ {
		if err := w.Write(testRow(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close("completed"); err != nil {
		t.Fatal(err)
	}
	r, err = Open(path, Allocator(mem))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	st, _ := r.Status()
	if !r.Complete() || st.State != "completed" || st.Rows != m+20 {
		t.Fatalf("after resume: complete %v status %+v", r.Complete(), st)
	}
	checkPrefix(t, r.Rows(), m+19)
	p := r.Provenance()
	if p.JobID != "4242" || len(p.Resumes) == 0 {
		t.Fatalf("provenance after resume: %+v", p)
	}
	last := p.Resumes[len(p.Resumes)-1]
	if last.JobID != "4243" || last.RowsBefore != m || last.Forced || !last.Started.Equal(prov.Started) {
		t.Fatalf("resume record %+v", last)
	}
	leftovers, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".*"))
	if len(leftovers) > 0 {
		t.Fatalf("temporary files left: %v", leftovers)
	}
}

func TestAppendRefusesOtherJob(t *testing.T) {
	dir := t.TempDir()
	path := writeFile(t, dir, 30, 8)
	mem := checkedMem(t)

	prov := testProv()
	prov.ProgramSHA256 = "bb22"
	if _, _, err := Append(path, testJob(), prov, Allocator(mem)); !errors.Is(err, ErrMismatch) || !strings.Contains(err.Error(), "program SHA-256") {
		t.Fatalf("other program: %v", err)
	}
	prov = testProv()
	prov.JobText += "# edited\n"
	if _, _, err := Append(path, testJob(), prov, Allocator(mem)); !errors.Is(err, ErrMismatch) || !strings.Contains(err.Error(), "job text") {
		t.Fatalf("other job text: %v", err)
	}
	other := testJob()
	other.Task.Outputs = []string{"energy"}
	if _, _, err := Append(path, other, testProv(), Allocator(mem)); err == nil || !strings.Contains(err.Error(), "does not fit the job") {
		t.Fatalf("other columns: %v", err)
	}
	// The refusals left the file as it was.
	if r, err := Open(path, Allocator(mem)); err != nil || !r.Complete() || r.NumRows() != 30 {
		t.Fatalf("file after refusals: %v", err)
	} else {
		r.Close()
	}

	w, present, err := Append(path, testJob(), prov, Force(), Allocator(mem))
	if err != nil {
		t.Fatal(err)
	}
	if len(present) != 30-30/7 {
		t.Fatalf("%d tasks present, want %d", len(present), 30-30/7)
	}
	if err := w.Write(testRow(30)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close("completed"); err != nil {
		t.Fatal(err)
	}
	r, err := Open(path, Allocator(mem))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	p := r.Provenance()
	if r.NumRows() != 31 || len(p.Resumes) != 1 || !p.Resumes[0].Forced || p.Resumes[0].PreviousStatus != "completed" || p.JobText != testJobText {
		t.Fatalf("forced resume: %d rows, provenance %+v", r.NumRows(), p)
	}
}

func TestAppendCreatesMissingFile(t *testing.T) {
	mem := checkedMem(t)
	path := filepath.Join(t.TempDir(), "new.arrow")
	w, present, err := Append(path, testJob(), testProv(), Allocator(mem))
	if err != nil || len(present) != 0 {
		t.Fatalf("%v %v", present, err)
	}
	if err := w.Close("completed"); err != nil {
		t.Fatal(err)
	}
}

// schemaEnd returns the offset just past the schema message.
func schemaEnd(t *testing.T, data []byte) int {
	t.Helper()
	if binary.LittleEndian.Uint32(data[8:]) != 0xFFFFFFFF {
		t.Fatal("no continuation marker after the prefix")
	}
	return 16 + int(binary.LittleEndian.Uint32(data[12:]))
}

// Truncating a complete file anywhere in its last few KB (and anywhere in
// its first bytes) never gives an error once the schema is whole, and never
// a partial batch.
func TestTruncatedAnywhere(t *testing.T) {
	dir := t.TempDir()
	path := writeFile(t, dir, 120, 7)
	data := readAll(t, path)
	mem := checkedMem(t)

	full, err := openReaderAt("full", bytes.NewReader(data), int64(len(data)), mem)
	if err != nil {
		t.Fatal(err)
	}
	want := full.Rows()
	boundary := map[int]bool{0: true}
	n := 0
	for _, rec := range full.Records() {
		n += int(rec.NumRows())
		boundary[n] = true
	}
	full.Close()
	hdr := schemaEnd(t, data)

	start := len(data) - 4096
	if start < 0 {
		start = 0
	}
	offsets := []int{}
	for off := 0; off < hdr+64 && off < start; off++ {
		offsets = append(offsets, off)
	}
	step := 1
	if testing.Short() {
		step = 13
	}
	for off := start; off < len(data); off += step {
		offsets = append(offsets, off)
	}
	prevRows := 0
	for _, off := range offsets {
		r, err := openReaderAt("cut", bytes.NewReader(data[:off]), int64(off), mem)
		if off < hdr {
			if err == nil {
				r.Close()
				t.Fatalf("offset %d (schema ends at %d): opened", off, hdr)
			}
			continue
		}
		if err != nil {
			t.Fatalf("offset %d of %d: %v", off, len(data), err)
		}
		if r.Complete() {
			t.Fatalf("offset %d of %d: truncated file reads as complete", off, len(data))
		}
		got := r.NumRows()
		if !boundary[got] {
			t.Fatalf("offset %d: %d rows, not a batch boundary", off, got)
		}
		if off >= start && got < prevRows {
			t.Fatalf("offset %d: %d rows, fewer than %d at a shorter cut", off, got, prevRows)
		}
		if off >= start {
			prevRows = got
		}
		if off%8 == 0 || off == len(data)-1 {
			for i, row := range r.Rows() {
				if !sameRow(row, want[i]) {
					t.Fatalf("offset %d: row %d differs", off, i)
				}
			}
		}
		r.Close()
	}
	if step == 1 && prevRows != len(want) {
		t.Fatalf("a file cut only in its footer gives %d rows, want %d", prevRows, len(want))
	}
}
