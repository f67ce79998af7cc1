package pbs

import (
	"bufio"
	"fmt"
	"os"
	"strings"
)

// ReadNodefile reads a PBS node file ($PBS_NODEFILE): one line per slot,
// so a host appears once for every rank (or CPU) it runs. It returns the
// hosts in file order, duplicates kept; blank lines and '#' comments are
// skipped. A file without hosts is an error, as is a line with more than
// one word (path:line named).
func ReadNodefile(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("pbs: node file: %w", err)
	}
	defer f.Close()
	var hosts []string
	sc := bufio.NewScanner(f)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.ContainsAny(line, " \t") {
			return nil, fmt.Errorf("pbs: node file %s:%d: %q: want one host name per line", path, n, line)
		}
		hosts = append(hosts, line)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("pbs: node file %s:%d: %w", path, n+1, err)
	}
	if len(hosts) == 0 {
		return nil, fmt.Errorf("pbs: node file %s lists no hosts", path)
	}
	return hosts, nil
}
