// Command collbench times rankhub's collectives between real rank processes
// with the definitions of ../shared/anchors/mpi_bench.py, so the two can be
// compared side by side: S is the total float64 array size; Scatter: root
// holds S, each rank receives S/n; Gather: each sends S/n, root receives S;
// Bcast: S from root to all; Reduce/Allreduce (sum): every rank contributes
// S. Time = max over ranks of the operation's wall time after a Barrier;
// the median of the repetitions is printed as
//
//	RESULT rankhub_np<N>_<mode>_<Op>_<MiB>MiB_time <ms> ms
//
// with mode "shm" (same node, arenas) or "tcp" (forced socket path). The
// "<Op>+sum" rows add every rank summing what it received (the end-to-end
// figure); "LocalSum" is every rank summing its own S bytes, their
// baseline. "P2P" is rank 0 -> rank 1 Send/Recv of S plus an 8-byte ack.
// With -mem it only measures the node memory of a 512 MiB bcast: the sum
// over ranks of private resident memory (RssAnon) plus the shared memory of
// the arenas (allocated pages of the files in /dev/shm), and the sum of Pss.
//
// Start it as N ranks: bin/rankhub run -n N -- bin/collbench [flags]. It
// reads RANKHUB_RANK, RANKHUB_SIZE and RANKHUB_JOBDIR, takes the job key from
// hub.json in the job directory or creates its own key file there, and
// meets the other ranks through a FileExchange in the job directory.
package main

import (
	"bufio"
	"context"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/rankhub/rankhub/collective"
	"github.com/rankhub/rankhub/comm"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "collbench:", err)
		os.Exit(1)
	}
}

// onlyOps restricts the operations run (-ops).
var onlyOps string

// verbose prints every repetition (-v).
var verbose bool

type bench struct {
	m    *collective.Mesh
	c    *collective.Comm
	mode string
	reps int
	ctx  context.Context
}

func run() error {
	sizesFlag := flag.String("sizes", "8,64,512", "total array sizes in MiB")
	reps := flag.Int("reps", 5, "repetitions per operation (median reported)")
	modes := flag.String("modes", "shm,tcp", "transports: shm (same node, arenas), tcp (forced sockets), tls (forced sockets inside TLS 1.3, [job] tls = \"all\")")
	memOnly := flag.Bool("mem", false, "only measure node memory of a 512 MiB bcast")
	ops := flag.String("ops", "", "comma-separated operations to run (default all)")
	flag.BoolVar(&verbose, "v", false, "also print every repetition's time (rank 0, stderr)")
	profile := flag.String("cpuprofile", "", "write a CPU profile of rank -profilerank here")
	profRank := flag.Int("profilerank", 0, "the rank -cpuprofile profiles")
	flag.Parse()
	onlyOps = *ops
	rank, err1 := strconv.Atoi(os.Getenv("RANKHUB_RANK"))
	size, err2 := strconv.Atoi(os.Getenv("RANKHUB_SIZE"))
	dir := os.Getenv("RANKHUB_JOBDIR")
	if err1 != nil || err2 != nil || dir == "" {
		return errors.New("RANKHUB_RANK, RANKHUB_SIZE and RANKHUB_JOBDIR must be set (start with: rankhub run -n N -- collbench)")
	}
	var sizes []int
	for _, s := range strings.Split(*sizesFlag, ",") {
		v, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || v <= 0 {
			return fmt.Errorf("-sizes: bad size %q", s)
		}
		sizes = append(sizes, v)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	if *profile != "" && rank == *profRank {
		f, err := os.Create(*profile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	key, err := jobKey(ctx, dir, rank)
	if err != nil {
		return err
	}
	if *memOnly {
		*modes = "shm"
	}
	for _, mode := range strings.Split(*modes, ",") {
		if mode != "shm" && mode != "tcp" && mode != "tls" {
			return fmt.Errorf("-modes: unknown mode %q", mode)
		}
		m, err := collective.JoinMesh(ctx, collective.MeshConfig{Rank: rank, Size: size, Key: key,
			Exchange: collective.FileExchange(filepath.Join(dir, "collbench-"+mode)), ForceTCP: mode != "shm", TLS: mode == "tls",
			Logger: zerolog.New(os.Stderr).Level(zerolog.WarnLevel).With().Timestamp().Int("rank", rank).Logger()})
		if err != nil {
			return err
		}
		b := &bench{m: m, c: m.World(), mode: mode, reps: *reps, ctx: ctx}
		if rank == 0 {
			fmt.Printf("# rankhub collbench np=%d mode=%s reps=%d\n", size, mode, *reps)
		}
		if *memOnly {
			err = b.memory(512)
		} else {
			if onlyOps == "" || strings.Contains(","+onlyOps+",", ",PingPong,") {
				err = b.pingPong()
			}
			for _, mib := range sizes {
				if err != nil {
					break
				}
				if err = b.size(mib); err != nil {
					break
				}
			}
		}
		if err == nil {
			err = b.c.Barrier(ctx)
		}
		if cerr := m.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("rank %d, %s: %w", rank, mode, err)
		}
	}
	return nil
}

// jobKey returns the job key from hub.json, or from collbench.key, which
// rank 0 creates (mode 0600) when there is no hub.json.
func jobKey(ctx context.Context, dir string, rank int) ([]byte, error) {
	if ci, err := comm.ReadConnInfo(filepath.Join(dir, "hub.json")); err == nil {
		return ci.KeyBytes()
	}
	path := filepath.Join(dir, "collbench.key")
	if rank == 0 {
		key, err := comm.NewKey()
		if err != nil {
			return nil, err
		}
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, []byte(hex.EncodeToString(key)), 0o600); err != nil {
			return nil, err
		}
		return key, os.Rename(tmp, path)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if data, err := os.ReadFile(path); err == nil {
			return comm.ParseKey(strings.TrimSpace(string(data)))
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return nil, fmt.Errorf("no job key: neither %s nor %s appeared", filepath.Join(dir, "hub.json"), path)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// alloc is where inputs live: the arena in shm mode (sent without copying),
// the Go heap otherwise.
func (b *bench) alloc() memory.Allocator {
	if a := b.m.Arena(); a != nil {
		return a.Allocator()
	}
	return memory.DefaultAllocator
}

// filled returns n float64 values v (from alloc).
func (b *bench) filled(n int, v float64) arrow.Array {
	buf := memory.NewResizableBuffer(b.alloc())
	buf.Resize(n * 8)
	xs := arrow.Float64Traits.CastFromBytes(buf.Bytes())
	for i := range xs {
		xs[i] = v
	}
	d := array.NewData(arrow.PrimitiveTypes.Float64, n, []*memory.Buffer{nil, buf}, nil, 0, 0)
	buf.Release()
	a := array.MakeFromData(d)
	d.Release()
	return a
}

// sum adds up a float64 array with eight independent accumulators, so
// that it runs at memory speed rather than at the latency of one chain of
// dependent additions (four chains were twice as slow on 8 MiB in cache).
func sum(a arrow.Array) float64 {
	if a == nil {
		return 0
	}
	xs := a.(*array.Float64).Float64Values()
	var s0, s1, s2, s3, s4, s5, s6, s7 float64
	i := 0
	for ; i+8 <= len(xs); i += 8 {
		x := xs[i : i+8 : i+8]
		s0 += x[0]
		s1 += x[1]
		s2 += x[2]
		s3 += x[3]
		s4 += x[4]
		s5 += x[5]
		s6 += x[6]
		s7 += x[7]
	}
	for ; i < len(xs); i++ {
		s0 += xs[i]
	}
	return ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))
}

func sumChunked(ch *arrow.Chunked) float64 {
	if ch == nil {
		return 0
	}
	s := 0.0
	for _, a := range ch.Chunks() {
		s += sum(a)
	}
	return s
}

// timed runs fn after a barrier and returns the maximum over ranks of its
// wall time.
func (b *bench) timed(fn func() error) (time.Duration, error) {
	if err := b.c.Barrier(b.ctx); err != nil {
		return 0, err
	}
	t0 := time.Now()
	if err := fn(); err != nil {
		return 0, err
	}
	dt := time.Since(t0)
	return b.maxOver(float64(dt))
}

func (b *bench) maxOver(v float64) (time.Duration, error) {
	x := b.filledHeap(v)
	defer x.Release()
	mx, err := b.c.Allreduce(b.ctx, x, collective.Max)
	if err != nil {
		return 0, err
	}
	defer mx.Release()
	return time.Duration(mx.(*array.Float64).Value(0)), nil
}

func (b *bench) filledHeap(v float64) arrow.Array {
	bl := array.NewFloat64Builder(memory.DefaultAllocator)
	defer bl.Release()
	bl.Append(v)
	return bl.NewArray()
}

func (b *bench) result(label string, v float64, unit string) {
	if b.c.Rank() == 0 {
		fmt.Printf("RESULT rankhub_np%d_%s_%s %.4g %s\n", b.c.Size(), b.mode, label, v, unit)
	}
}

// size runs every operation at mib MiB.
func (b *bench) size(mib int) error {
	c, ctx := b.c, b.ctx
	p, r := c.Size(), c.Rank()
	S := mib << 20
	n := S / 8
	chunk := n / p
	a := b.filled(n, float64(r+1))
	defer a.Release()
	part := array.NewSlice(a, 0, int64(chunk))
	defer part.Release()
	want := float64(p*(p+1)/2) * float64(n)
	type op struct {
		name string
		fn   func(withSum bool) error
	}
	check := func(what string, got, exp float64) error {
		if got != exp {
			return fmt.Errorf("%s %d MiB: sum %g, want %g", what, mib, got, exp)
		}
		return nil
	}
	ops := []op{
		{"Scatter", func(s bool) error {
			var src arrow.Array
			if r == 0 {
				src = array.NewSlice(a, 0, int64(chunk*p))
				defer src.Release()
			}
			got, err := c.Scatterv(ctx, 0, src, scatterCounts(chunk, p, r == 0))
			if err != nil {
				return err
			}
			defer got.Release()
			if s {
				return check("scatter", sum(got), float64(chunk))
			}
			return nil
		}},
		{"Gather", func(s bool) error {
			got, err := c.Gather(ctx, 0, part)
			if err != nil {
				return err
			}
			if got == nil {
				return nil
			}
			defer got.Release()
			if s {
				return check("gather", sumChunked(got), float64(p*(p+1)/2)*float64(chunk))
			}
			return nil
		}},
		{"Bcast", func(s bool) error {
			var src arrow.Array
			if r == 0 {
				src = a
			}
			got, err := c.Bcast(ctx, 0, src)
			if err != nil {
				return err
			}
			defer got.Release()
			if s {
				return check("bcast", sum(got), float64(n))
			}
			return nil
		}},
		{"Reduce", func(s bool) error {
			got, err := c.Reduce(ctx, 0, a, collective.Sum)
			if err != nil {
				return err
			}
			if got != nil {
				defer got.Release()
				if s {
					return check("reduce", sum(got), want)
				}
			}
			return nil
		}},
		{"Allreduce", func(s bool) error {
			got, err := c.Allreduce(ctx, a, collective.Sum)
			if err != nil {
				return err
			}
			defer got.Release()
			if s {
				return check("allreduce", sum(got), want)
			}
			return nil
		}},
		// The baseline of the "+sum" rows: every rank sums its own S bytes
		// (warm, in its arena): what reading the data costs when nothing
		// was sent at all.
		{"LocalSum", func(bool) error {
			return check("local sum", sum(a), float64(r+1)*float64(n))
		}},
		{"SendRecv_p2p", func(s bool) error {
			switch r {
			case 0:
				tr, err := c.Send(ctx, 1, 7, a)
				if err != nil {
					return err
				}
				ack, err := c.Recv(ctx, 1, 8)
				if err != nil {
					return err
				}
				ack.Release()
				return tr.Wait(ctx)
			case 1:
				got, err := c.Recv(ctx, 0, 7)
				if err != nil {
					return err
				}
				var serr error
				if s {
					serr = check("p2p", sum(got), float64(n))
				}
				got.Release()
				ack := b.filledHeap(0)
				defer ack.Release()
				_, err = c.Send(ctx, 0, 8, ack)
				return errors.Join(serr, err)
			}
			return nil
		}},
	}
	for _, o := range ops {
		if onlyOps != "" && !strings.Contains(","+onlyOps+",", ","+o.name+",") {
			continue
		}
		for _, withSum := range []bool{false, true} {
			label := o.name
			if withSum {
				label += "+sum"
				if o.name == "Reduce" || o.name == "Allreduce" || o.name == "LocalSum" {
					continue // these already read every byte
				}
			}
			if err := o.fn(true); err != nil { // warm-up, checked
				return fmt.Errorf("%s: %w", o.name, err)
			}
			var ts []float64
			for i := 0; i < b.reps; i++ {
				dt, err := b.timed(func() error { return o.fn(withSum) })
				if err != nil {
					return fmt.Errorf("%s: %w", label, err)
				}
				ts = append(ts, float64(dt)/1e6)
			}
			if verbose && b.c.Rank() == 0 {
				fmt.Fprintf(os.Stderr, "# %s %d MiB reps (ms): %.3g\n", label, mib, ts)
			}
			sort.Float64s(ts)
			med := ts[len(ts)/2]
			b.result(fmt.Sprintf("%s_%dMiB_time", label, mib), med, "ms")
			b.result(fmt.Sprintf("%s_%dMiB", label, mib), float64(S)/(med/1e3)/1e9, "GB/s")
		}
	}
	return nil
}

// pingPong measures the 8-byte round trip between ranks 0 and 1 with the
// definition of mpi_bench.py (1,000 warm-up exchanges, then 10,000 timed;
// the median of the repetitions): the latency floor under every
// collective, and what the millisecond rows are made of.
func (b *bench) pingPong() error {
	c, ctx, r := b.c, b.ctx, b.c.Rank()
	msg := b.filledHeap(0)
	defer msg.Release()
	const warm, iters = 1000, 10000
	var ts []float64
	for rep := 0; rep < b.reps; rep++ {
		if err := c.Barrier(ctx); err != nil {
			return err
		}
		if r > 1 {
			continue
		}
		var t0 time.Time
		for i := 0; i < warm+iters; i++ {
			if i == warm {
				t0 = time.Now()
			}
			for turn := 0; turn < 2; turn++ {
				if (turn == 0) == (r == 0) {
					if _, err := c.Send(ctx, 1-r, 9, msg); err != nil {
						return err
					}
					continue
				}
				got, err := c.Recv(ctx, 1-r, 9)
				if err != nil {
					return err
				}
				got.Release()
			}
		}
		ts = append(ts, float64(time.Since(t0))/iters/1e3)
	}
	if r == 0 {
		sort.Float64s(ts)
		b.result("pingpong_8B_rtt", ts[len(ts)/2], "us")
	}
	return nil
}

// scatterCounts gives every rank chunk elements, as mpi_bench.py's
// comm.Scatter: root sends the first chunk*p elements of its array and the
// remainder of n/p is not sent (each rank's check expects chunk).
func scatterCounts(chunk, p int, root bool) []int64 {
	if !root {
		return nil
	}
	counts := make([]int64, p)
	for i := range counts {
		counts[i] = int64(chunk)
	}
	return counts
}

// memory measures the node memory held while every rank has received (and
// read) a bcast of mib MiB.
func (b *bench) memory(mib int) error {
	c, ctx := b.c, b.ctx
	n := (mib << 20) / 8
	var src arrow.Array
	if c.Rank() == 0 {
		src = b.filled(n, 1)
		defer src.Release()
	}
	got, err := c.Bcast(ctx, 0, src)
	if err != nil {
		return err
	}
	defer got.Release()
	if s := sum(got); s != float64(n) {
		return fmt.Errorf("bcast sum %g, want %d", s, n)
	}
	if err := c.Barrier(ctx); err != nil {
		return err
	}
	st, err := procStatus("/proc/self/status")
	if err != nil {
		return err
	}
	roll, err := procStatus("/proc/self/smaps_rollup")
	if err != nil {
		return err
	}
	shm := int64(0)
	if a := b.m.Arena(); a != nil {
		var fs unix.Stat_t
		if err := unix.Stat(a.Path(), &fs); err == nil {
			shm = fs.Blocks * 512
		}
	}
	mine := arrayOf([]int64{st["RssAnon"], st["RssShmem"], st["VmRSS"], roll["Pss"], shm})
	defer mine.Release()
	all, err := c.Allgather(ctx, mine, collective.Contiguous())
	if err != nil {
		return err
	}
	defer all.Release()
	if c.Rank() != 0 {
		return nil
	}
	v := all.Chunk(0).(*array.Int64).Int64Values()
	var anon, rssShm, rss, pss, files int64
	for q := 0; q < c.Size(); q++ {
		anon += v[5*q]
		rssShm += v[5*q+1]
		rss += v[5*q+2]
		pss += v[5*q+3]
		files += v[5*q+4]
	}
	payload := float64(mib << 20)
	fmt.Printf("# memory of a %d MiB bcast to %d ranks: sum RssAnon %d MiB, arena pages %d MiB, sum RssShmem %d MiB, sum VmRSS %d MiB, sum Pss %d MiB\n",
		mib, c.Size(), anon>>20, files>>20, rssShm>>20, rss>>20, pss>>20)
	b.result(fmt.Sprintf("bcast_%dMiB_node_memory", mib), float64(anon+files)/payload, "x_payload")
	b.result(fmt.Sprintf("bcast_%dMiB_pss", mib), float64(pss)/payload, "x_payload")
	b.result(fmt.Sprintf("bcast_%dMiB_sum_rss", mib), float64(rss)/payload, "x_payload")
	return nil
}

func arrayOf(v []int64) arrow.Array {
	bl := array.NewInt64Builder(memory.DefaultAllocator)
	defer bl.Release()
	bl.AppendValues(v, nil)
	return bl.NewArray()
}

// procStatus reads "Key: value kB" lines into bytes.
func procStatus(path string) (map[string]int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]int64{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, rest, ok := strings.Cut(sc.Text(), ":")
		fs := strings.Fields(rest)
		if !ok || len(fs) != 2 || fs[1] != "kB" {
			continue
		}
		if v, err := strconv.ParseInt(fs[0], 10, 64); err == nil {
			out[k] = v << 10
		}
	}
	return out, sc.Err()
}
