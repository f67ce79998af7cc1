package collective

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/rankhub/rankhub/comm"
	"github.com/rankhub/rankhub/internal/netnstest"
)

// Real-process tests: the test binary re-runs itself as N ranks (TestMain
// sees rhtRole) that join a Mesh through a FileExchange in a temp dir.
const (
	rhtRole  = "RHT_ROLE" // scenario to run as a rank
	rhtRank  = "RHT_RANK"
	rhtSize  = "RHT_SIZE"
	rhtDir   = "RHT_DIR"   // exchange dir; holds key.hex
	rhtTCP   = "RHT_TCP"   // "1": ForceTCP
	rhtName  = "RHT_NAME"  // arena name tag
	rhtArena = "RHT_ARENA" // arena dir
)

func TestMain(m *testing.M) {
	if role := os.Getenv(rhtRole); role != "" {
		os.Exit(rankMain(role))
	}
	if dir := os.Getenv(rhtArenaOwner); dir != "" {
		os.Exit(arenaOwnerMain(dir))
	}
	os.Exit(m.Run())
}

// rankMain runs one rank of a scenario; exit status 0 is success, and the
// last line of stdout says what happened.
func rankMain(role string) int {
	rank, _ := strconv.Atoi(os.Getenv(rhtRank))
	size, _ := strconv.Atoi(os.Getenv(rhtSize))
	dir := os.Getenv(rhtDir)
	keyHex, err := os.ReadFile(filepath.Join(dir, "key.hex"))
	if err != nil {
		fmt.Println("FAIL key:", err)
		return 1
	}
	key, err := comm.ParseKey(strings.TrimSpace(string(keyHex)))
	if err != nil {
		fmt.Println("FAIL key:", err)
		return 1
	}
	limit := 90 * time.Second
	if role == "huge" {
		// 3 GiB through five collectives over TCP took 60-92 s beside the
		// rest of the suite on 2 cores; the test waits 5 minutes for it.
		limit = 4 * time.Minute
	}
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cfg := MeshConfig{Rank: rank, Size: size, Key: key, Exchange: FileExchange(dir),
		ForceTCP: os.Getenv(rhtTCP) == "1", Heartbeat: 200 * time.Millisecond,
		ArenaDir: os.Getenv(rhtArena), ArenaSize: 64 << 20, Name: os.Getenv(rhtName)}
	switch role {
	case "all":
		cfg.Options = []Option{WithLargeThreshold(4 << 10)}
	case "huge":
		cfg.ArenaSize = 2*hugeN + 64<<20 // the input and the contiguous gather
		cfg.Heartbeat = 3 * time.Second  // filling 3 GiB stalls a loaded machine: a 1 s heartbeat (5 s to dead) failed once in CI-like runs beside other load
	}
	m, err := JoinMesh(ctx, cfg)
	if err != nil {
		fmt.Println("FAIL join:", err)
		return 1
	}
	var run func(context.Context, *Mesh) error
	switch role {
	case "all":
		run = scenarioAll
	case "kill":
		run = scenarioKill
	case "netns":
		run = scenarioNetns
	case "huge":
		run = scenarioHuge
	default:
		fmt.Println("FAIL unknown role", role)
		return 1
	}
	err = run(ctx, m)
	if cerr := m.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("close: %w", cerr)
	}
	if err != nil {
		fmt.Println("FAIL", err)
		return 1
	}
	fmt.Println("OK")
	return 0
}

// check runs a step and names it in the error.
func check(name string, err error) error {
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// inArena copies a into the mesh's arena (when there is one), so that it
// is sent without any copy.
func inArena(m *Mesh, a arrow.Array) arrow.Array {
	if m.Arena() == nil {
		a.Retain()
		return a
	}
	col, _ := columnOf(a)
	asm := newAssembler(col.dt, col.n, m.Arena().Allocator())
	asm.put(0, col)
	return asm.finish()
}

func sameChunked(ch *arrow.Chunked, want []arrow.Array) error {
	if ch == nil {
		return errors.New("nil result")
	}
	whole, err := array.Concatenate(ch.Chunks(), memory.DefaultAllocator)
	if err != nil {
		return err
	}
	defer whole.Release()
	exp, err := array.Concatenate(want, memory.DefaultAllocator)
	if err != nil {
		return err
	}
	defer exp.Release()
	return sameValues(whole, exp)
}

// scenarioAll runs every operation and checks every result against values
// each rank computes locally from the shared seed.
func scenarioAll(ctx context.Context, m *Mesh) (err error) {
	c := m.World()
	p, r := c.Size(), c.Rank()
	var held []arrow.Array // arena arrays, released before the leak check
	defer func() { release(held) }()
	for round, dt := range []arrow.DataType{arrow.PrimitiveTypes.Float64, arrow.PrimitiveTypes.Int32, arrow.PrimitiveTypes.Uint8} {
		nulls := round == 1
		n := 3000 + round*777
		xs := inputs(rand.New(rand.NewSource(int64(42+round))), p, dt, n, nulls)
		defer release(xs)
		mine := inArena(m, xs[r])
		held = append(held, mine)
		name := func(op string) string { return fmt.Sprintf("%s %s nulls=%v", op, dt, nulls) }

		if err := check(name("barrier"), c.Barrier(ctx)); err != nil {
			return err
		}
		// point to point, two tags received in the opposite order
		next, prev := (r+1)%p, (r-1+p)%p
		if _, err := c.Send(ctx, next, 5, mine); err != nil {
			return check(name("send"), err)
		}
		if _, err := c.Send(ctx, next, 6, xs[r]); err != nil {
			return check(name("send"), err)
		}
		for _, tag := range []uint64{6, 5} {
			got, err := c.Recv(ctx, prev, tag)
			if err != nil {
				return check(name("recv"), err)
			}
			err = sameValues(got, xs[prev])
			got.Release()
			if err != nil {
				return check(name(fmt.Sprintf("recv tag %d", tag)), err)
			}
		}
		for root := 0; root < p; root += max(1, p-1) {
			var src arrow.Array
			if r == root {
				src = mine
			}
			b, err := c.Bcast(ctx, root, src)
			if err != nil {
				return check(name("bcast"), err)
			}
			err = sameValues(b, xs[root])
			b.Release()
			if err != nil {
				return check(name("bcast"), err)
			}
			s, err := c.Scatter(ctx, root, src)
			if err != nil {
				return check(name("scatter"), err)
			}
			cnt := evenCounts(int64(n), p)
			d := displs(cnt)
			want := array.NewSlice(xs[root], d[r], d[r]+cnt[r])
			err = sameValues(s, want)
			s.Release()
			want.Release()
			if err != nil {
				return check(name("scatter"), err)
			}
			counts := make([]int64, p)
			counts[p-1] = int64(n)
			for i := 0; i < p-1; i++ {
				counts[i] = int64(i * 3)
				counts[p-1] -= counts[i]
			}
			sv, err := c.Scatterv(ctx, root, src, counts)
			if err != nil {
				return check(name("scatterv"), err)
			}
			d = displs(counts)
			want = array.NewSlice(xs[root], d[r], d[r]+counts[r])
			err = sameValues(sv, want)
			if err != nil {
				return check(name("scatterv"), err)
			}
			g, err := c.Gatherv(ctx, root, sv, counts)
			sv.Release()
			want.Release()
			if err != nil {
				return check(name("gatherv"), err)
			}
			if r == root {
				err = sameChunked(g, []arrow.Array{xs[root]})
				g.Release()
				if err != nil {
					return check(name("gatherv"), err)
				}
			}
			for _, contiguous := range []bool{false, true} {
				var opts []GatherOption
				if contiguous {
					opts = append(opts, Contiguous())
				}
				g, err := c.Gather(ctx, root, mine, opts...)
				if err != nil {
					return check(name("gather"), err)
				}
				if r == root {
					if contiguous && len(g.Chunks()) != 1 {
						err = fmt.Errorf("%d chunks with Contiguous", len(g.Chunks()))
					} else {
						err = sameChunked(g, xs)
					}
					g.Release()
					if err != nil {
						return check(name("gather"), err)
					}
				}
			}
			red, err := c.Reduce(ctx, root, mine, Sum)
			if err != nil {
				return check(name("reduce"), err)
			}
			if r == root {
				ref := refReduce(xs, Sum, memory.DefaultAllocator)
				err = sameValues(red, ref)
				ref.Release()
				red.Release()
				if err != nil {
					return check(name("reduce"), err)
				}
			}
		}
		ag, err := c.Allgather(ctx, xs[r])
		if err != nil {
			return check(name("allgather"), err)
		}
		err = sameChunked(ag, xs)
		ag.Release()
		if err != nil {
			return check(name("allgather"), err)
		}
		for _, o := range []Op{Sum, Max} {
			ar, err := c.Allreduce(ctx, mine, o)
			if err != nil {
				return check(name("allreduce"), err)
			}
			ref := refReduce(xs, o, memory.DefaultAllocator)
			err = sameValues(ar, ref)
			ar.Release()
			if err != nil {
				ref.Release()
				return check(name("allreduce "+o.Name()), err)
			}
			counts := evenCounts(int64(n), p)
			counts[0], counts[p-1] = counts[0]+counts[p-1]/2, counts[p-1]-counts[p-1]/2
			rs, err := c.ReduceScatter(ctx, xs[r], o, counts)
			if err != nil {
				ref.Release()
				return check(name("reducescatter"), err)
			}
			d := displs(counts)
			want := array.NewSlice(ref, d[r], d[r]+counts[r])
			err = sameValues(rs, want)
			want.Release()
			rs.Release()
			ref.Release()
			if err != nil {
				return check(name("reducescatter "+o.Name()), err)
			}
		}
	}
	if err := recordsAndChunked(ctx, m); err != nil {
		return err
	}
	if err := subAndSplit(ctx, c); err != nil {
		return err
	}
	if err := mismatchAborts(ctx, c); err != nil {
		return err
	}
	// everything is released: the arena drains once release messages
	// arrived, and no receive buffer is held.
	release(held)
	held = nil
	if err := check("final barrier", c.Barrier(ctx)); err != nil {
		return err
	}
	if a := m.Arena(); a != nil {
		deadline := time.Now().Add(5 * time.Second)
		for a.InUse() != 0 && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		if u := a.InUse(); u != 0 {
			return fmt.Errorf("arena leak: %d bytes in use", u)
		}
	}
	if live := m.Pool().Live(); live != 0 {
		return fmt.Errorf("receive pool leak: %d buffers", live)
	}
	// ranks must not close while others still wait for release messages
	return check("last barrier", c.Barrier(ctx))
}

func recordsAndChunked(ctx context.Context, m *Mesh) error {
	c := m.World()
	p, r := c.Size(), c.Rank()
	rng := rand.New(rand.NewSource(7))
	xs := inputs(rng, p, arrow.PrimitiveTypes.Float64, 501, true)
	ys := inputs(rng, p, arrow.PrimitiveTypes.Int64, 501, false)
	defer release(xs)
	defer release(ys)
	schema := arrow.NewSchema([]arrow.Field{{Name: "x", Type: arrow.PrimitiveTypes.Float64, Nullable: true}, {Name: "y", Type: arrow.PrimitiveTypes.Int64}}, nil)
	recs := make([]arrow.RecordBatch, p)
	for q := range recs {
		recs[q] = array.NewRecordBatch(schema, []arrow.Array{xs[q], ys[q]}, 501)
		defer recs[q].Release()
	}
	var src arrow.RecordBatch
	if r == 0 {
		src = recs[0]
	}
	b, err := c.BcastRecord(ctx, 0, src)
	if err != nil {
		return check("bcastrecord", err)
	}
	if b.NumRows() != 501 || b.ColumnName(1) != "y" || sameValues(b.Column(0), xs[0]) != nil || sameValues(b.Column(1), ys[0]) != nil {
		b.Release()
		return errors.New("bcastrecord: wrong record")
	}
	b.Release()
	s, err := c.ScatterRecord(ctx, 0, src, nil)
	if err != nil {
		return check("scatterrecord", err)
	}
	cnt := evenCounts(501, p)
	d := displs(cnt)
	want := recs[0].NewSlice(d[r], d[r]+cnt[r])
	err = errors.Join(sameValues(s.Column(0), want.Column(0)), sameValues(s.Column(1), want.Column(1)))
	s.Release()
	want.Release()
	if err != nil {
		return check("scatterrecord", err)
	}
	for _, all := range []bool{false, true} {
		var tb arrow.Table
		if all {
			tb, err = c.AllgatherRecord(ctx, recs[r], Contiguous())
		} else {
			tb, err = c.GatherRecord(ctx, 0, recs[r])
		}
		if err != nil {
			return check("gatherrecord", err)
		}
		if tb == nil {
			if all || r == 0 {
				return errors.New("gatherrecord: nil table")
			}
			continue
		}
		err = errors.Join(sameChunked(tb.Column(0).Data(), xs), sameChunked(tb.Column(1).Data(), ys))
		if tb.NumRows() != int64(501*p) {
			err = fmt.Errorf("%d rows", tb.NumRows())
		}
		tb.Release()
		if err != nil {
			return check(fmt.Sprintf("gatherrecord all=%v", all), err)
		}
	}
	ch := arrow.NewChunked(arrow.PrimitiveTypes.Float64, []arrow.Array{xs[r], xs[(r+1)%p]})
	defer ch.Release()
	var chSrc *arrow.Chunked
	if r == p-1 {
		chSrc = ch
	}
	bc, err := c.BcastChunked(ctx, p-1, chSrc)
	if err != nil {
		return check("bcastchunked", err)
	}
	err = sameChunked(bc, []arrow.Array{xs[p-1], xs[0]})
	if len(bc.Chunks()) != 2 {
		err = fmt.Errorf("%d chunks", len(bc.Chunks()))
	}
	bc.Release()
	if err != nil {
		return check("bcastchunked", err)
	}
	gc, err := c.GatherChunked(ctx, 0, ch)
	if err != nil {
		return check("gatherchunked", err)
	}
	if r == 0 {
		var w []arrow.Array
		for q := 0; q < p; q++ {
			w = append(w, xs[q], xs[(q+1)%p])
		}
		err = sameChunked(gc, w)
		if len(gc.Chunks()) != 2*p {
			err = fmt.Errorf("%d chunks, want %d", len(gc.Chunks()), 2*p)
		}
		gc.Release()
		if err != nil {
			return check("gatherchunked", err)
		}
	}
	return nil
}

func subAndSplit(ctx context.Context, c *Comm) error {
	p, r := c.Size(), c.Rank()
	one := arrayFromInt64([]int64{int64(r + 1)})
	defer one.Release()
	sum := func(cc *Comm) (int64, error) {
		a, err := cc.Allreduce(ctx, one, Sum)
		if err != nil {
			return 0, err
		}
		defer a.Release()
		return a.(*array.Int64).Value(0), nil
	}
	if r >= 1 || p == 1 {
		members := []int{}
		for q := 1; q < p; q++ {
			members = append(members, q)
		}
		if p > 1 {
			sub, err := c.Sub(members)
			if err != nil {
				return check("sub", err)
			}
			got, err := sum(sub)
			want := int64(p*(p+1)/2 - 1)
			if err != nil || got != want {
				return fmt.Errorf("sub allreduce: %d, %v; want %d", got, err, want)
			}
		}
	}
	sp, err := c.Split(ctx, r%2, -r)
	if err != nil {
		return check("split", err)
	}
	got, err := sum(sp)
	want := int64(0)
	for q := r % 2; q < p; q += 2 {
		want += int64(q + 1)
	}
	if err != nil || got != want || sp.Rank() != (p-1-r)/2-(p-1-r)%2*0 && false {
		return fmt.Errorf("split allreduce: %d, %v; want %d", got, err, want)
	}
	return nil
}

// mismatchAborts: the last rank passes another type to Allreduce; every
// rank must fail fast, none may hang.
func mismatchAborts(ctx context.Context, c *Comm) error {
	p, r := c.Size(), c.Rank()
	var a arrow.Array
	if r == p-1 {
		a = randArray(rand.New(rand.NewSource(1)), memory.DefaultAllocator, arrow.PrimitiveTypes.Int32, 64, 0, 0)
	} else {
		a = randArray(rand.New(rand.NewSource(1)), memory.DefaultAllocator, arrow.PrimitiveTypes.Float64, 64, 0, 0)
	}
	defer a.Release()
	actx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	start := time.Now()
	res, err := c.Allreduce(actx, a, Sum)
	if err == nil {
		res.Release()
		return errors.New("allreduce of int32 with float64 succeeded")
	}
	if time.Since(start) > 5*time.Second || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("mismatch not aborted fast: %v after %v", err, time.Since(start))
	}
	return nil
}

// scenarioKill: the victim (RHT_VICTIM) announces itself and waits to be
// SIGKILLed; the others run an Allreduce that needs it and must fail with
// an error naming it within the heartbeat timeout.
func scenarioKill(ctx context.Context, m *Mesh) error {
	c := m.World()
	victim, _ := strconv.Atoi(os.Getenv("RHT_VICTIM"))
	if err := c.Barrier(ctx); err != nil {
		return check("barrier", err)
	}
	if c.Rank() == victim {
		os.WriteFile(filepath.Join(os.Getenv(rhtDir), "victim-ready"), nil, 0o600)
		time.Sleep(time.Minute)
		return errors.New("victim was not killed")
	}
	a := arrayFromInt64(make([]int64, 1<<16))
	defer a.Release()
	start := time.Now()
	res, err := c.Allreduce(ctx, a, Sum)
	if err == nil {
		res.Release()
		return errors.New("allreduce without the victim succeeded")
	}
	fmt.Printf("ERR %d %v\n", time.Since(start).Milliseconds(), err)
	return nil
}

// scenarioNetns: one rank per network namespace; check the link is TCP
// between the test addresses and that no arena was used.
func scenarioNetns(ctx context.Context, m *Mesh) error {
	c := m.World()
	r := c.Rank()
	if m.SameNode(1 - r) {
		return errors.New("peer in the other namespace reported as same node")
	}
	if m.Arena() != nil {
		return errors.New("an arena was created with no same-node peer")
	}
	xs := inputs(rand.New(rand.NewSource(3)), 2, arrow.PrimitiveTypes.Float64, 1<<18, false)
	defer release(xs)
	var src arrow.Array
	if r == 0 {
		src = xs[0]
	}
	b, err := c.Bcast(ctx, 0, src)
	if err != nil {
		return check("bcast", err)
	}
	err = sameValues(b, xs[0])
	b.Release()
	if err != nil {
		return check("bcast", err)
	}
	ar, err := c.Allreduce(ctx, xs[r], Sum)
	if err != nil {
		return check("allreduce", err)
	}
	ref := refReduce(xs, Sum, memory.DefaultAllocator)
	err = sameValues(ar, ref)
	ar.Release()
	ref.Release()
	if err != nil {
		return check("allreduce", err)
	}
	l := m.links[1-r]
	l.mu.Lock()
	remote := l.conn.NetConn().RemoteAddr().String()
	l.mu.Unlock()
	if !strings.HasPrefix(remote, "10.231.0.") {
		return fmt.Errorf("link to the peer goes to %s, want 10.231.0.x over TCP", remote)
	}
	fmt.Println("LINK", remote)
	return check("barrier", c.Barrier(ctx))
}

// job is one real-process run.
type job struct {
	dir, name, arenaDir string
	cmds                []*exec.Cmd
	outs                []*bytes.Buffer
}

// startJob starts n ranks of role. wrap may prefix a rank's command line
// (ip netns exec) and env adds variables per rank.
func startJob(t *testing.T, role string, n int, tcp bool, env func(r int) []string, wrap func(r int, argv []string) []string) *job {
	t.Helper()
	key, err := comm.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	j := &job{dir: t.TempDir(), name: fmt.Sprintf("t%d%x", os.Getpid(), time.Now().UnixNano()&0xffffff)}
	// A private directory in /dev/shm: the meshes of test packages running
	// at the same time clean stale arenas at the top of /dev/shm, and
	// would remove the ones these tests leave behind on purpose.
	if d, err := os.MkdirTemp("/dev/shm", "rankhub-test-"); err == nil {
		j.arenaDir = d
		t.Cleanup(func() { os.RemoveAll(d) })
	} else {
		j.arenaDir = t.TempDir()
	}
	if err := os.WriteFile(filepath.Join(j.dir, "key.hex"), []byte(hex.EncodeToString(key)), 0o600); err != nil {
		t.Fatal(err)
	}
	for r := 0; r < n; r++ {
		argv := []string{os.Args[0], "-test.run=^$"}
		if wrap != nil {
			argv = wrap(r, argv)
		}
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Env = append(os.Environ(), rhtRole+"="+role, fmt.Sprintf("%s=%d", rhtRank, r), fmt.Sprintf("%s=%d", rhtSize, n),
			rhtDir+"="+j.dir, rhtName+"="+j.name, rhtArena+"="+j.arenaDir)
		if tcp {
			cmd.Env = append(cmd.Env, rhtTCP+"=1")
		}
		if env != nil {
			cmd.Env = append(cmd.Env, env(r)...)
		}
		out := &bytes.Buffer{}
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		j.cmds = append(j.cmds, cmd)
		j.outs = append(j.outs, out)
	}
	t.Cleanup(func() {
		for _, c := range j.cmds {
			if c.ProcessState == nil {
				c.Process.Kill()
				c.Wait()
			}
		}
	})
	return j
}

// wait waits for every rank (bounded) and returns their exit errors.
func (j *job) wait(t *testing.T, timeout time.Duration) []error {
	t.Helper()
	errs := make([]error, len(j.cmds))
	done := make(chan struct{})
	go func() {
		for r, c := range j.cmds {
			errs[r] = c.Wait()
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(timeout):
		for r, c := range j.cmds {
			c.Process.Signal(syscall.SIGQUIT)
			t.Logf("rank %d hung; output:\n%s", r, j.outs[r])
		}
		<-done
		t.Fatalf("ranks did not finish within %v", timeout)
	}
	return errs
}

// arenas lists this job's arena files left behind.
func (j *job) arenas() []string {
	m, _ := filepath.Glob(filepath.Join(j.arenaDir, arenaPrefix+j.name+"-*.arena"))
	return m
}

func TestMeshAllOps(t *testing.T) {
	sizes := []int{2, 3, 4}
	if testing.Short() {
		sizes = []int{3}
	}
	for _, tcp := range []bool{false, true} {
		for _, n := range sizes {
			mode := "shm"
			if tcp {
				mode = "tcp"
			}
			t.Run(fmt.Sprintf("%s-%d", mode, n), func(t *testing.T) {
				j := startJob(t, "all", n, tcp, nil, nil)
				for r, err := range j.wait(t, 120*time.Second) {
					if err != nil || !strings.HasSuffix(strings.TrimSpace(j.outs[r].String()), "OK") {
						t.Errorf("rank %d: %v\n%s", r, err, j.outs[r])
					}
				}
				if left := j.arenas(); len(left) != 0 {
					t.Errorf("arenas left after the job: %v", left)
				}
			})
		}
	}
}

// TestMeshKilledRankNamed: a rank SIGKILLed (its sockets close at once) or
// SIGSTOPped (only the heartbeats tell) during an Allreduce makes every other
// rank fail with an error naming it, within the heartbeat timeout.
func TestMeshKilledRankNamed(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGKILL, syscall.SIGSTOP} {
		t.Run(sig.String(), func(t *testing.T) { testDeadRank(t, sig) })
	}
}

func testDeadRank(t *testing.T, sig syscall.Signal) {
	const n, victim = 3, 1
	j := startJob(t, "kill", n, false, func(int) []string { return []string{fmt.Sprintf("RHT_VICTIM=%d", victim)} }, nil)
	ready := filepath.Join(j.dir, "victim-ready")
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, err := os.Stat(ready); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("victim never got ready:\n%s", j.outs[victim])
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // the others are inside the Allreduce now
	j.cmds[victim].Process.Signal(sig)
	if sig == syscall.SIGSTOP {
		// the stopped rank must not be reaped before the others are done
		errs := make([]error, n)
		done := make(chan struct{})
		go func() {
			for r := 0; r < n; r++ {
				if r != victim {
					errs[r] = j.cmds[r].Wait()
				}
			}
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Error("ranks hang with a stopped peer")
		}
		j.cmds[victim].Process.Kill()
		j.cmds[victim].Wait()
		<-done
		checkDeadRankOutput(t, j, n, victim, errs)
		return
	}
	errs := j.wait(t, 30*time.Second)
	checkDeadRankOutput(t, j, n, victim, errs)
}

func checkDeadRankOutput(t *testing.T, j *job, n, victim int, errs []error) {
	t.Helper()
	for r := 0; r < n; r++ {
		if r == victim {
			continue
		}
		out := strings.TrimSpace(j.outs[r].String())
		if (errs != nil && errs[r] != nil) || !strings.HasSuffix(out, "OK") {
			t.Errorf("rank %d: %v\n%s", r, errs, out)
			continue
		}
		var ms int
		var msg string
		for _, line := range strings.Split(out, "\n") {
			if strings.HasPrefix(line, "ERR ") {
				fmt.Sscan(strings.TrimPrefix(line, "ERR "), &ms)
				msg = line
			}
		}
		if !strings.Contains(msg, fmt.Sprintf("rank %d", victim)) {
			t.Errorf("rank %d: error does not name rank %d: %s", r, victim, msg)
		}
		// heartbeat timeout is 5 x 200ms; the kill itself is seen at once (EOF)
		if ms > 300+1000+500 {
			t.Errorf("rank %d: failed after %d ms, beyond the heartbeat timeout", r, ms)
		}
	}
	// the victim's arena is left behind; the next start cleans it
	left := j.arenas()
	if len(left) != 1 {
		t.Fatalf("want the crashed rank's arena only, found %v", left)
	}
	removed, err := CleanStale(j.arenaDir)
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) == 0 || len(j.arenas()) != 0 {
		t.Errorf("CleanStale removed %v; left %v", removed, j.arenas())
	}
}

// TestMeshNetns runs one rank in each of two network namespaces joined by a
// veth pair, so the cross-host path runs over real separate addresses.
func TestMeshNetns(t *testing.T) {
	p := netnstest.New(t, "rht", "10.231.0")
	ns := []string{p.NSA, p.NSB}
	j := startJob(t, "netns", 2, false,
		func(r int) []string {
			return []string{fmt.Sprintf("%s=netns-host-%d", EnvMeshHost, r), fmt.Sprintf("%s=10.231.0.%d", EnvMeshAddr, r+1)}
		},
		func(r int, argv []string) []string { return append(p.Exec(ns[r]), argv...) })
	for r, err := range j.wait(t, 60*time.Second) {
		out := j.outs[r].String()
		if err != nil || !strings.HasSuffix(strings.TrimSpace(out), "OK") || !strings.Contains(out, "LINK 10.231.0.") {
			t.Errorf("rank %d: %v\n%s", r, err, out)
		}
	}
	if left := j.arenas(); len(left) != 0 {
		t.Errorf("arenas created in the netns job: %v", left)
	}
}

// hugeN is the element count of the > 2 GiB test (uint8: 3 GiB).
const hugeN = 3 << 30

// scenarioHuge moves 3 GiB (more than 2^31 bytes and elements) between two
// processes: bcast, then scatter and gather of it, checked at sampled
// positions. Through the arena in shm mode, over the socket in tcp mode.
func scenarioHuge(ctx context.Context, m *Mesh) error {
	c := m.World()
	r := c.Rank()
	val := func(i int64) byte { return byte(i/4096) ^ byte(i) }
	var src arrow.Array
	if r == 0 {
		buf := memory.NewResizableBuffer(m.Arena().Allocator())
		buf.Resize(hugeN)
		bs := buf.Bytes()
		for i := range bs {
			bs[i] = val(int64(i))
		}
		d := array.NewData(arrow.PrimitiveTypes.Uint8, hugeN, []*memory.Buffer{nil, buf}, nil, 0, 0)
		buf.Release()
		src = array.MakeFromData(d)
		d.Release()
		defer src.Release()
	}
	probe := func(what string, a arrow.Array, first, n int64) error {
		if int64(a.Len()) != n {
			return fmt.Errorf("%s: %d elements, want %d", what, a.Len(), n)
		}
		u := a.(*array.Uint8)
		for _, i := range []int64{0, 1, n / 3, n/2 + 7, n - 4097, n - 1} {
			if got, want := u.Value(int(i)), val(first+i); got != want {
				return fmt.Errorf("%s: element %d is %d, want %d", what, i, got, want)
			}
		}
		return nil
	}
	b, err := c.Bcast(ctx, 0, src)
	if err != nil {
		return check("bcast", err)
	}
	err = probe("bcast", b, 0, hugeN)
	b.Release()
	if err != nil {
		return err
	}
	s, err := c.Scatter(ctx, 0, src)
	if err != nil {
		return check("scatter", err)
	}
	if err := probe("scatter", s, int64(r)*hugeN/2, hugeN/2); err != nil {
		s.Release()
		return err
	}
	g, err := c.Gather(ctx, 0, s, Contiguous())
	s.Release()
	if err != nil {
		return check("gather", err)
	}
	if r == 0 {
		err = probe("gather", g.Chunk(0), 0, hugeN)
		g.Release()
		if err != nil {
			return err
		}
	}
	return check("barrier", c.Barrier(ctx))
}

// TestMeshHuge3GiB needs RANKHUB_HUGE=1 and about 10 GiB of memory.
func TestMeshHuge3GiB(t *testing.T) {
	if os.Getenv("RANKHUB_HUGE") == "" || testing.Short() {
		t.Skip("set RANKHUB_HUGE=1 to run the 3 GiB real-process test")
	}
	for _, tcp := range []bool{false, true} {
		t.Run(fmt.Sprintf("tcp=%v", tcp), func(t *testing.T) {
			j := startJob(t, "huge", 2, tcp, nil, nil)
			for r, err := range j.wait(t, 5*time.Minute) {
				if err != nil || !strings.HasSuffix(strings.TrimSpace(j.outs[r].String()), "OK") {
					t.Errorf("rank %d: %v\n%s", r, err, j.outs[r])
				}
			}
		})
	}
}

func TestSpinFromEnv(t *testing.T) {
	cpus := runtime.NumCPU()
	for _, tc := range []struct {
		env         string
		size, procs int
		want        time.Duration
	}{
		{"", 1, 1, DefaultSpin},
		{"", cpus, 1, DefaultSpin},
		{"", cpus + 1, 1, -1}, // ranks outnumber the cores
		{"", cpus / 2, 2, DefaultSpin},
		{"", cpus/2 + 1, 2, -1}, // their schedulers outnumber the cores
		{"", 1, cpus + 1, -1},
		{"0", 1, 1, -1},
		{"250us", 1, 1, 250 * time.Microsecond},
		{"250us", cpus + 1, 1, 250 * time.Microsecond}, // explicit wins
		{"junk", 1, 1, DefaultSpin},
		{"-1s", cpus + 1, 1, -1},
	} {
		t.Setenv(EnvSpin, tc.env)
		if got := spinFromEnv(tc.size, tc.procs); got != tc.want {
			t.Errorf("RANKHUB_SPIN=%q size %d GOMAXPROCS %d: spin %v, want %v", tc.env, tc.size, tc.procs, got, tc.want)
		}
	}
}
