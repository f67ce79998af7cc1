// Command hello is the first steps of rankhub's tutorial: a program built
// with rankhub whose rank 0 drives the engines.
//
//	make build && bin/rankhub run -n 4 -- bin/hello
//	bin/rankhub run jobs/examples/hello.toml
//
// The driver lists the engine ids, calls a registered function on every
// engine that returns its pid and host, and runs a shell command on every
// engine whose output comes back per engine, as IPython's %px prints it.
package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/rankhub/rankhub"
	"github.com/rankhub/rankhub/views"
)

// Where is what an engine reports about itself.
type Where struct {
	Engine int
	Rank   int
	PID    int
	Host   string
}

func whereAmI(c *views.Context) (Where, error) {
	host, err := os.Hostname()
	return Where{Engine: c.EngineID, Rank: c.Rank, PID: os.Getpid(), Host: host}, err
}

func drive(ctx context.Context, c *views.Client) error {
	fmt.Println("engine ids:", c.IDs())

	all, err := c.DirectView()
	if err != nil {
		return err
	}
	ar, err := all.Apply("where")
	if err != nil {
		return err
	}
	vals, err := ar.Values(30 * time.Second)
	if err != nil {
		return err
	}
	for _, v := range vals {
		w, err := views.As[Where](v)
		if err != nil {
			return err
		}
		fmt.Printf("engine %d: rank %d, pid %d on %s\n", w.Engine, w.Rank, w.PID, w.Host)
	}

	xr, err := all.Execute(`echo "hello from $(hostname), pid $$"`)
	if err != nil {
		return err
	}
	if _, err := xr.Get(30 * time.Second); err != nil {
		return err
	}
	fmt.Print(views.FormatOutputs(xr))
	return nil
}

func main() {
	rankhub.Register("where", whereAmI)
	rankhub.Main(drive)
}
