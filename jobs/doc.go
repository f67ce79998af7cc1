// Package jobs decodes, validates and expands rankhub's TOML job files. It
// imports nothing of rankhub; every other package reads the *Job it returns.
//
// # Usage
//
//	job, err := jobs.Load("ising.toml")
//	if err != nil {
//		fmt.Fprintln(os.Stderr, err) // every problem, one "file:line:col: key: msg" per line
//		os.Exit(2)
//	}
//	for _, w := range job.Warnings {
//		fmt.Fprintln(os.Stderr, "warning:", w)
//	}
//	if err := job.Apply(jobs.Overrides{Walltime: "2h"}); err != nil { ... } // CLI flags
//	for i := range job.NumTasks() {
//		t := job.TaskAt(i)           // or job.Expand() for all of them
//		cmd, err := job.Command(t)   // for [task].command
//		args := job.Args(t)          // for [task].function
//		...
//	}
//
// # Job files
//
// A job file has four tables: [job] (what to start, where, with which
// resources), [task] (a shell command or a registered function, run once per
// sweep point), [sweep] (the parameters) and [results] (the Arrow file). The
// examples in Examples show each of them; DESIGN.md sketches the format.
//
// # Diagnostics
//
// Parse reports every error at once as an *Errors, each Diag naming the file,
// line, 1-based byte column and dotted key (job.ranks, sweep.T.num). Syntax
// errors carry the TOML parser's position. BurntSushi/toml exports no key
// positions, so a small scanner of the source (scan.go) finds where each key
// is written; a diagnostic about a missing key points at its table. Unusual
// but legal settings are warnings (Job.Warnings), never errors.
//
// # Sweeps
//
// Each key of [sweep] other than zip and replicates is a parameter, kept in
// file order:
//
//	L = [8, 16, 32]                          # a list: integers, floats, strings or booleans
//	T = { start = 2.0, stop = 2.6, num = 13 } # linspace, both ends included
//	h = { start = 0, stop = 1, step = 0.25 }  # 0, 0.25, ..., 1
//	n = { start = 8, stop = 64, step = 8 }    # integer bounds and step: integers
//	J = { start = 1e-3, stop = 1, num = 4, log = true } # 0.001, 0.01, 0.1, 1
//	zip = [["a", "b"]]                        # a and b vary together (equal lengths)
//	replicates = 10                           # each point 10 times, one seed each
//
// A list mixing integers and floats holds floats; a single scalar is a
// one-value parameter. A step range ends at the grid point nearest to stop,
// so stop is included within half a step of tolerance (a warning tells when
// stop is not on the grid). Computed floats are rounded to 15 significant
// digits, so 0.1·3 is 0.3; range ends are exactly start and stop.
//
// The expansion order is fixed: the cartesian product of the axes (each
// parameter, or each zip group placed at its first parameter) in file order,
// the last axis varying fastest, replicates innermost. Task.Index is the
// position in that order and Task.Seed is Seed(job.seed, Index), so results
// never depend on the number of ranks or on which task finished first.
//
// # Commands
//
// [task].command is a template: {name} is a parameter's value, {seed},
// {replicate} and {index} the task's own, and {{ and }} are literal braces
// (awk 'BEGIN {{ print {x} }}'). Floats are written as the shortest decimal
// that reads back to the same float64, so rerunning a printed command is
// exact; strings are shell-quoted when needed.
package jobs
