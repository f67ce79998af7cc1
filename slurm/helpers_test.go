package slurm

import (
	"os/exec"
	"testing"
)

func runBash(t *testing.T, script string) string {
	t.Helper()
	out, err := exec.Command("/bin/bash", "-c", script).Output()
	if err != nil {
		t.Fatalf("bash: %v", err)
	}
	return string(out)
}
