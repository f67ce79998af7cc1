package views

import (
	"github.com/apache/arrow-go/v18/arrow"

	"github.com/rankhub/rankhub/views/internal/codec"
)

// The codec lives in views/internal/codec. What users name from it stays
// here (Ref, As, ErrNotSendable); the rest of views calls it through these
// short names, inlined by the compiler: no indirection on the hot path.

// Ref names a value in an engine's namespace. Passed as an argument, the
// engine substitutes the named value without moving it.
type Ref = codec.Ref

// ErrNotSendable is returned (wrapped) when a value cannot be sent.
var ErrNotSendable = codec.ErrNotSendable

// As converts a value received from an engine to T (for example a decoded
// map[string]any to a struct, or []any to []float64).
func As[T any](v any) (T, error) { return codec.As[T](v) }

// errCorrupt is returned for malformed payloads (never a panic).
var errCorrupt = codec.ErrCorrupt

func encodeValues(vals ...any) ([]byte, [][]byte, error) { return codec.EncodeValues(vals...) }

func decodeValues(ctrl []byte, bufs [][]byte, n int) ([]any, error) {
	return codec.DecodeValues(ctrl, bufs, n)
}

func checkValues(ctrl []byte, bufs [][]byte, n int) error { return codec.CheckValues(ctrl, bufs, n) }

// encodeBulk is encodeValues with large numeric Arrow arrays sent through
// b (nil: none).
func encodeBulk(b *bulkSender, vals ...any) ([]byte, [][]byte, error) {
	if b == nil {
		return codec.EncodeValues(vals...)
	}
	return codec.EncodeBulk(b, vals...)
}

// bulkIn is r as the codec takes it (nil stays nil: references refused).
func bulkIn(r *bulkReceiver) codec.BulkReceiver {
	if r == nil {
		return nil
	}
	return r
}

// Send and Rank make a bulkSender the codec's: only arrays that take the
// bulk path (bulkable) are sent.
func (s *bulkSender) Send(a arrow.Array) (uint64, bool) {
	if !bulkable(a) {
		return 0, false
	}
	return s.send(a)
}

func (s *bulkSender) Rank() int { return s.world.Rank() }

func (r *bulkReceiver) Recv(from int, tag uint64) (arrow.Array, error) { return r.recv(from, tag) }

func collectBulk()                         { codec.CollectBulk() }
func gcOwned(a arrow.Array) arrow.Array    { return codec.GCOwned(a) }
func readOnlyOf(a arrow.Array) arrow.Array { return codec.ReadOnlyOf(a) }

// bulkLive counts the bytes of received arrays the collector manages, not
// yet returned (tests watch it).
var bulkLive = &codec.BulkLive

// decodeBulk is decodeValues receiving the arrays the payload refers to
// through r.
func decodeBulk(ctrl []byte, bufs [][]byte, n int, r *bulkReceiver) ([]any, error) {
	return codec.DecodeBulk(ctrl, bufs, n, bulkIn(r))
}
