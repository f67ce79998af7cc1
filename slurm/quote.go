package slurm

import (
	"fmt"

	"github.com/rankhub/rankhub/internal/batch"
)

// slurmMemory converts a job memory string ("4G", "500MB", "2GiB", "1024")
// to SLURM's --mem syntax; a bare number means megabytes, as in SLURM.
func slurmMemory(m string) (string, error) {
	n, unit, err := batch.Memory(m)
	if err != nil {
		return "", fmt.Errorf("slurm: %w", err)
	}
	return n + unit, nil
}
