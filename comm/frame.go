package comm

import (
	"encoding/binary"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Type says what a frame carries. Types below TypeUser are reserved for comm.
type Type uint8

const (
	TypePing Type = 1 // heartbeat; consumed by Recv, never returned
	// TypeUser is the first type available to the layers above.
	TypeUser Type = 16
)

const (
	magic      uint32 = 0x42554852 // "RHUB" little endian
	version    uint8  = 1
	headerSize        = 32
	// Align is the alignment of every received buffer.
	Align = 64
)

// Limits bound what a peer may announce in one frame. Frames above a limit are
// refused before any allocation; below it, memory follows the bytes that
// really arrive (see RecvStep). A zero field takes its default.
type Limits struct {
	MaxControl int   // bytes of control payload
	MaxBuffers int   // buffers per frame
	MaxBytes   int64 // total bytes of the buffers; default: DefaultMaxFrame()
}

// DefaultLimits allow 64 MiB of control and 65536 buffers per frame; its
// MaxBytes is zero: DefaultMaxFrame() decides, when a connection is made.
var DefaultLimits = Limits{MaxControl: 64 << 20, MaxBuffers: 1 << 16}

// EnvMaxFrame sets the default maximum bytes of buffers in one frame, in
// bytes or with a unit: "512MiB", "8GiB", "2G", "1T".
const EnvMaxFrame = "RANKHUB_MAX_FRAME"

// RecvStep is how much of a frame's buffers is allocated before any of it
// arrives. Larger frames start with RecvStep bytes and grow (geometrically)
// as their bytes arrive, so an announced size costs nothing until it is
// sent. Frames up to RecvStep are received with no copy at all; larger ones
// with none either when the Allocator is a Grower.
const RecvStep = 32 << 20

// DefaultMaxFrame is the maximum bytes of buffers in one frame when
// Limits.MaxBytes is zero: $RANKHUB_MAX_FRAME if set, else half the
// machine's physical memory (at least 1 GiB; 16 GiB when it is unknown).
// The error says why $RANKHUB_MAX_FRAME was not usable; the size returned
// with it is the machine default.
func DefaultMaxFrame() (int64, error) {
	def := int64(16 << 30)
	if m := physicalMemory(); m > 0 {
		def = max(m/2, 1<<30)
	}
	v, ok := os.LookupEnv(EnvMaxFrame)
	if !ok || strings.TrimSpace(v) == "" {
		return def, nil
	}
	n, err := ParseSize(v)
	if err != nil {
		return def, fmt.Errorf("comm: $%s=%q: %w", EnvMaxFrame, v, err)
	}
	return n, nil
}

// ParseSize reads a byte count: digits with an optional unit, K/M/G/T (powers
// of 1024; "KiB", "KB", "K" alike) or B. It must be positive.
func ParseSize(s string) (int64, error) {
	t := strings.ToUpper(strings.TrimSpace(s))
	i := 0
	for i < len(t) && t[i] >= '0' && t[i] <= '9' {
		i++
	}
	if i == 0 {
		return 0, fmt.Errorf("size %q: want a number of bytes, e.g. 512MiB or 8GiB", s)
	}
	n, err := strconv.ParseInt(t[:i], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("size %q: %w", s, err)
	}
	shift := map[string]uint{"": 0, "B": 0, "K": 10, "KB": 10, "KIB": 10, "M": 20, "MB": 20, "MIB": 20,
		"G": 30, "GB": 30, "GIB": 30, "T": 40, "TB": 40, "TIB": 40}
	sh, ok := shift[strings.TrimSpace(t[i:])]
	if !ok {
		return 0, fmt.Errorf("size %q: unknown unit %q (want B, KiB, MiB, GiB or TiB)", s, strings.TrimSpace(s[i:]))
	}
	if n <= 0 || n > (1<<62)>>sh {
		return 0, fmt.Errorf("size %q: out of range", s)
	}
	return n << sh, nil
}

// Frame is one message: a small control payload (encoded by the layer above)
// and raw buffers sent without a copy.
//
// Received frames' Buffers alias one aligned allocation; Release returns it to
// the connection's allocator. A received frame must not be used after Release.
type Frame struct {
	Type    Type
	Flags   uint16
	Source  int32  // sender's rank or engine id, as the layer above defines it
	ID      uint64 // message id or tag
	Control []byte
	Buffers [][]byte

	release func()
}

// Release gives a received frame's memory back. It is safe to call more than
// once and on frames that were never received.
func (f *Frame) Release() {
	if f.release != nil {
		r := f.release
		f.release = nil
		r()
	}
}

// header layout, little endian:
//
//	0  magic   uint32
//	4  version uint8
//	5  type    uint8
//	6  flags   uint16
//	8  source  int32
//	12 nbufs   uint32
//	16 id      uint64
//	24 ctrlLen uint32
//	28 reserved uint32 (zero)
//	32 nbufs × uint64 buffer lengths
func putHeader(b []byte, f *Frame) {
	binary.LittleEndian.PutUint32(b[0:], magic)
	b[4] = version
	b[5] = byte(f.Type)
	binary.LittleEndian.PutUint16(b[6:], f.Flags)
	binary.LittleEndian.PutUint32(b[8:], uint32(f.Source))
	binary.LittleEndian.PutUint32(b[12:], uint32(len(f.Buffers)))
	binary.LittleEndian.PutUint64(b[16:], f.ID)
	binary.LittleEndian.PutUint32(b[24:], uint32(len(f.Control)))
	binary.LittleEndian.PutUint32(b[28:], 0)
	for i, buf := range f.Buffers {
		binary.LittleEndian.PutUint64(b[headerSize+8*i:], uint64(len(buf)))
	}
}

// header is the decoded fixed part of a frame.
type header struct {
	typ     Type
	flags   uint16
	source  int32
	nbufs   int
	id      uint64
	ctrlLen int
}

func parseHeader(b []byte, lim Limits) (header, error) {
	var h header
	if len(b) < headerSize {
		return h, fmt.Errorf("%w: short header (%d bytes)", ErrBadFrame, len(b))
	}
	if m := binary.LittleEndian.Uint32(b[0:]); m != magic {
		return h, fmt.Errorf("%w: bad magic %#08x", ErrBadFrame, m)
	}
	if v := b[4]; v != version {
		return h, fmt.Errorf("%w: unsupported version %d (want %d)", ErrBadFrame, v, version)
	}
	h.typ = Type(b[5])
	if h.typ == 0 {
		return h, fmt.Errorf("%w: frame type 0", ErrBadFrame)
	}
	h.flags = binary.LittleEndian.Uint16(b[6:])
	h.source = int32(binary.LittleEndian.Uint32(b[8:]))
	nb := binary.LittleEndian.Uint32(b[12:])
	h.id = binary.LittleEndian.Uint64(b[16:])
	cl := binary.LittleEndian.Uint32(b[24:])
	if r := binary.LittleEndian.Uint32(b[28:]); r != 0 {
		return h, fmt.Errorf("%w: reserved field is %#x", ErrBadFrame, r)
	}
	if int64(nb) > int64(lim.MaxBuffers) {
		return h, fmt.Errorf("%w: %d buffers (limit %d)", ErrFrameTooLarge, nb, lim.MaxBuffers)
	}
	if int64(cl) > int64(lim.MaxControl) {
		return h, fmt.Errorf("%w: %d control bytes (limit %d)", ErrFrameTooLarge, cl, lim.MaxControl)
	}
	h.nbufs = int(nb)
	h.ctrlLen = int(cl)
	return h, nil
}

// layout computes the aligned offsets of the buffers in one receive
// allocation and checks the announced lengths against the limits.
func layout(lens []uint64, lim Limits, offs []int64) (total int64, err error) {
	var sum int64
	for i, l := range lens {
		if l > uint64(lim.MaxBytes) {
			return 0, fmt.Errorf("%w: buffer %d is %d bytes (limit %d)", ErrFrameTooLarge, i, l, lim.MaxBytes)
		}
		sum += int64(l)
		if sum > lim.MaxBytes {
			return 0, fmt.Errorf("%w: %d+ bytes of buffers (limit %d)", ErrFrameTooLarge, sum, lim.MaxBytes)
		}
		offs[i] = total
		total += alignUp(int64(l))
	}
	return total, nil
}

func alignUp(n int64) int64 { return (n + Align - 1) &^ (Align - 1) }
