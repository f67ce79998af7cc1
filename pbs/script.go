package pbs

import (
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/rankhub/rankhub/internal/batch"
	"github.com/rankhub/rankhub/jobs"
)

// PBS dialects accepted in job.pbs_dialect.
const (
	DialectPro    = "pro"    // PBS Pro / OpenPBS (default)
	DialectTorque = "torque" // Torque / Moab
)

// Rank starters accepted in job.starter.
const (
	StarterMpiexec = "mpiexec"   // default for pro
	StarterPbsdsh  = "pbsdsh"    // default for torque
	StarterTmrsh   = "pbs_tmrsh" // one pbs_tmrsh per rank over $PBS_NODEFILE
)

// Torque truncates job names beyond this many characters; PBS Pro allows
// 236.
const (
	torqueNameMax = 15
	proNameMax    = 236
)

// ScriptData is what the batch script template sees, the built-in one and a
// custom one from job.template alike. Shell-side strings are already quoted.
type ScriptData struct {
	Job    *jobs.Job
	Launch jobs.Launch

	Dialect string // DialectPro or DialectTorque
	Starter string // StarterMpiexec, StarterPbsdsh or StarterTmrsh
	Name    string // the sanitized PBS job name
	Ranks   int

	// Directives are the option strings of the #PBS lines, in order,
	// without the "#PBS " prefix (e.g. `-l walltime=01:00:00`). Verbatim
	// job.directives come last.
	Directives []string
	// JobDir and SchedulerIDFile (<jobdir>/scheduler-id), shell-quoted.
	JobDir, SchedulerIDFile string
	// Workdir is the directory the ranks start in, shell-quoted; "" when
	// only $PBS_O_WORKDIR is known.
	Workdir string
	// Exports are complete `export NAME='value'` lines, sorted by name.
	Exports []string
	// Setup are job.setup lines, verbatim.
	Setup []string
	// RankCommand is the rank argv, shell-quoted and joined.
	RankCommand string
	// RankWrapper is what every starter runs on the remote side: env with
	// RANKHUB_SIZE and the exports (remote starters do not carry the batch
	// shell's environment), then a cd into the batch shell's directory,
	// then the rank command. pbs_tmrsh prepends RANKHUB_RANK=i.
	RankWrapper string
	// Start is the shell code that starts the ranks in the background and
	// appends their pids to the array rankhub_pids; it sets rankhub_starter
	// to what it ran, for messages.
	Start string
	// Check is the shell code run after every starter ended: unless every
	// rank started (each wrapper leaves <jobdir>/started/rank-N), it names
	// the starter and the missing ranks and makes the job fail.
	Check string
}

const builtinTemplate = `#!/bin/bash
{{- range .Directives}}
#PBS {{.}}
{{- end}}
# Rendered by rankhub for job {{quote .Job.Job.Name}} ({{.Dialect}}, starter {{.Starter}}).
set -euo pipefail

mkdir -p {{.JobDir}}
printf '%s\n' "${PBS_JOBID:-${SLURM_JOB_ID:-unknown}}" > {{.SchedulerIDFile}}
cd "${PBS_O_WORKDIR:-$PWD}"
{{- if .Workdir}}
cd {{.Workdir}}
{{- end}}
{{- range .Exports}}
{{.}}
{{- end}}
{{- range .Setup}}
{{.}}
{{- end}}

rankhub_pids=()
rankhub_forward() {
	echo "rankhub: batch shell got SIG$1, forwarding it to the ranks" >&2
	if [ "${#rankhub_pids[@]}" -gt 0 ]; then
		kill -s "$1" "${rankhub_pids[@]}" 2>/dev/null || true
	fi
}
trap 'rankhub_forward USR1' USR1
trap 'rankhub_forward TERM' TERM

{{.Start}}

# A trapped signal interrupts wait; keep waiting until every starter ended.
rankhub_status=0
for rankhub_pid in "${rankhub_pids[@]}"; do
	while :; do
		if wait "$rankhub_pid"; then
			rankhub_rc=0
		else
			rankhub_rc=$?
		fi
		kill -0 "$rankhub_pid" 2>/dev/null || break
	done
	if [ "$rankhub_rc" -ne 0 ] && [ "$rankhub_status" -eq 0 ]; then
		rankhub_status=$rankhub_rc
	fi
done
{{.Check}}
exit "$rankhub_status"
`

// Script renders the PBS batch script for job with the launch details l.
// A custom template (job.template, relative to the job file) replaces the
// built-in one and receives the same ScriptData.
func Script(job *jobs.Job, l jobs.Launch) (string, error) {
	data, err := NewScriptData(job, l)
	if err != nil {
		return "", err
	}
	s, err := batch.Render(job, "pbs built-in template", builtinTemplate, data)
	if err != nil {
		return "", fmt.Errorf("pbs: %w", err)
	}
	return s, nil
}

// JobName makes name a valid PBS job name: letters, digits, '_', '.' and
// '-' only (others become '_'), starting with a letter (else "r" is
// prepended), at most 15 characters for Torque and 236 for PBS Pro, and
// "rankhub" when empty.
func JobName(name, dialect string) string {
	var b strings.Builder
	for _, r := range name {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_', r == '.', r == '-':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	s := b.String()
	if s == "" {
		s = "rankhub"
	}
	if c := s[0]; !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
		s = "r" + s
	}
	limit := proNameMax
	if dialect == DialectTorque {
		limit = torqueNameMax
	}
	if len(s) > limit {
		s = s[:limit]
	}
	return s
}

// mailPoints maps job.mail_type (SLURM words or PBS letters) to PBS -m.
func mailPoints(t string) (string, error) {
	t = strings.TrimSpace(t)
	if t != "" && strings.Trim(t, "abejn") == "" {
		return t, nil
	}
	set := map[byte]bool{}
	for _, w := range strings.Split(t, ",") {
		switch strings.ToUpper(strings.TrimSpace(w)) {
		case "BEGIN":
			set['b'] = true
		case "END":
			set['e'] = true
		case "FAIL", "ABORT", "REQUEUE":
			set['a'] = true
		case "ALL":
			set['a'], set['b'], set['e'] = true, true, true
		case "NONE":
			return "n", nil
		default:
			return "", fmt.Errorf("pbs: job.mail_type %q: want BEGIN, END, FAIL, ALL, NONE or PBS letters (abe, n)", t)
		}
	}
	out := ""
	for _, c := range []byte("abe") {
		if set[c] {
			out += string(c)
		}
	}
	return out, nil
}

// NewScriptData checks job and l and computes the template data.
func NewScriptData(job *jobs.Job, l jobs.Launch) (*ScriptData, error) {
	if job == nil {
		return nil, errors.New("pbs: no job")
	}
	j := &job.Job
	if err := batch.Check(job, l, []batch.Field{
		{"job.name", j.Name}, {"job.memory", j.Memory}, {"job.queue", j.Queue}, {"job.partition", j.Partition},
		{"job.account", j.Account}, {"job.email", j.Email}, {"job.mail_type", j.MailType},
		{"job.output", j.Output}, {"job.error", j.Error}, {"job.workdir", j.Workdir},
		{"launch job directory", l.JobDir},
	}); err != nil {
		return nil, fmt.Errorf("pbs: %w", err)
	}

	d := &ScriptData{Job: job, Launch: l, Setup: j.Setup, Ranks: j.Ranks}
	switch d.Dialect = j.PBSDialect; d.Dialect {
	case "":
		d.Dialect = DialectPro
	case DialectPro, DialectTorque:
	default:
		return nil, fmt.Errorf("pbs: job.pbs_dialect %q: want %q or %q", j.PBSDialect, DialectPro, DialectTorque)
	}
	switch d.Starter = j.Starter; d.Starter {
	case "":
		d.Starter = StarterMpiexec
		if d.Dialect == DialectTorque {
			d.Starter = StarterPbsdsh
		}
	case StarterMpiexec, StarterPbsdsh, StarterTmrsh:
	default:
		return nil, fmt.Errorf("pbs: job.starter %q: want %q, %q or %q", j.Starter, StarterMpiexec, StarterPbsdsh, StarterTmrsh)
	}
	d.Name = JobName(j.Name, d.Dialect)
	opt := func(flag, v string) { d.Directives = append(d.Directives, flag+" "+v) }

	// Layout: nodes and ranks per node; without either, one node.
	cpr := max(j.CPUsPerRank, 1)
	perNode, nodes := j.RanksPerNode, j.Nodes
	switch {
	case perNode > 0 && nodes == 0:
		nodes = (j.Ranks + perNode - 1) / perNode
	case perNode == 0 && nodes > 0:
		perNode = (j.Ranks + nodes - 1) / nodes
	case perNode == 0 && nodes == 0:
		nodes, perNode = 1, j.Ranks
	}
	opt("-N", d.Name)
	if d.Dialect == DialectPro {
		sel := fmt.Sprintf("select=%d:ncpus=%d:mpiprocs=%d", nodes, perNode*cpr, perNode)
		if j.Memory != "" {
			m, err := pbsMemory(j.Memory, 1)
			if err != nil {
				return nil, err
			}
			sel += ":mem=" + m
		}
		opt("-l", sel)
	} else {
		opt("-l", fmt.Sprintf("nodes=%d:ppn=%d", nodes, perNode*cpr))
		if j.Memory != "" {
			// Torque's mem is for the whole job; job.memory is per node.
			m, err := pbsMemory(j.Memory, nodes)
			if err != nil {
				return nil, err
			}
			opt("-l", "mem="+m)
		}
	}
	if j.Walltime.Duration < 0 {
		return nil, fmt.Errorf("pbs: job.walltime %v is negative", j.Walltime.Duration)
	}
	if j.Walltime.Duration > 0 {
		opt("-l", "walltime="+j.Walltime.HMS())
	}
	if q := j.Queue; q != "" {
		opt("-q", batch.DirectiveQuote(q))
	} else if j.Partition != "" {
		opt("-q", batch.DirectiveQuote(j.Partition))
	}
	if j.Account != "" {
		opt("-A", batch.DirectiveQuote(j.Account))
	}
	if j.Email != "" {
		opt("-M", batch.DirectiveQuote(j.Email))
	}
	if j.MailType != "" {
		m, err := mailPoints(j.MailType)
		if err != nil {
			return nil, err
		}
		opt("-m", m)
	}
	output := j.Output
	if output == "" {
		output = filepath.Join(l.JobDir, "pbs.out")
	}
	if j.Error == "" {
		opt("-j", "oe")
	}
	opt("-o", batch.DirectiveQuote(output))
	if j.Error != "" {
		opt("-e", batch.DirectiveQuote(j.Error))
	}
	d.Directives = append(d.Directives, batch.Directives(job, "#PBS")...)

	sh, err := batch.NewShell(job, l)
	if err != nil {
		return nil, fmt.Errorf("pbs: %w", err)
	}
	d.JobDir, d.SchedulerIDFile, d.Workdir, d.Exports, d.RankCommand = sh.JobDir, sh.SchedulerIDFile, sh.Workdir, sh.Exports, sh.RankCommand
	envArgs := []string{"RANKHUB_SIZE=" + strconv.Itoa(j.Ranks)}
	for _, kv := range sh.Env {
		if kv[0] != "RANKHUB_SIZE" {
			envArgs = append(envArgs, batch.ShellQuote(kv[0]+"="+kv[1]))
		}
	}
	started := batch.ShellQuote(filepath.Join(l.JobDir, "started"))
	// The wrapper leaves a mark per rank it starts (its rank from the
	// variables the launcher reads, in the same order), so the script can
	// tell which ranks a starter never started.
	cdExec := `/bin/sh -c 'cd "$1" || exit 1; : > "$2/rank-${RANKHUB_RANK:-${OMPI_COMM_WORLD_RANK:-${PMI_RANK:-${SLURM_PROCID:-${PBS_VNODENUM:-unknown}}}}}" || true; shift 2; exec "$@"' rankhub-rank "$PWD" ` + started + " "
	d.RankWrapper = "/usr/bin/env " + strings.Join(envArgs, " ") + " " + cdExec + d.RankCommand
	kill := "1"
	if j.AbortOnError != nil && !*j.AbortOnError {
		kill = "0"
	}

	prepare := "rm -rf " + started + "\nmkdir -p " + started + "\n"
	switch d.Starter {
	case StarterMpiexec:
		d.Start = prepare + fmt.Sprintf(mpiexecStart, j.Ranks, d.RankWrapper, kill)
	case StarterPbsdsh:
		d.Start = prepare + fmt.Sprintf(`rankhub_starter=pbsdsh
pbsdsh -c %d -v %s &
rankhub_pids+=($!)`, j.Ranks, d.RankWrapper)
	case StarterTmrsh:
		d.Start = prepare + fmt.Sprintf(`rankhub_starter=pbs_tmrsh
# One rank per %[2]d slot(s) of $PBS_NODEFILE, in file order.
mapfile -t rankhub_slots < "$PBS_NODEFILE"
if [ "${#rankhub_slots[@]}" -lt %[3]d ]; then
	echo "rankhub: $PBS_NODEFILE lists ${#rankhub_slots[@]} slots, %[1]d ranks need %[3]d" >&2
	exit 1
fi
for ((rankhub_i = 0; rankhub_i < %[1]d; rankhub_i++)); do
	pbs_tmrsh "${rankhub_slots[rankhub_i * %[2]d]}" /usr/bin/env RANKHUB_RANK="$rankhub_i" %[4]s &
	rankhub_pids+=($!)
done`, j.Ranks, cpr, j.Ranks*cpr, strings.TrimPrefix(d.RankWrapper, "/usr/bin/env "))
	}
	d.Check = fmt.Sprintf(`# A starter that exits 0 without starting every rank must not pass for success.
rankhub_missing=""
for ((rankhub_i = 0; rankhub_i < %[1]d; rankhub_i++)); do
	[ -e %[2]s/rank-$rankhub_i ] || rankhub_missing+=" $rankhub_i"
done
if [ -n "$rankhub_missing" ]; then
	rankhub_n=$(wc -w <<< "$rankhub_missing")
	echo "rankhub: the starter ($rankhub_starter) started $((%[1]d - rankhub_n)) of %[1]d ranks; missing:$rankhub_missing" >&2
	if [ "$rankhub_status" -eq 0 ]; then
		rankhub_status=1
	fi
fi`, j.Ranks, started)
	return d, nil
}

// mpiexecStart starts the ranks with the mpiexec it finds, after finding
// out which one it is: Open MPI and MPICH/Hydra take -n; Slurm's
// mpiexec.slurm (the default of Debian's Torque wrappers) re-splits its
// arguments in a shell and breaks the rank wrapper, so srun runs instead;
// without mpiexec, srun (inside SLURM) or pbsdsh. RANKHUB_MPIEXEC skips
// the detection. Arguments: ranks, rank wrapper, srun's --kill-on-bad-exit.
const mpiexecStart = `# RANKHUB_MPIEXEC overrides the launcher, e.g. "mpirun.openmpi --oversubscribe".
rankhub_exe=$(command -v mpiexec || true)
rankhub_kind=none
if [ -n "${RANKHUB_MPIEXEC:-}" ]; then
	rankhub_kind=given
elif [ -n "$rankhub_exe" ]; then
	rankhub_real=$(readlink -f "$rankhub_exe" || echo "$rankhub_exe")
	if [ "${rankhub_real##*/}" = mpiexec.slurm ] || grep -qs 'mpiexec to run srun' "$rankhub_real"; then
		rankhub_kind=slurm
	else
		case "$("$rankhub_exe" --version 2>&1 | head -n 5 || true)" in
		*"Open MPI"* | *OpenRTE*) rankhub_kind=openmpi ;;
		*HYDRA* | *Hydra*) rankhub_kind=hydra ;;
		*) rankhub_kind=unknown ;;
		esac
	fi
fi
case "$rankhub_kind" in
given)
	read -r -a rankhub_mpiexec <<< "$RANKHUB_MPIEXEC"
	rankhub_starter="RANKHUB_MPIEXEC=$RANKHUB_MPIEXEC"
	;;
openmpi | hydra | unknown)
	rankhub_mpiexec=("$rankhub_exe")
	rankhub_starter="mpiexec $rankhub_exe"
	echo "rankhub: starter: mpiexec $rankhub_exe is $rankhub_kind" >&2
	;;
*)
	if [ -n "${SLURM_JOB_ID:-}" ] && command -v srun >/dev/null; then
		rankhub_mpiexec=(srun --kill-on-bad-exit=%[3]s)
		if [ "$rankhub_kind" = slurm ]; then
			rankhub_starter="srun, since mpiexec is Slurm's mpiexec.slurm ($rankhub_exe)"
		else
			rankhub_starter="srun, since there is no mpiexec"
		fi
	elif command -v pbsdsh >/dev/null; then
		rankhub_mpiexec=(pbsdsh -c)
		rankhub_starter="pbsdsh, since mpiexec is ${rankhub_exe:-missing}"
	else
		echo "rankhub: no starter: mpiexec is ${rankhub_real:-missing} ($rankhub_kind), and neither srun (inside SLURM) nor pbsdsh is there" >&2
		exit 1
	fi
	echo "rankhub: starter: $rankhub_starter" >&2
	;;
esac
if [ "${rankhub_mpiexec[0]}" = pbsdsh ]; then
	pbsdsh -c %[1]d -v %[2]s &
else
	"${rankhub_mpiexec[@]}" -n %[1]d %[2]s &
fi
rankhub_pids+=($!)`
