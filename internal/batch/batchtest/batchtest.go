// Package batchtest helps the slurm and pbs tests: fake scheduler tools,
// golden files, running bash, and skipping loudly without a scheduler.
//
// # Usage
//
//	dir, calls := batchtest.FakeTools(t, map[string]string{"qsub": "echo 1.server"})
//	b := pbs.New(pbs.WithBinDir(dir))
//	// ... then calls() lists "qsub ./job.pbs"
package batchtest

import (
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// FakeTools writes bash scripts named after scheduler tools, with the given
// bodies, into a temp dir. Each first appends its name and arguments to
// calls.log in that dir; calls returns those lines.
func FakeTools(t testing.TB, tools map[string]string) (dir string, calls func() []string) {
	t.Helper()
	dir = t.TempDir()
	log := filepath.Join(dir, "calls.log")
	for name, body := range tools {
		script := "#!/bin/bash\necho \"" + name + " $*\" >> '" + log + "'\n" + body + "\n"
		if err := os.WriteFile(filepath.Join(dir, name), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir, func() []string {
		b, err := os.ReadFile(log)
		if err != nil {
			return nil
		}
		return strings.Split(strings.TrimSpace(string(b)), "\n")
	}
}

// Bash runs script with /bin/bash and returns its stdout.
func Bash(t testing.TB, script string) string {
	t.Helper()
	out, err := exec.Command("/bin/bash", "-c", script).Output()
	if err != nil {
		t.Fatalf("bash: %v", err)
	}
	return string(out)
}

// Golden compares got with testdata/name, or rewrites that file when the
// test runs with -update.
func Golden(t testing.TB, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	pkg := "."
	if wd, err := os.Getwd(); err == nil {
		pkg = "./" + filepath.Base(wd)
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test %s -update)", err, pkg)
	}
	if string(want) != got {
		t.Errorf("%s differs from the rendered script (go test %s -update rewrites it):\n--- got\n%s", path, pkg, got)
	}
}

// Require runs cmd and returns when it succeeds. Otherwise it skips the
// test with a message that starts "<what> NOT REACHABLE" and ends with
// hint, or fails it when RANKHUB_REQUIRE_SLURM=1.
func Require(t testing.TB, what, hint string, cmd ...string) {
	t.Helper()
	out, err := exec.Command(cmd[0], cmd[1:]...).CombinedOutput()
	if err == nil {
		return
	}
	msg := what + " NOT REACHABLE: " + strings.Join(cmd, " ") + ": " + err.Error() + ": " +
		strings.TrimSpace(string(out)) + " (" + hint + ")"
	if os.Getenv("RANKHUB_REQUIRE_SLURM") == "1" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}
