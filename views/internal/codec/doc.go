// Package codec turns the values rankhub's views send (Go scalars,
// strings, slices, maps, structs, Ref, Arrow arrays, records and chunked
// arrays) into a compact control payload plus raw buffers that travel
// without a copy, and back (codec.go, convert.go, arrow.go). Decoding never
// panics and allocates after the bytes actually received (fuzzed:
// FuzzDecodeValues, FuzzDecodeArrow, corpora in testdata/fuzz). Received
// arrays of a page or more are read-only in memory, and the garbage
// collector returns their memory (gc.go: GCOwned, CollectBulk); Detach
// copies a value out of a frame the hub keeps (detach.go).
//
// Large numeric arrays can leave the frame for views' bulk path through
// two small interfaces, BulkSender and BulkReceiver.
//
// Usage:
//
//	ctrl, bufs, err := codec.EncodeValues(1, "x", []float64{1, 2})
//	vals, err := codec.DecodeValues(ctrl, bufs, 3)
//	xs, err := codec.As[[]float64](vals[2])
//
// It imports no other package of views (layout_test.go).
package codec
