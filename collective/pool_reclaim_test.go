package collective

import (
	"bytes"
	"runtime"
	"runtime/debug"
	"sync/atomic"
	"testing"
	"time"
)

// gcOwned hands b to the collector as views' bulk path does with a
// received array: b goes back to p when the returned holder is collected.
func gcOwned(p *RecvPool, b []byte) *[]byte {
	p.CollectorOwned(b)
	h := &b
	runtime.AddCleanup(h, func(b []byte) { p.Free(b) }, b)
	return h
}

// TestRecvPoolReclaimsDroppedBuffers: buffers that only a collection gives
// back are reused from the second receive on: when no idle buffer fits and
// a handed-out one would, the pool collects and waits for the cleanups
// before mapping fresh memory (the synchronous reclaim, of receives from
// AsyncBelow up).
func TestRecvPoolReclaimsDroppedBuffers(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	p := NewRecvPool(1 << 30)
	defer p.Close()
	p.async = 0
	const n = 4 << 20
	for i := range 10 {
		var h *[]byte
		if i%2 == 0 {
			h = gcOwned(p, p.Alloc(n))
		} else { // a frame's buffer: grown from its first step
			h = gcOwned(p, p.AllocUpTo(MinPooled, n))
		}
		(*h)[len(*h)-1] = byte(i)
		h = nil
		if m := p.Mapped(); m != 1 {
			t.Fatalf("receive %d, each buffer dropped after use: %d fresh mappings, want 1", i, m)
		}
	}
}

// TestRecvPoolReclaimBacksOff: a program that keeps the arrays it receives
// (the collector owns them) does not pay a futile collection per receive:
// after one that gave nothing back, the next 1, 3, 7, ... misses map
// without one.
func TestRecvPoolReclaimBacksOff(t *testing.T) {
	p := NewRecvPool(1 << 30)
	defer p.Close()
	var collections atomic.Int64 // collections ahead run on their own goroutine
	p.collect = func() { collections.Add(1); runtime.GC() }
	const n = 2 << 20
	var kept [][]byte
	for range 200 {
		b := p.Alloc(n)
		p.CollectorOwned(b) // a received array the program keeps
		kept = append(kept, b)
	}
	// misses 2..200 could reclaim; attempts at 2, 4, 8, 16, 32, 64, 128
	// and then every 64th
	if c := collections.Load(); c > 8 {
		t.Fatalf("200 receives kept alive: %d collections, want at most 8", c)
	}
	if collections.Load() == 0 {
		t.Fatalf("no collection tried while a handed-out buffer would fit")
	}
	for _, b := range kept {
		p.Free(b)
	}
}

// stream receives segs segments of n bytes into p, one every 2 ms, while a
// consumer frees each explicitly 3 ms after taking it (a pipelined tree,
// chain or halving receive: the consumer runs behind, so a segment often
// finds no idle buffer while earlier ones are still held).
func stream(p *RecvPool, n int64, segs int) {
	ch := make(chan []byte, segs)
	fin := make(chan struct{})
	go func() {
		defer close(fin)
		for b := range ch {
			time.Sleep(3 * time.Millisecond)
			p.Free(b)
		}
	}()
	for range segs {
		time.Sleep(2 * time.Millisecond)
		ch <- p.Alloc(n)
	}
	close(ch)
	<-fin
}

// TestRecvPoolPipelinedStreamNoCollection: segments that are freed
// explicitly never make the pool collect: their return does not depend on
// the collector. Before, a reclaim (a collection, then a wait woken by the
// explicit Free, which reset the back-off) ran on nearly every segment.
func TestRecvPoolPipelinedStreamNoCollection(t *testing.T) {
	p := NewRecvPool(1 << 30)
	defer p.Close()
	var collections atomic.Int64
	p.collect = func() { collections.Add(1); runtime.GC() }
	stream(p, 4<<20, 20)
	if c := collections.Load(); c != 0 {
		t.Fatalf("20 explicitly freed segments: %d collections, want 0", c)
	}
}

// TestRecvPoolStreamBesideKeptArrayBacksOff: while the program keeps a
// received array the collector owns (of the segments' size), a pipelined
// stream of explicitly freed segments backs off the futile reclaims: a
// buffer freed explicitly during a reclaim's wait is used but does not
// count as the collection's success. Before, it reset the back-off and a
// collection ran on nearly every segment.
func TestRecvPoolStreamBesideKeptArrayBacksOff(t *testing.T) {
	p := NewRecvPool(1 << 30)
	defer p.Close()
	var collections atomic.Int64
	p.collect = func() { collections.Add(1); runtime.GC() }
	const n = 4 << 20
	kept := p.Alloc(n)
	p.CollectorOwned(kept)
	stream(p, n, 20)
	// reclaims at misses 1, 3, 7, 15 at most (back-off 1, 3, 7 between)
	if c := collections.Load(); c > 4 {
		t.Fatalf("20 explicitly freed segments beside a kept array: %d collections, want at most 4", c)
	}
	p.Free(kept)
}

// TestRecvPoolOneReclaimAtATime: receivers that miss at once share one
// collection (the others wait for its result, then map). The synchronous
// reclaim: receives from AsyncBelow up.
func TestRecvPoolOneReclaimAtATime(t *testing.T) {
	p := NewRecvPool(1 << 30)
	defer p.Close()
	p.async = 0
	const n, receivers = 2 << 20, 4
	kept := p.Alloc(n)
	p.CollectorOwned(kept)
	var collections atomic.Int64
	p.collect = func() {
		if collections.Add(1) == 1 {
			// the first collection lasts until every receiver is in
			// the pool (waiting for it, or collecting too)
			inReuse(receivers, time.Second)
		}
		runtime.GC()
	}
	got := make(chan []byte, receivers)
	for range receivers {
		go func() { got <- p.Alloc(n) }()
	}
	for range receivers {
		p.Free(<-got)
	}
	if c := collections.Load(); c != 1 {
		t.Fatalf("%d receivers missing at once: %d collections, want 1", receivers, c)
	}
	p.Free(kept)
}

// inReuse waits until k goroutines are inside RecvPool.reuse, or for d.
func inReuse(k int, d time.Duration) {
	buf := make([]byte, 1<<20)
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(time.Millisecond) {
		if bytes.Count(buf[:runtime.Stack(buf, true)], []byte("(*RecvPool).reuse(")) >= k {
			return
		}
	}
}

// TestRecvPoolBackOffIgnoresOtherSizes: a program that keeps the arrays of
// one size and drops those of another does not collect on every receive of
// the kept size: the back-off ends only when a collector-owned buffer that
// would fit the size that backed off comes back, not when a collection
// frees buffers of the other size. Before, every such collection freed a
// dropped array, so each receive of the kept size collected (a GC storm).
func TestRecvPoolBackOffIgnoresOtherSizes(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	p := NewRecvPool(1 << 30)
	defer p.Close()
	const keptN, droppedN = 2 << 20, 16 << 20
	var collections atomic.Int64 // for receives of the kept size
	p.collect = func() {
		p.mu.Lock()
		n := p.reclaimN
		p.mu.Unlock()
		if n == keptN {
			collections.Add(1)
		}
		runtime.GC()
	}
	var kept [][]byte
	for i := range 200 {
		b := p.Alloc(keptN)
		p.CollectorOwned(b) // a received array the program keeps
		kept = append(kept, b)
		h := gcOwned(p, p.Alloc(droppedN)) // one it drops
		(*h)[0] = byte(i)
		h = nil
	}
	// as in TestRecvPoolReclaimBacksOff: attempts at 2, 4, 8, ..., 128
	if c := collections.Load(); c > 8 {
		t.Fatalf("200 receives of a kept size beside dropped arrays of another: %d collections for the kept size's receives, want at most 8", c)
	}
	for _, b := range kept {
		p.Free(b)
	}
}

// TestRecvPoolSmallReceivesCollectAhead: a receive-use-drop loop below
// AsyncBelow never waits for a collection on the receive path: a receive
// that misses maps another buffer and the collection runs in the
// background, and from then on the buffer that becomes collector-owned
// while AheadTurns-1 others are out starts the collection that gives them
// back before the next receives. The loop holds at most AheadTurns buffers
// and runs one collection per AheadTurns-1 receives. Before, every receive
// from the second on collected synchronously (3.5-6 ms of a 10-14 ms pull
// of 8 MiB from another node on the emulated cluster); with two buffers
// taking turns, a collection ran every other receive (20 for 40; 10-11
// with four).
func TestRecvPoolSmallReceivesCollectAhead(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	p := NewRecvPool(1 << 30)
	defer p.Close()
	var inline, ahead atomic.Int64
	p.collect = func() {
		buf := make([]byte, 64<<10)
		if bytes.Contains(buf[:runtime.Stack(buf, false)], []byte("(*RecvPool).reclaim(")) {
			inline.Add(1) // on a receive's goroutine, which waits for it
		} else {
			ahead.Add(1)
		}
		runtime.GC()
	}
	const n = 4 << 20
	for i := range 40 {
		var h *[]byte
		if i%2 == 0 {
			h = gcOwned(p, p.Alloc(n))
		} else { // a frame's buffer: grown from its first step as bytes arrive
			b := p.AllocUpTo(MinPooled, n)
			if len(b) < n {
				b = p.Grow(b, int64(len(b)), n)
			}
			h = gcOwned(p, b)
		}
		p.CollectAhead(*h) // a pull the driver drops
		(*h)[len(*h)-1] = byte(i)
		h = nil
		if p.Live()+len(p.idleBufs()) > AheadTurns {
			t.Fatalf("receive %d, each buffer dropped after use: %d buffers handed out, %d idle, want %d in all", i, p.Live(), len(p.idleBufs()), AheadTurns)
		}
		waitReclaim(p) // the driver uses the array a while
	}
	if c := inline.Load(); c != 0 {
		t.Fatalf("40 receives of %d bytes, each dropped after use: %d collections on the receive path, want 0 (%d ahead)", n, c, ahead.Load())
	}
	if a, most := ahead.Load(), int64(14); a == 0 || a > most { // 40/(AheadTurns-1)+1
		t.Fatalf("40 receives of %d bytes, each dropped after use: %d collections ahead, want 1 to %d", n, a, most)
	}
}

// idleBufs returns the sizes of the idle buffers.
func (p *RecvPool) idleBufs() []int {
	p.mu.Lock()
	defer p.mu.Unlock()
	var s []int
	for _, b := range p.idle {
		s = append(s, len(b.mem))
	}
	return s
}

// TestRecvPoolDroppedBatchesReuseTheirBuffers: a program that receives
// several arrays of one size at once (a pull from every engine), keeps
// them together and then drops them all, in a loop, reuses the batch's
// buffers: collections ahead that find the batch still held (each one that
// becomes collector-owned while its batch-mates are out starts one) do not
// make the receives of the next batch skip their reclaim and map: after a
// few batches no receive maps fresh memory, and the loop holds at most two
// batches' buffers. Before collections ahead had a back-off of their own,
// the futile ones made receives skip their reclaim: 8 buffers after batch
// 1, 9 by batch 19.
func TestRecvPoolDroppedBatchesReuseTheirBuffers(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	p := NewRecvPool(1 << 30)
	defer p.Close()
	const n, batch, warm = 4 << 20, 4, 4
	var mapped int64
	for i := range 40 {
		hs := make([]*[]byte, batch)
		for k := range hs {
			hs[k] = gcOwned(p, p.Alloc(n))
			p.CollectAhead(*hs[k]) // a pull the driver drops
			(*hs[k])[0] = byte(i)
		}
		time.Sleep(5 * time.Millisecond) // the batch is used while the collections ahead run
		runtime.KeepAlive(hs)
		hs = nil
		if bufs := p.Live() + len(p.idleBufs()); bufs > 2*batch {
			t.Fatalf("batch %d of %d receives, each batch dropped after use: %d buffers handed out or idle, want at most %d", i, batch, bufs, 2*batch)
		}
		switch m := p.Mapped(); {
		case i == warm:
			mapped = m
		case i > warm && m != mapped:
			t.Fatalf("batch %d of %d receives, each batch dropped after use: %d fresh mappings since batch %d, want 0", i, batch, m-mapped, warm)
		}
	}
}

// TestRecvPoolReplacedPushesCollectNothingAhead: an engine's pushes of a
// name replace the value before, which its namespace gives back at once
// (explicitly): no collection runs for them beyond the second receive's own
// reclaim, since their receiver does not ask for collections ahead. Before
// CollectAhead was the receiver's call, every receive that became
// collector-owned beside the value it replaced started one (a collection
// on the engine per 8 MiB push).
func TestRecvPoolReplacedPushesCollectNothingAhead(t *testing.T) {
	p := NewRecvPool(1 << 30)
	defer p.Close()
	var collections atomic.Int64
	p.collect = func() { collections.Add(1); runtime.GC() }
	const n = 8 << 20
	var held []byte
	for i := range 20 {
		b := p.Alloc(n)
		p.CollectorOwned(b) // Protect: the namespace's value
		b[0] = byte(i)
		if held != nil {
			p.Free(held) // replaced: given back at once
		}
		held = b
		time.Sleep(3 * time.Millisecond) // the next push arrives a while later
	}
	p.Free(held)
	if c := collections.Load(); c > 1 {
		t.Fatalf("20 pushes, each replacing the one before: %d collections, want at most 1", c)
	}
}

// waitReclaim waits until no reclaim is under way in p.
func waitReclaim(p *RecvPool) {
	for {
		p.mu.Lock()
		r := p.reclaiming
		p.mu.Unlock()
		if r == nil {
			return
		}
		<-r
	}
}
