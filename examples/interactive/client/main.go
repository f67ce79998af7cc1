// Command interactive-client is the outside client of the README's
// "Interactive use": it connects to a running hub through its hub.json,
// maps simulate over the engines labelled gpu as results arrive, then
// applies train on every engine and prints what it printed.
//
//	bin/interactive-client .rankhub/start-…/hub.json
package main

import (
	"fmt"
	"os"

	"github.com/rankhub/rankhub/views"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: interactive-client HUB.JSON")
		os.Exit(2)
	}
	if err := run(os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, "interactive-client:", err)
		os.Exit(1)
	}
}

func run(hubFile string) error {
	c, err := views.Connect(hubFile)
	if err != nil {
		return err
	}
	defer c.Close()
	fmt.Println("engines:", c.IDs())

	params := []int{1, 2, 3, 4, 5, 6, 7, 8}
	lb, err := c.LoadBalancedView()
	if err != nil {
		return err
	}
	ar, err := lb.With(views.TaskOptions{Require: []string{"gpu"}}).Map("simulate", 1, params)
	if err != nil {
		return err
	}
	sum, n := 0.0, 0
	for v, err := range ar.Unordered() { // as results arrive
		if err != nil {
			return err
		}
		sum += v.(float64)
		n++
	}
	fmt.Printf("pi ~ %.3f from %d simulations on the gpu engines\n", sum/float64(n), n)
	c.Wait(-1) // all of this client's tasks (Outstanding lists them)

	dv, err := c.DirectView()
	if err != nil {
		return err
	}
	r, err := dv.Apply("train", 2)
	if err != nil {
		return err
	}
	if _, err := r.Get(-1); err != nil {
		return err
	}
	fmt.Print(views.FormatOutputs(r)) // what train printed, per engine: [stdout:0] ...
	return nil
}
