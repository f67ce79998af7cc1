package views

import (
	"context"
	"time"

	"github.com/rankhub/rankhub/comm"
	"github.com/rankhub/rankhub/views/internal/hub"
)

// The hub's IO (its connections, outboxes, outside clients and the owner
// of its core) lives in views/internal/hub. Hub here is its user-facing
// side: a defined type whose methods forward (inlined) to the hub's, so
// that the hub's calls for clients (submit, fetch, abort, ...) stay out of
// the API.

// HubConfig describes the hub of a job (rank 0): Host, Logger, Scheme
// (the load-balanced scheduler's scheme; RANKHUB_SCHEME when zero and
// set, default LeastLoad), HWM (the most load-balanced tasks in flight on
// one engine; RANKHUB_HWM; 0: no limit), Seed (of the Random scheme; 0:
// from the clock), World (the communicator over every rank, waiting until
// it is ready; nil: no bulk path) and Rank (the hub's rank on it).
type HubConfig = hub.Config

// Hub is rank 0's scheduler: engines register with it, clients submit work
// through it, and it routes tasks to engines and results back. Finished
// results stay in its history until purged, so any client can fetch them.
type Hub struct{ h *hub.Hub }

// task is one message to one engine and its outcome, the future behind an
// AsyncResult (hub.Task).
type task = hub.Task

// NewHub makes a hub. Serve feeds it connections.
func NewHub(cfg HubConfig) *Hub { return &Hub{h: hub.New(cfg)} }

// Serve accepts connections from ln until the hub shuts down or ln closes.
func (h *Hub) Serve(ln *comm.Listener) error { return h.h.Serve(ln) }

// SetScheduler changes the load-balanced scheme and high-water mark for the
// tasks scheduled from now on.
func (h *Hub) SetScheduler(s Scheme, hwm int) { h.h.SetScheduler(s, hwm) }

// IDs returns the ids of the live engines, sorted.
func (h *Hub) IDs() []int { return h.h.IDs() }

// WaitForEngines blocks until at least n engines are registered.
func (h *Hub) WaitForEngines(ctx context.Context, n int) error { return h.h.WaitForEngines(ctx, n) }

// Shutdown tells every engine to exit, waits up to timeout for them to
// leave, and stops the hub: tasks still waiting in the hub fail with
// ErrShutdown, outside clients are disconnected. It returns once the hub's
// goroutines ended. It is idempotent; a second call waits for the first.
func (h *Hub) Shutdown(timeout time.Duration) { h.h.Shutdown(timeout) }

// Done is closed when the hub has shut down.
func (h *Hub) Done() <-chan struct{} { return h.h.Done() }

// Engines lists every engine the hub has seen, dead ones included.
func (h *Hub) Engines() []EngineInfo { return h.h.Engines() }
