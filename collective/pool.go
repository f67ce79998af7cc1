package collective

import (
	"runtime"
	"slices"
	"sort"
	"sync"
	"time"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"golang.org/x/sys/unix"

	"github.com/rankhub/rankhub/comm"
)

// RecvPool is a comm.Allocator for receive buffers that keeps freed large
// buffers, already faulted in, for the next frame of a similar size: the
// first touch of fresh pages costs several times the copy from the socket.
// Buffers from MinPooled bytes up are anonymous mappings (transparent huge
// pages requested); smaller ones come from the Go heap.
// At most Limit bytes are kept idle; beyond it the largest idle buffers are
// unmapped. Safe for concurrent use.
//
// Reclaim: received arrays handed to the garbage collector (views' bulk
// path) come back only after a collection. Their buffers are marked
// collector-owned (Protect, CollectorOwned). When no idle buffer fits but a
// collector-owned one that would fit is handed out, the pool runs a
// collection and waits for its cleanups (reclaim) before mapping fresh
// memory, so that a program that receives, uses and drops arrays in a loop
// reuses one buffer from the second receive on. Buffers freed explicitly
// (a pipelined receive's segments, reduction results) are never waited
// for: a receive that misses while only they are out maps at once. A
// collection that gives no collector-owned buffer of the size back (the
// arrays are kept) backs off for that size: its next 1, 3, 7, ... up to
// reclaimMaxSkip misses map without one. The back-off ends only when a
// collector-owned buffer that would fit the size that backed off comes
// back: buffers of other sizes (arrays of another size the program drops)
// and buffers freed explicitly are used but do not end it. One reclaim
// runs at a time: a receive that misses meanwhile waits for its end, then
// takes an idle buffer or maps.
//
// Collecting ahead (receives below AsyncBelow): there a synchronous
// collection and its cleanups cost as much as the transfer (3.5-6 ms of a
// 10-14 ms pull of 8 MiB from another node, traced on the emulated
// cluster), so such a receive does not wait while fewer than AheadTurns
// collector-owned buffers that would fit are out: it maps another buffer
// and runs its reclaim in the background (same back-off; nobody waits for
// it). And when a buffer of such a size becomes collector-owned while
// AheadTurns-1 others that fit are still out and its receiver says the
// program drops such arrays (CollectAhead), a collection starts in the
// background: a program that receives, uses and drops arrays in a loop
// then finds an earlier one's buffer idle at its next receive, and
// AheadTurns buffers take turns, one collection giving back AheadTurns-1
// of them. Those collections have a back-off of their own (one that finds
// the buffers still held, as a pull from every engine holds its batch,
// never makes a receive skip its own reclaim) and none runs for a size
// whose receives back off (a program that keeps its arrays). With
// AheadTurns collector-owned buffers of the size out, a miss reclaims
// synchronously as above (after a collection ahead under way, it does its
// own), so a loop never holds more than AheadTurns buffers of a size that
// it drops.
type RecvPool struct {
	limit int64

	mu     sync.Mutex
	idle   []poolBuf // sorted by size
	idleN  int64
	live   map[uintptr]liveBuf // by start, for buffers handed out
	closed bool
	maps   int64         // fresh mappings made (Mapped)
	freed  chan struct{} // closed (and replaced) when a buffer goes idle
	// backoff holds, by the mapping size (mapSize) of the receives
	// whose reclaim gave nothing back, the misses of that size left to
	// serve without one (receives of nearly equal lengths share one);
	// at most maxBackoffs sizes.
	backoff map[int64]backoff
	// aheadOff is backoff for collections ahead (collectAhead): those
	// that gave nothing back (the program still held what they were for,
	// as a pull from every engine holds its batch) make only later ones
	// wait, never a receive's own reclaim.
	aheadOff map[int64]backoff
	// reclaimN is the size the reclaim under way is for, and fitBack
	// counts the collector-owned buffers that would fit it freed so far.
	reclaimN int64
	fitBack  int64
	// reclaiming is closed when the reclaim under way ends; nil if none.
	// ahead: that reclaim is a collection ahead (reclaimAhead).
	reclaiming chan struct{}
	ahead      bool
	// collect runs a collection (runtime.GC; tests count them).
	collect func()
	// async: receives below it collect ahead (AsyncBelow; tests of the
	// synchronous reclaim set 0).
	async int64
}

// AsyncBelow is the receive size below which the pool collects ahead
// instead of waiting for a collection (RecvPool). From it up a second
// buffer costs more memory than the wait costs time: traced on the
// emulated cluster, the one reclaim of a 3x2 Pull of 64 MiB from every
// engine took 10-20 ms of 210-280 ms; a PullOne of 8 MiB's, 3.5-6 ms of
// 10-14 ms.
const AsyncBelow = 32 << 20

// AheadTurns is how many buffers of one size below AsyncBelow a
// receive-use-drop loop takes turns with: one collection in the background
// per AheadTurns-1 receives. A collection beside a receive slows it
// (the collector's stops and marking take the cores the socket's reader
// and the sender share): traced on the emulated cluster, a loop of 8 MiB
// pulls from another node took 3-5 ms per pull without one and 6-10 ms
// with one; with two buffers (20 collections in 30 pulls) 90 pulls took a
// median 5.5 ms, with four (11 in 30) 4.8 ms. It holds for every receiver
// whose arrays the collector gives back (the hub's pulls, and any program
// that drops what it receives): at most 4 x 32 MiB of its memory per size.
const AheadTurns = 4

// liveBuf is a mapping handed out: its size, whether Protect made it
// read-only (Free makes it writable again before anyone reuses it), and
// whether the collector decides when it is freed (gc: Protect,
// CollectorOwned).
type liveBuf struct {
	size int64
	ro   bool
	gc   bool
}

type poolBuf struct {
	mem []byte // the whole mapping
}

// backoff is one size's back-off: misses left to serve without a reclaim,
// and the last length of the back-off.
type backoff struct{ skip, backed int }

// maxBackoffs bounds the sizes the pool remembers a back-off for; a
// program cycling through more sizes than that collects more often, never
// holds more memory.
const maxBackoffs = 8

// fits reports whether a buffer of size bytes serves n bytes without
// wasting more than half of it.
func fits(size, n int64) bool { return size >= n && size <= 2*n }

// MinPooled is the smallest receive allocation served from mappings.
const MinPooled = 1 << 20

// NewRecvPool returns a pool keeping at most limit idle bytes.
func NewRecvPool(limit int64) *RecvPool {
	return &RecvPool{limit: limit, live: map[uintptr]liveBuf{}, freed: make(chan struct{}),
		backoff: map[int64]backoff{}, aheadOff: map[int64]backoff{}, collect: runtime.GC, async: AsyncBelow}
}

// Bounds of a reclaim: the wait for the collection's cleanups, after the
// collection's own sentinel cleanup ran (the others were queued with it),
// and in all; and the longest back-off, in misses.
const (
	reclaimGrace   = 2 * time.Millisecond
	reclaimWait    = 50 * time.Millisecond
	reclaimMaxSkip = 63
)

var _ comm.Allocator = (*RecvPool)(nil)

func startOf(b []byte) uintptr { return uintptr(unsafe.Pointer(unsafe.SliceData(b))) }

// Alloc implements comm.Allocator. The returned slice has length n and is
// page aligned (hence comm.Align aligned) when n >= MinPooled.
func (p *RecvPool) Alloc(n int64) []byte {
	if n < MinPooled {
		return comm.HeapAllocator.Alloc(n)
	}
	if b := p.reuse(n); b != nil {
		return b[:n:n]
	}
	return p.mapFresh(n)
}

// fitIdle returns the index of the smallest idle buffer that holds n bytes
// and wastes at most half of it, or -1. p.mu is held.
func (p *RecvPool) fitIdle(n int64) int {
	i := sort.Search(len(p.idle), func(k int) bool { return int64(len(p.idle[k].mem)) >= n })
	if i < len(p.idle) && fits(int64(len(p.idle[i].mem)), n) {
		return i
	}
	return -1
}

// fitLive reports whether a collector-owned buffer handed out would fit
// n bytes once freed. p.mu is held.
func (p *RecvPool) fitLive(n int64) bool { return p.fitLiveN(n) > 0 }

// fitLiveN counts the collector-owned buffers handed out that would fit n
// bytes once freed. p.mu is held.
func (p *RecvPool) fitLiveN(n int64) int {
	k := 0
	for _, lb := range p.live {
		if lb.gc && fits(lb.size, n) {
			k++
		}
	}
	return k
}

// idleOrGone takes an idle buffer that fits n bytes, or says there is no
// point waiting for one (the pool is closed, or no collector-owned buffer
// that would fit is handed out). p.mu is held.
func (p *RecvPool) idleOrGone(n int64) (b []byte, gone bool) {
	if i := p.fitIdle(n); i >= 0 {
		return p.take(i), false
	}
	return nil, p.closed || !p.fitLive(n)
}

// reuse returns an idle buffer for n bytes (n >= MinPooled), reclaiming
// one when none is idle and a collector-owned one that fits is handed
// out; nil if none.
func (p *RecvPool) reuse(n int64) []byte {
	p.mu.Lock()
again:
	if b, gone := p.idleOrGone(n); b != nil || gone {
		p.mu.Unlock()
		return b
	}
	if n < p.async && p.reclaiming == nil && p.fitLiveN(n) < AheadTurns {
		// Fewer than AheadTurns that would fit are out: another buffer,
		// and this receive's reclaim in the background, for the next ones.
		if mayReclaim(p.backoff, n) {
			p.reclaimAhead(n, p.backoff)
		}
		p.mu.Unlock()
		return nil
	}
	if wait := p.reclaiming; wait != nil {
		// Another receive's collection is under way: its result (an
		// idle buffer that fits) or a fresh mapping, not a second one.
		// A collection ahead was for another receive's size, or found
		// what it was for still held: this receive's own may be due.
		ahead := p.ahead
		p.mu.Unlock()
		<-wait
		p.mu.Lock()
		if i := p.fitIdle(n); i >= 0 {
			b := p.take(i)
			p.mu.Unlock()
			return b
		}
		if ahead {
			goto again
		}
		p.mu.Unlock()
		return nil
	}
	if !mayReclaim(p.backoff, n) {
		p.mu.Unlock()
		return nil
	}
	done := p.beginReclaim(n)
	p.mu.Unlock()
	b := p.reclaim(n)
	p.endReclaim(n, done, p.backoff)
	return b
}

// mayReclaim reports whether a reclaim for n bytes may run, or, when the
// size backs off in off (backoff or aheadOff), counts one miss of its
// back-off. p.mu is held.
func mayReclaim(off map[int64]backoff, n int64) bool {
	bo, ok := off[mapSize(n)]
	if ok && bo.skip > 0 {
		bo.skip--
		off[mapSize(n)] = bo
		return false
	}
	return true
}

// beginReclaim records a reclaim for n bytes under way and returns the
// channel that endReclaim closes. p.mu is held; no reclaim is under way.
func (p *RecvPool) beginReclaim(n int64) chan struct{} {
	done := make(chan struct{})
	p.reclaiming = done
	p.reclaimN, p.fitBack = n, 0
	return done
}

// endReclaim ends the reclaim under way: its size backs off in off unless
// a collector-owned buffer that fits came back meanwhile.
func (p *RecvPool) endReclaim(n int64, done chan struct{}, off map[int64]backoff) {
	p.mu.Lock()
	if p.fitBack > 0 {
		delete(off, mapSize(n))
	} else {
		backOff(off, mapSize(n))
	}
	p.reclaimN = 0
	p.reclaiming = nil
	p.ahead = false
	p.mu.Unlock()
	close(done)
}

// reclaimAhead runs a reclaim for n bytes in the background: a collection,
// then a wait for its cleanups to give back a collector-owned buffer that
// fits n, as reclaim does, but nobody waits for the buffer (a receive that
// misses meanwhile waits for its end, then takes an idle buffer or starts
// over). It backs off in off. p.mu is held; no reclaim is under way.
func (p *RecvPool) reclaimAhead(n int64, off map[int64]backoff) {
	done := p.beginReclaim(n)
	p.ahead = true
	go func() {
		ran := sentinel()
		p.collect()
		all := time.NewTimer(reclaimWait)
		defer all.Stop()
		var grace <-chan time.Time
	wait:
		for {
			p.mu.Lock()
			back, wake := p.fitBack > 0, p.freed
			p.mu.Unlock()
			if back {
				break
			}
			select {
			case <-wake:
			case <-ran:
				ran = nil
				grace = time.After(reclaimGrace)
			case <-grace:
				break wait
			case <-all.C:
				break wait
			}
		}
		p.endReclaim(n, done, off)
	}()
}

// collectAhead starts a reclaim in the background when mapping m (handed
// out, just made collector-owned) is below the async size and AheadTurns-1
// other collector-owned buffers that would fit its size are out: those,
// dropped by now in a receive-use-drop loop, are then idle at the next
// receives.
// p.mu is held.
func (p *RecvPool) collectAhead(m []byte) {
	size := int64(len(m))
	if _, off := p.backoff[size]; off || size >= p.async || p.reclaiming != nil || p.closed || p.fitLiveN(size) < AheadTurns || !mayReclaim(p.aheadOff, size) {
		return
	}
	p.reclaimAhead(size, p.aheadOff)
}

// backOff lengthens the back-off of the receives that map size bytes after
// a futile reclaim. p.mu is held.
func backOff(off map[int64]backoff, size int64) {
	bo, ok := off[size]
	if !ok && len(off) >= maxBackoffs {
		for k := range off { // forget one: costs collections, not memory
			delete(off, k)
			break
		}
	}
	bo.backed = min(2*bo.backed+1, reclaimMaxSkip)
	bo.skip = bo.backed
	off[size] = bo
}

// reclaim runs a collection and waits for its cleanups to free a buffer
// that fits n bytes: it returns that buffer (whoever freed it), or nil
// when none came back in time or no collector-owned one that would fit
// is out any more. The caller (reuse) backs off unless a collector-owned
// buffer came back meanwhile.
func (p *RecvPool) reclaim(n int64) []byte {
	ran := sentinel()
	p.collect()
	all := time.NewTimer(reclaimWait)
	defer all.Stop()
	var grace <-chan time.Time
	for {
		p.mu.Lock()
		if b, gone := p.idleOrGone(n); b != nil || gone {
			p.mu.Unlock()
			return b
		}
		wake := p.freed
		p.mu.Unlock()
		select {
		case <-wake:
			continue
		case <-ran:
			ran = nil
			grace = time.After(reclaimGrace)
			continue
		case <-grace:
		case <-all.C:
		}
		return nil
	}
}

// sentinel returns a channel closed by the cleanup of an object nothing
// reaches: the next collection queues it with those of the arrays it finds
// unreachable, so once it ran, theirs are running or done.
func sentinel() chan struct{} {
	s := &struct {
		p *byte
		_ [16]byte // not a tiny allocation (whose cleanups may never run)
	}{}
	ran := make(chan struct{})
	runtime.AddCleanup(s, func(c chan struct{}) { close(c) }, ran)
	return ran
}

// mapSize is the size of a mapping for n bytes: whole huge pages.
func mapSize(n int64) int64 { return (n + 2<<20 - 1) &^ (2<<20 - 1) }

// mapFresh maps a new buffer for n bytes.
func (p *RecvPool) mapFresh(n int64) []byte {
	size := mapSize(n)
	mem, err := unix.Mmap(-1, 0, int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return comm.HeapAllocator.Alloc(n) // out of address space: let the GC handle it
	}
	// Huge pages make the first touch (by the socket read that fills it)
	// 512 times fewer faults. No MADV_POPULATE_WRITE: populating gigabytes
	// up front would stall the connection's reader for seconds, long
	// enough to miss heartbeats.
	_ = unix.Madvise(mem, unix.MADV_HUGEPAGE)
	p.mu.Lock()
	p.live[startOf(mem)] = liveBuf{size: size}
	p.maps++
	p.mu.Unlock()
	return mem[:n:n]
}

var _ comm.Grower = (*RecvPool)(nil)

// AllocUpTo implements comm.Grower: an idle buffer that fits want (already
// faulted in, so it costs no new memory) when there is one, else a fresh
// mapping of min bytes that Grow extends as the frame's bytes arrive.
func (p *RecvPool) AllocUpTo(min, want int64) []byte {
	if want >= MinPooled {
		if b := p.reuse(want); b != nil {
			return b[:want:want]
		}
	}
	if min < MinPooled {
		return comm.HeapAllocator.Alloc(min)
	}
	p.mu.Lock()
	if i := p.fitIdle(min); i >= 0 {
		b := p.take(i)
		p.mu.Unlock()
		return b[:min:min]
	}
	p.mu.Unlock()
	return p.mapFresh(min)
}

// take hands out idle buffer i; p.mu is held.
func (p *RecvPool) take(i int) []byte {
	b := p.idle[i].mem
	p.idle = append(p.idle[:i], p.idle[i+1:]...)
	p.idleN -= int64(len(b))
	p.live[startOf(b)] = liveBuf{size: int64(len(b))}
	return b
}

// Grow implements comm.Grower. A mapping grows with mremap: the pages
// already received move with it, nothing is copied. Heap buffers (small
// ones, or a fallback when mapping failed) are copied into a new buffer.
func (p *RecvPool) Grow(b []byte, keep, n int64) []byte {
	if n <= int64(cap(b)) {
		return b[:n:n]
	}
	p.mu.Lock()
	lb, ok := p.live[startOf(b)]
	size := lb.size
	if ok && lb.ro && p.writable(b, size) != nil {
		ok = false // cannot be written: copied below, and unmapped by Free
	}
	p.mu.Unlock()
	if ok && n <= size {
		return unsafe.Slice(unsafe.SliceData(b), size)[:n:n]
	}
	if ok {
		newSize := mapSize(n)
		mem, err := unix.Mremap(unsafe.Slice(unsafe.SliceData(b), size), int(newSize), unix.MREMAP_MAYMOVE)
		if err == nil {
			_ = unix.Madvise(mem, unix.MADV_HUGEPAGE)
			p.mu.Lock()
			delete(p.live, startOf(b))
			p.live[startOf(mem)] = liveBuf{size: newSize}
			p.maps++
			p.mu.Unlock()
			return mem[:n:n]
		}
	}
	nb := p.Alloc(n)
	copy(nb, b[:keep])
	p.Free(b)
	return nb
}

// Free implements comm.Allocator.
func (p *RecvPool) Free(b []byte) {
	if cap(b) < MinPooled {
		return
	}
	p.mu.Lock()
	lb, ok := p.live[startOf(b)]
	if !ok {
		p.mu.Unlock()
		return // a heap fallback buffer
	}
	size := lb.size
	delete(p.live, startOf(b))
	if lb.gc {
		if p.reclaimN > 0 && fits(size, p.reclaimN) {
			p.fitBack++
		}
		for _, off := range []map[int64]backoff{p.backoff, p.aheadOff} {
			for k := range off {
				if fits(size, k) {
					delete(off, k)
				}
			}
		}
	}
	mem := unsafe.Slice(unsafe.SliceData(b), size)
	if p.closed || lb.ro && p.writable(b, size) != nil {
		p.mu.Unlock()
		_ = unix.Munmap(mem)
		return
	}
	i := sort.Search(len(p.idle), func(k int) bool { return len(p.idle[k].mem) >= len(mem) })
	p.idle = append(p.idle, poolBuf{})
	copy(p.idle[i+1:], p.idle[i:])
	p.idle[i] = poolBuf{mem: mem}
	p.idleN += size
	close(p.freed)
	p.freed = make(chan struct{})
	var drop [][]byte
	for p.idleN > p.limit && len(p.idle) > 0 {
		last := p.idle[len(p.idle)-1]
		p.idle = p.idle[:len(p.idle)-1]
		p.idleN -= int64(len(last.mem))
		drop = append(drop, last.mem)
	}
	p.mu.Unlock()
	for _, m := range drop {
		_ = unix.Munmap(m)
	}
}

// writable makes a protected mapping of size bytes at b's start readable
// and writable again. p.mu is held.
func (p *RecvPool) writable(b []byte, size int64) error {
	if err := unix.Mprotect(unsafe.Slice(unsafe.SliceData(b), size), unix.PROT_READ|unix.PROT_WRITE); err != nil {
		return err
	}
	lb := p.live[startOf(b)]
	lb.ro = false
	if _, ok := p.live[startOf(b)]; ok {
		p.live[startOf(b)] = lb
	}
	return nil
}

// Protect makes the mappings that hold bufs read-only, in place: a write
// through any of them faults until the mapping is freed (Free makes it
// writable again before it is reused). It reports false, and protects
// nothing, when a non-empty buffer does not lie in a mapping this pool
// handed out (Go heap is never protected) or mprotect fails. Every byte of
// those mappings must have been written already: a received frame's
// memory, once its frame is complete, holds only that frame's buffers.
// Protected mappings are collector-owned (CollectorOwned): their callers
// hand the arrays in them to the garbage collector.
func (p *RecvPool) Protect(bufs ...[]byte) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	var maps [][]byte
	for _, b := range bufs {
		if len(b) == 0 {
			continue
		}
		m, ok := p.mappingOf(b)
		if !ok {
			return false
		}
		if !slices.ContainsFunc(maps, func(x []byte) bool { return startOf(x) == startOf(m) }) {
			maps = append(maps, m)
		}
	}
	var done [][]byte
	for _, m := range maps {
		lb := p.live[startOf(m)]
		if lb.ro {
			continue
		}
		if err := unix.Mprotect(m, unix.PROT_READ); err != nil {
			for _, u := range done { // all or nothing
				_ = p.writable(u, int64(len(u)))
			}
			return false
		}
		lb.ro = true
		p.live[startOf(m)] = lb
		done = append(done, m)
	}
	for _, m := range maps {
		p.markGC(m)
	}
	return len(maps) > 0
}

// CollectorOwned records that the mappings holding bufs go back only when
// the garbage collector finds what refers to them unreachable (a cleanup
// frees them): a receive that finds no idle buffer may then collect and
// wait for them (reclaim). Buffers not marked so are never waited for;
// they must be freed explicitly. Buffers not from this pool are ignored.
func (p *RecvPool) CollectorOwned(bufs ...[]byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, b := range bufs {
		if m, ok := p.mappingOf(b); ok && len(b) > 0 {
			p.markGC(m)
		}
	}
}

// CollectAhead tells the pool that the collector-owned mappings holding
// bufs (Protect, CollectorOwned) went to a program that uses and drops
// such arrays in a loop (the driver's pulls): below AsyncBelow, while
// AheadTurns-1 other collector-owned buffers of the size are out, a
// collection starts in the background so that they are idle at the next
// receives (RecvPool).
// Not for arrays released explicitly (an engine's namespace gives a
// replaced push back at once): their collections would be futile.
func (p *RecvPool) CollectAhead(bufs ...[]byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, b := range bufs {
		if m, ok := p.mappingOf(b); ok && len(b) > 0 && p.live[startOf(m)].gc {
			p.collectAhead(m)
		}
	}
}

// markGC marks live mapping m collector-owned. p.mu is held.
func (p *RecvPool) markGC(m []byte) {
	if lb, ok := p.live[startOf(m)]; ok {
		lb.gc = true
		p.live[startOf(m)] = lb
	}
}

// mappingOf returns the live mapping holding all of b. p.mu is held.
func (p *RecvPool) mappingOf(b []byte) ([]byte, bool) {
	lo := startOf(b)
	hi := lo + uintptr(len(b))
	for s, lb := range p.live {
		if lo >= s && hi <= s+uintptr(lb.size) {
			start := unsafe.Add(unsafe.Pointer(unsafe.SliceData(b)), -int(lo-s))
			return unsafe.Slice((*byte)(start), lb.size), true
		}
	}
	return nil, false
}

// Idle returns the bytes kept for reuse.
func (p *RecvPool) Idle() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.idleN
}

// Mapped returns the number of times the pool mapped fresh memory: new
// mappings and mappings grown by mremap (receives not served by idle
// buffers).
func (p *RecvPool) Mapped() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.maps
}

// Live returns the number of pooled buffers handed out and not yet freed.
func (p *RecvPool) Live() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.live)
}

// Close unmaps the idle buffers; buffers still in use are unmapped when
// freed. Idempotent.
func (p *RecvPool) Close() {
	p.mu.Lock()
	idle := p.idle
	p.idle, p.idleN, p.closed = nil, 0, true
	p.mu.Unlock()
	for _, b := range idle {
		_ = unix.Munmap(b.mem)
	}
}

// Allocator returns a memory.Allocator over the pool: result buffers of
// reductions and contiguous gathers are then reused, already faulted in,
// once released. Large buffers are not zeroed on reuse; rankhub writes every
// byte of the buffers it allocates, other users must not rely on zeroes.
func (p *RecvPool) Allocator() memory.Allocator { return poolAllocator{p} }

type poolAllocator struct{ p *RecvPool }

func (a poolAllocator) Allocate(n int) []byte {
	if n < MinPooled {
		return memory.DefaultAllocator.Allocate(n)
	}
	return a.p.Alloc(int64(n))
}

func (a poolAllocator) Reallocate(n int, b []byte) []byte {
	if n <= cap(b) {
		return b[:n]
	}
	return moveTo(a, n, b)
}

func (a poolAllocator) Free(b []byte) {
	if cap(b) >= MinPooled {
		a.p.Free(b)
	}
}

// zeroedAllocator hands out zeroed memory (as the Go heap does) from an
// allocator that reuses memory without clearing it.
type zeroedAllocator struct{ memory.Allocator }

func (z zeroedAllocator) Allocate(n int) []byte {
	b := z.Allocator.Allocate(n)
	clear(b)
	return b
}

func (z zeroedAllocator) Reallocate(n int, b []byte) []byte {
	if n <= len(b) {
		return b[:n]
	}
	return moveTo(z, n, b)
}
