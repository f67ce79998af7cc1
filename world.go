package rankhub

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/rankhub/rankhub/collective"
	"github.com/rankhub/rankhub/launcher"
	"github.com/rs/zerolog"
)

// The collective mesh: every rank joins it in the background as soon as it
// knows the job key (rank 0 made it; engines read it from hub.json), by
// publishing its address in the job directory. Joining costs a listener
// and a sparse arena file: connections are dialed when a collective first
// needs them. Joining eagerly on every rank lets any subset of ranks
// (a view's targets) form a communicator without waiting for the others.

// meshJoin is one rank's membership, ready when done is closed.
type meshJoin struct {
	done   chan struct{}
	cancel context.CancelFunc
	mesh   *collective.Mesh
	err    error
}

var current struct {
	sync.Mutex
	join *meshJoin
}

func startMesh(ctx context.Context, id launcher.Identity, key []byte, transport string, hb, spin time.Duration, tls bool, log zerolog.Logger) *meshJoin {
	ctx, cancel := context.WithCancel(ctx)
	j := &meshJoin{done: make(chan struct{}), cancel: cancel}
	go func() {
		defer close(j.done)
		// The address other nodes reach this rank at: launcher's rules
		// (RANKHUB_NETWORK, the scheduler's word, the route to the other
		// nodes), unless RANKHUB_MESH_ADDR names one.
		var addr string
		if os.Getenv(collective.EnvMeshAddr) == "" {
			a, err := launcher.ChooseAddr(launcher.HostNet(), os.Getenv)
			if err != nil {
				j.err = err
				log.Warn().Err(err).Msg("collective mesh unavailable; collectives will fail")
				return
			}
			addr = a.IP
		}
		j.mesh, j.err = collective.JoinMesh(ctx, collective.MeshConfig{
			Rank: id.Rank, Size: id.Size, Key: key, Exchange: collective.FileExchange(id.JobDir),
			ForceTCP: transport == "tcp", Heartbeat: hb, Spin: spin, Logger: log, Addr: addr, TLS: tls,
		})
		if j.err != nil && ctx.Err() == nil {
			log.Warn().Err(j.err).Msg("collective mesh unavailable; collectives will fail")
		}
	}()
	current.Lock()
	current.join = j
	current.Unlock()
	return j
}

// world waits for the mesh and returns the world communicator.
func (j *meshJoin) world(ctx context.Context) (*collective.Comm, error) {
	select {
	case <-j.done:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if j.err != nil {
		return nil, fmt.Errorf("rankhub: collective mesh: %w", j.err)
	}
	return j.mesh.World(), nil
}

func (j *meshJoin) close() {
	j.cancel() // a join still waiting for ranks that never came gives up
	<-j.done
	if j.mesh != nil {
		j.mesh.Close()
	}
	current.Lock()
	if current.join == j {
		current.join = nil
	}
	current.Unlock()
}

// ErrNoWorld is returned by World outside a running rank.
var ErrNoWorld = errors.New("rankhub: no collective world: not inside a running rank")

// World returns the communicator over every rank of the job (rank 0, the
// hub, is rank 0 of it). A driver on rank 0 uses it together with engines
// whose functions call views.Context.World: every rank must take part in
// each collective, in the same order.
func World(ctx context.Context) (*collective.Comm, error) {
	current.Lock()
	j := current.join
	current.Unlock()
	if j == nil {
		return nil, ErrNoWorld
	}
	return j.world(ctx)
}
