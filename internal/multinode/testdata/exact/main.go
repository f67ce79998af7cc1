// Command exact is the multi-node tier's correctness program: every
// collective over the world communicator (Bcast, Scatter, Scatterv, Gather,
// Gatherv, Reduce, Allreduce, Allgather, ReduceScatter, Send/Recv around a
// ring) on every rank, then the driver's Push, Pull, Scatter and Gather
// through views, each result checked element by element on every rank.
// Integer results are compared exactly with what they must be; float64
// reductions (inputs of widely spread magnitudes, so that any other order
// of additions gives other bits) are compared bit for bit with the
// documented reduction order of package collective, computed here on one
// rank from every input, and the driver prints a hash of each
//
//	EXACT <op> <sha256 of the result's bytes>
//
// so that runs of the same rank count in other layouts (3 nodes x 2 ranks,
// 6 ranks on one node) can be compared. With -big it also broadcasts an
// array of more than 2 GiB of uint8 (checked word by word on every rank).
// It prints "EXACT OK" when everything held; any wrong element is an error
// naming the operation, the rank, the element, what it got and wanted.
// With EXACT_TRACE=dir every rank appends each step it starts to
// dir/trace-<rank> (to find the step a hang is in).
package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"time"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/rankhub/rankhub"
	"github.com/rankhub/rankhub/collective"
	"github.com/rankhub/rankhub/views"
)

// Sizes: one under the large-message threshold (256 KiB), one over it
// and over the 2 MiB pipelining piece, neither a multiple of the rank count.
var lengths = []int{1001, 1<<20 + 3}

// bigBytes is the -big broadcast: 2 GiB + 100 MiB of uint8.
const bigBytes = 2<<30 + 100<<20

func main() {
	rankhub.Register("suite", func(vc *views.Context, big bool) (string, error) {
		w, err := vc.World()
		if err != nil {
			return "", err
		}
		_, err = suite(vc, w, big)
		return "", err
	})
	rankhub.Main(drive)
}

func drive(ctx context.Context, c *views.Client) error {
	big := flag.Bool("big", false, "also broadcast more than 2 GiB")
	flag.Parse()
	dv, err := c.DirectView()
	if err != nil {
		return err
	}
	ar, err := dv.Apply("suite", *big)
	if err != nil {
		return err
	}
	w, err := rankhub.World(ctx)
	if err != nil {
		return err
	}
	lines, err := alongside(ctx, ar, func(ctx context.Context) ([]string, error) { return suite(ctx, w, *big) })
	if err != nil {
		return err
	}
	for _, l := range lines {
		fmt.Println(l)
	}
	if err := viewsSuite(dv, len(c.IDs())); err != nil {
		return err
	}
	fmt.Println("EXACT OK")
	return nil
}

// alongside runs the driver's part of the collectives while the engines
// run theirs in ar: an engine that fails cancels the driver's part (which
// would wait for it forever), and the engine's error is returned.
func alongside(ctx context.Context, ar *views.AsyncResult, fn func(context.Context) ([]string, error)) ([]string, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	engines := make(chan error, 1)
	go func() {
		_, err := ar.Get(-1)
		if err != nil {
			cancel()
		}
		engines <- err
	}()
	out, err := fn(ctx)
	if eerr := <-engines; eerr != nil {
		return nil, fmt.Errorf("engines: %w", eerr) // the cause; the driver's error is its echo
	}
	return out, err
}

// splitmix is a counter-based generator: the inputs are functions of
// (rank, element) alone, so every rank can compute every rank's input.
func splitmix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}

// fval is rank q's float64 input at i: a random mantissa times 2^e with e
// in [-20, 40), so sums lose different bits in different orders.
func fval(q, i int) float64 {
	h := splitmix(uint64(q)<<40 ^ uint64(i))
	m := float64(h>>11)/(1<<53) - 0.5
	return math.Ldexp(m, int(h>>58)-20)
}

// ival is rank q's int64 input at i.
func ival(q, i int) int64 { return int64(q)*1_000_003 + int64(i)*7 - 5000 }

func f64s(n int, f func(i int) float64) arrow.Array {
	b := array.NewFloat64Builder(memory.DefaultAllocator)
	defer b.Release()
	b.Resize(n)
	for i := 0; i < n; i++ {
		b.UnsafeAppend(f(i))
	}
	return b.NewArray()
}

func i64s(n int, f func(i int) int64) arrow.Array {
	b := array.NewInt64Builder(memory.DefaultAllocator)
	defer b.Release()
	b.Resize(n)
	for i := 0; i < n; i++ {
		b.UnsafeAppend(f(i))
	}
	return b.NewArray()
}

// documented is the reduction order of package collective (plan.go) for
// len(xs) ranks: fold pairs (2i, 2i+1) for the ranks beyond the largest
// power of two, then a binary tree with distance 1 first, lower on the
// left.
func documented(xs []float64) float64 {
	p2 := 1
	for p2*2 <= len(xs) {
		p2 *= 2
	}
	rem := len(xs) - p2
	v := make([]float64, 0, p2)
	for i := 0; i < rem; i++ {
		v = append(v, xs[2*i]+xs[2*i+1])
	}
	v = append(v, xs[2*rem:]...)
	for d := 1; d < p2; d *= 2 {
		for i := 0; i < p2; i += 2 * d {
			v[i] = v[i] + v[i+d]
		}
	}
	return v[0]
}

// checker collects the first wrong element of an operation.
type checker struct {
	op   string
	rank int
}

func (k checker) ints(got arrow.Array, want func(i int) int64, n int) error {
	if got == nil {
		return fmt.Errorf("%s, rank %d: no result", k.op, k.rank)
	}
	a, ok := got.(*array.Int64)
	if !ok || a.Len() != n {
		return fmt.Errorf("%s, rank %d: got %s of %d, want int64 of %d", k.op, k.rank, got.DataType(), got.Len(), n)
	}
	for i, v := range a.Int64Values() {
		if w := want(i); v != w {
			return fmt.Errorf("%s, rank %d: element %d is %d, want %d", k.op, k.rank, i, v, w)
		}
	}
	return nil
}

func (k checker) chunkedInts(got *arrow.Chunked, want func(i int) int64, n int) error {
	if got == nil || got.Len() != n {
		return fmt.Errorf("%s, rank %d: got %v values, want %d", k.op, k.rank, lenOf(got), n)
	}
	off := 0
	for _, c := range got.Chunks() {
		if err := k.ints(c, func(i int) int64 { return want(off + i) }, c.Len()); err != nil {
			return fmt.Errorf("%w (chunk from element %d)", err, off)
		}
		off += c.Len()
	}
	return nil
}

func lenOf(c *arrow.Chunked) any {
	if c == nil {
		return "no"
	}
	return c.Len()
}

// bits compares float64 results bit for bit.
func (k checker) bits(got arrow.Array, want func(i int) float64, n int) error {
	a, ok := got.(*array.Float64)
	if !ok || a.Len() != n {
		return fmt.Errorf("%s, rank %d: got %v, want float64 of %d", k.op, k.rank, got, n)
	}
	for i, v := range a.Float64Values() {
		if w := want(i); math.Float64bits(v) != math.Float64bits(w) {
			return fmt.Errorf("%s, rank %d: element %d is %v (%#x), want %v (%#x) by the documented order", k.op, k.rank, i, v, math.Float64bits(v), w, math.Float64bits(w))
		}
	}
	return nil
}

func hash(a arrow.Array) string {
	xs := a.(*array.Float64).Float64Values()
	s := sha256.Sum256(unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(xs))), 8*len(xs)))
	return hex.EncodeToString(s[:8])
}

// counts are uneven parts of n over p ranks, rank 1 getting none (when p > 2).
func counts(n, p int) []int64 {
	c := make([]int64, p)
	left := int64(n)
	for q := p - 1; q > 0; q-- {
		if q == 1 && p > 2 {
			continue
		}
		c[q] = int64(n/(2*p) + 13*q)
		left -= c[q]
	}
	c[0] = left
	return c
}

func displ(c []int64, q int) int {
	d := int64(0)
	for _, x := range c[:q] {
		d += x
	}
	return int(d)
}

// suite runs every collective on this rank and returns the hash lines of
// the float64 reductions (rank 0; nil elsewhere).
func suite(ctx context.Context, w *collective.Comm, big bool) ([]string, error) {
	p, r := w.Size(), w.Rank()
	var lines []string
	for _, n := range lengths {
		k := func(op string) checker { return checker{fmt.Sprintf("%s of %d", op, n), r} }
		mine := i64s(n, func(i int) int64 { return ival(r, i) })
		root := func() arrow.Array {
			if r == 0 {
				return mine
			}
			return nil
		}
		run := []func() error{
			func() error { // Bcast
				got, err := w.Bcast(ctx, 0, root())
				if err != nil {
					return err
				}
				defer got.Release()
				return k("bcast").ints(got, func(i int) int64 { return ival(0, i) }, n)
			},
			func() error { // Scatter (even parts, the first n%p one longer)
				got, err := w.Scatter(ctx, 0, root())
				if err != nil {
					return err
				}
				defer got.Release()
				lo := r*(n/p) + min(r, n%p)
				return k("scatter").ints(got, func(i int) int64 { return ival(0, lo+i) }, n/p+b2i(r < n%p))
			},
			func() error { // Scatterv
				var c []int64
				if r == 0 {
					c = counts(n, p)
				}
				got, err := w.Scatterv(ctx, 0, root(), c)
				if err != nil {
					return err
				}
				defer got.Release()
				c = counts(n, p)
				return k("scatterv").ints(got, func(i int) int64 { return ival(0, displ(c, r)+i) }, int(c[r]))
			},
			func() error { // Gather: every rank's whole input
				got, err := w.Gather(ctx, 0, mine)
				if err != nil {
					return err
				}
				if r != 0 {
					return nil
				}
				defer got.Release()
				return k("gather").chunkedInts(got, func(i int) int64 { return ival(i/n, i%n) }, p*n)
			},
			func() error { // Gatherv: rank q sends the first counts[q] of its input
				c := counts(n, p)
				part := array.NewSlice(mine, 0, c[r])
				defer part.Release()
				got, err := w.Gatherv(ctx, 0, part, c)
				if err != nil {
					return err
				}
				if r != 0 {
					return nil
				}
				defer got.Release()
				return k("gatherv").chunkedInts(got, func(i int) int64 {
					q := 0
					for i >= displ(c, q+1) {
						q++
					}
					return ival(q, i-displ(c, q))
				}, n)
			},
			func() error { // Reduce (sum)
				got, err := w.Reduce(ctx, 0, mine, collective.Sum)
				if err != nil {
					return err
				}
				if r != 0 {
					return nil
				}
				defer got.Release()
				return k("reduce").ints(got, func(i int) int64 { return sumOver(p, i) }, n)
			},
			func() error { // Allreduce (sum)
				got, err := w.Allreduce(ctx, mine, collective.Sum)
				if err != nil {
					return err
				}
				defer got.Release()
				return k("allreduce").ints(got, func(i int) int64 { return sumOver(p, i) }, n)
			},
			func() error { // Allgather
				got, err := w.Allgather(ctx, mine)
				if err != nil {
					return err
				}
				defer got.Release()
				return k("allgather").chunkedInts(got, func(i int) int64 { return ival(i/n, i%n) }, p*n)
			},
			func() error { // ReduceScatter (sum) with uneven counts
				c := counts(n, p)
				got, err := w.ReduceScatter(ctx, mine, collective.Sum, c)
				if err != nil {
					return err
				}
				defer got.Release()
				return k("reducescatter").ints(got, func(i int) int64 { return sumOver(p, displ(c, r)+i) }, int(c[r]))
			},
			func() error { // Send/Recv around the ring: across nodes and within them
				to, from := (r+1)%p, (r+p-1)%p
				tr, err := w.Send(ctx, to, 11, mine)
				if err != nil {
					return err
				}
				got, err := w.Recv(ctx, from, 11)
				if err != nil {
					return err
				}
				err = k(fmt.Sprintf("recv from rank %d", from)).ints(got, func(i int) int64 { return ival(from, i) }, n)
				got.Release() // before waiting: the rank before waits for this release
				return errors.Join(err, tr.Wait(ctx))
			},
		}
		for j, f := range run {
			if d := os.Getenv("EXACT_TRACE"); d != "" {
				f, _ := os.OpenFile(fmt.Sprintf("%s/trace-%d", d, r), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
				fmt.Fprintf(f, "rank %d: step %d of %d\n", r, j, n)
				f.Close()
			}
			if err := f(); err != nil {
				mine.Release()
				return nil, err
			}
		}
		mine.Release()
		fl, err := floats(ctx, w, n)
		if err != nil {
			return nil, err
		}
		lines = append(lines, fl...)
	}
	if big {
		if err := bigBcast(ctx, w); err != nil {
			return nil, err
		}
		if r == 0 {
			lines = append(lines, fmt.Sprintf("EXACT bcast of %d bytes checked on %d ranks", bigBytes, p))
		}
	}
	return lines, w.Barrier(ctx)
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// sumOver is the sum over the p ranks' int64 inputs at i.
func sumOver(p, i int) int64 {
	s := int64(0)
	for q := 0; q < p; q++ {
		s += ival(q, i)
	}
	return s
}

// floats runs the float64 reductions and checks them bit for bit against
// the documented order (every rank computes it from every input).
func floats(ctx context.Context, w *collective.Comm, n int) ([]string, error) {
	p, r := w.Size(), w.Rank()
	want := func(i int) float64 {
		xs := make([]float64, p)
		for q := range xs {
			xs[q] = fval(q, i)
		}
		return documented(xs)
	}
	mine := f64s(n, func(i int) float64 { return fval(r, i) })
	defer mine.Release()
	var lines []string
	got, err := w.Allreduce(ctx, mine, collective.Sum)
	if err != nil {
		return nil, err
	}
	err = checker{fmt.Sprintf("allreduce float64 of %d", n), r}.bits(got, want, n)
	lines = append(lines, fmt.Sprintf("EXACT allreduce-f64-%d %s", n, hash(got)))
	got.Release()
	if err != nil {
		return nil, err
	}
	if got, err = w.Reduce(ctx, 0, mine, collective.Sum); err != nil {
		return nil, err
	}
	if r == 0 {
		err = checker{fmt.Sprintf("reduce float64 of %d", n), r}.bits(got, want, n)
		lines = append(lines, fmt.Sprintf("EXACT reduce-f64-%d %s", n, hash(got)))
		got.Release()
		if err != nil {
			return nil, err
		}
	}
	c := counts(n, p)
	if got, err = w.ReduceScatter(ctx, mine, collective.Sum, c); err != nil {
		return nil, err
	}
	defer got.Release()
	lo := displ(c, r)
	if err := (checker{fmt.Sprintf("reducescatter float64 of %d", n), r}).bits(got, func(i int) float64 { return want(lo + i) }, int(c[r])); err != nil {
		return nil, err
	}
	if r != 0 {
		return nil, nil
	}
	return lines, nil
}

// bigBcast broadcasts bigBytes of uint8 from rank 0 and checks every
// 8-byte word on every rank.
func bigBcast(ctx context.Context, w *collective.Comm) error {
	word := func(i int) uint64 { return splitmix(uint64(i) ^ 0xb16) }
	var src arrow.Array
	if w.Rank() == 0 {
		buf := memory.NewResizableBuffer(memory.DefaultAllocator)
		buf.Resize(bigBytes)
		ws := unsafe.Slice((*uint64)(unsafe.Pointer(unsafe.SliceData(buf.Bytes()))), bigBytes/8)
		for i := range ws {
			ws[i] = word(i)
		}
		d := array.NewData(arrow.PrimitiveTypes.Uint8, bigBytes, []*memory.Buffer{nil, buf}, nil, 0, 0)
		buf.Release()
		src = array.MakeFromData(d)
		d.Release()
		defer src.Release()
	}
	t0 := time.Now()
	got, err := w.Bcast(ctx, 0, src)
	if err != nil {
		return err
	}
	defer got.Release()
	if got.DataType().ID() != arrow.UINT8 || got.Len() != bigBytes {
		return fmt.Errorf("bcast of %d bytes, rank %d: got %s of %d", bigBytes, w.Rank(), got.DataType(), got.Len())
	}
	b := got.Data().Buffers()[1].Bytes()[got.Data().Offset():]
	ws := unsafe.Slice((*uint64)(unsafe.Pointer(unsafe.SliceData(b))), bigBytes/8)
	for i, v := range ws {
		if v != word(i) {
			return fmt.Errorf("bcast of %d bytes, rank %d: bytes %d-%d are %#x, want %#x", bigBytes, w.Rank(), 8*i, 8*i+7, v, word(i))
		}
	}
	if w.Rank() == 0 {
		fmt.Fprintf(os.Stderr, "bcast of %d bytes took %v\n", bigBytes, time.Since(t0))
	}
	return nil
}

// viewsSuite pushes, pulls, scatters and gathers int64 arrays from the
// driver and checks every element.
func viewsSuite(dv *views.DirectView, engines int) error {
	for _, n := range lengths {
		x := i64s(n, func(i int) int64 { return ival(99, i) })
		err := viewsOne(dv, engines, n, x)
		x.Release()
		if err != nil {
			return err
		}
	}
	return nil
}

func viewsOne(dv *views.DirectView, engines, n int, x arrow.Array) error {
	want := func(i int) int64 { return ival(99, i) }
	if err := dv.Set("x", x); err != nil {
		return fmt.Errorf("push of %d: %w", n, err)
	}
	got, err := dv.Get("x")
	if err != nil {
		return fmt.Errorf("pull of %d: %w", n, err)
	}
	all, _ := got.([]any)
	if len(all) != engines {
		return fmt.Errorf("pull of %d: %d values, want %d", n, len(all), engines)
	}
	for e, g := range all {
		a, _ := g.(arrow.Array)
		err := checker{fmt.Sprintf("push then pull of %d", n), e}.ints(a, want, n)
		if a != nil {
			a.Release()
		}
		if err != nil {
			return fmt.Errorf("%w (engine %d)", err, e)
		}
	}
	ar, err := dv.Scatter("p", x)
	if err == nil {
		_, err = ar.Get(-1)
	}
	if err != nil {
		return fmt.Errorf("scatter of %d: %w", n, err)
	}
	if ar, err = dv.Gather("p"); err != nil {
		return err
	}
	g, err := ar.Get(-1)
	if err != nil {
		return fmt.Errorf("gather of %d: %w", n, err)
	}
	ch, _ := g.(*arrow.Chunked)
	if ch == nil {
		return fmt.Errorf("gather of %d: got %T", n, g)
	}
	defer ch.Release()
	if len(ch.Chunks()) != engines {
		return fmt.Errorf("scatter then gather of %d: %d chunks, want one per engine (%d)", n, len(ch.Chunks()), engines)
	}
	if err := (checker{fmt.Sprintf("scatter then gather of %d", n), 0}).chunkedInts(ch, want, n); err != nil {
		return err
	}
	dr, err := dv.Delete("x", "p")
	if err == nil {
		_, err = dr.Get(-1)
	}
	return err
}
