package collective

import (
	"fmt"
	"sort"
	"sync"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"golang.org/x/sys/unix"

	"github.com/rankhub/rankhub/comm"
)

// Read-only copies of received bytes (ReadOnlyCopy) live in memory mapped
// twice: a shared memory file (memfd) mapped read-write, where the bytes
// are copied, and mapped read-only, which is what callers get. A write
// through a copy faults (SIGSEGV; a recoverable panic under
// debug.SetPanicOnFault), and no copy costs a system call once memory is
// there: the mappings are made once per region, and a region is reused,
// already faulted in, when every copy in it was freed. Copies share
// regions of frozenChunk bytes (a copy still in use keeps its region); a
// copy of more than half of that has a region of its own, reused for a
// copy of at least half its size. At most frozenIdle bytes of free regions
// are kept.
const (
	frozenChunk = 8 << 20
	frozenIdle  = 64 << 20
)

// frozenPool hands out ranges of regions; one per process.
type frozenPool struct {
	mu        sync.Mutex
	cur       *frozenMem   // the region small copies go to
	idle      []*frozenMem // free regions, by size
	idleBytes int
}

// frozenMem is one region: the same pages mapped read-write and read-only.
type frozenMem struct {
	rw, ro []byte
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
	p.mu.Lock()
	defer p.mu.Unlock()
	if n > frozenChunk/2 {
		m, err := p.region(n)
		if err != nil {
			return nil, 0, err
		}
		m.used, m.live = n, 1
		return m, 0, nil
	}
	if p.cur == nil || p.cur.used+n > len(p.cur.rw) {
		m, err := p.region(frozenChunk)
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

// region returns a free region of at least n bytes and at most twice that,
// or maps a new one. p.mu is held.
func (p *frozenPool) region(n int) (*frozenMem, error) {
	i := sort.Search(len(p.idle), func(k int) bool { return len(p.idle[k].rw) >= n })
	if i < len(p.idle) && len(p.idle[i].rw) <= 2*n {
		m := p.idle[i]
		p.idle = append(p.idle[:i], p.idle[i+1:]...)
		p.idleBytes -= len(m.rw)
		m.used = 0
		return m, nil
	}
	size := (n + 2<<20 - 1) &^ (2<<20 - 1)
	fd, err := unix.MemfdCreate("rankhub-readonly", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("collective: read-only memory: %w", err)
	}
	defer unix.Close(fd) // the mappings keep the file
	if err := unix.Ftruncate(fd, int64(size)); err != nil {
		return nil, fmt.Errorf("collective: read-only memory of %d bytes: %w", size, err)
	}
	rw, err := unix.Mmap(fd, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return nil, fmt.Errorf("collective: read-only memory of %d bytes: %w", size, err)
	}
	ro, err := unix.Mmap(fd, 0, size, unix.PROT_READ, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		_ = unix.Munmap(rw)
		return nil, fmt.Errorf("collective: read-only memory of %d bytes: %w", size, err)
	}
	return &frozenMem{rw: rw, ro: ro}, nil
}

// retire keeps a region none of whose copies is in use for reuse, or
// unmaps it (or the largest kept, if larger) beyond frozenIdle bytes.
// p.mu is held.
func (p *frozenPool) retire(m *frozenMem) {
	i := sort.Search(len(p.idle), func(k int) bool { return len(p.idle[k].rw) >= len(m.rw) })
	p.idle = append(p.idle, nil)
	copy(p.idle[i+1:], p.idle[i:])
	p.idle[i] = m
	p.idleBytes += len(m.rw)
	for p.idleBytes > frozenIdle {
		last := p.idle[len(p.idle)-1]
		p.idle = p.idle[:len(p.idle)-1]
		p.idleBytes -= len(last.rw)
		_ = unix.Munmap(last.rw)
		_ = unix.Munmap(last.ro)
	}
}
