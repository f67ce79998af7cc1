package pbs

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rankhub/rankhub/internal/batch"
	"github.com/rankhub/rankhub/internal/batch/batchtest"
	"github.com/rankhub/rankhub/jobs"
)

func dur(d time.Duration) jobs.Duration { return jobs.Duration{Duration: d} }

func minimalJob() *jobs.Job {
	return &jobs.Job{Job: jobs.JobSpec{Name: "hello", Scheduler: jobs.SchedPBS, Ranks: 4}}
}

func launch() jobs.Launch {
	return jobs.Launch{
		JobDir:      "/scratch/alice/.rankhub/hello-20260101T000000",
		RankCommand: []string{"/opt/rankhub/bin/rankhub", "rank", "--job-dir", "/scratch/alice/.rankhub/hello-20260101T000000"},
		Env:         map[string]string{"RANKHUB_JOB_DIR": "/scratch/alice/.rankhub/hello-20260101T000000"},
	}
}

func fullJob(dialect, starter string) *jobs.Job {
	return &jobs.Job{
		File: "/home/alice/ising study/job.toml",
		Job: jobs.JobSpec{
			Name:         `2D Ising "L=64" it's`,
			Scheduler:    jobs.SchedPBS,
			Ranks:        64,
			RanksPerNode: 32,
			CPUsPerRank:  2,
			Memory:       "4GB",
			Walltime:     dur(26*time.Hour + 30*time.Minute + 5*time.Second),
			Partition:    "compute",
			Account:      "proj123",
			Email:        "alice@example.org",
			MailType:     "END,FAIL",
			Output:       "/home/alice/ising study/out.log",
			Setup:        []string{"module load gcc/12", `echo "starting $PBS_JOBID"`},
			Env:          map[string]string{"OMP_NUM_THREADS": "2", "GREETING": `it's a "test" $HOME`},
			Directives:   []string{"-l place=scatter", "#PBS -r n"},
			Workdir:      "runs/L64",
			PBSDialect:   dialect,
			Starter:      starter,
		},
	}
}

func TestScriptGolden(t *testing.T) {
	dir := t.TempDir()
	tmpl := filepath.Join(dir, "custom.tmpl")
	if err := os.WriteFile(tmpl, []byte(`#!/bin/bash
{{range .Directives}}#PBS {{.}}
{{end}}# custom {{.Dialect}} template for {{.Name}} with {{.Ranks}} ranks via {{.Starter}}
cd "$PBS_O_WORKDIR"
rankhub_pids=()
{{.Start}}
wait
`), 0o644); err != nil {
		t.Fatal(err)
	}
	custom := minimalJob()
	custom.File = filepath.Join(dir, "job.toml")
	custom.Job.Template = "custom.tmpl"
	torqueMin := minimalJob()
	torqueMin.Job.PBSDialect = DialectTorque

	for _, tc := range []struct {
		golden string
		job    *jobs.Job
	}{
		{"minimal-pro.pbs", minimalJob()},
		{"minimal-torque.pbs", torqueMin},
		{"full-pro-mpiexec.pbs", fullJob("", "")},
		{"full-torque-pbsdsh.pbs", fullJob(DialectTorque, "")},
		{"full-pro-tmrsh.pbs", fullJob(DialectPro, StarterTmrsh)},
		{"custom.pbs", custom},
	} {
		t.Run(tc.golden, func(t *testing.T) {
			got, err := Script(tc.job, launch())
			if err != nil {
				t.Fatal(err)
			}
			got = strings.ReplaceAll(got, dir, "/TMP")
			batchtest.Golden(t, tc.golden, got)
		})
	}
}

func TestScriptDetails(t *testing.T) {
	pro, err := Script(fullJob("", ""), launch())
	if err != nil {
		t.Fatal(err)
	}
	torque, err := Script(fullJob(DialectTorque, ""), launch())
	if err != nil {
		t.Fatal(err)
	}
	tmrsh, err := Script(fullJob(DialectPro, StarterTmrsh), launch())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		script string
		wants  []string
	}{
		{pro, []string{
			"#PBS -N r2D_Ising__L_64__it_s\n",
			"#PBS -l select=2:ncpus=64:mpiprocs=32:mem=4gb\n",
			"#PBS -l walltime=26:30:05\n",
			"#PBS -q compute\n", "#PBS -A proj123\n", "#PBS -M alice@example.org\n", "#PBS -m ae\n",
			"#PBS -j oe\n", `#PBS -o "/home/alice/ising study/out.log"`, "#PBS -l place=scatter\n", "#PBS -r n\n",
			`cd "${PBS_O_WORKDIR:-$PWD}"`, "cd '/home/alice/ising study/runs/L64'\n",
			`export GREETING='it'\''s a "test" $HOME'`,
			`"${rankhub_mpiexec[@]}" -n 64 /usr/bin/env RANKHUB_SIZE=64 'GREETING=it'\''s a "test" $HOME' OMP_NUM_THREADS=2`,
			"trap 'rankhub_forward TERM' TERM",
		}},
		{torque, []string{
			"#PBS -N r2D_Ising__L_64\n", "#PBS -l nodes=2:ppn=64\n", "#PBS -l mem=8gb\n",
			"pbsdsh -c 64 -v /usr/bin/env RANKHUB_SIZE=64",
		}},
		{tmrsh, []string{
			`mapfile -t rankhub_slots < "$PBS_NODEFILE"`,
			`pbs_tmrsh "${rankhub_slots[rankhub_i * 2]}" /usr/bin/env RANKHUB_RANK="$rankhub_i" RANKHUB_SIZE=64`,
		}},
	} {
		for _, w := range c.wants {
			if !strings.Contains(c.script, w) {
				t.Errorf("script lacks %q:\n%s", w, c.script)
			}
		}
	}
}

func TestJobName(t *testing.T) {
	for _, tc := range []struct{ in, dialect, want string }{
		{"hello", DialectPro, "hello"},
		{"", DialectPro, "rankhub"},
		{"2D ising", DialectPro, "r2D_ising"},
		{`it's "quoted"`, DialectPro, "it_s__quoted_"},
		{"a-very-long-job-name-indeed", DialectTorque, "a-very-long-job"},
		{"_x", DialectTorque, "r_x"},
		{"énergie", DialectPro, "r_nergie"},
		{strings.Repeat("x", 300), DialectPro, strings.Repeat("x", 236)},
	} {
		if got := JobName(tc.in, tc.dialect); got != tc.want {
			t.Errorf("JobName(%q, %s) = %q, want %q", tc.in, tc.dialect, got, tc.want)
		}
		got := JobName(tc.in, tc.dialect)
		if c := got[0]; !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			t.Errorf("JobName(%q) = %q does not start with a letter", tc.in, got)
		}
	}
}

func TestMailPoints(t *testing.T) {
	for in, want := range map[string]string{"END,FAIL": "ae", "ALL": "abe", "BEGIN": "b", "NONE": "n", "abe": "abe", "n": "n"} {
		got, err := mailPoints(in)
		if err != nil || got != want {
			t.Errorf("mailPoints(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := mailPoints("SOMETIMES"); err == nil || !strings.Contains(err.Error(), "job.mail_type") {
		t.Errorf("bad mail type: err = %v", err)
	}
}

func TestLayout(t *testing.T) {
	for _, tc := range []struct {
		ranks, nodes, perNode, cpus int
		dialect, want               string
	}{
		{4, 0, 0, 0, DialectPro, "select=1:ncpus=4:mpiprocs=4"},
		{5, 2, 0, 0, DialectPro, "select=2:ncpus=3:mpiprocs=3"},
		{5, 0, 2, 3, DialectPro, "select=3:ncpus=6:mpiprocs=2"},
		{4, 0, 0, 0, DialectTorque, "nodes=1:ppn=4"},
		{8, 0, 4, 2, DialectTorque, "nodes=2:ppn=8"},
	} {
		j := minimalJob()
		j.Job.Ranks, j.Job.Nodes, j.Job.RanksPerNode, j.Job.CPUsPerRank, j.Job.PBSDialect = tc.ranks, tc.nodes, tc.perNode, tc.cpus, tc.dialect
		got, err := Script(j, launch())
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(got, "#PBS -l "+tc.want+"\n") {
			t.Errorf("%+v: want -l %s in\n%s", tc, tc.want, got)
		}
	}
}

func TestScriptErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*jobs.Job, *jobs.Launch)
		want string
	}{
		{"no ranks", func(j *jobs.Job, _ *jobs.Launch) { j.Job.Ranks = 0 }, "job.ranks"},
		{"dialect", func(j *jobs.Job, _ *jobs.Launch) { j.Job.PBSDialect = "sge" }, "job.pbs_dialect"},
		{"starter", func(j *jobs.Job, _ *jobs.Launch) { j.Job.Starter = "ssh" }, "job.starter"},
		{"newline in queue", func(j *jobs.Job, _ *jobs.Launch) { j.Job.Queue = "q\n#PBS -x" }, "job.queue"},
		{"newline in setup", func(j *jobs.Job, _ *jobs.Launch) { j.Job.Setup = []string{"ok", "a\nb"} }, "job.setup[1]"},
		{"bad env", func(j *jobs.Job, _ *jobs.Launch) { j.Job.Env = map[string]string{"1X": "y"} }, "job.env"},
		{"bad memory", func(j *jobs.Job, _ *jobs.Launch) { j.Job.Memory = "4 parsecs" }, "job.memory"},
		{"no command", func(_ *jobs.Job, l *jobs.Launch) { l.RankCommand = nil }, "rank command"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j, l := minimalJob(), launch()
			tc.edit(j, &l)
			_, err := Script(j, l)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one naming %q", err, tc.want)
			}
		})
	}
}

func TestPBSMemory(t *testing.T) {
	for in, want := range map[string]string{"4G": "4gb", "500MB": "500mb", "2GiB": "2gb", "1024": "1024mb", "1t": "1tb"} {
		if got, err := pbsMemory(in, 1); err != nil || got != want {
			t.Errorf("pbsMemory(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

// TestStartersRun runs the rendered start code of every starter with bash,
// fake starter programs on PATH and a fake PBS environment, and checks the
// ranks got their identity, the environment and the working directory.
func TestStartersRun(t *testing.T) {
	for _, starter := range []string{StarterMpiexec, StarterPbsdsh, StarterTmrsh} {
		t.Run(starter, func(t *testing.T) {
			dir := t.TempDir()
			bin := filepath.Join(dir, "bin")
			work := filepath.Join(dir, "work dir")
			out := filepath.Join(dir, "out")
			for _, d := range []string{bin, work, out} {
				if err := os.MkdirAll(d, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			// Fakes: run the command n times locally with the identity
			// variable the real starter sets.
			fakes := map[string]string{
				"mpiexec":   `[ "$1" = -n ] || exit 9; n=$2; shift 2; for ((i=0;i<n;i++)); do OMPI_COMM_WORLD_RANK=$i "$@" & done; wait`,
				"pbsdsh":    `[ "$1" = -c ] || exit 9; n=$2; shift 3; for ((i=0;i<n;i++)); do PBS_VNODENUM=$i PBS_TASKNUM=$((100+i)) "$@" & done; wait`,
				"pbs_tmrsh": `host=$1; shift; cd /; exec "$@"`,
			}
			for name, body := range fakes {
				if err := os.WriteFile(filepath.Join(bin, name), []byte("#!/bin/bash\n"+body+"\n"), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			nodefile := filepath.Join(dir, "nodefile")
			if err := os.WriteFile(nodefile, []byte("localhost\nlocalhost\nlocalhost\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			rank := filepath.Join(dir, "rank.sh")
			if err := os.WriteFile(rank, []byte(`#!/bin/bash
id=${RANKHUB_RANK:-${OMPI_COMM_WORLD_RANK:-${PBS_VNODENUM:-x}}}
printf '%s|%s|%s|%s\n' "$id" "$RANKHUB_SIZE" "$PWD" "$GREETING" > "$OUT/rank-$id"
`), 0o755); err != nil {
				t.Fatal(err)
			}
			j := minimalJob()
			j.Job.Ranks = 3
			j.Job.Starter = starter
			j.Job.Workdir = work
			j.Job.Env = map[string]string{"GREETING": `it's "x" $HOME`, "OUT": out}
			l := jobs.Launch{JobDir: filepath.Join(dir, "job dir"), RankCommand: []string{rank}}
			script, err := Script(j, l)
			if err != nil {
				t.Fatal(err)
			}
			sp := filepath.Join(dir, "job.pbs")
			if err := os.WriteFile(sp, []byte(script), 0o644); err != nil {
				t.Fatal(err)
			}
			env := "env -i PATH=" + batch.ShellQuote(bin+":/usr/bin:/bin") + " PBS_NODEFILE=" + batch.ShellQuote(nodefile) +
				" PBS_O_WORKDIR=/ PBS_JOBID=77.server /bin/bash " + batch.ShellQuote(sp)
			batchtest.Bash(t, env)
			for i := range 3 {
				b, err := os.ReadFile(filepath.Join(out, "rank-"+strconv.Itoa(i)))
				if err != nil {
					t.Fatalf("rank %d did not run: %v\n%s", i, err, script)
				}
				want := strconv.Itoa(i) + "|3|" + work + `|it's "x" $HOME` + "\n"
				if string(b) != want {
					t.Errorf("rank %d wrote %q, want %q", i, b, want)
				}
			}
			id, _ := os.ReadFile(filepath.Join(l.JobDir, "scheduler-id"))
			if string(id) != "77.server\n" {
				t.Errorf("scheduler-id = %q", id)
			}
		})
	}
}
