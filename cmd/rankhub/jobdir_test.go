package main

import (
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// rhShell runs rankhub from a shell after the shell command setup (a
// umask, a ulimit), as a user's login shell would start it.
func rhShell(t *testing.T, dir, setup string, args ...string) result {
	t.Helper()
	sh := fmt.Sprintf("%s && exec %q \"$@\"", setup, filepath.Join(bin, "rankhub"))
	cmd := exec.Command("/bin/sh", append([]string{"-c", sh, "sh"}, args...)...)
	cmd.Dir = dir
	var so, se strings.Builder
	cmd.Stdout, cmd.Stderr = &so, &se
	err := cmd.Run()
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		t.Fatal(err)
	}
	return result{so.String(), se.String(), cmd.ProcessState.ExitCode()}
}

// modes lists every entry of the job directory below dir with its mode.
func jobDirModes(t *testing.T, dir string) (string, map[string]fs.FileMode) {
	t.Helper()
	jd, _ := filepath.Glob(filepath.Join(dir, ".rankhub", "*"))
	if len(jd) != 1 {
		t.Fatalf("job directories: %v", jd)
	}
	modes := map[string]fs.FileMode{}
	filepath.WalkDir(jd[0], func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		st, err := os.Lstat(p)
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(jd[0], p)
		modes[rel] = st.Mode()
		return nil
	})
	return jd[0], modes
}

// Issue 12 row 8: a job directory and everything rankhub writes in it are
// the owner's alone, whatever the umask; group_readable opens them to the
// group (0750/0640), again whatever the umask.
func TestJobDirectoryIsPrivate(t *testing.T) {
	for _, tc := range []struct {
		name, umask, extra string
		dir, file          fs.FileMode // exact permission bits
	}{
		{"private", "022", "", 0o700, 0o600},
		{"group readable", "077", "group_readable = true\n", 0o750, 0o640},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			job := fmt.Sprintf("[job]\nname = \"hello\"\nranks = 3\nprogram = [%q]\n%s", filepath.Join(bin, "hello"), tc.extra)
			os.WriteFile(filepath.Join(dir, "hello.toml"), []byte(job), 0o644)
			if r := rhShell(t, dir, "umask "+tc.umask, "run", "hello.toml"); r.code != 0 {
				t.Fatalf("run: exit %d\n%s", r.code, r.stderr)
			}
			jd, modes := jobDirModes(t, dir)
			if st, err := os.Stat(filepath.Join(dir, ".rankhub")); err != nil || st.Mode().Perm() != tc.dir {
				t.Errorf(".rankhub: mode %v, want %v", st.Mode().Perm(), tc.dir)
			}
			for _, f := range []string{".", "job.toml", "rank-0.out", "rank-2.err", "rank-1.log.json", "status.json"} {
				if _, ok := modes[f]; !ok {
					t.Errorf("%s lacks %s", jd, f)
				}
			}
			for rel, m := range modes {
				want := tc.file
				if m.IsDir() {
					want = tc.dir
				}
				// The directory and the files rankhub names have the exact
				// mode; what other packages add (the collective mesh's
				// exchange folder, 0700) may be stricter, never wider.
				exact := rel == "." || modes[rel].IsRegular() && !strings.HasPrefix(rel, "mesh")
				if m.Perm()&^want != 0 || exact && m.Perm() != want {
					t.Errorf("%s: mode %v, want %v", rel, m.Perm(), want)
				}
			}
		})
	}
}

// submit writes the script and the scheduler id with the same modes.
func TestSubmitDryRunJobDirectoryIsPrivate(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "j.toml"), []byte("[job]\nname = \"j\"\nscheduler = \"slurm\"\nranks = 2\nwalltime = \"1h\"\nprogram = [\"/bin/true\"]\n"), 0o644)
	if r := rhShell(t, dir, "umask 022", "submit", "--dry-run", "j.toml"); r.code != 0 {
		t.Fatalf("submit: exit %d\n%s", r.code, r.stderr)
	}
	_, modes := jobDirModes(t, dir)
	want := map[string]fs.FileMode{".": 0o700, "job.toml": 0o600, "job.sbatch": 0o700}
	for rel, m := range modes {
		if m.Perm() != want[rel] {
			t.Errorf("%s: mode %v, want %v", rel, m.Perm(), want[rel])
		}
	}
}
