package results

import (
	"fmt"
	"slices"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/rankhub/rankhub/jobs"
)

// Names of the fixed columns of a result file, in file order. Sweep
// parameters sit between ColTask and ColReplicate, outputs after ColStderr.
const (
	ColTask       = "task"
	ColReplicate  = "replicate"
	ColSeed       = "seed"
	ColRank       = "rank"
	ColHost       = "host"
	ColStarted    = "started"
	ColFinished   = "finished"
	ColAttempt    = "attempt"
	ColExitStatus = "exit_status"
	ColError      = "error"
	// ColSegment follows ColError (segment.go).
	ColStdout = "stdout"
	ColStderr = "stderr"
)

// textColumns follow fixedAfterParams: each task's stdout and stderr text,
// bounded (see TextLimit). Files written before they existed lack them;
// the Reader reads such files too.
var textColumns = []string{ColStdout, ColStderr}

// fixedAfterParams lists the fixed columns that follow the parameters.
var fixedAfterParams = []string{
	ColReplicate, ColSeed, ColRank, ColHost, ColStarted, ColFinished,
	ColAttempt, ColExitStatus, ColError, ColSegment,
}

// listFloat64 is the type of a table job's output columns.
var listFloat64 = arrow.ListOf(arrow.PrimitiveTypes.Float64)

var timestampUTC = &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}

// params returns the job's sweep parameters, nil when the job has no sweep.
func params(job *jobs.Job) []jobs.Param {
	if job == nil || job.Sweep == nil {
		return nil
	}
	return job.Sweep.Params
}

// outputs returns the job's named task outputs, nil when it has none.
func outputs(job *jobs.Job) []string {
	if job == nil || job.Task == nil {
		return nil
	}
	return job.Task.Outputs
}

// kindType maps a parameter kind to its Arrow column type.
func kindType(k jobs.Kind) (arrow.DataType, error) {
	switch k {
	case jobs.KindInt:
		return arrow.PrimitiveTypes.Int64, nil
	case jobs.KindFloat:
		return arrow.PrimitiveTypes.Float64, nil
	case jobs.KindString:
		return arrow.BinaryTypes.String, nil
	case jobs.KindBool:
		return arrow.FixedWidthTypes.Boolean, nil
	}
	return nil, fmt.Errorf("unknown parameter kind %d", int(k))
}

// Schema returns the Arrow schema of the result file of job, without
// provenance metadata (Create adds it). The columns are described in the
// package documentation. A parameter of an unknown kind becomes a utf8
// column here; Create rejects such a job with an error naming the parameter.
func Schema(job *jobs.Job) *arrow.Schema {
	return schemaWith(job, nil)
}

func schemaWith(job *jobs.Job, md *arrow.Metadata) *arrow.Schema {
	ps, outs := params(job), outputs(job)
	fields := make([]arrow.Field, 0, 1+len(ps)+len(fixedAfterParams)+len(outs))
	fields = append(fields, arrow.Field{Name: ColTask, Type: arrow.PrimitiveTypes.Int64})
	for _, p := range ps {
		dt, err := kindType(p.Kind)
		if err != nil {
			dt = arrow.BinaryTypes.String
		}
		fields = append(fields, arrow.Field{Name: p.Name, Type: dt})
	}
	fields = append(fields,
		arrow.Field{Name: ColReplicate, Type: arrow.PrimitiveTypes.Int64},
		arrow.Field{Name: ColSeed, Type: arrow.PrimitiveTypes.Uint64},
		arrow.Field{Name: ColRank, Type: arrow.PrimitiveTypes.Int32},
		arrow.Field{Name: ColHost, Type: arrow.BinaryTypes.String},
		arrow.Field{Name: ColStarted, Type: timestampUTC},
		arrow.Field{Name: ColFinished, Type: timestampUTC},
		arrow.Field{Name: ColAttempt, Type: arrow.PrimitiveTypes.Int32},
		arrow.Field{Name: ColExitStatus, Type: arrow.PrimitiveTypes.Int32},
		arrow.Field{Name: ColError, Type: arrow.BinaryTypes.String, Nullable: true},
		arrow.Field{Name: ColSegment, Type: arrow.PrimitiveTypes.Int32},
		arrow.Field{Name: ColStdout, Type: arrow.BinaryTypes.String, Nullable: true},
		arrow.Field{Name: ColStderr, Type: arrow.BinaryTypes.String, Nullable: true},
	)
	var ot arrow.DataType = arrow.PrimitiveTypes.Float64
	if job != nil && job.Task.Table() {
		ot = listFloat64
	}
	for _, o := range outs {
		fields = append(fields, arrow.Field{Name: o, Type: ot, Nullable: true})
	}
	return arrow.NewSchema(fields, md)
}

// checkJob reports why a job cannot have a result file: no job, a parameter
// of unknown kind, or a name used twice among parameters, outputs and the
// fixed columns.
func checkJob(job *jobs.Job) error {
	if job == nil {
		return fmt.Errorf("results: no job")
	}
	seen := map[string]string{ColTask: "fixed column"}
	for _, c := range append(slices.Clone(fixedAfterParams), textColumns...) {
		seen[c] = "fixed column"
	}
	var errs []string
	for _, p := range params(job) {
		if _, err := kindType(p.Kind); err != nil {
			errs = append(errs, fmt.Sprintf("sweep parameter %q: %v", p.Name, err))
		}
		if p.Name == "" {
			errs = append(errs, "sweep parameter with an empty name")
		} else if what, dup := seen[p.Name]; dup {
			errs = append(errs, fmt.Sprintf("sweep parameter %q clashes with a %s of the same name", p.Name, what))
		}
		seen[p.Name] = "sweep parameter"
	}
	for _, o := range outputs(job) {
		if o == "" {
			errs = append(errs, "task output with an empty name")
		} else if what, dup := seen[o]; dup {
			errs = append(errs, fmt.Sprintf("task output %q clashes with a %s of the same name", o, what))
		}
		seen[o] = "task output"
	}
	if len(errs) > 0 {
		where := job.File
		if where == "" {
			where = "job"
		}
		return fmt.Errorf("results: %s: %s", where, strings.Join(errs, "; "))
	}
	return nil
}

// sameColumns reports whether two schemas have the same column names and
// types in the same order, ignoring metadata, and if not, the first difference.
func sameColumns(file, want *arrow.Schema) error {
	a, b := file.Fields(), want.Fields()
	for i := 0; i < len(a) && i < len(b); i++ {
		if a[i].Name != b[i].Name || !arrow.TypeEqual(a[i].Type, b[i].Type) {
			return fmt.Errorf("column %d is %s %s in the file but %s %s for the job", i, a[i].Name, a[i].Type, b[i].Name, b[i].Type)
		}
	}
	if len(a) != len(b) {
		return fmt.Errorf("the file has %d columns, the job %d", len(a), len(b))
	}
	return nil
}
