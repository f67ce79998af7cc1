package pbs

import (
	"encoding/json"
	"fmt"
	"strconv"
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

// PBS exit statuses below zero are the server's, not the job's.
const (
	proKillWalltime = -29 // PBS Pro JOB_EXEC_KILL_WALLTIME
	proKillMem      = -27 // PBS Pro JOB_EXEC_KILL_MEM
	proKillVmem     = -26 // PBS Pro JOB_EXEC_KILL_VMEM
)

// MapState maps a PBS job_state letter and the job's attributes (exit
// status, nil while unknown, and the server's comment) to a SchedState.
//
//	Q queued, H held, W waiting, T in transit, M moved   -> PENDING
//	R running, E exiting, B array begun                  -> RUNNING
//	S, U suspended                                       -> RUNNING (reason says so)
//	C completed (Torque), F finished (Pro), X subjob done -> by exit status:
//	  0 COMPLETED; -29 or a walltime comment TIMEOUT; 256+9 or 256+15 after a
//	  deletion CANCELLED; anything else FAILED
func MapState(id, letter string, exit *int, comment, nodes string) jobs.SchedState {
	s := jobs.SchedState{ID: id, ExitCode: -1, Reason: comment, Nodes: nodes}
	lc := strings.ToLower(comment)
	switch strings.TrimSpace(letter) {
	case "Q", "W", "T", "M":
		s.State = StatePending
	case "H":
		s.State = StatePending
		s.Reason = join("held", comment)
	case "R", "E", "B":
		s.State = StateRunning
	case "S", "U":
		s.State = StateRunning
		s.Reason = join("suspended", comment)
	case "C", "F", "X":
		switch {
		case exit == nil:
			s.State = StateCompleted
			s.Reason = join("exit status not reported by qstat", comment)
		case *exit == 0:
			s.State, s.ExitCode = StateCompleted, 0
		case *exit == proKillWalltime || strings.Contains(lc, "walltime"):
			s.State, s.ExitCode = StateTimeout, *exit
			s.Reason = join("walltime exceeded", comment)
		case *exit == proKillMem || *exit == proKillVmem:
			s.State, s.ExitCode = StateFailed, *exit
			s.Reason = join("out of memory", comment)
		case *exit < 0:
			s.State, s.ExitCode = StateFailed, *exit
			s.Reason = join(fmt.Sprintf("PBS could not run the job (exit status %d)", *exit), comment)
		case *exit > 256:
			sig := *exit - 256
			s.ExitCode = 128 + sig
			if (sig == 15 || sig == 9) && (strings.Contains(lc, "delet") || strings.Contains(lc, "qdel") || strings.Contains(lc, "terminated")) {
				s.State = StateCancelled
			} else {
				s.State = StateFailed
			}
			s.Reason = join(fmt.Sprintf("killed by signal %d", sig), comment)
		default:
			s.State, s.ExitCode = StateFailed, *exit
		}
	default:
		s.State = StateUnknown
		s.Reason = join("unknown PBS job_state "+strconv.Quote(letter), comment)
	}
	return s
}

func join(a, b string) string {
	if b == "" {
		return a
	}
	return a + ": " + b
}

// qstatJSON is the part of `qstat -f -F json` that Status reads.
type qstatJSON struct {
	Jobs map[string]struct {
		State    string          `json:"job_state"`
		Exit     json.RawMessage `json:"Exit_status"`
		Comment  string          `json:"comment"`
		ExecHost string          `json:"exec_host"`
	} `json:"Jobs"`
}

// parseQstatJSON reads PBS Pro's `qstat -f -F json` output.
func parseQstatJSON(out []byte) (map[string]jobs.SchedState, error) {
	var q qstatJSON
	if err := json.Unmarshal(out, &q); err != nil {
		return nil, fmt.Errorf("%w: qstat -F json: %v", ErrParse, err)
	}
	got := make(map[string]jobs.SchedState, len(q.Jobs))
	for id, j := range q.Jobs {
		var exit *int
		if len(j.Exit) > 0 && string(j.Exit) != "null" {
			// Older servers print the number as a string.
			v, err := strconv.Atoi(strings.Trim(string(j.Exit), `"`))
			if err != nil {
				return nil, fmt.Errorf("%w: qstat -F json: job %s: Exit_status %s is not a number", ErrParse, id, j.Exit)
			}
			exit = &v
		}
		got[id] = MapState(id, j.State, exit, j.Comment, hostsOf(j.ExecHost))
	}
	return got, nil
}

// parseQstatText reads `qstat -f`: blocks that start with "Job Id: <id>",
// then "key = value" lines; a long value continues on lines that have no
// " = " (PBS wraps at 80 columns).
func parseQstatText(out []byte) (map[string]jobs.SchedState, error) {
	got := map[string]jobs.SchedState{}
	var id string
	var attrs map[string]string
	last := ""
	flush := func() error {
		if id == "" {
			return nil
		}
		if attrs["job_state"] == "" {
			return fmt.Errorf("%w: qstat -f: job %s has no job_state", ErrParse, id)
		}
		var exit *int
		if e, ok := attrs["Exit_status"]; ok {
			v, err := strconv.Atoi(e)
			if err != nil {
				return fmt.Errorf("%w: qstat -f: job %s: Exit_status %q is not a number", ErrParse, id, e)
			}
			exit = &v
		}
		got[id] = MapState(id, attrs["job_state"], exit, attrs["comment"], hostsOf(attrs["exec_host"]))
		return nil
	}
	for n, raw := range strings.Split(string(out), "\n") {
		line := strings.TrimSpace(raw)
		if line == "" {
			continue
		}
		if rest, ok := strings.CutPrefix(line, "Job Id:"); ok {
			if err := flush(); err != nil {
				return nil, err
			}
			id, attrs, last = strings.TrimSpace(rest), map[string]string{}, ""
			continue
		}
		if id == "" {
			return nil, fmt.Errorf("%w: qstat -f line %d %q: before any \"Job Id:\"", ErrParse, n+1, line)
		}
		if k, v, ok := strings.Cut(line, " = "); ok {
			k = strings.TrimSpace(k)
			attrs[k], last = strings.TrimSpace(v), k
		} else if last != "" {
			attrs[last] += line
		}
	}
	if err := flush(); err != nil {
		return nil, err
	}
	return got, nil
}

// hostsOf turns exec_host ("n1/0*2+n2/0*2" or "vm/4") into "n1,n2".
func hostsOf(execHost string) string {
	if execHost == "" {
		return ""
	}
	var hosts []string
	seen := map[string]bool{}
	for _, part := range strings.Split(execHost, "+") {
		h, _, _ := strings.Cut(part, "/")
		if h != "" && !seen[h] {
			seen[h] = true
			hosts = append(hosts, h)
		}
	}
	return strings.Join(hosts, ",")
}
