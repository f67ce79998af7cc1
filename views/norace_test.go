//go:build !race

package views

// raceAllocs is what the race detector adds to an apply round trip's
// allocations (TestApplyPathAllocatesNothingExtra): nothing without it.
const raceAllocs = 0
