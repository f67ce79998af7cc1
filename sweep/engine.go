package sweep

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"reflect"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rankhub/rankhub/jobs"
	"github.com/rankhub/rankhub/results"
	"github.com/rankhub/rankhub/views"
	"golang.org/x/sys/unix"
)

// The engine side of a sweep. Engines receive only (point, replicate)
// pairs: each one loads the job file from the job directory and expands the
// same deterministic sweep, so a task's parameters and seed never travel
// and never depend on which engine runs it. A task's failure is part of its
// row, not an error of the chunk: a chunk fails only when its engine dies,
// and then the load-balanced view retries it elsewhere.

// ChunkResult is the outcome of a chunk of tasks, by columns.
type ChunkResult struct {
	Index    []int64
	Seed     []uint64 // each task's seed (jobs.TaskSeed), as the engine ran it
	Started  []int64  // unix microseconds
	Finished []int64
	Attempt  []int64
	Exit     []int64
	Err      []string
	Out      []float64 // len(Index) × outputs, row-major; NaN where missing
	Rank     int
	Host     string
	// Shell tasks only (nil for functions): what was kept of each task's
	// stdout and stderr (all of it, or head, a "…[N bytes omitted]…" marker
	// and tail; see boundedOutput) and their full sizes in bytes. For the
	// rows' stdout and stderr columns (issue 11).
	Stdout, Stderr           []string
	StdoutBytes, StderrBytes []int64
	// parse = "table" only: each task's outputs are lists. TableLen holds
	// len(Index) × outputs list lengths (row-major), Table their values
	// one after the other; Out is NaN.
	Table    []float64
	TableLen []int64
}

// ExitInterrupted is the Exit of a task that did not run to an answer
// because its engine was stopping (SIGTERM, scancel, a requeue, the
// walltime warning); its Err says "interrupted: ...". The driver writes no
// row for it: it runs again (elsewhere while the job goes on, else on
// --resume). The state travels in the existing fields, not in a field of
// its own, so that a driver of an older rankhub (whose codec refuses
// unknown fields) still takes the answer and writes such a task as the
// failed row it wrote before.
const ExitInterrupted = -2

// Pairs encodes refs for the wire: point, replicate, point, replicate, ...
func Pairs(refs []Ref) []int64 {
	pairs := make([]int64, 0, 2*len(refs))
	for _, r := range refs {
		pairs = append(pairs, int64(r.Point), int64(r.Replicate))
	}
	return pairs
}

// RunChunk runs the tasks named by pairs (see Pairs) on this engine. A
// chunk the engine's stop interrupted before any of its tasks answered is
// an error; one it interrupted part way has its interrupted tasks marked
// (ChunkResult.Interrupted).
func RunChunk(c *views.Context, job *jobs.Job, pairs []int64) (ChunkResult, error) {
	if len(pairs)%2 != 0 {
		return ChunkResult{}, fmt.Errorf("sweep chunk of %d numbers: want (point, replicate) pairs", len(pairs))
	}
	res := ExecChunk(c, job, pairs)
	if n := len(res.Index); n > 0 && res.Ran() == 0 {
		// The engine is stopping and ran nothing of the chunk: an error,
		// not an answer, so that the hub retries the chunk on another
		// engine (retries avoid this one) when the job goes on; when the
		// whole job stops, the hub retries nothing and the tasks wait for
		// --resume.
		return ChunkResult{}, fmt.Errorf("sweep chunk of %d task(s) not run: %s (rank %d on %s)", n, engineStopping, res.Rank, res.Host)
	}
	return res, nil
}

// engineStopping marks RunChunk's error for a chunk its engine's stop left
// entirely unrun: while the driver goes on, Drive runs those tasks again
// (a hub's retries may all land on engines that are stopping).
const engineStopping = "the engine is stopping"

// notRunByStoppingEngine reports whether err is a chunk's failure because
// its engines were stopping (RunChunk), not a failure of its tasks.
func notRunByStoppingEngine(err error) bool {
	var re *views.RemoteError
	return errors.As(err, &re) && strings.Contains(re.Message, "not run: "+engineStopping)
}

// ExecChunk runs the tasks of pairs; the result's Index holds each task's
// grid index in this job (point·replicates + replicate).
func ExecChunk(c *views.Context, job *jobs.Job, pairs []int64) ChunkResult {
	k := len(job.Task.Outputs)
	n := len(pairs) / 2
	reps := int64(max(job.Sweep.Replicates, 1))
	points := int64(job.NumPoints())
	idx := make([]int64, n)
	res := ChunkResult{Index: idx, Seed: make([]uint64, n), Started: make([]int64, n), Finished: make([]int64, n), Attempt: make([]int64, n),
		Exit: make([]int64, n), Err: make([]string, n), Out: make([]float64, n*k)}
	if c != nil {
		res.Rank, res.Host = c.Rank, c.Host
	}
	if job.Task.Table() {
		// Every task has its list lengths, 0 for one that did not run.
		res.TableLen = make([]int64, n*k)
	}
	ctx := context.Background()
	if c != nil && c.Context != nil {
		ctx = c.Context
	}
	stop := newStopClock(ctx)
	defer stop.release()
	// failEnd is when each task's last attempt failed (0: it answered or
	// did not run); lastFail when any attempt of the chunk last failed.
	failEnd := make([]time.Time, n)
	var lastFail time.Time
	for i := range idx {
		p, r := pairs[2*i], pairs[2*i+1]
		idx[i] = p*reps + r
		out := res.Out[i*k : (i+1)*k]
		if ctx.Err() != nil {
			// The engine is stopping: these tasks did not run. Should the
			// chunk's answer still reach the driver, they get no row.
			res.Exit[i], res.Err[i] = ExitInterrupted, "interrupted: the engine stopped before the task ran"
			fillNaN(out)
			continue
		}
		if p < 0 || p >= points || r < 0 || r >= reps {
			res.Exit[i], res.Err[i] = -1, fmt.Sprintf("task (point %d, replicate %d) is outside the sweep (%d points × %d replicates)", p, r, points, reps)
			fillNaN(out)
			continue
		}
		t := job.PointTask(int(p), int(r))
		res.Seed[i] = t.Seed
		for attempt := 0; ; attempt++ {
			start := time.Now()
			exit, msg := runTask(ctx, c, job, t, out, &res, i)
			end := time.Now()
			res.Started[i], res.Finished[i] = start.UnixMicro(), end.UnixMicro()
			res.Exit[i], res.Err[i], res.Attempt[i] = int64(exit), msg, int64(attempt)
			if msg == "" {
				failEnd[i] = time.Time{}
				break
			}
			failEnd[i], lastFail = end, end
			// No retry starts once the engine is stopping: whatever
			// ended this attempt (the stop's signal reaches the command
			// too, a function returns when its Context ends), it is no
			// answer.
			if ctx.Err() != nil || attempt >= job.Task.Retries {
				break
			}
		}
		if res.Err[i] != "" {
			fillNaN(out)
		}
	}
	// A scheduler's stop (scancel, a requeue, the walltime warning)
	// signals every process of the step at once: a command may die of it,
	// or handle it and exit 1, before the engine's own handler has ended
	// ctx. So, once per chunk and only when an attempt failed within the
	// last stopGrace, the answer waits for the rest of that stopGrace (the
	// engine's stop ends the wait at once). Then every task whose failure
	// ended within stopGrace before the stop (or after it) is interrupted.
	if !lastFail.IsZero() && ctx.Done() != nil && ctx.Err() == nil {
		if left := stopGrace - time.Since(lastFail); left > 0 {
			t := time.NewTimer(left)
			select {
			case <-ctx.Done():
			case <-t.C:
			}
			t.Stop()
		}
	}
	if at, ok := stop.at(); ok {
		for i, e := range failEnd {
			if !e.IsZero() && !e.Before(at.Add(-stopGrace)) {
				res.Exit[i], res.Err[i] = ExitInterrupted, "interrupted: the engine was stopping: "+res.Err[i]
			}
		}
	}
	return res
}

// stopClock records when a context ended.
type stopClock struct {
	ctx     context.Context
	when    atomic.Int64 // unix nanoseconds; 0 while ctx runs
	release func() bool
}

func newStopClock(ctx context.Context) *stopClock {
	s := &stopClock{ctx: ctx}
	s.release = context.AfterFunc(ctx, func() { s.when.CompareAndSwap(0, time.Now().UnixNano()) })
	return s
}

// at is when ctx ended, and whether it has.
func (s *stopClock) at() (time.Time, bool) {
	if s.ctx.Err() == nil {
		return time.Time{}, false
	}
	// AfterFunc runs in a goroutine of its own: it may not have yet.
	s.when.CompareAndSwap(0, time.Now().UnixNano())
	return time.Unix(0, s.when.Load()), true
}

// Interrupted reports whether task i of the chunk was interrupted by its
// engine's stop (Exit is ExitInterrupted): it has no answer and no row.
func (r *ChunkResult) Interrupted(i int) bool { return i < len(r.Exit) && r.Exit[i] == ExitInterrupted }

// Ran is how many of the chunk's tasks ran to an answer (a row).
func (r *ChunkResult) Ran() int {
	n := len(r.Index)
	for i := range r.Index {
		if r.Interrupted(i) {
			n--
		}
	}
	return n
}

func fillNaN(out []float64) {
	for j := range out {
		out[j] = math.NaN()
	}
}

// runTask runs one task into out; it returns the exit status and an error
// message ("" on success).
func runTask(ctx context.Context, c *views.Context, job *jobs.Job, t jobs.Task, out []float64, res *ChunkResult, i int) (exit int, msg string) {
	if job.Task.Function != "" {
		return callFunction(c, job, t, out)
	}
	if res.Stdout == nil {
		n := len(res.Index)
		res.Stdout, res.Stderr = make([]string, n), make([]string, n)
		res.StdoutBytes, res.StderrBytes = make([]int64, n), make([]int64, n)
	}
	var so, se *boundedOutput
	exit, msg, so, se = runCommand(ctx, job, t, out)
	if so != nil {
		res.Stdout[i], res.StdoutBytes[i] = so.Text(), so.total
		res.Stderr[i], res.StderrBytes[i] = se.Text(), se.total
	}
	if job.Task.Table() {
		if msg == "" && so != nil {
			lists, err := so.table(job.Task.CommentPrefix(), job.Task.Outputs)
			if err != nil {
				return exit, err.Error()
			}
			// Only a successful attempt (the last) appends its lists.
			for j, l := range lists {
				res.TableLen[i*len(lists)+j] = int64(len(l))
				res.Table = append(res.Table, l...)
			}
		}
	}
	return exit, msg
}

func callFunction(c *views.Context, job *jobs.Job, t jobs.Task, out []float64) (exit int, msg string) {
	f, ok := views.Lookup(job.Task.Function)
	if !ok {
		return -1, fmt.Sprintf("function %q is not registered in this program (registered: %s)", job.Task.Function, strings.Join(views.Registered(), ", "))
	}
	fn := reflect.ValueOf(f)
	ft := fn.Type()
	var in []reflect.Value
	if ft.NumIn() == 2 {
		if c == nil {
			c = &views.Context{Context: context.Background()}
		}
		in = append(in, reflect.ValueOf(c))
	}
	if ft.NumIn() < 1 || ft.NumIn() > 2 {
		return -1, fmt.Sprintf("function %q: a sweep function takes (rankhub.Params) or (*views.Context, rankhub.Params)", job.Task.Function)
	}
	p := reflect.New(ft.In(ft.NumIn() - 1)).Elem()
	args := job.Args(t)
	if p.Kind() != reflect.Map || !reflect.TypeOf(args).ConvertibleTo(p.Type()) {
		return -1, fmt.Sprintf("function %q: its parameter must be rankhub.Params (or map[string]any), not %s", job.Task.Function, p.Type())
	}
	in = append(in, reflect.ValueOf(args).Convert(p.Type()))
	defer func() {
		if r := recover(); r != nil {
			exit, msg = -1, fmt.Sprintf("panic: %v", r)
		}
	}()
	res := fn.Call(in)
	if n := len(res); n > 0 && ft.Out(n-1) == reflect.TypeOf((*error)(nil)).Elem() {
		if e := res[n-1]; !e.IsNil() {
			return 1, e.Interface().(error).Error()
		}
		res = res[:n-1]
	}
	if len(res) != 1 {
		return -1, fmt.Sprintf("function %q returns no outputs", job.Task.Function)
	}
	if err := outputsFrom(res[0], job.Task.Outputs, out); err != nil {
		return -1, err.Error()
	}
	return 0, ""
}

func normName(s string) string { return strings.ToLower(strings.ReplaceAll(s, "_", "")) }

// outputsFrom reads the named outputs from a map or struct value.
func outputsFrom(v reflect.Value, names []string, out []float64) error {
	for v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface {
		if v.IsNil() {
			return errors.New("the function returned nil")
		}
		v = v.Elem()
	}
	vals := map[string]reflect.Value{}
	switch v.Kind() {
	case reflect.Map:
		it := v.MapRange()
		for it.Next() {
			if it.Key().Kind() == reflect.String {
				vals[normName(it.Key().String())] = it.Value()
			}
		}
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			if f := v.Type().Field(i); f.IsExported() {
				vals[normName(f.Name)] = v.Field(i)
			}
		}
	default:
		return fmt.Errorf("outputs must be a map or struct, not %s", v.Type())
	}
	var missing []string
	for j, name := range names {
		fv, ok := vals[normName(name)]
		if !ok {
			missing = append(missing, name)
			out[j] = math.NaN()
			continue
		}
		for fv.Kind() == reflect.Interface && !fv.IsNil() {
			fv = fv.Elem()
		}
		switch fv.Kind() {
		case reflect.Float32, reflect.Float64:
			out[j] = fv.Float()
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
			out[j] = float64(fv.Int())
		case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
			out[j] = float64(fv.Uint())
		default:
			return fmt.Errorf("output %q is %s, not a number", name, fv.Type())
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("outputs %s missing from the result", strings.Join(missing, ", "))
	}
	return nil
}

const stderrTail = 2048

// stopGrace is how long before its engine's stop a failed attempt counts
// as interrupted by that stop. A scheduler's stop (scancel, a requeue, the
// walltime warning) signals every process of the job at once, and the
// command may die of it (or handle it and exit non-zero) before the
// engine's handler has ended its context; a failure earlier than that (a
// crash, the OOM killer, a kill by the user) is a failed row. ExecChunk
// waits for it once per chunk, never per task.
var stopGrace = 2 * time.Second // a variable for tests only

// describeExit says how a command ended: the signal it died of, named
// only when it did (a shell's exit status 129-192 may report a child's
// death by signal 1-64, or be an ordinary exit status: it is a guess).
func describeExit(err error) string {
	var xe *exec.ExitError
	if !errors.As(err, &xe) {
		return err.Error()
	}
	if ws, ok := xe.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return fmt.Sprintf("%v (%s), not sent by rankhub (no timeout)", err, unix.SignalName(ws.Signal()))
	}
	if c := xe.ExitCode(); c > 128 && c <= 128+64 {
		if name := unix.SignalName(syscall.Signal(c - 128)); name != "" {
			return fmt.Sprintf("exit %d (128+%s?)", c, name)
		}
	}
	return err.Error()
}

// runCommand runs a shell task. Its stdout and stderr are read as streams
// into bounded buffers (boundedOutput): a task may print any amount, the
// engine keeps a few tens of KiB of it.
func runCommand(ctx context.Context, job *jobs.Job, t jobs.Task, out []float64) (code int, msg string, so, se *boundedOutput) {
	line, err := job.Command(t)
	if err != nil {
		return -1, err.Error(), nil, nil
	}
	stopped := ctx
	if d := job.Task.Timeout.Duration; d > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}
	shell := job.Task.Shell
	if shell == "" {
		shell = "/bin/sh"
	}
	cmd := exec.CommandContext(ctx, shell, "-c", line)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	var names []string
	if job.Task.Parse == "key-value" {
		names = job.Task.Outputs
	}
	if job.Task.Stdin != "" {
		// Relative to the tasks' working directory, as the command's paths.
		f, err := os.Open(job.Task.Stdin)
		if err != nil {
			return -1, fmt.Sprintf("task.stdin: %v", err), nil, nil
		}
		defer f.Close()
		cmd.Stdin = f
	}
	so, se = newBoundedOutput(names), newBoundedOutput(nil)
	so.prefix = job.Task.CommentPrefix()
	cmd.Stdout, cmd.Stderr = so, se
	err = cmd.Run()
	tail := se.Tail()
	if len(tail) > stderrTail {
		tail = "…" + tail[len(tail)-stderrTail:]
	}
	if err != nil {
		code = -1
		var xe *exec.ExitError
		if errors.As(err, &xe) {
			code = xe.ExitCode()
		}
		var msg string
		switch {
		case stopped.Err() != nil:
			msg = "stopped: the engine is shutting down"
		case ctx.Err() != nil:
			msg = fmt.Sprintf("timed out after %v", job.Task.Timeout.Duration)
		default:
			// Whether the engine's stop follows is decided once per
			// chunk (ExecChunk), never here by waiting per task.
			msg = describeExit(err)
		}
		if strings.TrimSpace(tail) != "" {
			msg += ": " + strings.TrimSpace(tail)
		}
		return code, msg, so, se
	}
	if job.Task.Table() {
		fillNaN(out) // the lists are read by runTask
		return 0, "", so, se
	}
	if err := so.parse(job.Task.Parse, job.Task.CommentPrefix(), job.Task.Outputs, out); err != nil {
		if strings.TrimSpace(tail) != "" {
			return 0, err.Error() + "; stderr: " + strings.TrimSpace(tail), so, se
		}
		return 0, err.Error(), so, se
	}
	return 0, "", so, se
}

// ParseOutputs implements the two documented rules; lines whose first
// non-blank bytes are comment ("" = no comments) are not read:
//
//   - "last-line": the last non-blank line of stdout holds exactly one number
//     per output, in order, separated by blanks or commas.
//   - "key-value": stdout holds name=value pairs (separated by blanks or
//     lines); the last value of each output name wins; every output must appear.
func ParseOutputs(rule, comment, stdout string, names []string, out []float64) error {
	if rule == "key-value" {
		seen := make([]bool, len(names))
		var fields []string
		for _, line := range strings.Split(stdout, "\n") {
			if comment == "" || !strings.HasPrefix(strings.TrimSpace(line), comment) {
				fields = append(fields, strings.Fields(line)...)
			}
		}
		for _, tok := range fields {
			k, v, ok := strings.Cut(tok, "=")
			if !ok {
				continue
			}
			for j, n := range names {
				if k == n {
					f, err := strconv.ParseFloat(strings.TrimRight(v, ",;"), 64)
					if err != nil {
						return fmt.Errorf("output %s=%q is not a number", n, v)
					}
					out[j], seen[j] = f, true
				}
			}
		}
		var missing []string
		for j, s := range seen {
			if !s {
				missing = append(missing, names[j])
			}
		}
		if len(missing) > 0 {
			return fmt.Errorf("stdout has no name=value for %s", strings.Join(missing, ", "))
		}
		return nil
	}
	i := lastDataLine(stdout, comment)
	if i < 0 {
		if strings.TrimSpace(stdout) != "" {
			return fmt.Errorf("stdout has no line but blanks and comments (%q); want %d number(s) on the last line (%s)", comment, len(names), strings.Join(names, " "))
		}
		return fmt.Errorf("stdout is empty; want %d number(s) on the last line (%s)", len(names), strings.Join(names, " "))
	}
	last, _, _ := strings.Cut(stdout[i:], "\n")
	last = strings.TrimSpace(last)
	fields := strings.FieldsFunc(last, func(r rune) bool { return r == ' ' || r == '\t' || r == ',' })
	if len(fields) != len(names) {
		return fmt.Errorf("the last line of stdout has %d field(s), want %d (%s): %q", len(fields), len(names), strings.Join(names, " "), truncate(last, 200))
	}
	for j, f := range fields {
		v, err := strconv.ParseFloat(f, 64)
		if err != nil {
			return fmt.Errorf("output %s: %q on the last line of stdout is not a number", names[j], f)
		}
		out[j] = v
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// WriteChunk writes a chunk's rows, of segment, to w.
func WriteChunk(w *results.Writer, job *jobs.Job, r ChunkResult, segment int) error {
	k := len(job.Task.Outputs)
	n := len(r.Index)
	if len(r.Out) != n*k || len(r.Started) != n || len(r.Finished) != n || len(r.Attempt) != n || len(r.Exit) != n ||
		len(r.Err) != n || len(r.Seed) != n {
		return errors.New("sweep: malformed chunk result from engine")
	}
	reps := int64(max(job.Sweep.Replicates, 1))
	points := int64(job.NumPoints())
	table := job.Task.Table()
	if table {
		total := int64(0)
		for _, l := range r.TableLen {
			if l < 0 {
				return errors.New("sweep: malformed chunk result from engine (negative list length)")
			}
			total += l
		}
		if len(r.TableLen) != n*k || total != int64(len(r.Table)) {
			return errors.New("sweep: malformed chunk result from engine (table lengths)")
		}
	}
	next := 0 // position in r.Table
	for i, ix := range r.Index {
		if ix < 0 || ix/reps >= points {
			return fmt.Errorf("sweep: engine answered for task %d, outside the sweep", ix)
		}
		if r.Interrupted(i) {
			// No answer: no row; --resume runs it (an interrupted task
			// has no lists).
			if table {
				for j := range k {
					next += int(r.TableLen[i*k+j])
				}
			}
			continue
		}
		// The engine computed the seed from the same job file
		// (jobs.TaskSeed); the hub does not hash every row again.
		row := results.Row{Task: int(ix), Values: job.PointAt(int(ix / reps)), Replicate: int(ix % reps), Seed: r.Seed[i], Rank: r.Rank, Host: r.Host,
			Started: time.UnixMicro(r.Started[i]), Finished: time.UnixMicro(r.Finished[i]), Attempt: int(r.Attempt[i]),
			ExitStatus: int(r.Exit[i]), Err: r.Err[i], Outputs: append([]float64(nil), r.Out[i*k:(i+1)*k]...), Segment: segment}
		if len(r.Stdout) == n && len(r.Stderr) == n {
			// A shell task's own words (bounded by the engine, then by
			// the writer's TextLimit).
			row.Stdout, row.Stderr = r.Stdout[i], r.Stderr[i]
		}
		if table {
			row.Lists = make([][]float64, k)
			for j := range k {
				l := int(r.TableLen[i*k+j])
				row.Lists[j] = r.Table[next : next+l : next+l]
				next += l
			}
		}
		if err := w.Write(row); err != nil {
			return err
		}
	}
	return nil
}
