package views

import (
	"context"
	"time"

	"github.com/rankhub/rankhub/views/internal/hub"
)

// backend is what a Client needs from a hub: the hub itself in process
// (localBackend), or a connection to it (remoteBackend, see Connect).
type backend interface {
	ids() []int
	engines() ([]EngineInfo, error)
	waitForEngines(ctx context.Context, n int) error
	// submitDirect queues one task per target; accepted (may be nil) is
	// called once they exist, before it returns, and not if it fails.
	submitDirect(kind int, name string, targets []int, payloads []payload, accepted func()) ([]*task, error)
	submitLB(kind int, name string, payloads []payload, spec lbSpec) ([]*task, error)
	fetch(ids []uint64) ([]*task, error)
	abort(ids []uint64) error
	control(targets []int, op int) error
	queueStatus() ([]QueueStatus, int, error)
	resultStatus(ids []uint64) (pending, completed []uint64, err error)
	purge(ids []uint64) (int, error)
	history() ([]uint64, error)
	shutdown(timeout time.Duration) error
	done() <-chan struct{}
	close() error
	// bulkFor returns a sender of large arrays to the engines, or nil.
	bulkFor(targets []int) *bulkSender
}

// localBackend is a client of the hub in the same process.
type localBackend struct{ h *hub.Hub }

func (b localBackend) ids() []int                     { return b.h.IDs() }
func (b localBackend) engines() ([]EngineInfo, error) { return b.h.Engines(), nil }
func (b localBackend) waitForEngines(ctx context.Context, n int) error {
	return b.h.WaitForEngines(ctx, n)
}
func (b localBackend) submitDirect(kind int, name string, targets []int, p []payload, accepted func()) ([]*task, error) {
	return b.h.SubmitDirectThen(kind, name, targets, p, accepted)
}
func (b localBackend) submitLB(kind int, name string, p []payload, spec lbSpec) ([]*task, error) {
	return b.h.SubmitLB(kind, name, p, spec)
}
func (b localBackend) fetch(ids []uint64) ([]*task, error) { return b.h.Fetch(ids) }
func (b localBackend) abort(ids []uint64) error            { return b.h.Abort(ids) }
func (b localBackend) control(targets []int, op int) error { return b.h.Control(targets, op) }
func (b localBackend) queueStatus() ([]QueueStatus, int, error) {
	q, n := b.h.QueueStatus()
	return q, n, nil
}
func (b localBackend) resultStatus(ids []uint64) ([]uint64, []uint64, error) {
	return b.h.ResultStatus(ids)
}
func (b localBackend) purge(ids []uint64) (int, error) { return b.h.Purge(ids) }
func (b localBackend) history() ([]uint64, error)      { return b.h.History(), nil }
func (b localBackend) shutdown(timeout time.Duration) error {
	b.h.Shutdown(timeout)
	return nil
}
func (b localBackend) done() <-chan struct{} { return b.h.Done() }
func (b localBackend) close() error          { return nil }
func (b localBackend) bulkFor(targets []int) *bulkSender {
	return b.h.BulkFor(targets)
}
