package collective

import (
	"os"
	"sort"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"golang.org/x/sys/unix"
)

// Stitching: a large reduction on one node ends with every block of the
// result in some rank's arena (the one-round reduction leaves block i in
// rank i's partial). Instead of copying the other ranks' blocks into its
// own buffer, a rank maps the blocks read-only side by side in one new
// address range: the result is contiguous and no byte is copied. Blocks
// are cut on page boundaries and the arena page-aligns large allocations,
// which is what mmap needs. The result holds the blocks (its own partial,
// the received views) until its last Release, which unmaps the range and
// sends the usual release messages.

// stitchBlock is one block of a stitched result: elements [lo, lo+n) are
// the bytes data; release drops what keeps data alive.
type stitchBlock struct {
	lo      int64
	data    []byte
	release func()
}

// stitch returns an array of n elements of dt made of blocks, which must
// cover [0, n) without validity bitmaps. ok is false, and nothing is taken
// over, when a block does not lie page aligned in this rank's arena or a
// mapped peer arena, or when mapping fails: the caller then copies. With
// ok the array owns the blocks' releases.
func (w *world) stitch(dt arrow.DataType, n int64, blocks []stitchBlock) (arrow.Array, bool) {
	wd := width(dt)
	if n <= 0 || wd <= 0 || len(blocks) == 0 {
		return nil, false
	}
	sort.Slice(blocks, func(i, j int) bool { return blocks[i].lo < blocks[j].lo })
	type piece struct {
		path     string
		at, off  int64
		mapBytes int64
	}
	pg := int64(pageSize)
	total := n * wd
	size := (total + pg - 1) &^ (pg - 1)
	pieces := make([]piece, 0, len(blocks))
	next := int64(0)
	for _, b := range blocks {
		at := b.lo * wd
		if at != next || at%pg != 0 || len(b.data) == 0 {
			return nil, false
		}
		path, off := w.locate(b.data)
		if path == "" || off%pg != 0 {
			return nil, false
		}
		next = at + int64(len(b.data))
		pieces = append(pieces, piece{path: path, at: at, off: off, mapBytes: min(size, (next+pg-1)&^(pg-1)) - at})
	}
	if next != total {
		return nil, false
	}
	mem, err := unix.Mmap(-1, 0, int(size), unix.PROT_NONE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return nil, false
	}
	for _, p := range pieces {
		if err := mapFixed(p.path, p.off, mem[p.at:p.at+p.mapBytes]); err != nil {
			_ = unix.Munmap(mem)
			return nil, false
		}
	}
	owner := &msgOwner{}
	owner.done = func() {
		_ = unix.Munmap(mem)
		for _, b := range blocks {
			b.release()
		}
	}
	owner.n.Add(1) // hold while building
	arr := arrayFrom(column{dt: dt, n: n, data: mem[:total:total]}, owner)
	owner.Free(nil)
	return arr, true
}

// mapFixed maps len(dst) bytes of the file at path, from offset off,
// read-only over dst (a page-aligned part of a reserved range).
func mapFixed(path string, off int64, dst []byte) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = unix.MmapPtr(int(f.Fd()), off, unsafe.Pointer(unsafe.SliceData(dst)), uintptr(len(dst)),
		unix.PROT_READ, unix.MAP_SHARED|unix.MAP_FIXED)
	return err
}

// locate returns the arena file holding b and b's offset in it: this
// rank's arena or a mapped peer arena; "" when b lies in neither.
func (w *world) locate(b []byte) (string, int64) {
	if a := w.opts.arena; a != nil {
		if off := a.offsetOf(b); off >= 0 {
			return a.path, off
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for path, m := range w.maps {
		if m.Contains(b) {
			return path, int64(uintptr(unsafe.Pointer(unsafe.SliceData(b))) - uintptr(unsafe.Pointer(unsafe.SliceData(m.mem))))
		}
	}
	return "", 0
}
