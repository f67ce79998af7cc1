package sweep

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestScriptIn(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"sim.sh", "fit.py", "run"} {
		os.WriteFile(filepath.Join(dir, f), []byte("x"), 0o755)
	}
	for _, tc := range []struct{ line, want string }{
		{"sh sim.sh 8 2.5", "sim.sh"},
		{"/bin/bash -e sim.sh", "sim.sh"},
		{"python3 -u fit.py --L 8", "fit.py"},
		{`bash -c "./sim.sh 8"`, "sim.sh"},
		{"env OMP_NUM_THREADS=1 python3 fit.py", "fit.py"},
		{"./run --L 8", "run"},
		{"python3 -m fit", ""},
		{"sh -c 'echo 1'", ""},
		{"echo 1 2", ""},
		{"sh missing.sh", ""},
	} {
		got := scriptIn(strings.Fields(tc.line), dir, 0)
		want := ""
		if tc.want != "" {
			want = filepath.Join(dir, tc.want)
		}
		if got != want {
			t.Errorf("%q: %q, want %q", tc.line, got, want)
		}
	}
}
