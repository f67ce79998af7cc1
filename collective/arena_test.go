package collective

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

func writeFile(p string) error { return os.WriteFile(p, []byte("x"), 0o600) }

func TestArenaAllocatorCoalesces(t *testing.T) {
	a, err := NewArena(t.TempDir(), "alloc", 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	rng := rand.New(rand.NewSource(4))
	var live [][]byte
	for i := 0; i < 2000; i++ {
		if len(live) > 0 && rng.Intn(2) == 0 {
			j := rng.Intn(len(live))
			a.Allocator().Free(live[j])
			live = append(live[:j], live[j+1:]...)
			continue
		}
		size := 1 + rng.Intn(20000)
		if rng.Intn(8) == 0 {
			size = pageAlignMin + rng.Intn(3*pageAlignMin)
		}
		b, err := a.Alloc(int64(size))
		if err != nil {
			continue
		}
		if off := a.offsetOf(b); off%arenaAlign != 0 || (len(b) >= pageAlignMin && off%int64(pageSize) != 0) {
			t.Fatalf("offset %d of %d bytes not aligned", off, len(b))
		}
		live = append(live, b)
	}
	for _, b := range live {
		a.Allocator().Free(b)
	}
	if a.InUse() != 0 || len(a.free) != 1 {
		t.Fatalf("after freeing all: in use %d, %d free spans", a.InUse(), len(a.free))
	}
}

func FuzzParseHeader(f *testing.F) {
	h := header{kind: kindRecord, aux: 3, fields: []fieldMeta{{"x", true}}, cols: []colMeta{{typ: 9, n: 10, nulls: 1, hasValid: true}}, refs: []bufRef{{n: 2}, {n: 80}}}
	f.Add(h.marshal())
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = parseHeader(b)
	})
}

// SendTo stages a heap array in the arena once for all receivers on the
// node; every receiver gets the same bytes and the range is freed when
// the last one releases.
func TestSendToStagesOnce(t *testing.T) {
	w := newTestWorld(t, 4, worldOpts{shm: true})
	defer w.close(t)
	const n = 1 << 17 // 1 MiB
	var grew int64
	mustRun(t, w, func(ctx context.Context, c *Comm) error {
		if c.Rank() == 0 {
			b := array.NewFloat64Builder(w.mem)
			for i := 0; i < n; i++ {
				b.Append(float64(i))
			}
			a := b.NewArray()
			b.Release()
			defer a.Release()
			before := c.Arena().InUse()
			if sent, err := c.SendTo(ctx, []int{1, 2, 3}, 5, a); err != nil || sent != 3 {
				return fmt.Errorf("SendTo: %d sent, %v", sent, err)
			}
			grew = c.Arena().InUse() - before
			return c.Barrier(ctx) // the receivers hold the array until here
		}
		got, err := c.Recv(ctx, 0, 5)
		if err != nil {
			return err
		}
		defer got.Release()
		if f := got.(*array.Float64); f.Len() != n || f.Value(n-1) != n-1 {
			return fmt.Errorf("rank %d got %d values", c.Rank(), got.Len())
		}
		return c.Barrier(ctx)
	})
	if grew < n*8 || grew >= 2*n*8 {
		t.Fatalf("the arena grew by %d bytes for 3 receivers of %d: want one copy", grew, n*8)
	}
}

// A peer that dies holding views of this rank's arena does not pin it: its
// ranges come back when its death is noticed, and the Tracker completes.
func TestDeadPeerReleasesArenaRanges(t *testing.T) {
	w := newTestWorld(t, 2, worldOpts{shm: true})
	defer w.close(t)
	const n = 1 << 16
	held := make(chan arrow.Array, 1)
	var tr *Tracker
	mustRun(t, w, func(ctx context.Context, c *Comm) error {
		if c.Rank() == 1 {
			got, err := c.Recv(ctx, 0, 1)
			held <- got // kept: the rank "dies" holding it
			return err
		}
		buf, err := c.Arena().Alloc(n * 8)
		if err != nil {
			return err
		}
		a := array.NewFloat64Data(array.NewData(arrow.PrimitiveTypes.Float64, n,
			[]*memory.Buffer{nil, memory.NewBufferBytes(buf)}, nil, 0, 0))
		defer a.Release()
		tr, err = c.Send(ctx, 1, 1, a)
		if err != nil {
			return err
		}
		return c.Arena().unref(c.Arena().offsetOf(buf)) // our own allocation reference
	})
	if w.arenas[0].InUse() < n*8 {
		t.Fatalf("the receiver's view does not hold the range (%d bytes in use)", w.arenas[0].InUse())
	}
	w.ts[1].Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := tr.Wait(ctx); err != nil {
		t.Fatalf("the Tracker of a send to a dead peer: %v", err)
	}
	if u := w.arenas[0].InUse(); u != 0 {
		t.Fatalf("%d bytes still pinned by the dead peer", u)
	}
	(<-held).Release()
}

// rhtArenaOwner makes the test binary an arena owner (arenaOwnerMain) that
// creates an arena in the named directory and lives until stdin closes.
const (
	rhtArenaOwner = "RHT_ARENA_OWNER"
	rhtArenaName  = "RHT_ARENA_NAME" // the owner's arena name; "" = "owner"
)

func arenaOwnerMain(dir string) int {
	name := os.Getenv(rhtArenaName)
	if name == "" {
		name = "owner"
	}
	a, err := NewArena(dir, name, 4096)
	if err != nil {
		fmt.Println("FAIL", err)
		return 1
	}
	fmt.Printf("READY %d %s\n", os.Getpid(), a.Path())
	io.Copy(io.Discard, os.Stdin)
	return 0 // without Close: a crashed owner leaves its arena behind
}

// TestCleanStaleAcrossPIDNamespaces: a rank in another PID namespace (a
// container, some launchers) has a pid that means nothing here, or names
// another process. Its live arena must not be removed, and once it is gone
// its arena is stale and removed. The owner runs under `unshare --pid` with
// its namespace pid chosen to be free in this namespace (ns_last_pid).
func TestCleanStaleAcrossPIDNamespaces(t *testing.T) {
	dir := t.TempDir()
	cmd, stdin, _, path := startForeignOwner(t, dir, "")
	removed, err := CleanStale(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) != 0 {
		t.Fatalf("CleanStale removed the live arena of a rank in another PID namespace: %v", removed)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("live arena: %v", err)
	}
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("owner: %v", err)
	}
	removed, err = CleanStale(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) != 1 || removed[0] != path {
		t.Fatalf("after the owner exited, CleanStale removed %v, want [%s]", removed, path)
	}
}

// TestCleanStaleSparesArenaInCreation: an arena's temporary file is
// unlocked between its creation and its owner's flock; a rank cleaning
// stale arenas at that moment removed it and the owner's arena failed
// ("link ...arena.new: no such file", seen with 1025 ranks starting at
// once). A fresh one is left alone; one a creator left behind long ago is
// removed.
func TestCleanStaleSparesArenaInCreation(t *testing.T) {
	dir := t.TempDir()
	p := dir + "/rankhub-x-r1-123.arena.new"
	if err := writeFile(p); err != nil {
		t.Fatal(err)
	}
	if removed, err := CleanStale(dir); err != nil || len(removed) != 0 {
		t.Fatalf("CleanStale removed %v (%v): an arena being created", removed, err)
	}
	old := time.Now().Add(-2 * time.Minute)
	if err := os.Chtimes(p, old, old); err != nil {
		t.Fatal(err)
	}
	if removed, err := CleanStale(dir); err != nil || len(removed) != 1 || removed[0] != p {
		t.Fatalf("CleanStale removed %v (%v), want the abandoned %s", removed, err, p)
	}
}

// startForeignOwner starts arenaOwnerMain under `unshare --pid` with its
// namespace pid chosen to be free in this namespace (ns_last_pid), and
// returns it with its stdin (closing it ends the owner), its pid and its
// arena's path. It skips without root or unshare.
func startForeignOwner(t *testing.T, dir, name string) (*exec.Cmd, io.WriteCloser, int, string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("SKIPPING: unshare --pid needs root")
	}
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		t.Skip("SKIPPING: unshare (util-linux) is not installed")
	}
	pid := 0
	for p := 32000; p > 300; p-- {
		if unix.Kill(p, 0) == unix.ESRCH {
			pid = p
			break
		}
	}
	if pid == 0 {
		t.Fatal("no free pid in this namespace")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(unshare, "--pid", "--fork", "--mount-proc", "sh", "-c",
		`echo "$1" > /proc/sys/kernel/ns_last_pid && "$0"; exit $?`, self, strconv.Itoa(pid-1))
	cmd.Env = append(os.Environ(), rhtArenaOwner+"="+dir, rhtArenaName+"="+name)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stdin.Close(); cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	var ownerPid int
	var path string
	if _, serr := fmt.Sscanf(line, "READY %d %s", &ownerPid, &path); err != nil || serr != nil {
		t.Fatalf("owner: %q %v %v", line, err, serr)
	}
	if ownerPid != pid {
		t.Fatalf("owner's namespace pid is %d, want %d (ns_last_pid not honoured)", ownerPid, pid)
	}
	if unix.Kill(ownerPid, 0) != unix.ESRCH {
		t.Fatalf("pid %d is in use here; the test needs a pid that names no process", ownerPid)
	}
	return cmd, stdin, ownerPid, path
}

// TestPeerExitedAcrossPIDNamespaces: a mesh peer on this node whose pid
// names no process here (it runs in another PID namespace) but which holds
// its arena has not exited: the ranges it holds in our arena must not be
// reclaimed while it may still read them. Once it is gone, it has exited.
func TestPeerExitedAcrossPIDNamespaces(t *testing.T) {
	dir := t.TempDir()
	cmd, stdin, pid, _ := startForeignOwner(t, dir, "job-r1")
	own, err := NewArena(dir, "job-r0", 4096)
	if err != nil {
		t.Fatal(err)
	}
	defer own.Close()
	m := &Mesh{cfg: MeshConfig{Rank: 0, Size: 2, Host: "h"}, arena: own,
		peers: []PeerInfo{{Rank: 0, Size: 2, Host: "h", PID: os.Getpid()}, {Rank: 1, Size: 2, Host: "h", PID: pid}}}
	if m.PeerExited(1) {
		t.Fatalf("rank 1 (pid %d in another PID namespace, holding its arena) taken for exited", pid)
	}
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("owner: %v", err)
	}
	if !m.PeerExited(1) {
		t.Errorf("rank 1 ended, yet not taken for exited")
	}
}
