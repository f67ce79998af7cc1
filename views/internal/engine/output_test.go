package engine

import (
	"math/rand/v2"
	"testing"
)

// capture keeps exactly the first and last MaxOutputKeep bytes of what is
// written to it, whatever the sizes of the writes, and counts the rest.
func TestCaptureKeepsHeadAndTail(t *testing.T) {
	rng := rand.New(rand.NewPCG(12, 34))
	for _, total := range []int{0, 10, MaxOutputKeep, 2 * MaxOutputKeep, 2*MaxOutputKeep + 1, 5*MaxOutputKeep + 12345} {
		all := make([]byte, total)
		rand.NewChaCha8([32]byte{byte(total)}).Read(all)
		var c Capture
		for p := all; len(p) > 0; {
			k := min(len(p), 1+rng.IntN([]int{7, 4096, 3 * MaxOutputKeep}[rng.IntN(3)]))
			c.Write(p[:k])
			p = p[k:]
		}
		got, omitted := c.Text("stdout")
		want, wantOmitted := string(all), int64(0)
		if total > 2*MaxOutputKeep {
			wantOmitted = int64(total - 2*MaxOutputKeep)
			want = string(all[:MaxOutputKeep]) + OmittedMark(wantOmitted, "stdout") + string(all[total-MaxOutputKeep:])
		}
		if got != want || omitted != wantOmitted {
			t.Fatalf("%d bytes: kept %d, %d omitted; want %d, %d omitted", total, len(got), omitted, len(want), wantOmitted)
		}
	}
}
