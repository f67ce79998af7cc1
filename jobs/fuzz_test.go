package jobs

import (
	"io/fs"
	"testing"
)

// FuzzParse checks that Parse never panics and that every job it accepts
// validates again, expands and renders. The corpus starts from the examples.
func FuzzParse(f *testing.F) {
	names, _ := fs.Glob(Examples, "examples/*.toml")
	for _, name := range names {
		data, err := fs.ReadFile(Examples, name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte("[job]\nranks = 2\n[task]\ncommand = \"x {a} {{}}\"\n[sweep]\na = {start = 1, stop = 9, step = 2}\nb = [1, 2]\nzip = [[\"a\"]]\n"))
	f.Add([]byte("job.ranks = 2\n[sweep.x]\nstart = 1e-3\nstop = 1\nnum = 3\nlog = true\n"))
	f.Add([]byte("[job]\nranks = 2\n[task]\nfunction = \"f\"\noutputs = [\"e\"]\n[sweep]\nx = { values = [1, 2.5], default = 1 }\nreplicates = { min = 2, max = 9, sem = { e = \"5%\" } }\norder = \"grid\"\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		j, err := Parse("f.toml", data)
		if err != nil {
			if _, ok := err.(*Errors); !ok {
				t.Fatalf("error of type %T: %v", err, err)
			}
			return
		}
		if err := j.Validate(); err != nil {
			t.Fatalf("accepted job does not validate again: %v", err)
		}
		n := j.NumTasks()
		for _, i := range []int{0, n / 2, n - 1} {
			if i < 0 || i >= n {
				continue
			}
			task := j.TaskAt(i)
			if j.Task != nil && j.Task.Command != "" {
				if _, err := j.Command(task); err != nil {
					t.Fatalf("task %d: %v", i, err)
				}
			}
		}
	})
}
