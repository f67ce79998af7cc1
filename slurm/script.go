package slurm

import (
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/rankhub/rankhub/internal/batch"
	"github.com/rankhub/rankhub/jobs"
)

// defaultSignalLead is how long before the walltime SLURM warns the batch
// shell with USR1 when job.signal_lead is 0.
const defaultSignalLead = 120 * time.Second

// ScriptData is what the batch script template sees, the built-in one and a
// custom one from job.template alike. Every string field that ends up in
// the shell part is already quoted; Job and Launch give the raw values.
type ScriptData struct {
	Job    *jobs.Job   // the job as decoded
	Launch jobs.Launch // job directory, rank command, environment

	// Directives are the option strings of the #SBATCH lines, in order,
	// without the "#SBATCH " prefix (e.g. `--ntasks=4`), values quoted for
	// sbatch's directive parser. Verbatim job.directives come last.
	Directives []string
	// JobDir is the job directory, shell-quoted.
	JobDir string
	// SchedulerIDFile is <jobdir>/scheduler-id, shell-quoted.
	SchedulerIDFile string
	// Workdir is the directory the ranks start in, shell-quoted; "" when
	// neither job.workdir nor the job file is known (SLURM's submit
	// directory then applies).
	Workdir string
	// Exports are complete `export NAME='value'` lines: job.env overlaid by
	// the launch environment, sorted by name.
	Exports []string
	// Setup are job.setup lines, verbatim.
	Setup []string
	// RankCommand is the rank argv, shell-quoted and joined.
	RankCommand string
	// Srun is the complete step command: srun --kill-on-bad-exit=0|1 <rank command>.
	Srun string
	// SignalLead is the walltime warning lead in seconds.
	SignalLead int
	// Requeue is job.requeue: SLURM may requeue the job (--requeue) and a
	// requeued run resumes the sweep; false renders --no-requeue.
	Requeue bool
}

// builtinTemplate is the default batch script. The rank step runs in the
// background so that the batch shell can take USR1 (walltime warning from
// --signal=B:USR1@lead) and TERM (scancel, walltime) and forward them to
// the srun step, which forwards them to every rank.
const builtinTemplate = `#!/bin/bash
{{- range .Directives}}
#SBATCH {{.}}
{{- end}}
# Rendered by rankhub for job {{quote .Job.Job.Name}}.
set -euo pipefail

mkdir -p {{.JobDir}}
printf '%s\n' "${SLURM_JOB_ID:-unknown}" > {{.SchedulerIDFile}}
{{- if .Workdir}}
cd {{.Workdir}}
{{- end}}
{{- range .Exports}}
{{.}}
{{- end}}
{{- if .Requeue}}
# SLURM requeued this job (node failure, preemption): resume where it stopped
# (RANKHUB_RESUME is rank 0's --resume).
if [ "${SLURM_RESTART_COUNT:-0}" -gt 0 ]; then
	export RANKHUB_RESUME=1
fi
{{- end}}
{{- range .Setup}}
{{.}}
{{- end}}

rankhub_step=""
rankhub_forward() {
	echo "rankhub: batch shell got SIG$1, forwarding it to the ranks" >&2
	if [ -n "$rankhub_step" ]; then
		kill -s "$1" "$rankhub_step" 2>/dev/null || true
	fi
}
trap 'rankhub_forward USR1' USR1
trap 'rankhub_forward TERM' TERM

{{.Srun}} &
rankhub_step=$!
# A trapped signal interrupts wait; keep waiting until the step has ended.
rankhub_status=0
while :; do
	if wait "$rankhub_step"; then
		rankhub_status=0
	else
		rankhub_status=$?
	fi
	kill -0 "$rankhub_step" 2>/dev/null || break
done
exit "$rankhub_status"
`

// Script renders the SLURM batch script for job with the launch details l.
// A custom template (job.template, relative to the job file) replaces the
// built-in one and receives the same ScriptData.
func Script(job *jobs.Job, l jobs.Launch) (string, error) {
	data, err := NewScriptData(job, l)
	if err != nil {
		return "", err
	}
	s, err := batch.Render(job, "slurm built-in template", builtinTemplate, data)
	if err != nil {
		return "", fmt.Errorf("slurm: %w", err)
	}
	return s, nil
}

// NewScriptData checks job and l and computes the template data.
func NewScriptData(job *jobs.Job, l jobs.Launch) (*ScriptData, error) {
	if job == nil {
		return nil, errors.New("slurm: no job")
	}
	j := &job.Job
	if err := batch.Check(job, l, []batch.Field{
		{"job.name", j.Name}, {"job.memory", j.Memory}, {"job.partition", j.Partition},
		{"job.account", j.Account}, {"job.qos", j.QoS}, {"job.email", j.Email},
		{"job.mail_type", j.MailType}, {"job.output", j.Output}, {"job.error", j.Error},
		{"job.workdir", j.Workdir}, {"launch job directory", l.JobDir},
	}); err != nil {
		return nil, fmt.Errorf("slurm: %w", err)
	}

	d := &ScriptData{Job: job, Launch: l, Setup: j.Setup}
	opt := func(name, v string) { d.Directives = append(d.Directives, "--"+name+"="+batch.DirectiveQuote(v)) }

	if j.Name != "" {
		opt("job-name", j.Name)
	}
	opt("ntasks", strconv.Itoa(j.Ranks))
	nodes := j.Nodes
	if nodes == 0 && j.RanksPerNode > 0 {
		nodes = (j.Ranks + j.RanksPerNode - 1) / j.RanksPerNode
	}
	if nodes > 0 {
		opt("nodes", strconv.Itoa(nodes))
	}
	if j.RanksPerNode > 0 {
		opt("ntasks-per-node", strconv.Itoa(j.RanksPerNode))
	}
	if j.CPUsPerRank > 0 {
		opt("cpus-per-task", strconv.Itoa(j.CPUsPerRank))
	}
	if j.Memory != "" {
		m, err := slurmMemory(j.Memory)
		if err != nil {
			return nil, err
		}
		opt("mem", m)
	}
	if j.Walltime.Duration < 0 {
		return nil, fmt.Errorf("slurm: job.walltime %v is negative", j.Walltime.Duration)
	}
	if j.Walltime.Duration > 0 {
		opt("time", j.Walltime.SlurmTime())
	}
	if j.Partition != "" {
		opt("partition", j.Partition)
	} else if j.Queue != "" {
		opt("partition", j.Queue)
	}
	if j.Account != "" {
		opt("account", j.Account)
	}
	if j.QoS != "" {
		opt("qos", j.QoS)
	}
	if j.Email != "" {
		opt("mail-user", j.Email)
	}
	if j.MailType != "" {
		opt("mail-type", j.MailType)
	}
	output := j.Output
	if output == "" {
		// SLURM expands %-patterns in file names; keep a literal % in the
		// job directory literal.
		output = filepath.Join(strings.ReplaceAll(l.JobDir, "%", "%%"), "slurm-%j.out")
	}
	opt("output", output)
	if j.Error != "" {
		opt("error", j.Error)
	}
	lead := j.SignalLead.Duration
	if lead < 0 {
		return nil, fmt.Errorf("slurm: job.signal_lead %v is negative", lead)
	}
	if lead == 0 {
		lead = defaultSignalLead
	}
	d.SignalLead = int((lead + time.Second - 1) / time.Second)
	opt("signal", fmt.Sprintf("B:USR1@%d", d.SignalLead))
	// Requeue is a decision: a job SLURM reruns by itself after a node
	// failure would find its own result file and fail, unless it resumes.
	d.Requeue = j.Requeue != nil && *j.Requeue
	if d.Requeue {
		d.Directives = append(d.Directives, "--requeue")
	} else {
		d.Directives = append(d.Directives, "--no-requeue")
	}
	d.Directives = append(d.Directives, batch.Directives(job, "#SBATCH")...)

	sh, err := batch.NewShell(job, l)
	if err != nil {
		return nil, fmt.Errorf("slurm: %w", err)
	}
	d.JobDir, d.SchedulerIDFile, d.Workdir, d.Exports, d.RankCommand = sh.JobDir, sh.SchedulerIDFile, sh.Workdir, sh.Exports, sh.RankCommand
	// abort_on_error: one failed rank ends the step (a program's ranks are
	// one computation); a sweep's hub retries a dead engine's tasks, so its
	// step must outlive it.
	kill := "1"
	if job.Job.AbortOnError != nil && !*job.Job.AbortOnError {
		kill = "0"
	}
	d.Srun = "srun --kill-on-bad-exit=" + kill + " " + d.RankCommand
	return d, nil
}
