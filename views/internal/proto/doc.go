// Package proto is the views protocol: the frame types, task kinds and
// request operations, the engine↔hub messages (proto.go: Register, Result,
// tasks with their targets and requirements) and the typed client↔hub
// messages (clientmsg.go: Hello, Request, Reply, Notify), each with an
// encoder and a parser that checks every field and names the one that is
// wrong (never a zero for a missing or mistyped value; fuzzed:
// FuzzClientMessages).
//
// Usage, an outside client's request and the hub's parse of it:
//
//	ctrl, bufs, err := (&proto.Request{Op: proto.OpFetch, IDs: ids}).Encode()
//	m, err := proto.ParseRequest(&comm.Frame{Control: ctrl, Buffers: bufs})
//
// It imports the codec and hubcore's types, nothing else of views.
package proto
