package batch

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/rankhub/rankhub/internal/batch/batchtest"
	"github.com/rankhub/rankhub/jobs"
)

func TestShellQuoteRoundTrip(t *testing.T) {
	// bash must read every quoted word back unchanged.
	if _, err := os.Stat("/bin/bash"); err != nil {
		t.Skip("no /bin/bash")
	}
	words := []string{"plain", "with space", `it's`, `"dq"`, `$HOME`, "`id`", `back\slash`, "tab\there", "", "*", "new\nline", "50%"}
	var sb strings.Builder
	for _, w := range words {
		sb.WriteString("printf '%s\\0' " + ShellQuote(w) + "\n")
	}
	out := batchtest.Bash(t, sb.String())
	got := strings.Split(strings.TrimSuffix(out, "\x00"), "\x00")
	if len(got) != len(words) {
		t.Fatalf("got %d words, want %d: %q", len(got), len(words), got)
	}
	for i := range words {
		if got[i] != words[i] {
			t.Errorf("word %d: got %q, want %q", i, got[i], words[i])
		}
	}
}

func TestQuoting(t *testing.T) {
	for _, tc := range []struct{ in, shell, directive string }{
		{"out-%j.log", "out-%j.log", "out-%j.log"},
		{"", "''", `""`},
		{`a "b" c\d`, `'a "b" c\d'`, `"a \"b\" c\\d"`},
		{"it's", `'it'\''s'`, `"it's"`},
	} {
		if got := ShellQuote(tc.in); got != tc.shell {
			t.Errorf("ShellQuote(%q) = %s, want %s", tc.in, got, tc.shell)
		}
		if got := DirectiveQuote(tc.in); got != tc.directive {
			t.Errorf("DirectiveQuote(%q) = %s, want %s", tc.in, got, tc.directive)
		}
	}
	if got := ShellJoin([]string{"a", "b c"}); got != "a 'b c'" {
		t.Errorf("ShellJoin = %s", got)
	}
}

func TestMemory(t *testing.T) {
	for in, want := range map[string]string{"4G": "4G", "500MB": "500M", "2GiB": "2G", "1024": "1024M", " 1t ": "1T"} {
		n, unit, err := Memory(in)
		if err != nil || n+unit != want {
			t.Errorf("Memory(%q) = %s %s, %v; want %s", in, n, unit, err, want)
		}
	}
	if _, _, err := Memory("lots"); err == nil || !strings.HasPrefix(err.Error(), "job.memory") {
		t.Errorf("err = %v", err)
	}
}

func TestShell(t *testing.T) {
	job := &jobs.Job{File: "/home/a b/job.toml", Job: jobs.JobSpec{Ranks: 1, Workdir: "run", Env: map[string]string{"B": "x y", "A": "1"}}}
	l := jobs.Launch{JobDir: "/j d", RankCommand: []string{"prog", "a b"}, Env: map[string]string{"A": "2"}}
	sh, err := NewShell(job, l)
	if err != nil {
		t.Fatal(err)
	}
	want := Shell{
		JobDir: "'/j d'", SchedulerIDFile: "'/j d/scheduler-id'", Workdir: "'/home/a b/run'",
		Env: [][2]string{{"A", "2"}, {"B", "x y"}}, Exports: []string{"export A=2", "export B='x y'"},
		RankCommand: "prog 'a b'",
	}
	if strings.Join(sh.Exports, "|") != strings.Join(want.Exports, "|") || sh.JobDir != want.JobDir ||
		sh.SchedulerIDFile != want.SchedulerIDFile || sh.Workdir != want.Workdir || sh.RankCommand != want.RankCommand ||
		len(sh.Env) != 2 || sh.Env[0] != want.Env[0] || sh.Env[1] != want.Env[1] {
		t.Errorf("got %+v, want %+v", sh, want)
	}
	job.Job.Env = map[string]string{"1X": "y"}
	if _, err := NewShell(job, l); err == nil || !strings.Contains(err.Error(), "job.env") {
		t.Errorf("bad env name: err = %v", err)
	}
}

func TestCheck(t *testing.T) {
	job := &jobs.Job{Job: jobs.JobSpec{Ranks: 1, Setup: []string{"ok", "a\nb"}}}
	l := jobs.Launch{JobDir: "/j", RankCommand: []string{"p"}}
	if err := Check(job, l, nil); err == nil || err.Error() != `job.setup[1] "a\nb": newline or NUL not allowed` {
		t.Errorf("err = %v", err)
	}
	job.Job.Setup = nil
	if err := Check(job, l, []Field{{"job.name", "x\ry"}}); err == nil || !strings.HasPrefix(err.Error(), "job.name") {
		t.Errorf("err = %v", err)
	}
	if err := Check(job, l, []Field{{"job.name", "x"}}); err != nil {
		t.Errorf("err = %v", err)
	}
}

func TestCache(t *testing.T) {
	c := Cache{TTL: time.Hour}
	query := func(ids []string) (map[string]jobs.SchedState, error) {
		got := map[string]jobs.SchedState{"extra": {ID: "extra"}}
		for _, id := range ids {
			got[id] = jobs.SchedState{ID: id, State: StateRunning}
		}
		return got, nil
	}
	if got, _ := c.Status(nil, query); len(got) != 0 || c.Queries() != 0 {
		t.Errorf("no ids: %v, %d queries", got, c.Queries())
	}
	got, err := c.Status([]string{"1", "2"}, query)
	if err != nil || len(got) != 2 || got["1"].State != StateRunning {
		t.Fatalf("got %v, %v", got, err)
	}
	// Covered ids, the extra one included, come from the cache.
	if got, _ := c.Status([]string{"2", "extra"}, query); len(got) != 2 || c.Queries() != 1 {
		t.Errorf("got %v after %d queries, want 1", got, c.Queries())
	}
	c.Forget("2")
	if _, err := c.Status([]string{"2"}, query); err != nil || c.Queries() != 2 {
		t.Errorf("after Forget: %v, %d queries, want 2", err, c.Queries())
	}
	boom := errors.New("boom")
	c.TTL = 0
	if _, err := c.Status([]string{"1"}, func([]string) (map[string]jobs.SchedState, error) { return nil, boom }); err != boom {
		t.Errorf("err = %v", err)
	}
}

func TestTools(t *testing.T) {
	dir, calls := batchtest.FakeTools(t, map[string]string{
		"ok":   "pwd",
		"fail": "echo 'partial'; echo 'Error: Unknown Queue x' >&2; exit 3",
	})
	notFound := errors.New("not found")
	tools := Tools{
		Sched: "test",
		Paths: map[string]string{"ok": "ok", "fail": "fail", "gone": "gone"},
		Hints: []Hint{{"unknown queue", "check the queue"}},
		NotFound: func(tool, path string) error {
			return notFound
		},
	}
	tools.SetBinDir(dir)
	out, err := tools.Run(context.Background(), dir, "ok", "a", "b")
	if err != nil || strings.TrimSpace(string(out)) != dir {
		t.Errorf("ok: %q, %v", out, err)
	}
	out, err = tools.Run(context.Background(), "", "fail", "x")
	var ce *CommandError
	if !errors.As(err, &ce) || string(out) != "partial\n" || ce.Hint != "check the queue" ||
		err.Error() != "fail x: exit status 3: Error: Unknown Queue x (hint: check the queue)" {
		t.Errorf("fail: %q, %v", out, err)
	}
	if _, err := tools.Run(context.Background(), "", "gone"); err != notFound {
		t.Errorf("gone: %v", err)
	}
	if c := calls(); len(c) != 2 || c[0] != "ok a b" || c[1] != "fail x" {
		t.Errorf("calls = %q", c)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := tools.Run(ctx, "", "ok"); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}

// TestShellNetwork: job.network reaches every rank as RANKHUB_NETWORK, the
// variable the launcher's address rules read first.
func TestShellNetwork(t *testing.T) {
	job := &jobs.Job{Job: jobs.JobSpec{Name: "n", Ranks: 2, Network: "10.231.0.0/24"}}
	sh, err := NewShell(job, jobs.Launch{JobDir: "/j", RankCommand: []string{"prog"}})
	if err != nil {
		t.Fatal(err)
	}
	want := "export RANKHUB_NETWORK=10.231.0.0/24"
	if !strings.Contains(strings.Join(sh.Exports, "\n"), want) {
		t.Errorf("exports %q lack %q", sh.Exports, want)
	}
}
