package rankhub

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/rankhub/rankhub/jobs"
	"github.com/rankhub/rankhub/launcher"
	"github.com/rankhub/rankhub/sweep"
	"github.com/rankhub/rankhub/views"
)

// The engine's glue: the builtin that runs sweep chunks (sweep.RunChunk)
// with the job this engine loads from the job directory, and call mode.

// sweepFn is the builtin every rank registers.
const sweepFn = sweep.BuiltinName

func init() {
	views.MustRegister(sweepFn, runChunk)
}

var engineJob struct {
	once sync.Once
	job  *jobs.Job
	err  error
}

func loadEngineJob() (*jobs.Job, error) {
	engineJob.once.Do(func() {
		p := os.Getenv(launcher.EnvJobFile)
		if p == "" {
			engineJob.err = fmt.Errorf("%s is not set: this engine cannot see the job", launcher.EnvJobFile)
			return
		}
		engineJob.job, engineJob.err = jobs.Load(p)
		if engineJob.err == nil && (engineJob.job.Task == nil || engineJob.job.Sweep == nil) {
			engineJob.err = fmt.Errorf("%s has no [task] and [sweep]", p)
		}
	})
	return engineJob.job, engineJob.err
}

func runChunk(c *views.Context, pairs []int64) (sweep.ChunkResult, error) {
	job, err := loadEngineJob()
	if err != nil {
		return sweep.ChunkResult{}, err
	}
	if s := rankStop.Load(); s != nil && c != nil && c.Context != nil {
		// The chunk stops with the rank: at its stop signal, not when
		// the lingering engine (lingerOnSignal) is shut down seconds
		// later. The signal reaches the tasks' commands too, and the
		// engine tells their death by it from a crash by this stop
		// (sweep.ExecChunk: they are interrupted, not failed).
		ctx, cancel := context.WithCancel(c.Context)
		defer cancel()
		defer context.AfterFunc(s.ctx, cancel)()
		if s.ctx.Err() != nil {
			// AfterFunc on a context already done runs cancel in a
			// goroutine of its own: a chunk reaching a rank that is
			// already stopping could start a task before it ran.
			cancel()
		}
		stopping := *c
		stopping.Context = ctx
		c = &stopping
	}
	return sweep.RunChunk(c, job, pairs)
}

// rankStop holds this engine rank's context (RunWith): it ends at the
// rank's stop signal (SIGTERM, SIGINT, the walltime warning).
var rankStop atomic.Pointer[struct{ ctx context.Context }]

// EnvCall makes Main run one sweep task of the job in RANKHUB_JOBFILE in
// this process, print its outcome as JSON and exit: `rankhub rerun` uses it
// to re-execute a row from its provenance alone, with no hub or engines.
const EnvCall = "RANKHUB_CALL"

// CallOutcome is what call mode prints. Outputs are IEEE-754 bit patterns
// so that a comparison is exact.
type CallOutcome struct {
	Task       int      `json:"task"`
	ExitStatus int      `json:"exit_status"`
	Err        string   `json:"error"`
	Outputs    []uint64 `json:"output_bits"`
	// parse = "table": each output's list, as bit patterns.
	Lists [][]uint64 `json:"list_bits,omitempty"`
}

func callMode(spec string) error {
	idx, err := strconv.Atoi(spec)
	if err != nil {
		return fmt.Errorf("%s=%q is not a task index", EnvCall, spec)
	}
	job, err := loadEngineJob()
	if err != nil {
		return err
	}
	reps := max(job.Sweep.Replicates, 1)
	res := sweep.ExecChunk(nil, job, []int64{int64(idx / reps), int64(idx % reps)})
	out := CallOutcome{Task: idx, ExitStatus: int(res.Exit[0]), Err: res.Err[0]}
	for _, v := range res.Out {
		out.Outputs = append(out.Outputs, math.Float64bits(v))
	}
	next := 0
	for _, l := range res.TableLen {
		var bits []uint64
		for _, v := range res.Table[next : next+int(l)] {
			bits = append(bits, math.Float64bits(v))
		}
		out.Lists = append(out.Lists, bits)
		next += int(l)
	}
	return json.NewEncoder(os.Stdout).Encode(out)
}
