package collective

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/apache/arrow-go/v18/arrow/memory"
)

const arenaAlign = 64

// pageSize is the system page size. Allocations of at least pageAlignMin
// bytes start on a page boundary, so that ranges of them can be mapped on
// their own (stitch.go).
var pageSize = os.Getpagesize()

const pageAlignMin = 64 << 10

// Arena is a shared memory file (usually in /dev/shm) owned by one rank and
// mapped read-write by it. Ranges are handed out by a first-fit free list
// with coalescing; each range carries a reference count: one for its
// allocation (dropped by Free) and one per descriptor sent to a peer (dropped
// by the peer's release message). A range returns to the free list at zero.
//
// Lock order: Arena.mu is a leaf lock; nothing is called under it.
type Arena struct {
	path string
	size int64
	mem  []byte
	fall memory.Allocator
	// lock is the arena file, open for the arena's lifetime with a shared
	// flock on it: the sign that the owner lives (CleanStale).
	lock *os.File

	mu     sync.Mutex
	free   []span           // sorted by off, coalesced
	starts []int64          // sorted allocation starts
	allocs map[int64]*alloc // by start
	closed bool
}

type span struct{ off, n int64 }

type alloc struct {
	n    int64
	refs int64
}

// arenaPrefix starts every arena file name; the owner's pid ends it.
const arenaPrefix = "rankhub-"

// NewArena creates and maps dir/rankhub-<name>-<pid>.arena of size bytes.
// name must not contain '/'. Close unmaps and removes the file.
//
// The arena holds a shared flock on its file until Close (or its process
// ends): CleanStale removes only files nobody holds a lock on. The file is
// locked under a temporary name and then linked to its final name, so no
// other rank ever sees it unlocked.
func NewArena(dir, name string, size int64) (*Arena, error) {
	if size <= 0 || name == "" || strings.ContainsRune(name, '/') {
		return nil, fmt.Errorf("%w: arena name %q size %d", ErrArgument, name, size)
	}
	size = align64(size)
	path := filepath.Join(dir, fmt.Sprintf("%s%s-%d.arena", arenaPrefix, name, os.Getpid()))
	tmp := path + ".new"
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("collective: create arena: %w", err)
	}
	fail := func(format string, err error) (*Arena, error) {
		f.Close()
		os.Remove(tmp)
		return nil, fmt.Errorf(format, path, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_SH); err != nil {
		return fail("collective: lock arena %s: %w", err)
	}
	if err := f.Truncate(size); err != nil {
		return fail("collective: size arena %s: %w", err)
	}
	mem, err := unix.Mmap(int(f.Fd()), 0, int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return fail("collective: map arena %s: %w", err)
	}
	// link fails when path exists (as O_EXCL would).
	if err := os.Link(tmp, path); err != nil {
		unix.Munmap(mem)
		return fail("collective: create arena %s: %w", err)
	}
	os.Remove(tmp)
	return &Arena{
		path: path, size: size, mem: mem, fall: memory.DefaultAllocator, lock: f,
		free: []span{{0, size}}, allocs: map[int64]*alloc{},
	}, nil
}

// Path is the arena file; peers pass it to OpenArena.
func (a *Arena) Path() string { return a.path }

// Size is the arena's size in bytes.
func (a *Arena) Size() int64 { return a.size }

// InUse is the number of bytes in live ranges (allocated or still held by
// peers); zero after every buffer and every received view was released.
func (a *Arena) InUse() int64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	used := a.size
	for _, s := range a.free {
		used -= s.n
	}
	return used
}

// Alloc returns a 64-byte aligned range of n bytes (n > 0) with one
// reference, or ErrArenaFull. Ranges of 64 KiB and more are page aligned.
func (a *Arena) Alloc(n int64) ([]byte, error) {
	if n <= 0 {
		return nil, fmt.Errorf("%w: arena allocation of %d bytes", ErrArgument, n)
	}
	need := align64(n)
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return nil, ErrClosed
	}
	align := int64(arenaAlign)
	if need >= pageAlignMin {
		align = int64(pageSize)
	}
	for i, s := range a.free {
		off := (s.off + align - 1) &^ (align - 1)
		if off+need > s.off+s.n {
			continue
		}
		// the span becomes [s.off, off) and [off+need, end), either may be
		// empty
		var rest []span
		if off > s.off {
			rest = append(rest, span{s.off, off - s.off})
		}
		if end := s.off + s.n; off+need < end {
			rest = append(rest, span{off + need, end - off - need})
		}
		a.free = append(a.free[:i], append(rest, a.free[i+1:]...)...)
		a.allocs[off] = &alloc{n: need, refs: 1}
		j := sort.Search(len(a.starts), func(k int) bool { return a.starts[k] >= off })
		a.starts = append(a.starts, 0)
		copy(a.starts[j+1:], a.starts[j:])
		a.starts[j] = off
		return a.mem[off : off+n : off+n], nil
	}
	return nil, fmt.Errorf("%w: %s has no free range of %d bytes", ErrArenaFull, a.path, need)
}

// offsetOf returns b's offset in the mapping, or -1 if b is not inside it.
func (a *Arena) offsetOf(b []byte) int64 {
	if len(b) == 0 || len(a.mem) == 0 {
		return -1
	}
	base := uintptr(unsafe.Pointer(unsafe.SliceData(a.mem)))
	p := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	if p < base || p+uintptr(len(b)) > base+uintptr(len(a.mem)) {
		return -1
	}
	return int64(p - base)
}

// Contains reports whether b lies inside the arena.
func (a *Arena) Contains(b []byte) bool { return a.offsetOf(b) >= 0 }

// find returns the start of the live range holding off; a.mu held.
func (a *Arena) find(off int64) (int64, *alloc) {
	j := sort.Search(len(a.starts), func(k int) bool { return a.starts[k] > off }) - 1
	if j < 0 {
		return -1, nil
	}
	st := a.starts[j]
	al := a.allocs[st]
	if off >= st+al.n {
		return -1, nil
	}
	return st, al
}

// retain adds a reference to the range holding off.
func (a *Arena) retain(off int64) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	_, al := a.find(off)
	if al == nil {
		return fmt.Errorf("%w: offset %d of %s is not allocated", ErrArgument, off, a.path)
	}
	al.refs++
	return nil
}

// unref drops a reference to the range holding off.
func (a *Arena) unref(off int64) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	st, al := a.find(off)
	if al == nil {
		return fmt.Errorf("%w: release of offset %d of %s, not allocated", ErrProtocol, off, a.path)
	}
	al.refs--
	if al.refs > 0 {
		return nil
	}
	delete(a.allocs, st)
	j := sort.Search(len(a.starts), func(k int) bool { return a.starts[k] >= st })
	a.starts = append(a.starts[:j], a.starts[j+1:]...)
	a.insertFree(span{st, al.n})
	return nil
}

func (a *Arena) insertFree(s span) {
	i := sort.Search(len(a.free), func(k int) bool { return a.free[k].off > s.off })
	a.free = append(a.free, span{})
	copy(a.free[i+1:], a.free[i:])
	a.free[i] = s
	if i+1 < len(a.free) && a.free[i].off+a.free[i].n == a.free[i+1].off {
		a.free[i].n += a.free[i+1].n
		a.free = append(a.free[:i+1], a.free[i+2:]...)
	}
	if i > 0 && a.free[i-1].off+a.free[i-1].n == a.free[i].off {
		a.free[i-1].n += a.free[i].n
		a.free = append(a.free[:i], a.free[i+1:]...)
	}
}

// Allocator returns a memory.Allocator over the arena: arrays built with it
// are sent to same-node peers without any copy. When the arena is full it
// falls back to the Go heap (such buffers are copied into the arena when
// sent). On a nil *Arena it returns memory.DefaultAllocator.
func (a *Arena) Allocator() memory.Allocator {
	if a == nil {
		return memory.DefaultAllocator // no arena (no same-node peer): the Go heap
	}
	return arenaAllocator{a}
}

type arenaAllocator struct{ a *Arena }

func (m arenaAllocator) Allocate(size int) []byte {
	if size > 0 {
		if b, err := m.a.Alloc(int64(size)); err == nil {
			clear(b)
			return b
		}
	}
	return m.a.fall.Allocate(size)
}

func (m arenaAllocator) Reallocate(size int, b []byte) []byte {
	if size <= cap(b) && m.a.Contains(b[:cap(b)]) {
		return b[:size]
	}
	return moveTo(m, size, b)
}

// moveTo reallocates b as a new allocation of size from al: it copies b's
// contents over and frees b.
func moveTo(al memory.Allocator, size int, b []byte) []byte {
	nb := al.Allocate(size)
	copy(nb, b)
	al.Free(b)
	return nb
}

func (m arenaAllocator) Free(b []byte) {
	if off := m.a.offsetOf(b[:cap(b)]); off >= 0 {
		_ = m.a.unref(off) // cannot fail for a range this allocator returned
		return
	}
	m.a.fall.Free(b)
}

// Close unmaps the arena and removes its file. Peers that still map it keep
// their mappings valid until they unmap. Close is idempotent.
func (a *Arena) Close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return nil
	}
	a.closed = true
	err := unix.Munmap(a.mem)
	a.mem = nil
	if rerr := os.Remove(a.path); rerr != nil && !errors.Is(rerr, os.ErrNotExist) && err == nil {
		err = rerr
	}
	a.lock.Close() // after the removal: the file is never seen unlocked
	return err
}

// Mapping is a read-only view of a peer's arena.
type Mapping struct {
	path string
	mem  []byte
}

// OpenArena maps the arena file at path (a peer's Arena.Path) read-only.
func OpenArena(path string) (*Mapping, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("collective: open arena: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("collective: stat arena %s: %w", path, err)
	}
	if st.Size() <= 0 {
		return nil, fmt.Errorf("%w: arena %s is empty", ErrProtocol, path)
	}
	mem, err := unix.Mmap(int(f.Fd()), 0, int(st.Size()), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("collective: map arena %s: %w", path, err)
	}
	return &Mapping{path: path, mem: mem}, nil
}

// Bytes returns n bytes at off, or an error naming the arena when the range
// lies outside it.
func (m *Mapping) Bytes(off, n int64) ([]byte, error) {
	if off < 0 || n < 0 || off > int64(len(m.mem)) || n > int64(len(m.mem))-off {
		return nil, fmt.Errorf("%w: range [%d, %d) outside arena %s of %d bytes", ErrProtocol, off, off+n, m.path, len(m.mem))
	}
	return m.mem[off : off+n : off+n], nil
}

// Contains reports whether b lies inside the mapping.
func (m *Mapping) Contains(b []byte) bool {
	if len(b) == 0 || len(m.mem) == 0 {
		return false
	}
	base := uintptr(unsafe.Pointer(unsafe.SliceData(m.mem)))
	p := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	return p >= base && p+uintptr(len(b)) <= base+uintptr(len(m.mem))
}

// Close unmaps the view.
func (m *Mapping) Close() error {
	if m.mem == nil {
		return nil
	}
	err := unix.Munmap(m.mem)
	m.mem = nil
	return err
}

// CleanStale removes arena files in dir whose owner is gone and returns the
// removed paths. An owner holds a shared flock on its arena for its
// lifetime (NewArena), wherever it runs: the pid in the name is not
// trusted, since a rank in another PID namespace (a container, some
// launchers) has a pid that names no process here, or another one. A file
// on which an exclusive lock is granted has no owner; it is removed while
// locked. A temporary file of an arena being created (".arena.new") is
// unlocked for a moment after its creation: it is judged the same way
// only once it is a minute old (its creator died before linking it).
func CleanStale(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("collective: clean arenas: %w", err)
	}
	var removed []string
	for _, e := range ents {
		name := e.Name()
		if !strings.HasPrefix(name, arenaPrefix) || !(strings.HasSuffix(name, ".arena") || strings.HasSuffix(name, ".arena.new")) {
			continue
		}
		if strings.HasSuffix(name, ".new") {
			if info, err := e.Info(); err != nil || time.Since(info.ModTime()) < staleNew {
				continue
			}
		}
		p := filepath.Join(dir, name)
		if removeOwnerless(p) {
			removed = append(removed, p)
		}
	}
	return removed, nil
}

// staleNew is the age from which CleanStale judges an arena's temporary
// file.
const staleNew = time.Minute

// removeOwnerless removes the file at p when no process holds a lock on
// it, and reports whether it did.
func removeOwnerless(p string) bool {
	f, free := lockFree(p)
	if f == nil {
		return false
	}
	defer f.Close()
	return free && os.Remove(p) == nil
}

// lockFree opens the file at p and takes an exclusive lock on it when no
// process holds one; free says whether it did. f is nil when p cannot be
// opened; closing f releases the lock.
func lockFree(p string) (f *os.File, free bool) {
	f, err := os.OpenFile(p, os.O_RDONLY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return nil, false // gone already, or not ours to judge
	}
	return f, unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) == nil
}

// arenaHeld reports whether the mesh arena of rank's process pid in dir
// (rankhub-<name>-r<rank>-<pid>.arena) is still held by its owner.
func arenaHeld(dir string, rank, pid int) bool {
	ms, _ := filepath.Glob(filepath.Join(dir, fmt.Sprintf("%s*-r%d-%d.arena", arenaPrefix, rank, pid)))
	for _, p := range ms {
		if f, free := lockFree(p); f != nil {
			f.Close()
			if !free {
				return true
			}
		}
	}
	return false
}
