package hub

import (
	"context"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rankhub/rankhub/comm"
	"github.com/rankhub/rankhub/views/internal/proto"
	"github.com/rs/zerolog"
)

// TestHubTurnRunsEveryEventOnceInOrder: events handed over from many
// goroutines at once, with do (queued when the turn is taken) and call,
// each run exactly once, one at a time, in the order each goroutine handed
// them over, none left waiting; when a goroutine's call returns, its
// earlier events have run.
func TestHubTurnRunsEveryEventOnceInOrder(t *testing.T) {
	h := New(Config{Host: "testhost"})
	defer h.Shutdown(time.Second)
	const workers, events = 6, 2000
	var seen [workers][]int // written under the turn only (the race detector checks)
	var ran atomic.Int64
	inTurn := false
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range events {
				ev := func() {
					if inTurn {
						panic("two owners of the core at once")
					}
					inTurn = true
					seen[w] = append(seen[w], i)
					inTurn = false
					ran.Add(1)
				}
				if i%97 == 0 {
					h.call(ev)
					n := 0
					h.call(func() { n = len(seen[w]) })
					if n != i+1 {
						t.Errorf("worker %d: after its call %d, %d of its events ran", w, i, n)
					}
				} else {
					h.do(ev)
				}
			}
		}()
	}
	wg.Wait()
	// No event is left behind: with nobody handing over more, those still
	// queued when their do returned run anyway (whoever held the turn, or
	// run, takes them).
	for deadline := time.Now().Add(5 * time.Second); ran.Load() != workers*events; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d events ran; the rest wait with nobody to run them", ran.Load(), workers*events)
		}
	}
	for w := range workers {
		var got []int
		h.call(func() { got = append(got, seen[w]...) })
		if len(got) != events {
			t.Fatalf("worker %d: %d events ran, want %d", w, len(got), events)
		}
		for i, v := range got {
			if v != i {
				t.Fatalf("worker %d: event %d ran as number %d", w, v, i)
			}
		}
	}
}

// connPair is two ends of an authenticated connection over a Unix socket.
func connPair(t *testing.T) (a, b *comm.Conn) {
	t.Helper()
	key, _ := comm.NewKey()
	ln, err := comm.Listen(comm.ListenConfig{Unix: fmt.Sprintf("@hub-test-pair-%d-%d", os.Getpid(), time.Now().UnixNano()), Key: key})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if a, err = comm.Dial(ctx, "unix", ln.UnixAddr(), key, comm.Options{}); err != nil {
		t.Fatal(err)
	}
	if b, err = ln.Accept(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

// TestOutboxWritesNowAndKeepsOrder: writeNow writes the queued frames on
// its caller (the outbox's goroutine is never woken), and with writers of
// both kinds at once (callers' writeNow, the goroutine after kick) every
// frame arrives once, each sender's in the order it queued them: a writer
// also writes what others queued while it wrote (they leave it to it).
func TestOutboxWritesNowAndKeepsOrder(t *testing.T) {
	a, b := connPair(t)
	var wg sync.WaitGroup
	o := newOutbox(a, &wg, nil)
	sent := 0
	o.enqueue([]*comm.Frame{{Type: proto.FTask, ID: 1}, {Type: proto.FTask, ID: 2}}, nil, nil, func() { sent++ })
	o.writeNow()
	if sent != 1 {
		t.Fatalf("writeNow returned before the frames were written (after ran %d times)", sent)
	}
	// Frame 4 is queued while frame 3 is being written: its writeNow finds
	// the outbox busy and leaves it to that writer, which writes it too.
	o.enqueue([]*comm.Frame{{Type: proto.FTask, ID: 3}}, nil, nil, func() {
		o.enqueue([]*comm.Frame{{Type: proto.FTask, ID: 4}}, nil, nil, nil)
		o.writeNow()
	})
	o.writeNow()
	b.NetConn().SetReadDeadline(time.Now().Add(10 * time.Second)) // a lost frame fails, never hangs
	for want := uint64(1); want <= 4; want++ {
		f, err := b.Recv()
		if err != nil || f.ID != want {
			t.Fatalf("frame %v, %v; want id %d", f, err, want)
		}
	}

	const senders, each = 4, 500
	for s := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				o.enqueue([]*comm.Frame{{Type: proto.FTask, ID: uint64(s<<32 | i)}}, nil, nil, nil)
				if i%3 == 0 {
					o.kick()
				} else {
					o.writeNow()
				}
			}
		}()
	}
	next := make([]int, senders)
	for n := 0; n < senders*each; n++ {
		f, err := b.Recv()
		if err != nil {
			t.Fatalf("after %d frames: %v", n, err)
		}
		s, i := int(f.ID>>32), int(f.ID&(1<<32-1))
		if s >= senders || i != next[s] {
			t.Fatalf("frame %d of sender %d arrived, want its frame %d", i, s, next[s])
		}
		next[s]++
	}
	a.Close()
	wg.Wait() // the outbox's goroutine ends with its connection
}

// TestOutboxAndDriveAllocateNothing: on the apply round trip (issue 14's
// performance rule; the whole round trip is views'
// TestApplyPathAllocatesNothingExtra) the outbox writes a batch with no
// allocation of its own (its queues are reused, batch after batch), and a
// holder's look at an empty event queue (drive, after every result and
// every request) allocates nothing.
func TestOutboxAndDriveAllocateNothing(t *testing.T) {
	a, b := connPair(t)
	var wg sync.WaitGroup
	o := newOutbox(a, &wg, nil)
	f := &comm.Frame{Type: proto.FTask, ID: 1}
	fs := []*comm.Frame{f}
	alts := []func(*comm.Frame, error) *comm.Frame{func(*comm.Frame, error) *comm.Frame { return nil }}
	after := func() {}
	const runs = 50 // small frames: they all fit in the socket's buffer, read afterwards
	direct := testing.AllocsPerRun(runs, func() {
		if err := proto.SendEach(a, fs, func(int, error) *comm.Frame { return nil }); err != nil {
			t.Fatal(err)
		}
	})
	queued := testing.AllocsPerRun(runs, func() {
		o.enqueue(fs, alts, nil, after)
		o.writeNow()
	})
	if queued > direct {
		t.Errorf("a frame through the outbox costs %.0f allocations, written directly %.0f: the outbox allocates per batch", queued, direct)
	}
	b.NetConn().SetReadDeadline(time.Now().Add(10 * time.Second))
	for n := 0; n < 2*(runs+1); n++ {
		if _, err := b.Recv(); err != nil {
			t.Fatalf("frame %d: %v", n, err)
		}
	}

	h := New(Config{Logger: zerolog.Nop()})
	defer h.Shutdown(time.Second)
	if n := testing.AllocsPerRun(runs, func() { h.drive(false) }); n != 0 {
		t.Errorf("drive with no event queued allocates %.0f times per call, want 0", n)
	}
	a.Close()
	wg.Wait()
}
