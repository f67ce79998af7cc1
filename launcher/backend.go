package launcher

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/rankhub/rankhub/jobs"
)

// Backend is a batch scheduler. The slurm and pbs packages satisfy it
// without importing this package.
type Backend interface {
	Name() string
	Script(job *jobs.Job, l jobs.Launch) (string, error)
	Submit(ctx context.Context, scriptPath string) (id string, err error)
	Status(ctx context.Context, ids ...string) (map[string]jobs.SchedState, error)
	Cancel(ctx context.Context, id string) error
}

// backends is the factory map; cmd/rankhub registers slurm and pbs.
var backends = map[string]func() Backend{}

// RegisterBackend makes a scheduler available by name.
func RegisterBackend(name string, f func() Backend) { backends[name] = f }

// NewBackend returns the backend of a scheduler name.
func NewBackend(name string) (Backend, error) {
	f, ok := backends[name]
	if !ok {
		names := make([]string, 0, len(backends))
		for n := range backends {
			names = append(names, n)
		}
		sort.Strings(names)
		return nil, fmt.Errorf("launcher: no scheduler backend %q (have: %s)", name, strings.Join(names, ", "))
	}
	return f(), nil
}
