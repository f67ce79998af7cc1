// Command ising is a sweep built with rankhub: a 2-D Ising model on an L×L
// periodic lattice, simulated with single-spin-flip Metropolis Monte Carlo.
// Every rank runs this binary; the engines run the registered function
// "ising" for each (L, T, seed) of the sweep in jobs/examples/ising.toml,
// and the hub's sweep driver writes every result row to an Arrow file.
//
//	make build && bin/rankhub run jobs/examples/ising.toml
//	bin/rankhub peek jobs/examples/ising.arrow --by L,T
//
// Parameters: L (lattice size), T (temperature, J = k_B = 1), and optionally
// therm and sweeps (Monte Carlo sweeps for thermalization and measurement;
// defaults 500 and 2000). Outputs per spin: mean energy, mean magnetization
// and mean absolute magnetization. The exact critical temperature is
// Tc = 2/ln(1+√2) ≈ 2.269.
package main

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/rankhub/rankhub"
)

// Measure is the outputs of one run, per spin.
type Measure struct {
	Energy           float64
	Magnetization    float64
	AbsMagnetization float64
}

// Simulate runs the Metropolis algorithm and returns the averages. It is
// deterministic for a given seed.
func Simulate(L int, T float64, therm, sweeps int, seed uint64) (Measure, error) {
	if L < 2 || L > 4096 {
		return Measure{}, fmt.Errorf("ising: L = %d out of range [2, 4096]", L)
	}
	if !(T > 0) {
		return Measure{}, fmt.Errorf("ising: T = %v must be positive", T)
	}
	if therm < 0 || sweeps < 1 {
		return Measure{}, fmt.Errorf("ising: therm = %d, sweeps = %d", therm, sweeps)
	}
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	n := L * L
	s := make([]int8, n)
	for i := range s { // hot start
		s[i] = int8(2*rng.IntN(2) - 1)
	}
	// Acceptance of a flip that raises the energy by dE = 2 s_i h_i with
	// h_i in {-4,-2,0,2,4}: only dE = 4 and 8 need a random number.
	w4, w8 := math.Exp(-4/T), math.Exp(-8/T)
	up := make([]int, n)
	right := make([]int, n)
	down := make([]int, n)
	left := make([]int, n)
	for y := 0; y < L; y++ {
		for x := 0; x < L; x++ {
			i := y*L + x
			right[i] = y*L + (x+1)%L
			left[i] = y*L + (x+L-1)%L
			down[i] = ((y+1)%L)*L + x
			up[i] = ((y+L-1)%L)*L + x
		}
	}
	sweep := func() {
		for k := 0; k < n; k++ {
			i := rng.IntN(n)
			h := int(s[right[i]]) + int(s[left[i]]) + int(s[up[i]]) + int(s[down[i]])
			dE := 2 * int(s[i]) * h
			if dE <= 0 || (dE == 4 && rng.Float64() < w4) || (dE == 8 && rng.Float64() < w8) {
				s[i] = -s[i]
			}
		}
	}
	for t := 0; t < therm; t++ {
		sweep()
	}
	var sumE, sumM, sumAbsM float64
	for t := 0; t < sweeps; t++ {
		sweep()
		e, m := 0, 0
		for i := 0; i < n; i++ {
			e -= int(s[i]) * (int(s[right[i]]) + int(s[down[i]]))
			m += int(s[i])
		}
		sumE += float64(e) / float64(n)
		sumM += float64(m) / float64(n)
		sumAbsM += math.Abs(float64(m)) / float64(n)
	}
	k := float64(sweeps)
	return Measure{Energy: sumE / k, Magnetization: sumM / k, AbsMagnetization: sumAbsM / k}, nil
}

func ising(p rankhub.Params) (Measure, error) {
	therm, sweeps := 500, 2000
	if _, ok := p["therm"]; ok {
		therm = p.Int("therm")
	}
	if _, ok := p["sweeps"]; ok {
		sweeps = p.Int("sweeps")
	}
	return Simulate(p.Int("L"), p.Float("T"), therm, sweeps, p.Seed())
}

func main() {
	rankhub.Register("ising", ising)
	rankhub.Main(nil) // no driver of our own: the job file's sweep runs
}
