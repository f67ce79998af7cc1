package slurm_test

import (
	"context"
	"fmt"

	"github.com/rankhub/rankhub/jobs"
	"github.com/rankhub/rankhub/slurm"
)

// The launcher's interface, as it will define it; both backends satisfy it.
var _ interface {
	Name() string
	Script(*jobs.Job, jobs.Launch) (string, error)
	Submit(context.Context, string) (string, error)
	Status(context.Context, ...string) (map[string]jobs.SchedState, error)
	Cancel(context.Context, string) error
} = slurm.New()

func ExampleExpandHostlist() {
	hosts, err := slurm.ExpandHostlist("n[001-003,010],gpu7")
	if err != nil {
		panic(err)
	}
	fmt.Println(hosts)
	fmt.Println(slurm.CompressHostlist(hosts))
	// Output:
	// [n001 n002 n003 n010 gpu7]
	// n[001-003,010],gpu7
}

func ExampleMapState() {
	state, reason := slurm.MapState("OUT_OF_MEMORY")
	fmt.Println(state, reason)
	// Output: FAILED out of memory
}
