package jobs

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// diagLines returns the diagnostics of an *Errors, one string each.
func diagLines(t *testing.T, err error) []string {
	t.Helper()
	if err == nil {
		return nil
	}
	var e *Errors
	if !errors.As(err, &e) {
		t.Fatalf("error is %T, want *Errors: %v", err, err)
	}
	out := make([]string, len(e.Diags))
	for i, d := range e.Diags {
		out[i] = d.String()
	}
	return out
}

const jobHead = "[job]\nranks = 2\n"

// TestParseErrors checks every kind of error with its exact position. The
// file is named t.toml; each want line is a whole diagnostic.
func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{"syntax", "[job]\nranks = = 3\n",
			[]string{"t.toml:2:9: job.ranks: syntax error: expected value but found '=' instead"}},
		{"duplicate key", "[job]\nranks = 2\nranks = 3\n",
			[]string{"t.toml:3:11: job.ranks: syntax error: Key 'job.ranks' has already been defined."}},
		{"unknown key with hint", jobHead + "rank_per_node = 3\n",
			[]string{`t.toml:3:1: job.rank_per_node: unknown key (did you mean "ranks_per_node"?)`}},
		{"unknown key lists known", "[results]\nzzz = 1\n[job]\nranks = 2\n",
			[]string{"t.toml:2:1: results.zzz: unknown key (known: flush_interval, flush_rows, group_by, path, text_limit)"}},
		{"unknown table", "[jobs]\nranks = 2\n",
			[]string{"t.toml:1:1: job.ranks: missing: a job needs at least 2 ranks (rank 0 is the hub)",
				`t.toml:1:2: jobs: unknown key (did you mean "job"?)`}},
		{"key outside table", "ranks = 2\n",
			[]string{"t.toml:1:1: ranks: key outside any table: put it under [job]",
				"t.toml:1:1: job.ranks: missing: a job needs at least 2 ranks (rank 0 is the hub)"}},
		{"table of wrong type", "job = 3\n",
			[]string{"t.toml:1:1: job: want a table [job], got integer"}},
		{"wrong type, no cascade", "[job]\nranks = \"4\"\n",
			[]string{"t.toml:2:1: job.ranks: want an integer, got string"}},
		{"too few ranks", "[job]\n  ranks = 1\n",
			[]string{"t.toml:2:3: job.ranks: 1 is too few: a job needs at least 2 ranks (rank 0 is the hub)"}},
		{"missing ranks points at table", "# a job\n[ job ]\nname = \"x\"\n",
			[]string{"t.toml:2:3: job.ranks: missing: a job needs at least 2 ranks (rank 0 is the hub)"}},
		{"dotted key at top level", "job.ranks = 1\n",
			[]string{"t.toml:1:5: job.ranks: 1 is too few: a job needs at least 2 ranks (rank 0 is the hub)"}},
		{"quoted key", "[job]\n\"ranks\" = 1\n",
			[]string{"t.toml:2:1: job.ranks: 1 is too few: a job needs at least 2 ranks (rank 0 is the hub)"}},
		{"negative ranks_per_node", jobHead + "ranks_per_node = -1\n",
			[]string{"t.toml:3:1: job.ranks_per_node: -1 is negative"}},
		{"nodes too few", "[job]\nranks = 9\nnodes = 2\nranks_per_node = 4\n",
			[]string{"t.toml:3:1: job.nodes: 2 nodes × 4 ranks_per_node hold 8 ranks, fewer than ranks = 9"}},
		{"bad walltime", jobHead + "walltime = \"2 hours\"\n",
			[]string{`t.toml:3:1: job.walltime: duration "2 hours": want forms such as "2h", "90m", "1h30m", "2d", "1:30:00" or "1-00:00:00"`}},
		{"walltime bare number", jobHead + "walltime = \"90\"\n",
			[]string{`t.toml:3:1: job.walltime: duration "90" has no unit: write "90m", "90s" or an integer number of seconds`}},
		{"walltime zero", jobHead + "walltime = 0\n",
			[]string{"t.toml:3:1: job.walltime: must be positive (leave it out for the scheduler's default)"}},
		{"walltime float", jobHead + "walltime = 1.5\n",
			[]string{`t.toml:3:1: job.walltime: want a duration string such as "2h" or an integer number of seconds, got float`}},
		{"unknown scheduler", jobHead + "scheduler = \"sge\"\n",
			[]string{`t.toml:3:1: job.scheduler: unknown scheduler "sge" (want local, slurm, pbs)`}},
		{"unknown transport", jobHead + "transport = \"udp\"\n",
			[]string{`t.toml:3:1: job.transport: unknown transport "udp" (want auto, tcp)`}},
		{"bad network", jobHead + "network = \"10.1.0.0/33\"\n",
			[]string{`t.toml:3:1: job.network: "10.1.0.0/33" is not a network in CIDR form (e.g. "10.1.0.0/16") nor an interface name`}},
		{"network with blank", jobHead + "network = \"eth 1\"\n",
			[]string{`t.toml:3:1: job.network: "eth 1" is not an interface name (at most 15 characters, no blanks or slashes) nor a network in CIDR form`}},
		{"requeue not bool", jobHead + "requeue = \"yes\"\n",
			[]string{`t.toml:3:1: job.requeue: want true or false, got string`}},
		{"unknown pbs_dialect", jobHead + "scheduler = \"pbs\"\nwalltime = \"1h\"\npbs_dialect = \"lsf\"\n",
			[]string{`t.toml:5:1: job.pbs_dialect: unknown pbs_dialect "lsf" (want pro, torque)`}},
		{"unknown starter", jobHead + "scheduler = \"pbs\"\nwalltime = \"1h\"\nstarter = \"ssh\"\n",
			[]string{`t.toml:5:1: job.starter: unknown starter "ssh" (want mpiexec, pbsdsh, pbs_tmrsh)`}},
		{"bad name", "[job]\nname = \"my job\"\nranks = 2\n",
			[]string{`t.toml:2:1: job.name: "my job" may hold only letters, digits, _ and - (it names directories and scheduler jobs); for example "my_job"`}},
		{"negative seed", jobHead + "seed = -1\n",
			[]string{"t.toml:3:1: job.seed: -1 is negative"}},
		{"bad memory", jobHead + "memory = \"lots\"\n",
			[]string{`t.toml:3:1: job.memory: memory "lots": want a size such as "4G" or "500M"`}},
		{"reserved env", jobHead + "[job.env]\nOK = 1\nRANKHUB_RANK = \"3\"\n",
			[]string{"t.toml:5:1: job.env.RANKHUB_RANK: RANKHUB_* variables are set by rankhub"}},
		{"directive with newline", jobHead + "directives = [\"--a\\n--b\"]\n",
			[]string{"t.toml:3:1: job.directives: element 0 holds a line break: one directive per element"}},
		{"array element type", jobHead + "setup = [\"a\", 2]\n",
			[]string{"t.toml:3:1: job.setup: element 1: want a string, got integer"}},
		{"command and function", jobHead + "[task]\ncommand = \"true\"\nfunction = \"f\"\n",
			[]string{"t.toml:5:1: task.function: give command or function, not both"}},
		{"neither command nor function", jobHead + "[task]\noutputs = [\"x\"]\n",
			[]string{"t.toml:3:2: task: needs command (a shell command) or function (a Go function registered in job.program)"}},
		{"unknown placeholder", jobHead + "[task]\ncommand = \"run {L} {X} {X} {seed}\"\n[sweep]\nL = [1]\n",
			[]string{"t.toml:4:1: task.command: {X} is not a sweep parameter (placeholders: L, seed, replicate, index)"}},
		{"unclosed brace", jobHead + "[task]\ncommand = \"echo {L\"\n",
			[]string{"t.toml:4:1: task.command: unclosed { at byte 5: write {{ for a literal brace"}},
		{"lone closing brace", jobHead + "[task]\ncommand = \"echo }\"\n",
			[]string{"t.toml:4:1: task.command: unmatched } at byte 5: write }} for a literal brace"}},
		{"not an identifier placeholder", jobHead + "[task]\ncommand = \"awk '{print $1}'\"\n",
			[]string{"t.toml:4:1: task.command: {print $1} at byte 5 is not a placeholder: names are identifiers; write {{ and }} for literal braces"}},
		{"bad outputs", jobHead + "[task]\nfunction = \"f\"\noutputs = [\"e\", \"1x\", \"e\", \"seed\"]\n",
			[]string{
				`t.toml:5:1: task.outputs: element 1: "1x" is not an identifier ([A-Za-z_][A-Za-z0-9_]*)`,
				`t.toml:5:1: task.outputs: element 2: "e" is listed twice`,
				`t.toml:5:1: task.outputs: element 3: "seed" is reserved for rankhub's own column`,
			}},
		{"output is a param", jobHead + "[task]\nfunction = \"f\"\noutputs = [\"L\"]\n[sweep]\nL = [1]\n",
			[]string{`t.toml:5:1: task.outputs: element 0: "L" is also a sweep parameter; result columns need distinct names`}},
		{"unknown parse", jobHead + "[task]\nfunction = \"f\"\nparse = \"json\"\n",
			[]string{`t.toml:5:1: task.parse: unknown parse "json" (want last-line, key-value, table)`}},
		{"table of a function", jobHead + "[task]\nfunction = \"f\"\nparse = \"table\"\n",
			[]string{`t.toml:5:1: task.parse: "table" reads a shell command's stdout; a function returns its outputs itself`}},
		{"table with adaptive replicates", jobHead + "[task]\ncommand = \"echo 1\"\noutputs = [\"e\"]\nparse = \"table\"\n[sweep]\nL = [1]\nreplicates = { min = 2, max = 4, sem = { e = 0.1 } }\n",
			[]string{`t.toml:6:1: task.parse: "table" outputs are lists; adaptive replicates need one number per output (use last-line or key-value)`}},
		{"text_limit too small", jobHead + "[task]\nfunction = \"f\"\n[results]\ntext_limit = 10\n",
			[]string{`t.toml:6:1: results.text_limit: 10 bytes: keep at least 64 of each task's stdout and stderr (0 = the default, 32 KiB)`}},
		{"tls and max_frame", "[job]\nranks = 2\ntls = \"some\"\nmax_frame = \"64\"\n",
			[]string{
				`t.toml:3:1: job.tls: unknown tls "some" (want clients, all, off)`,
				`t.toml:4:1: job.max_frame: max_frame "64": give a unit, e.g. "512MiB" or "8GiB"`,
			}},
		{"max_frame too small", "[job]\nranks = 2\nmax_frame = \"4KiB\"\n",
			[]string{`t.toml:3:1: job.max_frame: max_frame "4KiB" is below the minimum 1MiB`}},
		{"negative retries", jobHead + "[task]\nfunction = \"f\"\nretries = -2\n",
			[]string{`t.toml:5:1: task.retries: -2 is negative`}},
		{"group_by not a param", jobHead + "[task]\nfunction = \"f\"\n[sweep]\nL = [1]\n[results]\ngroup_by = [\"L\", \"T\"]\n",
			[]string{`t.toml:8:1: results.group_by: element 1: "T" is not a sweep parameter`}},
		{"sweep without task", jobHead + "[sweep]\nL = [1]\n",
			[]string{"t.toml:3:2: sweep: a sweep needs a [task] to run at each point"}},
		{"mixed kinds", jobHead + "[task]\nfunction = \"f\"\n[sweep]\nU = [1, \"a\"]\n",
			[]string{"t.toml:6:1: sweep.U: mixes integer and string values: one kind per parameter (integers and floats may mix)"}},
		{"empty list", jobHead + "[task]\nfunction = \"f\"\n[sweep]\nU = []\n",
			[]string{"t.toml:6:1: sweep.U: no values"}},
		{"non-finite", jobHead + "[task]\nfunction = \"f\"\n[sweep]\nU = [1.0, nan]\n",
			[]string{"t.toml:6:1: sweep.U: element 1: NaN is not a finite number"}},
		{"reserved param", jobHead + "[task]\nfunction = \"f\"\n[sweep]\nseed = [1, 2]\n",
			[]string{`t.toml:6:1: sweep.seed: "seed" is reserved: {seed}, {replicate} and {index} are set by rankhub`}},
		{"param not an identifier", jobHead + "[task]\nfunction = \"f\"\n[sweep]\n\"a b\" = [1, 2]\n",
			[]string{`t.toml:6:1: sweep."a b": parameter name must be an identifier ([A-Za-z_][A-Za-z0-9_]*) to be written {a b}`}},
		{"range errors at inner keys", jobHead + "[task]\nfunction = \"f\"\n[sweep]\nT = { start = 1, stop = 2, num = 0 }\nV = { start = \"a\", stop = 2, step = 0 }\n",
			[]string{
				"t.toml:6:28: sweep.T.num: 0 is out of range: want 1 to 1000000",
				"t.toml:7:7: sweep.V.start: want a number, got string",
				"t.toml:7:30: sweep.V.step: step must not be zero",
			}},
		{"range needs num or step", jobHead + "[task]\nfunction = \"f\"\n[sweep]\nT = {start=1, stop=2}\n",
			[]string{"t.toml:6:1: sweep.T: range needs num (how many values) or step"}},
		{"range with both", jobHead + "[task]\nfunction = \"f\"\n[sweep]\nT = {start=1, stop=2, num=3, step=1}\n",
			[]string{"t.toml:6:30: sweep.T.step: give num or step, not both"}},
		{"range unknown key", jobHead + "[task]\nfunction = \"f\"\n[sweep]\nT = {start=1, stop=2, nun=3}\n",
			[]string{"t.toml:6:1: sweep.T: range needs num (how many values) or step",
				`t.toml:6:23: sweep.T.nun: unknown key (did you mean "num"?)`}},
		{"range in sub-table", jobHead + "[task]\nfunction = \"f\"\n[sweep.T]\nstart = 1\nstop = 2\nlog = true\nstep = 1\n",
			[]string{"t.toml:8:1: sweep.T.log: a log range takes num, not step"}},
		{"log range not positive", jobHead + "[task]\nfunction = \"f\"\n[sweep]\nJ = {start=0, stop=1, num=3, log=true}\n",
			[]string{"t.toml:6:1: sweep.J: a log range needs positive start and stop"}},
		{"step goes away", jobHead + "[task]\nfunction = \"f\"\n[sweep]\nn = {start=10, stop=1, step=2}\n",
			[]string{"t.toml:6:24: sweep.n.step: step 2 moves away from stop 1"}},
		{"zip unequal", jobHead + "[task]\nfunction = \"f\"\n[sweep]\na = [1, 2]\nb = [1, 2, 3]\nzip = [[\"a\", \"b\"]]\n",
			[]string{`t.toml:8:1: sweep.zip: group 0: "a" has 2 values but "b" has 3; zipped parameters need equal lengths`}},
		{"zip unknown and twice", jobHead + "[task]\nfunction = \"f\"\n[sweep]\na = [1, 2]\nb = [1, 2]\nzip = [[\"a\", \"c\"], [\"a\", \"b\"]]\n",
			[]string{`t.toml:8:1: sweep.zip: group 0: "c" is not a sweep parameter`,
				`t.toml:8:1: sweep.zip: "a" is in groups 0 and 1: a parameter may be zipped once`}},
		{"replicates", jobHead + "[task]\nfunction = \"f\"\n[sweep]\nreplicates = 0\n",
			[]string{"t.toml:6:1: sweep.replicates: 0 is out of range: want 1 to 1000000000"}},
		{"too many tasks", jobHead + "[task]\nfunction = \"f\"\n[sweep]\na = {start=0, stop=1, num=100000}\nb = {start=0, stop=1, num=100000}\n",
			[]string{"t.toml:5:2: sweep: sweep expands to 10000000000 tasks; at most 1000000000"}},
		{"all together, in file order", "[job]\nranks = 1\nfoo = 2\nscheduler = \"x\"\n[task]\ncommand = \"echo {Z}\"\n",
			[]string{
				"t.toml:2:1: job.ranks: 1 is too few: a job needs at least 2 ranks (rank 0 is the hub)",
				"t.toml:3:1: job.foo: unknown key (known: abort_on_error, account, cpus_per_rank, directives, email, env, error, group_readable, heartbeat, mail_type, max_frame, memory, name, network, nodes, output, partition, pbs_dialect, program, qos, queue, ranks, ranks_per_node, requeue, scheduler, seed, setup, signal_lead, starter, template, tls, transport, walltime, workdir)",
				`t.toml:4:1: job.scheduler: unknown scheduler "x" (want local, slurm, pbs)`,
				"t.toml:6:1: task.command: {Z} is not a sweep parameter (placeholders: seed, replicate, index)",
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			j, err := Parse("t.toml", []byte(tc.src))
			if err == nil {
				t.Fatalf("no error; job %+v", j.Job)
			}
			if j != nil {
				t.Errorf("a job came back with the error")
			}
			got := diagLines(t, err)
			if !slices.Equal(got, tc.want) {
				t.Errorf("diagnostics:\n got  %q\n want %q", got, tc.want)
			}
			if err.Error() != strings.Join(got, "\n") {
				t.Errorf("Error() = %q, want the diagnostics joined by newlines", err.Error())
			}
		})
	}
}

func TestOneLineFieldsRefuseLineBreaks(t *testing.T) {
	_, err := Parse("t.toml", []byte("[job]\nranks = 2\nqueue = \"a\\nb\"\naccount = \"x\\u0000y\"\n"))
	got := diagLines(t, err)
	want := []string{
		"t.toml:3:1: job.queue: holds a line break or NUL byte: it must fit on one line of the batch script",
		"t.toml:4:1: job.account: holds a line break or NUL byte: it must fit on one line of the batch script",
	}
	if !slices.Equal(got, want) {
		t.Errorf("got %q\nwant %q", got, want)
	}
}

// SLURM may send the walltime warning up to a minute early (sbatch(1),
// --signal), so a lead within a minute of the walltime may stop the job at
// its start: the user is told, at the line of signal_lead. Other
// schedulers, and leads that leave a minute, are quiet.
func TestSignalLeadWithinSLURMSlackWarns(t *testing.T) {
	for _, tc := range []struct {
		sched, walltime, lead string
		warn                  string
	}{
		{"slurm", "1m", "45s", `t.toml:6:1: job.signal_lead: 45s before the walltime 1m0s: SLURM may send its warning up to 1m0s early, at the start of the job`},
		{"slurm", "2m", "55s", ""},
		{"slurm", "1m", "60s", "not shorter than the walltime"},
		{"pbs", "1m", "45s", ""},
	} {
		text := fmt.Sprintf("[job]\nranks = 2\nscheduler = %q\npartition = \"p\"\nwalltime = %q\nsignal_lead = %q\n", tc.sched, tc.walltime, tc.lead)
		j, err := Parse("t.toml", []byte(text))
		if err != nil {
			t.Fatalf("%s: %v", text, err)
		}
		var got []string
		for _, w := range j.Warnings {
			if strings.Contains(w.String(), "signal_lead") {
				got = append(got, w.String())
			}
		}
		switch {
		case tc.warn == "" && len(got) > 0:
			t.Errorf("%s/%s/%s: warnings %q, want none", tc.sched, tc.walltime, tc.lead, got)
		case tc.warn != "" && (len(got) != 1 || !strings.Contains(got[0], tc.warn)):
			t.Errorf("%s/%s/%s: warnings %q, want one with %q", tc.sched, tc.walltime, tc.lead, got, tc.warn)
		}
	}
}
