package sweep

import (
	"bytes"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"
)

// TestBoundedOutputKeepsHeadAndTail: over random streams written in random
// pieces, the kept head and tail equal those of the whole stream.
func TestBoundedOutputKeepsHeadAndTail(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for trial := range 200 {
		n := r.IntN(3 * outputTail)
		all := make([]byte, n)
		for i := range all {
			all[i] = byte('a' + r.IntN(26))
		}
		b := newBoundedOutput(nil)
		for rest := all; len(rest) > 0; {
			k := min(len(rest), 1+r.IntN(2*outputTail))
			b.Write(rest[:k])
			rest = rest[k:]
		}
		wantTail := all[max(0, n-outputTail):]
		if b.Tail() != string(wantTail) || string(b.head) != string(all[:min(n, outputHead)]) || b.total != int64(n) {
			t.Fatalf("trial %d (%d bytes): head/tail/total differ", trial, n)
		}
		if n <= outputTail && b.Text() != string(all) {
			t.Fatalf("trial %d: a %d-byte output is not kept whole", trial, n)
		}
		if n > outputHead+outputTail && !strings.Contains(b.Text(), "bytes omitted") {
			t.Fatalf("trial %d: truncation not marked", trial)
		}
	}
}

// TestBoundedOutputKeyValueAcrossWrites: name=value pairs split between
// writes and lost from head and tail are still read.
func TestBoundedOutputKeyValueAcrossWrites(t *testing.T) {
	b := newBoundedOutput([]string{"a", "b"})
	b.Write([]byte("a=1 b=2"))
	b.Write(bytes.Repeat([]byte("x "), outputTail))
	b.Write([]byte("b=3"))
	b.Write([]byte("5 a=" + strings.Repeat("9", kvTokenMax) + " "))
	b.Write(bytes.Repeat([]byte("y\n"), outputTail))
	out := make([]float64, 2)
	if err := b.parse("key-value", "#", []string{"a", "b"}, out); err != nil || out[0] != 1 || out[1] != 35 {
		t.Fatalf("%v %v", out, err)
	}
	// A pair in a comment line is not read, however the line is split
	// between writes.
	c := newBoundedOutput([]string{"a", "b"})
	c.prefix = "%%"
	for _, s := range []string{"a=1 b=2\n  %", "%b=7 a=7\n%", "x b=3\n %%", " a=4"} {
		c.Write([]byte(s))
	}
	if err := c.parse("key-value", c.prefix, []string{"a", "b"}, out); err != nil || out[0] != 1 || out[1] != 3 {
		t.Fatalf("comments: %v %v", out, err)
	}
	// The last-line rule refuses a last line longer than what is kept.
	l := newBoundedOutput(nil)
	l.Write([]byte("1\n"))
	l.Write(bytes.Repeat([]byte("2 "), outputTail))
	if err := l.parse("", "#", []string{"y"}, out[:1]); err == nil || !strings.Contains(err.Error(), "longer than") {
		t.Fatalf("a cut last line: %v", err)
	}
}

// TestShellTaskPrintingMuchCostsBoundedMemory: a task printing 200 MB costs
// the engine a bounded amount of memory, parses, and records the truncation.
func TestShellTaskPrintingMuchCostsBoundedMemory(t *testing.T) {
	job := engineJob(t, `command = "yes 'noise 1 2 3' | head -c 200000000; echo; echo {x}"`)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	res := ExecChunk(nil, job, []int64{1, 0})
	runtime.ReadMemStats(&after)
	if res.Err[0] != "" || res.Out[0] != 2.5 {
		t.Fatalf("result %q %v", res.Err[0], res.Out)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 8<<20 {
		t.Fatalf("the engine allocated %d bytes for a 200 MB output", alloc)
	}
	if res.StdoutBytes[0] < 200_000_000 || !strings.Contains(res.Stdout[0], "bytes omitted") || len(res.Stdout[0]) > outputHead+outputTail+100 {
		t.Fatalf("stdout kept %d bytes of %d", len(res.Stdout[0]), res.StdoutBytes[0])
	}
}
