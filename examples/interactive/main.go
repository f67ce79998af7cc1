// Command interactive is the program of the README's "Interactive use":
// it registers its functions and serves clients, with no driver of its own.
//
//	make build
//	bin/rankhub start -n 3 --listen 0.0.0.0 -- bin/interactive
//	bin/rankhub engines .rankhub/start-… -n 2 --label gpu -- bin/interactive &
//	bin/interactive-client .rankhub/start-…/hub.json
//
// simulate is a small Monte Carlo estimate of pi from a seed; train prints
// its progress (captured into the task's Metadata.Stdout) and returns the
// engine's id; hasGPU is a predicate for TaskOptions.Depend.
package main

import (
	"fmt"
	"math/rand/v2"
	"os"

	"github.com/rankhub/rankhub"
	"github.com/rankhub/rankhub/views"
)

// simulate estimates pi from 100000 random points drawn with seed.
func simulate(seed int) float64 {
	r := rand.New(rand.NewPCG(uint64(seed), 1))
	in := 0
	const n = 100000
	for i := 0; i < n; i++ {
		x, y := r.Float64(), r.Float64()
		if x*x+y*y < 1 {
			in++
		}
	}
	return 4 * float64(in) / n
}

// train prints one line per epoch and returns the engine that ran it.
func train(c *views.Context, epochs int) int {
	host, _ := os.Hostname()
	for e := 1; e <= epochs; e++ {
		fmt.Printf("epoch %d/%d on %s\n", e, epochs, host)
	}
	return c.EngineID
}

func main() {
	rankhub.Register("simulate", simulate)
	rankhub.Register("train", train)
	rankhub.Register("hasGPU", func(c *views.Context) bool { return os.Getenv("CUDA_VISIBLE_DEVICES") != "" })
	rankhub.Main(nil) // no driver: rank 0 serves outside clients until `rankhub stop`
}
