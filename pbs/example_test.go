package pbs_test

import (
	"fmt"

	"github.com/rankhub/rankhub/pbs"
)

func ExampleJobName() {
	fmt.Println(pbs.JobName("2D Ising L=64 sweep", pbs.DialectTorque))
	fmt.Println(pbs.JobName("2D Ising L=64 sweep", pbs.DialectPro))
	// Output:
	// r2D_Ising_L_64_
	// r2D_Ising_L_64_sweep
}
