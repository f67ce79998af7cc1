package collective

import (
	"fmt"
	"sort"
	"sync"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"golang.org/x/sys/unix"

	"github.com/rankhub/rankhub/comm"
)

// Read-only copies of received bytes (ReadOnlyCopy). A write through a
// copy faults (SIGSEGV; a recoverable panic under debug.SetPanicOnFault).
// Copies up to half of frozenChunk share chunks of a shared memory file
// (memfd) mapped twice, read-write where the bytes are copied and
// read-only for callers: no system call per copy, and a chunk is reused,
// already faulted in, once every copy in it was freed (a copy still in use
// keeps its chunk: a long-lived array pins at most frozenChunk bytes). A
// larger copy has anonymous memory of its own (populating a memory file is
// slower; no huge pages: their compaction stalled first touches for
// hundreds of milliseconds), made read-only once written; freed, it is
// kept and reused for a copy of at least half its size (two mprotect
// calls, against a copy of megabytes). At most frozenIdle bytes of free
// memory are kept.
const (
	frozenChunk = 2 << 20
	frozenIdle  = 64 << 20
)

// frozenPool hands out ranges of regions; one per process.
type frozenPool struct {
	mu        sync.Mutex
	cur       *frozenMem   // the chunk small copies go to
	chunks    []*frozenMem // free chunks
	bigs      []*frozenMem // free large copies' memory, by size
	idleBytes int
}

// frozenMem is a chunk (the same pages mapped read-write and read-only) or
// a large copy's memory (one mapping, read-only but while copying).
type frozenMem struct {
	rw, ro []byte
	big    bool
	used   int // bytes handed out from the start
	live   int // copies not yet freed
}

var frozen frozenPool

// ReadOnlyCopy copies parts, each at a comm.Align-aligned offset, into
// read-only memory. free releases the copies (all at once); nothing may
// use them afterwards. The memory is not Go heap: the collector neither
// sees it nor keeps it alive. An error (no memory file or address space)
// leaves nothing allocated.
func ReadOnlyCopy(parts ...[]byte) (copies [][]byte, free func(), err error) {
	n := 0
	for _, p := range parts {
		n += alignUp(len(p))
	}
	m, off, err := frozen.alloc(max(n, comm.Align))
	if err != nil {
		return nil, nil, err
	}
	copies = make([][]byte, len(parts))
	for i, p := range parts {
		copy(m.rw[off:], p)
		copies[i] = m.ro[off : off+len(p) : off+len(p)]
		off += alignUp(len(p))
	}
	if m.big {
		if err := unix.Mprotect(m.rw, unix.PROT_READ); err != nil {
			_ = unix.Munmap(m.rw)
			return nil, nil, fmt.Errorf("collective: read-only memory: %w", err)
		}
	}
	return copies, func() { frozen.free(m) }, nil
}

// ReadOnlyBuffers is ReadOnlyCopy as Arrow buffers, nil for a nil part:
// the copies are freed when the last buffer is released.
func ReadOnlyBuffers(parts ...[]byte) ([]*memory.Buffer, error) {
	copies, free, err := ReadOnlyCopy(parts...)
	if err != nil {
		return nil, err
	}
	o := &msgOwner{done: free}
	o.n.Add(1) // held while the buffers are made
	bufs := make([]*memory.Buffer, len(parts))
	for i, p := range parts {
		if p != nil {
			bufs[i] = o.buffer(copies[i])
		}
	}
	o.Free(nil)
	return bufs, nil
}

func alignUp(n int) int { return (n + comm.Align - 1) &^ (comm.Align - 1) }

func (p *frozenPool) alloc(n int) (*frozenMem, int, error) {
	if n > frozenChunk/2 {
		m, err := p.big(n)
		return m, 0, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cur == nil || p.cur.used+n > len(p.cur.rw) {
		m, err := p.chunk()
		if err != nil {
			return nil, 0, err
		}
		if old := p.cur; old != nil && old.live == 0 {
			p.retire(old)
		}
		p.cur = m
	}
	m := p.cur
	off := m.used
	m.used += n
	m.live++
	return m, off, nil
}

func (p *frozenPool) free(m *frozenMem) {
	p.mu.Lock()
	defer p.mu.Unlock()
	m.live--
	switch {
	case m.live > 0:
	case m == p.cur:
		m.used = 0 // every copy in it is gone: start over, pages already in
	default:
		p.retire(m)
	}
}

// chunk returns a free chunk, or maps a new one. p.mu is held.
func (p *frozenPool) chunk() (*frozenMem, error) {
	if k := len(p.chunks); k > 0 {
		m := p.chunks[k-1]
		p.chunks = p.chunks[:k-1]
		p.idleBytes -= len(m.rw)
		m.used = 0
		return m, nil
	}
	fd, err := unix.MemfdCreate("rankhub-readonly", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("collective: read-only memory: %w", err)
	}
	defer unix.Close(fd) // the mappings keep the file
	if err := unix.Ftruncate(fd, frozenChunk); err != nil {
		return nil, fmt.Errorf("collective: read-only memory of %d bytes: %w", frozenChunk, err)
	}
	rw, err := unix.Mmap(fd, 0, frozenChunk, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return nil, fmt.Errorf("collective: read-only memory of %d bytes: %w", frozenChunk, err)
	}
	ro, err := unix.Mmap(fd, 0, frozenChunk, unix.PROT_READ, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		_ = unix.Munmap(rw)
		return nil, fmt.Errorf("collective: read-only memory of %d bytes: %w", frozenChunk, err)
	}
	return &frozenMem{rw: rw, ro: ro}, nil
}

// big returns writable memory of at least n bytes for one large copy: a
// free one of at most twice that, or a new mapping.
func (p *frozenPool) big(n int) (*frozenMem, error) {
	p.mu.Lock()
	i := sort.Search(len(p.bigs), func(k int) bool { return len(p.bigs[k].rw) >= n })
	if i < len(p.bigs) && len(p.bigs[i].rw) <= 2*n {
		m := p.bigs[i]
		p.bigs = append(p.bigs[:i], p.bigs[i+1:]...)
		p.idleBytes -= len(m.rw)
		p.mu.Unlock()
		if err := unix.Mprotect(m.rw, unix.PROT_READ|unix.PROT_WRITE); err != nil {
			_ = unix.Munmap(m.rw)
			return nil, fmt.Errorf("collective: read-only memory: %w", err)
		}
		m.live = 1
		return m, nil
	}
	p.mu.Unlock()
	size := (n + 2<<20 - 1) &^ (2<<20 - 1)
	mem, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return nil, fmt.Errorf("collective: read-only memory of %d bytes: %w", size, err)
	}
	return &frozenMem{rw: mem, ro: mem, big: true, live: 1}, nil
}

// retire keeps free memory for reuse, dropping the largest kept beyond
// frozenIdle bytes. p.mu is held.
func (p *frozenPool) retire(m *frozenMem) {
	if m.big {
		i := sort.Search(len(p.bigs), func(k int) bool { return len(p.bigs[k].rw) >= len(m.rw) })
		p.bigs = append(p.bigs, nil)
		copy(p.bigs[i+1:], p.bigs[i:])
		p.bigs[i] = m
	} else {
		p.chunks = append(p.chunks, m)
	}
	p.idleBytes += len(m.rw)
	for p.idleBytes > frozenIdle {
		var last *frozenMem
		if k := len(p.bigs); k > 0 {
			last, p.bigs = p.bigs[k-1], p.bigs[:k-1]
		} else {
			k := len(p.chunks)
			last, p.chunks = p.chunks[k-1], p.chunks[:k-1]
		}
		p.idleBytes -= len(last.rw)
		_ = unix.Munmap(last.rw)
		if !last.big {
			_ = unix.Munmap(last.ro)
		}
	}
}
