package comm

import (
	"encoding/binary"
	"fmt"
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
// refused before any allocation.
type Limits struct {
	MaxControl int   // bytes of control payload
	MaxBuffers int   // buffers per frame
	MaxBytes   int64 // total bytes of the buffers
}

// DefaultLimits allow 64 MiB of control, 65536 buffers and 64 GiB of data per frame.
var DefaultLimits = Limits{MaxControl: 64 << 20, MaxBuffers: 1 << 16, MaxBytes: 64 << 30}

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
