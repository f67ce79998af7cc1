package hubcore

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite testdata/*.trace with the core's output")

// TestTraces replays testdata/*.trace through a Core, without sockets or
// clocks. A trace is a list of events, each a line "> event args", followed
// by what the core answers and the effects it returns, one per line; lines
// starting with # and blank lines are comments. go test -update rewrites the
// expected lines (review the diff). The events and effects are written by
// run and render below.
func TestTraces(t *testing.T) {
	files, err := filepath.Glob("testdata/*.trace")
	if err != nil || len(files) == 0 {
		t.Fatalf("no traces in testdata: %v", err)
	}
	for _, path := range files {
		t.Run(strings.TrimSuffix(filepath.Base(path), ".trace"), func(t *testing.T) {
			raw, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			want := string(raw)
			got := replay(t, path, want)
			if got == want {
				return
			}
			if *update {
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			gl, wl := strings.Split(got, "\n"), strings.Split(want, "\n")
			for i := 0; i < max(len(gl), len(wl)); i++ {
				g, w := "", ""
				if i < len(gl) {
					g = gl[i]
				}
				if i < len(wl) {
					w = wl[i]
				}
				if g != w {
					t.Fatalf("%s:%d:\n got: %s\nwant: %s\n(go test -run TestTraces -update rewrites the file)", path, i+1, g, w)
				}
			}
		})
	}
}

// replay runs the events of a trace and returns the trace as the core
// answers it.
func replay(t *testing.T, path, text string) string {
	c := New(Config{Host: "hub", Scheme: LeastLoad, Seed: 1})
	c.Tick(time.Unix(0, 0)) // "tick D" is D after this
	var out strings.Builder
	for n, line := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
		switch {
		case strings.HasPrefix(line, "> "):
			out.WriteString(line + "\n")
			for _, l := range run(c, strings.TrimPrefix(line, "> ")) {
				out.WriteString(l + "\n")
			}
			for _, ef := range c.Ready() {
				out.WriteString(render(ef) + "\n")
			}
		case line == "" || strings.HasPrefix(line, "#"):
			out.WriteString(line + "\n")
		case strings.HasPrefix(line, ">"):
			t.Fatalf("%s:%d: an event line starts with \"> \"", path, n+1)
		}
	}
	return out.String()
}

// args are an event's words: key=value options and bare words.
type args struct {
	kv    map[string]string
	words []string
	rest  string // the text after the event name
}

func parseArgs(s string) args {
	a := args{kv: map[string]string{}, rest: s}
	for _, w := range strings.Fields(s) {
		if k, v, ok := strings.Cut(w, "="); ok {
			a.kv[k] = v
		} else {
			a.words = append(a.words, w)
		}
	}
	return a
}

func (a args) int(k string, def int) int {
	if v, ok := a.kv[k]; ok {
		n, err := strconv.Atoi(v)
		if err != nil {
			panic(fmt.Sprintf("%s=%s: %v", k, v, err))
		}
		return n
	}
	return def
}

func (a args) has(w string) bool {
	for _, x := range a.words {
		if x == w {
			return true
		}
	}
	return false
}

func ints(s string) []int {
	if s == "" {
		return nil
	}
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(f)
		if err != nil {
			panic(err)
		}
		out = append(out, n)
	}
	return out
}

func msgs(s string) []uint64 {
	var out []uint64
	for _, n := range ints(s) {
		out = append(out, uint64(n))
	}
	return out
}

func dep(a args, name string) Dependency {
	return Dependency{MsgIDs: msgs(a.kv[name]), Any: a.has(name + "-any"), Success: a.has(name + "-success"), Failure: a.has(name + "-failure")}
}

func join[T any](xs []T) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = fmt.Sprint(x)
	}
	return strings.Join(s, ",")
}

func errLine(err error) []string {
	if err != nil {
		return []string{"error: " + err.Error()}
	}
	return nil
}

// run applies one event and returns the core's answer, if any.
func run(c *Core, line string) []string {
	name, rest, _ := strings.Cut(line, " ")
	a := parseArgs(rest)
	switch name {
	case "register":
		var funcs []string
		if f := a.kv["funcs"]; f != "" {
			funcs = strings.Split(f, ",")
		}
		id, err := c.Register(Registration{Rank: a.int("rank", 0), Host: a.kv["host"], PID: a.int("pid", 0), Funcs: funcs})
		if err != nil {
			return errLine(err)
		}
		return []string{fmt.Sprintf("id %d", id)}
	case "joined":
		c.Joined(a.int("engine", -1))
	case "lost":
		c.Lost(a.int("engine", -1), strings.Join(a.words, " "))
	case "submit-direct":
		ps := make([]Payload, a.int("n", 1))
		ids, err := c.SubmitDirect(ints(a.kv["targets"]), ps)
		if err != nil {
			return errLine(err)
		}
		return []string{"ids " + join(ids)}
	case "submit-lb":
		ps := make([]Payload, a.int("n", 1))
		for i := range ps {
			ps[i].Ctrl = []byte{byte(i)} // kept while the task may be sent again
		}
		timeout, _ := time.ParseDuration(a.kv["timeout"])
		ids, err := c.SubmitLB(ps, Spec{Targets: ints(a.kv["targets"]), After: dep(a, "after"), Follow: dep(a, "follow"),
			Timeout: timeout, Retries: a.int("retries", 0), Requires: a.has("requires")})
		if err != nil {
			return errLine(err)
		}
		return []string{"ids " + join(ids)}
	case "result":
		r := Result{Body: "answer"}
		switch {
		case a.has("failed"):
			r.Failed, r.Code, r.Message = true, a.kv["code"], strings.Join(a.words[1:], " ")
		case a.has("unmet"):
			r.Failed, r.Code, r.Message = true, CodeUnmetRequirement, strings.Join(a.words[1:], " ")
		case a.has("corrupt"):
			r = Result{Corrupt: true, Message: strings.Join(a.words[1:], " ")}
		}
		if kept := c.Result(a.int("engine", -1), uint64(a.int("msg", 0)), r); !kept && r.Body != nil {
			return []string{"released"}
		}
	case "unsendable":
		c.Unsendable(a.int("engine", -1), uint64(a.int("msg", 0)), "frame too large")
	case "abort":
		return errLine(c.Abort(msgs(a.kv["ids"])))
	case "purge":
		var ids []uint64
		if a.kv["ids"] != "" {
			ids = msgs(a.kv["ids"])
		}
		n, err := c.Purge(ids)
		return append([]string{fmt.Sprintf("count %d", n)}, errLine(err)...)
	case "control":
		op := map[string]int{"clear": CtlClear, "shutdown": CtlShutdown}[a.kv["op"]]
		var targets []int
		if a.kv["targets"] != "" {
			targets = ints(a.kv["targets"])
		}
		return errLine(c.Control(targets, op))
	case "scheduler":
		s, err := ParseScheme(a.kv["scheme"])
		if err != nil {
			panic(err)
		}
		c.SetScheduler(s, a.int("hwm", 0))
	case "tick":
		d, err := time.ParseDuration(a.words[0])
		if err != nil {
			panic(err)
		}
		c.Tick(time.Unix(0, 0).Add(d))
	case "shutdown":
		c.Shutdown()
	case "close":
		c.Close()
	case "live":
		return []string{"live " + join(c.Live())}
	case "engines":
		var out []string
		for _, e := range c.Engines() {
			if e.DeadWhy != "" {
				e.DeadWhy = " (" + e.DeadWhy + ")"
			}
			out = append(out, fmt.Sprintf("engine %d rank=%d host=%s queued=%d done=%d dead=%v%s", e.ID, e.Rank, e.Host, e.Queued, e.Done, e.Dead, e.DeadWhy))
		}
		return out
	case "queue":
		q, n := c.QueueStatus()
		out := []string{fmt.Sprintf("waiting %d", n)}
		for _, s := range q {
			out = append(out, fmt.Sprintf("engine %d queued=%d completed=%d", s.EngineID, s.Queued, s.Completed))
		}
		return out
	case "status":
		var ids []uint64
		if a.kv["ids"] != "" {
			ids = msgs(a.kv["ids"])
		}
		p, d, err := c.ResultStatus(ids)
		if err != nil {
			return errLine(err)
		}
		return []string{"pending " + join(p), "completed " + join(d)}
	case "history":
		return []string{"history " + join(c.History())}
	case "deadline":
		d := c.NextDeadline()
		if d.IsZero() {
			return []string{"deadline none"}
		}
		return []string{"deadline " + d.Sub(time.Unix(0, 0)).String()}
	default:
		panic("unknown event " + name)
	}
	return nil
}

func render(ef Effect) string {
	switch e := ef.(type) {
	case Send:
		ids := make([]uint64, len(e.Tasks))
		held := ""
		for i, d := range e.Tasks {
			ids[i] = d.ID
			if d.Payload.Ctrl != nil {
				held = " (payload)"
			}
		}
		s := fmt.Sprintf("send engine=%d tasks=%s", e.Engine, join(ids))
		if r := e.Tasks[0].Ranks; r != nil {
			s += " ranks=" + join(r)
		}
		return s + held
	case Control:
		op := map[int]string{CtlAbort: "abort", CtlClear: "clear", CtlShutdown: "shutdown"}[e.Op]
		s := fmt.Sprintf("control engine=%d %s", e.Engine, op)
		if len(e.IDs) > 0 {
			s += " " + join(e.IDs)
		}
		return s
	case Complete:
		if e.Body != nil && !e.Failed {
			return fmt.Sprintf("complete %d ok engine=%d rank=%d host=%s", e.ID, e.Engine, e.Rank, e.Host)
		}
		from := "body"
		if e.Body == nil {
			from = "hub"
		}
		return fmt.Sprintf("complete %d failed engine=%d rank=%d host=%s code=%s (%s): %s", e.ID, e.Engine, e.Rank, e.Host, e.Code, from, e.Message)
	case Requeue:
		s := fmt.Sprintf("requeue %d from=%d retries-left=%d", e.ID, e.From, e.RetriesLeft)
		if e.Unmet {
			s += " unmet"
		}
		return s
	case CloseEngine:
		return fmt.Sprintf("close engine=%d", e.Engine)
	case EnginesChanged:
		return "engines changed"
	case Purged:
		return "purged " + join(e.IDs)
	case Note:
		s := fmt.Sprintf("note %s engine=%d msg=%d: %s", e.Level, e.Engine, e.MsgID, e.Text)
		for _, f := range e.Fields {
			s += fmt.Sprintf(" %s=%v", f.Key, f.Value)
		}
		return s
	}
	return fmt.Sprintf("unknown effect %#v", ef)
}
