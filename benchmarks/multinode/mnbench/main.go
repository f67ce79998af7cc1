// Command mnbench times rankhub across the nodes of a real job, with the
// definitions of mpi_multinode.py (S is the total float64 array size;
// Scatter: root holds S, each rank receives S/n; Gather: each sends S/n,
// root receives S; Bcast: S from root to all; Reduce/Allreduce (sum): every
// rank contributes S; Allgather: each rank sends S/n and receives S;
// SendRecv_p2p: rank 0 -> the first rank on another node, S plus an 8-byte
// ack). Time = the maximum over ranks of the operation's wall time after a
// Barrier.
//
// Run it as a rankhub job (benchmarks/multinode/run.sh submits it to the
// emulated 3-node cluster): rank 0 is the driver, the other ranks are
// engines. First every rank runs the collectives over the world
// communicator (the driver on rank 0, each engine in a task "coll"); then
// the driver times the views: Push (DirectView.Set of an Arrow float64
// array of S to every engine), Pull (Get of it from every engine), Scatter
// and Gather (S partitioned over the engines), and PushOne / PullOne, the
// same to and from one engine on another node. Every repetition is printed
// by rank 0 as
//
//	RESULT rankhub_<layout>_<Op>_<MiB>MiB <ms> ms_rep
//
// and the script takes median and minimum, after one untimed repetition
// (two for Push and PushOne, whose steady state needs two buffers, and
// 2 x collective.AheadTurns for pulls below collective.AsyncBelow:
// viewWarmups).
// Every received value is checked once per operation and size (after the
// timed repetitions).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/rankhub/rankhub"
	"github.com/rankhub/rankhub/collective"
	"github.com/rankhub/rankhub/views"
)

// config is what the driver and every engine agree on (the flags; engines
// get them as task arguments, so they need not parse the command line).
type config struct {
	layout    string
	sizes     []int
	reps      int
	repsLarge int // for sizes of 512 MiB and more
	ops       map[string]bool
	peer      int // world rank of the point-to-point partner
}

func (c config) want(op string) bool { return len(c.ops) == 0 || c.ops[op] }

func (c config) repsFor(mib int) int {
	if mib >= 512 {
		return c.repsLarge
	}
	return c.reps
}

func parseSizes(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		v, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || v <= 0 {
			return nil, fmt.Errorf("sizes: bad size %q (MiB, comma-separated)", f)
		}
		out = append(out, v)
	}
	return out, nil
}

func parseOps(s string) map[string]bool {
	m := map[string]bool{}
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			m[f] = true
		}
	}
	return m
}

var (
	layoutFlag    = flag.String("layout", "", "the layout's name in the labels, e.g. 3x2")
	sizesFlag     = flag.String("sizes", "8,64,512", "total array sizes in MiB")
	repsFlag      = flag.Int("reps", 5, "repetitions per operation under 512 MiB")
	repsLargeFlag = flag.Int("reps-large", 3, "repetitions per operation at 512 MiB and more")
	opsFlag       = flag.String("ops", "", "comma-separated operations to run (default all)")
)

func main() {
	rankhub.Register("host", func(*views.Context) (string, error) { return os.Hostname() })
	rankhub.Register("coll", func(vc *views.Context, layout, sizes string, reps, repsLarge int, ops string, peer int) (string, error) {
		w, err := vc.World()
		if err != nil {
			return "", err
		}
		cfg, err := newConfig(layout, sizes, reps, repsLarge, ops, peer)
		if err != nil {
			return "", err
		}
		return "", collectives(vc, w, cfg)
	})
	rankhub.Main(drive)
}

func newConfig(layout, sizes string, reps, repsLarge int, ops string, peer int) (config, error) {
	sz, err := parseSizes(sizes)
	if err != nil {
		return config{}, err
	}
	if reps < 1 || repsLarge < 1 {
		return config{}, fmt.Errorf("reps %d, reps-large %d: want at least 1", reps, repsLarge)
	}
	return config{layout: layout, sizes: sz, reps: reps, repsLarge: repsLarge, ops: parseOps(ops), peer: peer}, nil
}

func drive(ctx context.Context, c *views.Client) error {
	flag.Parse()
	if *layoutFlag == "" {
		return errors.New("mnbench: -layout is required (the label of the rows, e.g. 3x2)")
	}
	dv, err := c.DirectView()
	if err != nil {
		return err
	}
	me, err := os.Hostname()
	if err != nil {
		return err
	}
	// The partner of point-to-point and of PushOne/PullOne: the first
	// engine on another node than the driver.
	peer, peerID := -1, -1
	hosts := []string{me}
	for _, e := range c.Engines() {
		hosts = append(hosts, e.Host)
		if peer < 0 && e.Host != me {
			peer, peerID = e.Rank, e.ID
		}
	}
	fmt.Printf("# rankhub %s np=%d hosts=%s p2p peer=rank %d (engine %d)\n", *layoutFlag, len(hosts), strings.Join(hosts, ","), peer, peerID)
	if peer < 0 {
		return fmt.Errorf("mnbench: every engine is on %s; want several nodes", me)
	}
	cfg, err := newConfig(*layoutFlag, *sizesFlag, *repsFlag, *repsLargeFlag, *opsFlag, peer)
	if err != nil {
		return err
	}
	// The collectives: every engine in a task, the driver here.
	ar, err := dv.Apply("coll", cfg.layout, *sizesFlag, cfg.reps, cfg.repsLarge, *opsFlag, peer)
	if err != nil {
		return err
	}
	w, err := rankhub.World(ctx)
	if err != nil {
		return err
	}
	// An engine that fails stops the driver's part, which would wait for
	// it until the walltime.
	cctx, cancel := context.WithCancel(ctx)
	engines := make(chan error, 1)
	go func() {
		_, err := ar.Get(-1)
		if err != nil {
			cancel()
		}
		engines <- err
	}()
	cerr := collectives(cctx, w, cfg)
	cancel()
	if err := <-engines; err != nil {
		return fmt.Errorf("engines: %w", err)
	}
	if cerr != nil {
		return cerr
	}
	one, err := c.View(peerID)
	if err != nil {
		return err
	}
	return viewOps(c, dv, one, cfg)
}

// ramp returns n float64 values v, v+1, ... (exact in float64 for the
// sizes used) from mem.
func ramp(mem memory.Allocator, n int, v float64) arrow.Array {
	buf := memory.NewResizableBuffer(mem)
	buf.Resize(n * 8)
	xs := arrow.Float64Traits.CastFromBytes(buf.Bytes())
	for i := range xs {
		xs[i] = v + float64(i)
	}
	d := array.NewData(arrow.PrimitiveTypes.Float64, n, []*memory.Buffer{nil, buf}, nil, 0, 0)
	buf.Release()
	defer d.Release()
	return array.MakeFromData(d)
}

func values(a arrow.Array) []float64 { return a.(*array.Float64).Float64Values() }

// checkRamp says whether xs is the ramp from v.
func checkRamp(what string, xs []float64, v float64) error {
	for i, x := range xs {
		if x != v+float64(i) {
			return fmt.Errorf("%s: element %d is %g, want %g", what, i, x, v+float64(i))
		}
	}
	return nil
}

func report(cfg config, op string, mib int, ms float64) {
	fmt.Printf("RESULT rankhub_%s_%s_%dMiB %.4g ms_rep\n", cfg.layout, op, mib, ms)
}

// collectives runs every collective of cfg over w on this rank.
func collectives(ctx context.Context, w *collective.Comm, cfg config) error {
	p, r := w.Size(), w.Rank()
	mem := memory.Allocator(memory.DefaultAllocator)
	if a := w.Arena(); a != nil {
		mem = a.Allocator() // same-node peers alias it
	}
	for _, mib := range cfg.sizes {
		n := (mib << 20) / 8
		chunk := n / p
		a := ramp(mem, n, float64(r))
		part := array.NewSlice(a, 0, int64(chunk))
		err := sizeOps(ctx, w, cfg, mib, a, part)
		part.Release()
		a.Release()
		if err != nil {
			return fmt.Errorf("rank %d, %d MiB: %w", r, mib, err)
		}
	}
	return w.Barrier(ctx)
}

// op is one collective: run it, and check what this rank got (after the
// last repetition; check may be nil).
type op struct {
	name string
	run  func() (arrow.Array, *arrow.Chunked, error)
	// check verifies the last repetition's result on this rank.
	check func(arrow.Array, *arrow.Chunked) error
}

func sizeOps(ctx context.Context, w *collective.Comm, cfg config, mib int, a, part arrow.Array) error {
	p, r := w.Size(), w.Rank()
	n := a.Len()
	chunk := part.Len()
	rootOnly := func(x arrow.Array) arrow.Array {
		if r == 0 {
			return x
		}
		return nil
	}
	// Sum over ranks q of the ramp from q at element i: p*i + p(p-1)/2.
	sumAt := func(i int) float64 { return float64(p)*float64(i) + float64(p*(p-1)/2) }
	checkSum := func(x arrow.Array, _ *arrow.Chunked) error {
		if x == nil {
			return nil
		}
		for i, v := range values(x) {
			if v != sumAt(i) {
				return fmt.Errorf("element %d is %g, want %g", i, v, sumAt(i))
			}
		}
		return nil
	}
	checkParts := func(_ arrow.Array, ch *arrow.Chunked) error {
		if ch == nil {
			return nil
		}
		if len(ch.Chunks()) == 0 || ch.Len() != p*chunk {
			return fmt.Errorf("%d values in %d chunks, want %d", ch.Len(), len(ch.Chunks()), p*chunk)
		}
		off := 0
		for _, c := range ch.Chunks() {
			for k, v := range values(c) {
				q, i := (off+k)/chunk, (off+k)%chunk // rank q's part starts at q
				if v != float64(q+i) {
					return fmt.Errorf("element %d of rank %d's part is %g, want %g", i, q, v, float64(q+i))
				}
			}
			off += c.Len()
		}
		return nil
	}
	ops := []op{
		{"Bcast", func() (arrow.Array, *arrow.Chunked, error) {
			x, err := w.Bcast(ctx, 0, rootOnly(a))
			return x, nil, err
		}, func(x arrow.Array, _ *arrow.Chunked) error { return checkRamp("bcast", values(x), 0) }},
		{"Scatter", func() (arrow.Array, *arrow.Chunked, error) {
			x, err := w.Scatter(ctx, 0, rootOnly(a))
			return x, nil, err
		}, func(x arrow.Array, _ *arrow.Chunked) error {
			// evenCounts: the first n%p ranks get one element more.
			lo := r*(n/p) + min(r, n%p)
			return checkRamp("scatter", values(x), float64(lo))
		}},
		{"Gather", func() (arrow.Array, *arrow.Chunked, error) {
			ch, err := w.Gather(ctx, 0, part)
			return nil, ch, err
		}, checkParts},
		{"Reduce", func() (arrow.Array, *arrow.Chunked, error) {
			x, err := w.Reduce(ctx, 0, a, collective.Sum)
			return x, nil, err
		}, checkSum},
		{"Allreduce", func() (arrow.Array, *arrow.Chunked, error) {
			x, err := w.Allreduce(ctx, a, collective.Sum)
			return x, nil, err
		}, checkSum},
		{"Allgather", func() (arrow.Array, *arrow.Chunked, error) {
			ch, err := w.Allgather(ctx, part)
			return nil, ch, err
		}, checkParts},
		{"SendRecv_p2p", func() (arrow.Array, *arrow.Chunked, error) {
			switch r {
			case 0:
				tr, err := w.Send(ctx, cfg.peer, 7, a)
				if err != nil {
					return nil, nil, err
				}
				ack, err := w.Recv(ctx, cfg.peer, 8)
				if err != nil {
					return nil, nil, err
				}
				ack.Release()
				return nil, nil, tr.Wait(ctx)
			case cfg.peer:
				x, err := w.Recv(ctx, 0, 7)
				if err != nil {
					return nil, nil, err
				}
				ack := ramp(memory.DefaultAllocator, 1, 0)
				defer ack.Release()
				_, err = w.Send(ctx, 0, 8, ack)
				return x, nil, err
			}
			return nil, nil, nil
		}, func(x arrow.Array, _ *arrow.Chunked) error {
			if x == nil {
				return nil
			}
			return checkRamp("p2p", values(x), 0)
		}},
	}
	for _, o := range ops {
		if !cfg.want(o.name) {
			continue
		}
		for rep := -1; rep < cfg.repsFor(mib); rep++ { // rep -1: warm-up
			if err := w.Barrier(ctx); err != nil {
				return err
			}
			t0 := time.Now()
			x, ch, err := o.run()
			dt := time.Since(t0)
			if err == nil && rep == cfg.repsFor(mib)-1 {
				if cerr := o.check(x, ch); cerr != nil {
					err = fmt.Errorf("%s: wrong result: %w", o.name, cerr)
				}
			}
			if x != nil {
				x.Release()
			}
			if ch != nil {
				ch.Release()
			}
			if err != nil {
				return fmt.Errorf("%s: %w", o.name, err)
			}
			mx, err := maxOver(ctx, w, float64(dt))
			if err != nil {
				return err
			}
			if r == 0 && rep >= 0 {
				report(cfg, o.name, mib, mx/1e6)
			}
		}
	}
	return nil
}

// maxOver is the maximum of v over the ranks of w.
func maxOver(ctx context.Context, w *collective.Comm, v float64) (float64, error) {
	b := array.NewFloat64Builder(memory.DefaultAllocator)
	b.Append(v)
	x := b.NewArray()
	b.Release()
	defer x.Release()
	m, err := w.Allreduce(ctx, x, collective.Max)
	if err != nil {
		return 0, err
	}
	defer m.Release()
	return values(m)[0], nil
}

// releaseAll releases the Arrow values in v (a value, []any or *arrow.Chunked).
func releaseAll(v any) {
	switch x := v.(type) {
	case arrow.Array:
		x.Release()
	case *arrow.Chunked:
		x.Release()
	case []any:
		for _, y := range x {
			releaseAll(y)
		}
	}
}

// viewOps times the driver's Push, Pull, Scatter and Gather to every
// engine, and PushOne/PullOne to one engine on another node.
func viewOps(c *views.Client, dv, one *views.DirectView, cfg config) error {
	for _, mib := range cfg.sizes {
		n := (mib << 20) / 8
		x := ramp(memory.DefaultAllocator, n, 0)
		err := viewSize(c, dv, one, cfg, mib, x)
		x.Release()
		if err != nil {
			return fmt.Errorf("%d MiB: %w", mib, err)
		}
		if ar, err := dv.Delete("x", "p", "y"); err != nil {
			return err
		} else if _, err := ar.Get(-1); err != nil {
			return err
		}
	}
	return nil
}

// viewWarmups is the number of untimed repetitions of view operation op.
// A push to one engine that replaces an array lands while the engine still
// holds the one it replaces, so the first such push maps and faults in a
// second receive buffer; from the next on the two take turns. Traced on the
// emulated cluster at 512 MiB (engine's anonymous mappings and RSS per
// repetition): the first push after the warm-up added a 512 MiB mapping
// and 512 MiB RSS and took 3.3 s, the later ones 0.65-0.85 s and none.
// Push to every engine is the same on each engine: traced on 3 x 1 at 64
// MiB, the one warm-up took the idle buffer Bcast's rows left in each
// engine's pool, and the first timed push mapped a fresh one (a 32 MiB
// mapping grown to 64) and took 309-537 ms, 234-262 ms of it CPU of the
// engine faulting it in, against 28-128 ms for the later ones.
//
// A loop of pulls below collective.AsyncBelow takes turns with
// collective.AheadTurns receive buffers on the driver; it maps them one by
// one as receives miss, the last at about the seventh pull (with four).
// On this VM a fresh page costs the first touch about 15 us (8 MiB of 4
// KiB pages: 31 ms; huge pages 20-26 ms once the first few are used), and
// the pulls that mapped one took 26-37 ms against 3-7 ms for the others
// (traced at 8 MiB with one and with four warm-ups): 2 x AheadTurns.
func viewWarmups(op string, bytes int) int {
	switch {
	case op == "Push" || op == "PushOne":
		return 2
	case (op == "Pull" || op == "PullOne") && bytes < collective.AsyncBelow:
		return 2 * collective.AheadTurns
	}
	return 1
}

func viewSize(c *views.Client, dv, one *views.DirectView, cfg config, mib int, x arrow.Array) error {
	n, engines := x.Len(), len(c.IDs())
	checkArrays := func(what string, got any, count int) error {
		l, ok := got.([]any)
		if !ok && count == 1 {
			l = []any{got}
		}
		if len(l) != count {
			return fmt.Errorf("%s: %d values, want %d", what, len(l), count)
		}
		for i, g := range l {
			a, ok := g.(arrow.Array)
			if !ok || a.Len() != n {
				return fmt.Errorf("%s: engine %d sent %T, want %d float64", what, i, g, n)
			}
			if err := checkRamp(what, values(a), 0); err != nil {
				return err
			}
		}
		return nil
	}
	ops := []struct {
		name string
		run  func() (any, error)
		// check verifies the last repetition's result.
		check func(any) error
	}{
		{"Push", func() (any, error) { return nil, dv.Set("x", x) }, nil},
		{"Scatter", func() (any, error) {
			ar, err := dv.Scatter("p", x)
			if err != nil {
				return nil, err
			}
			return ar.Get(-1)
		}, nil},
		{"Gather", func() (any, error) {
			ar, err := dv.Gather("p")
			if err != nil {
				return nil, err
			}
			return ar.Get(-1)
		}, func(g any) error {
			ch, ok := g.(*arrow.Chunked)
			if !ok || ch.Len() != n {
				return fmt.Errorf("gather: %T, want %d values", g, n)
			}
			off := 0
			for _, c := range ch.Chunks() {
				if err := checkRamp("gather", values(c), float64(off)); err != nil {
					return err
				}
				off += c.Len()
			}
			return nil
		}},
		{"PushOne", func() (any, error) { return nil, one.Set("y", x) }, nil},
		{"PullOne", func() (any, error) { return one.Get("y") }, func(g any) error { return checkArrays("pull one", g, 1) }},
		// Last: on 3x2 at 512 MiB each Pull from the 5 engines grows the
		// driver by 2.5-3.9 GB that neither Release nor PurgeAll nor
		// GOMEMLIMIT gives back, and the fifth is OOM-killed on 24 GiB.
		{"Pull", func() (any, error) { return dv.Get("x") }, func(g any) error { return checkArrays("pull", g, engines) }},
	}
	for _, o := range ops {
		if !cfg.want("View" + o.name) {
			continue
		}
		for rep := -viewWarmups(o.name, mib<<20); rep < cfg.repsFor(mib); rep++ {
			t0 := time.Now()
			got, err := o.run()
			dt := time.Since(t0)
			if err == nil && o.check != nil && rep == cfg.repsFor(mib)-1 {
				err = o.check(got)
			}
			releaseAll(got)
			if err != nil {
				return fmt.Errorf("view %s: %w", o.name, err)
			}
			// The hub keeps every result (a pull's arrays too) until
			// purged: 5 pulls of 512 MiB from 5 engines are 12.5 GiB.
			if _, err := c.PurgeAll(); err != nil {
				return err
			}
			if rep >= 0 {
				report(cfg, "View"+o.name, mib, float64(dt)/1e6)
			}
		}
	}
	return nil
}
