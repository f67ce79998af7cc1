package results

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/ipc"
)

// arrowGoRows reads path with arrow-go's own FileReader, nothing of ours:
// the file must be a complete Arrow IPC file.
func arrowGoRows(t *testing.T, path string) []Row {
	t.Helper()
	data := readAll(t, path)
	fr, err := ipc.NewFileReader(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("arrow-go FileReader: %v", err)
	}
	defer fr.Close()
	r := &Reader{path: path, schema: fr.Schema()}
	if err := r.index(); err != nil {
		t.Fatal(err)
	}
	var rows []Row
	for i := 0; i < fr.NumRecords(); i++ {
		rec, err := fr.RecordBatchAt(i)
		if err != nil {
			t.Fatalf("arrow-go batch %d: %v", i, err)
		}
		rows = r.appendRows(rows, rec)
		rec.Release()
	}
	return rows
}

// A writer SIGKILLed between flushes (or in one) leaves a file that
// arrow-go's FileReader opens, with every row flushed before the kill.
func TestArrowGoReadsKilledFile(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a child process")
	}
	for _, pace := range []time.Duration{20 * time.Millisecond} {
		path, last := killedFileWhile(t, t.TempDir(), 60, pace, nil)
		rows := arrowGoRows(t, path)
		checkPrefix(t, rows, last)
		t.Logf("pace %v: killed after task %d was flushed; arrow-go reads %d rows", pace, last, len(rows))
	}
}

// Arrow JS reads the file of a running writer 50 times, each time with
// every row flushed so far, and the file of a killed writer.
func TestArrowJSReadsLiveFile(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a child process")
	}
	node := jsNode(t)
	script, _ := filepath.Abs(filepath.Join("jsreaders", "live.mjs"))
	type read struct {
		Rows  *int
		Error string
	}
	run := func(path string, n, interval int) []read {
		var out, stderr bytes.Buffer
		cmd := exec.Command(node, script, path, strconv.Itoa(n), strconv.Itoa(interval))
		cmd.Stdout, cmd.Stderr = &out, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("node live.mjs: %v\n%s", err, stderr.String())
		}
		var reads []read
		if err := json.Unmarshal(out.Bytes(), &reads); err != nil {
			t.Fatalf("live.mjs output: %v\n%s", err, out.String())
		}
		return reads
	}
	var live []read
	path, last := killedFileWhile(t, t.TempDir(), 30, 5*time.Millisecond, func(path string) {
		live = run(path, 50, 20)
	})
	prev, grew := 0, false
	for i, rd := range live {
		if rd.Rows == nil {
			t.Fatalf("read %d of the live file failed: %s", i, rd.Error)
		}
		if *rd.Rows < prev {
			t.Fatalf("read %d: %d rows, fewer than %d before", i, *rd.Rows, prev)
		}
		grew = grew || (i > 0 && *rd.Rows > prev)
		prev = *rd.Rows
	}
	if len(live) != 50 || !grew {
		t.Fatalf("%d reads, rows grew: %v", len(live), grew)
	}
	t.Logf("50 reads of the live file: %d to %d rows", *live[0].Rows, prev)
	killed := run(path, 1, 0)
	if killed[0].Rows == nil || *killed[0].Rows <= last {
		t.Fatalf("killed file after task %d was flushed: Arrow JS %+v", last, killed[0])
	}
}

// When dead footers outweigh the batches, the writer compacts the file:
// readers see a complete file before, during and after, and nothing is
// lost.
func TestCompaction(t *testing.T) {
	old := compactMin
	compactMin = 64 << 10
	t.Cleanup(func() { compactMin = old })
	dir := t.TempDir()
	path := filepath.Join(dir, "c.arrow")
	mem := checkedMem(t)
	w, err := Create(path, testJob(), testProv(), FlushRows(1), FlushInterval(time.Hour), Allocator(mem))
	if err != nil {
		t.Fatal(err)
	}
	maxSize, compacted := int64(0), 0
	for i := 0; i < 600; i++ {
		if err := w.Write(testRow(i)); err != nil {
			t.Fatal(err)
		}
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if st.Size() < maxSize {
			compacted++
		}
		maxSize = st.Size()
		if i%50 == 49 {
			checkPrefix(t, arrowGoRows(t, path), i)
		}
	}
	if err := w.Close("completed"); err != nil {
		t.Fatal(err)
	}
	if compacted == 0 {
		t.Fatal("the file was never compacted")
	}
	r, err := Open(path, Allocator(mem))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if !r.Complete() || len(r.Corrupt()) != 0 {
		t.Fatalf("complete %v, corrupt %v, tail %v", r.Complete(), r.Corrupt(), r.TailError())
	}
	checkPrefix(t, r.Rows(), 599)
	left, _ := filepath.Glob(filepath.Join(dir, ".*"))
	if len(left) != 0 {
		t.Fatalf("temporary files left: %v", left)
	}
	t.Logf("600 flushes, %d compactions, final size %d bytes", compacted, maxSize)
}
