package main

import (
	"math"
	"testing"
)

// The 2-D Ising model has exact results to check the simulation against:
// Onsager's energy per spin at the critical point, -√2 ≈ -1.414 in the
// infinite system, and saturation far below Tc; and the model is
// deterministic for a given seed.
func TestSimulatePhysics(t *testing.T) {
	cold, err := Simulate(16, 1.0, 300, 500, 1)
	if err != nil {
		t.Fatal(err)
	}
	if cold.AbsMagnetization < 0.99 || cold.Energy > -1.99 {
		t.Errorf("T=1: |m| = %.4f (want ≈ 0.999), e = %.4f (want ≈ -1.997)", cold.AbsMagnetization, cold.Energy)
	}
	hot, _ := Simulate(16, 10, 300, 500, 2)
	if hot.AbsMagnetization > 0.2 || math.Abs(hot.Energy+0.2) > 0.1 {
		t.Errorf("T=10: |m| = %.4f (want small), e = %.4f (want ≈ -0.2, high-T series -2 tanh(1/T))", hot.AbsMagnetization, hot.Energy)
	}
	crit, _ := Simulate(32, 2.269, 500, 1000, 3)
	if math.Abs(crit.Energy+1.42) > 0.06 {
		t.Errorf("T=Tc, L=32: e = %.4f, want ≈ -1.42 (Onsager -√2 plus finite size)", crit.Energy)
	}
	a, _ := Simulate(8, 2.0, 10, 20, 42)
	b, _ := Simulate(8, 2.0, 10, 20, 42)
	if a != b {
		t.Errorf("same seed, different results: %+v %+v", a, b)
	}
	if _, err := Simulate(1, 2, 1, 1, 1); err == nil {
		t.Error("L=1 accepted")
	}
	if _, err := Simulate(8, -1, 1, 1, 1); err == nil {
		t.Error("T<0 accepted")
	}
}
