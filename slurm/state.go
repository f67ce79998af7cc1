package slurm

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/rankhub/rankhub/internal/batch"
	"github.com/rankhub/rankhub/jobs"
)

// States a Backend reports in jobs.SchedState.State.
const (
	StatePending   = batch.StatePending
	StateRunning   = batch.StateRunning
	StateCompleted = batch.StateCompleted
	StateFailed    = batch.StateFailed
	StateCancelled = batch.StateCancelled
	StateTimeout   = batch.StateTimeout
	StateUnknown   = batch.StateUnknown
)

// MapState maps a SLURM job state (long or short form, as squeue, sacct and
// scontrol print it, e.g. "CANCELLED by 0", "CD", "OUT_OF_MEMORY") to one of
// the State constants, with a reason for states that fold into another.
func MapState(s string) (state, reason string) {
	f := strings.Fields(strings.TrimSpace(s))
	if len(f) == 0 {
		return StateUnknown, "empty state"
	}
	raw := strings.TrimRight(f[0], "+*")
	switch raw {
	case "PENDING", "PD", "REQUEUED", "RQ", "REQUEUE_FED", "RF", "REQUEUE_HOLD", "RH", "RESV_DEL_HOLD", "RD":
		return StatePending, ""
	case "CONFIGURING", "CF":
		return StatePending, "nodes are booting"
	case "RUNNING", "R", "COMPLETING", "CG", "STAGE_OUT", "SO", "SIGNALING", "SI", "RESIZING", "RS":
		return StateRunning, ""
	case "SUSPENDED", "S", "STOPPED", "ST":
		return StateRunning, strings.ToLower(raw)
	case "COMPLETED", "CD":
		return StateCompleted, ""
	case "FAILED", "F", "BOOT_FAIL", "BF", "DEADLINE", "DL", "SPECIAL_EXIT", "SE", "REVOKED", "RV":
		if raw == "FAILED" || raw == "F" {
			return StateFailed, ""
		}
		return StateFailed, strings.ToLower(raw)
	case "NODE_FAIL", "NF":
		return StateFailed, "node failure"
	case "OUT_OF_MEMORY", "OOM":
		return StateFailed, "out of memory"
	case "PREEMPTED", "PR":
		return StateCancelled, "preempted"
	case "CANCELLED", "CA":
		return StateCancelled, strings.Join(f[1:], " ")
	case "TIMEOUT", "TO":
		return StateTimeout, "walltime exceeded"
	}
	return StateUnknown, "unknown SLURM state " + raw
}

// newState builds a SchedState from SLURM fields; exit is "code:signal" or "".
func newState(id, slurmState, reason, nodes, exit string) (jobs.SchedState, error) {
	st, why := MapState(slurmState)
	code := -1
	if exit != "" && st != StatePending && st != StateRunning {
		c, err := parseExit(exit)
		if err != nil {
			return jobs.SchedState{}, fmt.Errorf("job %s: %w", id, err)
		}
		code = c
	}
	r := strings.TrimSpace(reason)
	if r == "None" || r == "(null)" {
		r = ""
	}
	switch {
	case why != "" && r != "":
		r = why + ": " + r
	case why != "":
		r = why
	}
	if nodes == "None assigned" || nodes == "(null)" {
		nodes = ""
	}
	return jobs.SchedState{ID: id, State: st, ExitCode: code, Reason: r, Nodes: nodes}, nil
}

// parseSacct reads `sacct -n -P -X -o JobID,State,ExitCode,Reason,NodeList`.
func parseSacct(out []byte) (map[string]jobs.SchedState, error) {
	got := map[string]jobs.SchedState{}
	for n, line := range strings.Split(string(out), "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		f := strings.Split(line, "|")
		if len(f) < 5 {
			return nil, fmt.Errorf("%w: sacct line %d %q: want 5 fields separated by '|'", ErrParse, n+1, line)
		}
		id := f[0]
		if strings.Contains(id, ".") { // a step, in case -X was ignored
			continue
		}
		s, err := newState(id, f[1], f[3], f[4], f[2])
		if err != nil {
			return nil, fmt.Errorf("%w: sacct line %d: %v", ErrParse, n+1, err)
		}
		got[id] = s
	}
	return got, nil
}

// parseSqueue reads `squeue -h -o %i|%T|%r|%N`.
func parseSqueue(out []byte) (map[string]jobs.SchedState, error) {
	got := map[string]jobs.SchedState{}
	for n, line := range strings.Split(string(out), "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		f := strings.Split(line, "|")
		if len(f) < 4 {
			return nil, fmt.Errorf("%w: squeue line %d %q: want 4 fields separated by '|'", ErrParse, n+1, line)
		}
		s, err := newState(f[0], f[1], f[2], f[3], "")
		if err != nil {
			return nil, err
		}
		got[f[0]] = s
	}
	return got, nil
}

var scontrolField = regexp.MustCompile(`(?:^| )(JobId|JobState|Reason|ExitCode|NodeList)=(\S*)`)

// parseScontrol reads `scontrol show job -o`: one job per line of
// Key=Value pairs. Values other than the job name hold no blanks; the job
// name, which may, comes before UserId=, so fields are searched after it.
func parseScontrol(out []byte) (map[string]jobs.SchedState, error) {
	got := map[string]jobs.SchedState{}
	for n, line := range strings.Split(string(out), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "No jobs in the system") {
			continue
		}
		kv := map[string]string{}
		id, rest, ok := strings.Cut(line, " ")
		if !ok || !strings.HasPrefix(id, "JobId=") {
			return nil, fmt.Errorf("%w: scontrol line %d %q: want JobId=... first", ErrParse, n+1, trunc(line))
		}
		kv["JobId"] = strings.TrimPrefix(id, "JobId=")
		if i := strings.Index(rest, " UserId="); i >= 0 {
			rest = rest[i:]
		}
		for _, m := range scontrolField.FindAllStringSubmatch(rest, -1) {
			if _, seen := kv[m[1]]; !seen {
				kv[m[1]] = m[2]
			}
		}
		if kv["JobState"] == "" {
			return nil, fmt.Errorf("%w: scontrol line %d %q: no JobState", ErrParse, n+1, trunc(line))
		}
		s, err := newState(kv["JobId"], kv["JobState"], kv["Reason"], kv["NodeList"], kv["ExitCode"])
		if err != nil {
			return nil, fmt.Errorf("%w: scontrol line %d: %v", ErrParse, n+1, err)
		}
		got[s.ID] = s
	}
	return got, nil
}

func trunc(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}
