package slurm

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rankhub/rankhub/internal/batch/batchtest"
	"github.com/rankhub/rankhub/jobs"
)

func dur(d time.Duration) jobs.Duration { return jobs.Duration{Duration: d} }

func minimalJob() *jobs.Job {
	return &jobs.Job{Job: jobs.JobSpec{Name: "hello", Scheduler: jobs.SchedSLURM, Ranks: 4}}
}

func launch() jobs.Launch {
	return jobs.Launch{
		JobDir:      "/scratch/alice/.rankhub/hello-20260101T000000",
		RankCommand: []string{"/opt/rankhub/bin/rankhub", "rank", "--job-dir", "/scratch/alice/.rankhub/hello-20260101T000000"},
		Env:         map[string]string{"RANKHUB_JOB_DIR": "/scratch/alice/.rankhub/hello-20260101T000000"},
	}
}

func fullJob() *jobs.Job {
	return &jobs.Job{
		File: "/home/alice/ising study/job.toml",
		Job: jobs.JobSpec{
			Name:         `Ising "L=64" it's`,
			Scheduler:    jobs.SchedSLURM,
			Ranks:        64,
			RanksPerNode: 32,
			CPUsPerRank:  2,
			Memory:       "4GB",
			Walltime:     dur(26*time.Hour + 30*time.Minute + 5*time.Second),
			Partition:    "compute",
			Account:      "proj123",
			QoS:          "normal",
			Email:        "alice@example.org",
			MailType:     "END,FAIL",
			Output:       "/home/alice/ising study/out-%j.log",
			Error:        "/home/alice/ising study/err-%j.log",
			Setup:        []string{"module load gcc/12", `echo "starting $SLURM_JOB_ID"`},
			Env:          map[string]string{"OMP_NUM_THREADS": "2", "GREETING": `it's a "test" $HOME`},
			Directives:   []string{"--constraint=ib", "#SBATCH --exclusive"},
			Workdir:      "runs/L64",
			SignalLead:   dur(90 * time.Second),
		},
	}
}

func TestScriptGolden(t *testing.T) {
	dir := t.TempDir()
	tmpl := filepath.Join(dir, "custom.tmpl")
	if err := os.WriteFile(tmpl, []byte(`#!/bin/bash
{{range .Directives}}#SBATCH {{.}}
{{end}}# custom template for {{quote .Job.Job.Name}} with {{.Job.Job.Ranks}} ranks
cd {{.Workdir}}
{{range .Exports}}{{.}}
{{end}}{{.Srun}}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	custom := minimalJob()
	custom.File = filepath.Join(dir, "job.toml")
	custom.Job.Template = "custom.tmpl"

	for _, tc := range []struct {
		golden string
		job    *jobs.Job
	}{
		{"minimal.sbatch", minimalJob()},
		{"full.sbatch", fullJob()},
		{"custom.sbatch", custom},
	} {
		t.Run(tc.golden, func(t *testing.T) {
			got, err := Script(tc.job, launch())
			if err != nil {
				t.Fatal(err)
			}
			// The custom job lives in a temp dir; make its path stable.
			got = strings.ReplaceAll(got, dir, "/TMP")
			batchtest.Golden(t, tc.golden, got)
		})
	}
}

func TestScriptDetails(t *testing.T) {
	got, err := Script(fullJob(), launch())
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`#SBATCH --job-name="Ising \"L=64\" it's"`,
		"#SBATCH --ntasks=64\n",
		"#SBATCH --nodes=2\n",
		"#SBATCH --ntasks-per-node=32\n",
		"#SBATCH --cpus-per-task=2\n",
		"#SBATCH --mem=4G\n",
		"#SBATCH --time=1-02:30:05\n",
		"#SBATCH --signal=B:USR1@90\n",
		`#SBATCH --output="/home/alice/ising study/out-%j.log"`,
		"#SBATCH --exclusive\n",
		`export GREETING='it'\''s a "test" $HOME'`,
		"cd '/home/alice/ising study/runs/L64'\n",
		"srun --kill-on-bad-exit=1 /opt/rankhub/bin/rankhub rank --job-dir",
		"trap 'rankhub_forward USR1' USR1",
		"trap 'rankhub_forward TERM' TERM",
		"> /scratch/alice/.rankhub/hello-20260101T000000/scheduler-id",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("script lacks %q:\n%s", want, got)
		}
	}
	// All directives must precede the first command.
	lines := strings.Split(got, "\n")
	seenCmd := false
	for _, l := range lines[1:] {
		if strings.HasPrefix(l, "#SBATCH") && seenCmd {
			t.Errorf("directive %q after a command", l)
		}
		if l != "" && !strings.HasPrefix(l, "#") {
			seenCmd = true
		}
	}
}

func TestScriptDefaultOutput(t *testing.T) {
	l := launch()
	l.JobDir = "/scratch/50% done"
	got, err := Script(minimalJob(), l)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(got, `#SBATCH --output="/scratch/50%% done/slurm-%j.out"`) {
		t.Errorf("default output wrong:\n%s", got)
	}
	if !strings.Contains(got, "#SBATCH --signal=B:USR1@120\n") {
		t.Errorf("default signal lead missing:\n%s", got)
	}
	if strings.Contains(got, "--time") {
		t.Errorf("no walltime given, yet --time rendered")
	}
}

func TestScriptErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*jobs.Job, *jobs.Launch)
		want string
	}{
		{"no ranks", func(j *jobs.Job, _ *jobs.Launch) { j.Job.Ranks = 0 }, "job.ranks"},
		{"newline in name", func(j *jobs.Job, _ *jobs.Launch) { j.Job.Name = "a\n#SBATCH --x" }, "job.name"},
		{"newline in directive", func(j *jobs.Job, _ *jobs.Launch) { j.Job.Directives = []string{"--a\nrm -rf /"} }, "job.directives[0]"},
		{"bad env name", func(j *jobs.Job, _ *jobs.Launch) { j.Job.Env = map[string]string{"A B": "x"} }, "job.env"},
		{"bad memory", func(j *jobs.Job, _ *jobs.Launch) { j.Job.Memory = "lots" }, "job.memory"},
		{"no command", func(_ *jobs.Job, l *jobs.Launch) { l.RankCommand = nil }, "rank command"},
		{"no jobdir", func(_ *jobs.Job, l *jobs.Launch) { l.JobDir = "" }, "job directory"},
		{"missing template", func(j *jobs.Job, _ *jobs.Launch) { j.Job.Template = "/nonexistent/t.tmpl" }, "job.template"},
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

func TestScriptBadTemplate(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "bad.tmpl")
	if err := os.WriteFile(p, []byte("#!/bin/bash\n\n{{.NoSuchField}}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	j := minimalJob()
	j.Job.Template = p
	_, err := Script(j, launch())
	if err == nil || !strings.Contains(err.Error(), "bad.tmpl:3") {
		t.Fatalf("err = %v, want one naming bad.tmpl:3", err)
	}
}

// TestScriptRequeue: requeue is a decision. By default the script opts out
// (--no-requeue), so a node failure does not rerun a job whose result file
// already exists; with job.requeue the job may be requeued and a rerun
// (SLURM_RESTART_COUNT > 0) resumes the sweep instead of refusing the file.
// The rendered script runs under bash with a fake srun that prints what
// the ranks would see.
func TestScriptRequeue(t *testing.T) {
	bin := t.TempDir()
	if err := os.WriteFile(filepath.Join(bin, "srun"), []byte("#!/bin/sh\necho \"resume=${RANKHUB_RESUME:-}\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	run := func(t *testing.T, script, restarts string) string {
		t.Helper()
		p := filepath.Join(t.TempDir(), "job.sbatch")
		if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("bash", p)
		cmd.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"), "SLURM_RESTART_COUNT="+restarts)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("script: %v\n%s", err, out)
		}
		return string(out)
	}
	yes, no := true, false
	for _, tc := range []struct {
		name      string
		requeue   *bool
		directive string
		resumed   string // output of the fake srun on a restart
	}{
		{"default", nil, "#SBATCH --no-requeue\n", "resume=\n"},
		{"false", &no, "#SBATCH --no-requeue\n", "resume=\n"},
		{"true", &yes, "#SBATCH --requeue\n", "resume=1\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j, l := minimalJob(), launch()
			l.JobDir = t.TempDir()
			j.Job.Requeue = tc.requeue
			got, err := Script(j, l)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(got, tc.directive) {
				t.Errorf("script lacks %q:\n%s", tc.directive, got)
			}
			if out := run(t, got, "0"); out != "resume=\n" {
				t.Errorf("first run: srun saw %q, want no resume", out)
			}
			if out := run(t, got, "1"); out != tc.resumed {
				t.Errorf("requeued run (SLURM_RESTART_COUNT=1): srun saw %q, want %q", out, tc.resumed)
			}
		})
	}
}
