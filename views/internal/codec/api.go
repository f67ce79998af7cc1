package codec

import "github.com/apache/arrow-go/v18/arrow"

// BulkSender is the sending side of views' bulk path (views/internal/bulk): it
// takes the large numeric Arrow arrays of one encoding out of the frame.
type BulkSender interface {
	// Send sends a on the bulk path and returns the tag it travels with;
	// ok is false when a does not take the bulk path (too small, not
	// numeric) or no receiver got it: the encoder then puts it in the frame.
	Send(a arrow.Array) (tag uint64, ok bool)
	// Rank is the sender's world rank, written beside the tag.
	Rank() int
}

// BulkReceiver receives the arrays a payload refers to on the bulk path.
type BulkReceiver interface {
	Recv(from int, tag uint64) (arrow.Array, error)
}

// NewEncoder returns an encoder whose control payload starts with room for
// size bytes. Encode values into it with Encode; Result returns the payload.
func NewEncoder(size int) *Encoder { return &Encoder{b: make([]byte, 0, size)} }

// AddBuffers appends bufs to the out-of-band buffers, untouched, and
// returns the index of the first.
func (e *Encoder) AddBuffers(bufs [][]byte) int {
	i := len(e.bufs)
	e.bufs = append(e.bufs, bufs...)
	return i
}

// Encode appends v to the payload; where names v in an error.
func (e *Encoder) Encode(where string, v any) error {
	e.path = append(e.path[:0], pathStep{kind: 'w', s: where})
	return e.encode(v)
}

// Result returns the control payload and the out-of-band buffers.
func (e *Encoder) Result() ([]byte, [][]byte) { return e.b, e.bufs }

// NewDecoder returns a decoder of a payload whose bulk array references
// are received through bulk (nil: refused).
func NewDecoder(ctrl []byte, bufs [][]byte, bulk BulkReceiver) *Decoder {
	return &Decoder{b: ctrl, bufs: bufs, bulk: bulk}
}

// KeepInFrame makes the decoder leave arrays in the frame's buffers (the
// hub's records: a driver in the hub's process gets copies, Detach).
func (d *Decoder) KeepInFrame() *Decoder { d.inFrame = true; return d }

// InPlace makes the decoder leave arrays in the frame's buffers, memory
// protected in place that o owns: the arrays hold it.
func (d *Decoder) InPlace(o *FrameOwner) *Decoder { d.frame = o; return d }

// Values decodes exactly n values, the whole payload.
func (d *Decoder) Values(n int) ([]any, error) { return d.values(n) }

// Decode decodes the next value.
func (d *Decoder) Decode() (any, error) { return d.decode() }

// More reports whether bytes are left after the values decoded so far.
func (d *Decoder) More() bool { return d.pos < len(d.b) }

// BulkBytes is how much of the decoded data came on the bulk path.
func (d *Decoder) BulkBytes() int64 { return d.bulkBytes }

// Drop lets go of the decoder's hold on the frame (NewFrameOwner).
func (o *FrameOwner) Drop() { o.drop() }

// Corrupt returns ErrCorrupt naming what is wrong and where in the payload.
func (d *Decoder) Corrupt(what string) error { return d.corrupt(what) }

// Wire tags, for payloads built by hand (views' tests of hostile input).
const (
	TagInt      = tInt
	TagList     = tList
	TagArrow    = tArrow
	ArrowArray  = arrowArray
	ArrowRecord = arrowRecord
	ArrowBulk   = arrowBulk
)

// AddTag adds a value kind of one tag byte and no payload: is reports
// whether a value is of the kind, decode returns the value for the tag.
// For tests (views' poisoned tag); call it before any encoding.
func AddTag(tag byte, is func(v any) bool, decode func(d *Decoder) (any, error)) {
	decodeHooks[tag] = decode
	encodeHooks = append(encodeHooks, func(e *Encoder, v any) (bool, error) {
		if !is(v) {
			return false, nil
		}
		e.byte1(tag)
		return true, nil
	})
}
