package jobs

import (
	"strings"
	"testing"
)

func TestCheckLocalRanks(t *testing.T) {
	j, err := Parse("/x/j.toml", []byte("[job]\nname = \"j\"\nranks = 1000\nprogram = [\"/bin/true\"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := j.CheckLocalRanks(Resources{OpenFiles: 1 << 20}); err != nil {
		t.Fatalf("plenty of files, no process limit: %v", err)
	}
	err = j.CheckLocalRanks(Resources{OpenFiles: 1 << 20, Processes: 4096, Tasks: 1000})
	if err == nil || !strings.Contains(err.Error(), "/x/j.toml:3:1: job.ranks: 1000 local ranks need about 4000 more processes and threads") ||
		!strings.Contains(err.Error(), "RLIMIT_NPROC = 4096 (ulimit -u): at most 774 ranks") {
		t.Fatalf("process limit: %v", err)
	}
	if err := j.CheckLocalRanks(Resources{}); err != nil {
		t.Fatalf("unknown limits are not checked: %v", err)
	}
}
