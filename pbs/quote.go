package pbs

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/rankhub/rankhub/internal/batch"
)

// pbsMemory converts a job memory string ("4G", "500MB", "2GiB", "1024")
// to PBS's size syntax ("4gb"), multiplied by factor; a bare number means
// megabytes, as in SLURM.
func pbsMemory(m string, factor int) (string, error) {
	digits, unit, err := batch.Memory(m)
	if err != nil {
		return "", fmt.Errorf("pbs: %w", err)
	}
	n, err := strconv.ParseInt(digits, 10, 64)
	if err != nil || n > math.MaxInt64/int64(max(factor, 1)) {
		return "", fmt.Errorf("pbs: job.memory %q: too large", m)
	}
	return strconv.FormatInt(n*int64(max(factor, 1)), 10) + strings.ToLower(unit) + "b", nil
}
