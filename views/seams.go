package views

import (
	"context"

	"github.com/rankhub/rankhub/comm"
	"github.com/rankhub/rankhub/views/internal/bulk"
	"github.com/rankhub/rankhub/views/internal/codec"
	"github.com/rankhub/rankhub/views/internal/engine"
	"github.com/rankhub/rankhub/views/internal/proto"
)

// The codec lives in views/internal/codec. What users name from it stays
// here (Ref, As, ErrNotSendable); the rest of views calls it through these
// short names, which the compiler inlines (go build -gcflags=-m=2), so
// that the split adds no call on the hot paths. Over the inlining budget,
// one direct call each: encodeBulk, decodeBulk and parseReply (used by
// tests; client.go calls codec.EncodeBulk itself).

// Ref names a value in an engine's namespace. Passed as an argument, the
// engine substitutes the named value without moving it.
type Ref = codec.Ref

// ErrNotSendable is returned (wrapped) when a value cannot be sent.
var ErrNotSendable = codec.ErrNotSendable

// As converts a value received from an engine to T (for example a decoded
// map[string]any to a struct, or []any to []float64).
func As[T any](v any) (T, error) { return codec.As[T](v) }

func encodeValues(vals ...any) ([]byte, [][]byte, error) { return codec.EncodeBulk(nil, vals...) }

func decodeValues(ctrl []byte, bufs [][]byte, n int) ([]any, error) {
	return codec.DecodeBulk(ctrl, bufs, n, nil)
}

// encodeBulk is encodeValues with large numeric Arrow arrays sent through
// b (nil: none).
func encodeBulk(b *bulkSender, vals ...any) ([]byte, [][]byte, error) {
	return codec.EncodeBulk(bulkOut(b), vals...)
}

// bulkOut is b as the codec takes it (nil stays nil: no bulk path).
func bulkOut(b *bulkSender) codec.BulkSender { return bulk.Out(b) }

// bulkIn is r as the codec takes it (nil stays nil: references refused).
func bulkIn(r *bulkReceiver) codec.BulkReceiver { return bulk.In(r) }

// The bulk path lives in views/internal/bulk (below the hub, the engine
// and the client, which all send and receive on it).

// BulkTagBase is the first world-communicator user tag the views' bulk
// path uses; tags below it are free for user Send/Recv.
const BulkTagBase = bulk.TagBase

type (
	bulkSender   = bulk.Sender
	bulkReceiver = bulk.Receiver
	bulkTags     = bulk.Tags
)

// bulkLive counts the bytes of received arrays the collector manages, not
// yet returned (tests watch it).
var bulkLive = &codec.BulkLive

// decodeBulk is decodeValues receiving the arrays the payload refers to
// through r.
func decodeBulk(ctrl []byte, bufs [][]byte, n int, r *bulkReceiver) ([]any, error) {
	return codec.DecodeBulk(ctrl, bufs, n, bulkIn(r))
}

// The protocol lives in views/internal/proto: the engine↔hub frames
// (proto.go) and the typed client↔hub messages (clientmsg.go). Its names
// stay here under the names the client files use, so that
// those files read (and merge) as before; the functions are inlined.

const (
	fRegister      = proto.FRegister
	fWelcome       = proto.FWelcome
	fTask          = proto.FTask
	fResult        = proto.FResult
	fControl       = proto.FControl
	fReject        = proto.FReject
	fHello         = proto.FHello
	fRequest       = proto.FRequest
	fReply         = proto.FReply
	fNotify        = proto.FNotify
	kindApply      = proto.KindApply
	kindExecute    = proto.KindExecute
	kindPush       = proto.KindPush
	kindPull       = proto.KindPull
	kindMap        = proto.KindMap
	kindRun        = proto.KindRun
	kindDelete     = proto.KindDelete
	opEngines      = proto.OpEngines
	opSubmit       = proto.OpSubmit
	opFetch        = proto.OpFetch
	opAbort        = proto.OpAbort
	opControl      = proto.OpControl
	opQueueStatus  = proto.OpQueueStatus
	opResultStatus = proto.OpResultStatus
	opPurge        = proto.OpPurge
	opHistory      = proto.OpHistory
	opShutdown     = proto.OpShutdown
	ctlAbort       = proto.CtlAbort
	ctlClear       = proto.CtlClear
	ctlShutdown    = proto.CtlShutdown
	statusOK       = proto.StatusOK
	statusError    = proto.StatusError
)

type (
	helloMsg     = proto.Hello
	requestMsg   = proto.Request
	replyWire    = proto.Reply
	notifyMsg    = proto.Notify
	frameDecoder = proto.FrameDecoder
	payload      = proto.Payload
	lbSpec       = proto.Spec
)

func encodeRequest(op int, args []any, ps []payload) ([]byte, [][]byte, error) {
	return proto.EncodeRequest(op, args, ps)
}

func parseReply(f *comm.Frame) (*replyWire, error) { return proto.ParseReply(f) }

func parseReplyWith(f *comm.Frame, decode frameDecoder) (*replyWire, error) {
	return proto.ParseReplyWith(f, decode)
}

func parseNotifyWith(f *comm.Frame, decode frameDecoder) (*notifyMsg, error) {
	return proto.ParseNotifyWith(f, decode)
}

func parseEngineList(v any) ([]EngineInfo, error)        { return proto.ParseEngineList(v) }
func parseQueueStatus(v any) ([]QueueStatus, int, error) { return proto.ParseQueueStatus(v) }
func parseResultStatus(v any) (pending, completed []uint64, err error) {
	return proto.ParseResultStatus(v)
}
func parsePurged(v any) (int, error)       { return proto.ParsePurged(v) }
func parseHistory(v any) ([]uint64, error) { return proto.ParseHistory(v) }

// What runs on an engine (the registry, a task's Context and the engine's
// namespace, output capture) and the Engine's connection to the hub
// (ServeEngine) live in views/internal/engine.

// EngineConfig describes the engine side of a rank: Rank, Host, Logger,
// World (the collective mesh, nil: no collectives), Labels (for
// TaskOptions.Require) and CaptureOutput (what functions print comes back
// in Metadata.Stdout and Stderr; for processes that run this one engine).
type EngineConfig = engine.Config

// Engine executes tasks sent by the hub, one at a time in arrival order,
// while a reader goroutine handles control messages (abort, clear,
// shutdown) at once, even when a long task is running.
type Engine = engine.Engine

// ServeEngine registers with the hub over conn and serves tasks until the hub
// shuts the engine down (nil) or the connection fails (an error naming why).
func ServeEngine(ctx context.Context, conn *comm.Conn, cfg EngineConfig) error {
	return engine.Serve(ctx, conn, cfg)
}

// Context is passed to registered functions that take it as their first
// parameter: the engine's identity and namespace (Context.NS), and its
// communicators (Context.World, Context.Comm).
type Context = engine.Context

// Namespace is an engine's named values (push/pull, Ref); safe for
// concurrent use.
type Namespace = engine.Namespace

// ErrNoCommunicator is returned by Context.Comm and Context.World when the
// task has no communicator.
var ErrNoCommunicator = engine.ErrNoCommunicator

// ErrUnknownFunction is returned (wrapped in a RemoteError) when a task names
// a function that the engine's program did not register.
var ErrUnknownFunction = engine.ErrUnknownFunction

// Register makes fn callable by name on every rank that registers it; all
// ranks run the same binary, so register in init or before Main. fn may take
// a leading *views.Context, then any sendable parameters (variadic allowed),
// and return nothing, a value, an error, or a value and an error.
func Register(name string, fn any) error { return engine.Register(name, fn) }

// MustRegister is Register for init functions: it panics on a programming error.
func MustRegister(name string, fn any) { engine.MustRegister(name, fn) }

// Registered lists the registered function names, sorted.
func Registered() []string { return engine.Registered() }

// Lookup returns the function registered under name with Register, so that
// other packages (the sweep engine) call the same registry; ok is false
// when no function has that name.
func Lookup(name string) (fn any, ok bool) { return engine.Lookup(name) }

const maxOutputKeep = engine.MaxOutputKeep

func recovered(fn func()) error { return engine.Recovered(fn) }
func rowsOf(v any) (int, bool)  { return codec.RowsOf(v) }
