package results

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/rankhub/rankhub/jobs"
)

// Segments. A result file is a sequence of segments: the run that created
// it is segment 0 and every run that continued it with Append adds the
// next. Each segment records its own job text, program and input hashes, so
// that every row (whose segment column names its segment) can be re-executed
// with exactly the job that produced it, even after the sweep grew.
//
// Files of ResultsVersion "1" have no segments and no segment column; their
// rows carry index seeds. They are read as segment 0, and a sweep refuses
// to continue them (see sweep.Resume).

// ColSegment is the column naming a row's segment (int32, after ColError).
const ColSegment = "segment"

// KeySegments is the schema metadata key holding the JSON array of Segment.
const KeySegments = "rankhub.segments"

// Segment is one run's record in the file.
type Segment struct {
	Index         int               `json:"segment"`
	Started       time.Time         `json:"started"`
	JobText       string            `json:"job"`
	JobFile       string            `json:"job_file,omitempty"`
	Program       string            `json:"program,omitempty"`
	ProgramSHA256 string            `json:"program_sha256,omitempty"`
	Inputs        map[string]string `json:"inputs,omitempty"` // input file path → hex SHA-256
	Script        string            `json:"script,omitempty"` // the script the command runs through an interpreter
	ScriptSHA256  string            `json:"script_sha256,omitempty"`
	Seed          uint64            `json:"seed"`
	Version       string            `json:"version,omitempty"`
	Revision      string            `json:"revision,omitempty"`
	JobID         string            `json:"job_id,omitempty"`
	RowsBefore    int               `json:"rows_before"`
	// Forced is set when the run changed what earlier tasks mean (command,
	// function, outputs, program, seed) and was told to go on; Changes
	// lists those changes.
	Forced  bool     `json:"forced,omitempty"`
	Changes []string `json:"changes,omitempty"`
}

// SegmentOf fills a Segment from a run's provenance.
func SegmentOf(p Provenance) Segment {
	return Segment{Started: p.Started.UTC(), JobText: p.JobText, JobFile: p.JobFile, Program: p.Program,
		ProgramSHA256: p.ProgramSHA256, Inputs: p.Inputs, Script: p.Script, ScriptSHA256: p.ScriptSHA256,
		Seed: p.Seed, Version: p.Version, Revision: p.Revision, JobID: p.JobID}
}

// NewSegment makes Append record seg as the file's next segment (its Index
// and RowsBefore are set by Append). The caller has compared the file's
// last segment with this run and decided that they may share the file:
// Append then does not compare job texts and programs itself.
func NewSegment(seg Segment) Option { return func(o *options) { s := seg; o.segment = &s } }

// Segment returns the segment of the file with index i; for a file without
// segments (version 1) segment 0 is built from the file's provenance.
func (p Provenance) Segment(i int) (Segment, error) {
	if len(p.Segments) == 0 && i == 0 {
		s := SegmentOf(p)
		return s, nil
	}
	if i < 0 || i >= len(p.Segments) {
		return Segment{}, fmt.Errorf("segment %d: the file has %d segment(s)", i, max(len(p.Segments), 1))
	}
	return p.Segments[i], nil
}

// addSegment returns the provenance np continued by seg (Append).
func addSegment(np Provenance, seg Segment, rows int) Provenance {
	seg.Index = len(np.Segments)
	seg.RowsBefore = rows
	np.Segments = append(append([]Segment(nil), np.Segments...), seg)
	return np
}

func segmentsMetadata(p Provenance) (k, v string, ok bool) {
	if len(p.Segments) == 0 {
		return "", "", false
	}
	b, _ := json.Marshal(p.Segments)
	return KeySegments, string(b), true
}

func segmentsFrom(s string, p *Provenance) error {
	if s == "" {
		return nil
	}
	if err := json.Unmarshal([]byte(s), &p.Segments); err != nil {
		return fmt.Errorf("%s: %v", KeySegments, err)
	}
	for i, seg := range p.Segments {
		if seg.Index != i {
			return fmt.Errorf("%s: element %d says segment %d", KeySegments, i, seg.Index)
		}
	}
	return nil
}

// hasSegmentColumn tells whether files of this layout version carry the
// segment column.
func hasSegmentColumn(version string) bool { return version != "" && version != "1" }

// grow gives an old batch the schema of a grown job (the new schema object,
// with this run's metadata): columns are taken by name; a parameter column
// the file lacks is filled with the parameter's default; an integer
// parameter column whose parameter became float (a float value was added)
// is converted. A batch of the same columns is only relabelled.
func grow(rec arrow.RecordBatch, schema *arrow.Schema, job *jobs.Job, mem memory.Allocator) (arrow.RecordBatch, error) {
	old := rec.Schema()
	cols := make([]arrow.Array, schema.NumFields())
	var made []arrow.Array
	defer func() {
		for _, a := range made {
			a.Release()
		}
	}()
	n := int(rec.NumRows())
	for i, f := range schema.Fields() {
		j := old.FieldIndices(f.Name)
		switch {
		case len(j) == 1 && arrow.TypeEqual(old.Field(j[0]).Type, f.Type):
			cols[i] = rec.Column(j[0])
		case len(j) == 1 && old.Field(j[0]).Type.ID() == arrow.INT64 && f.Type.ID() == arrow.FLOAT64:
			b := array.NewFloat64Builder(mem)
			src := rec.Column(j[0]).(*array.Int64)
			for k := range n {
				b.Append(float64(src.Value(k)))
			}
			cols[i] = b.NewArray()
			b.Release()
			made = append(made, cols[i])
		case len(j) == 0:
			p := paramNamed(job, f.Name)
			if p == nil || p.Default == nil {
				return nil, fmt.Errorf("column %q is not in the file and is no parameter with a default", f.Name)
			}
			b := array.NewBuilder(mem, f.Type)
			for range n {
				switch p.Kind {
				case jobs.KindInt:
					b.(*array.Int64Builder).Append(p.Default.Int)
				case jobs.KindFloat:
					b.(*array.Float64Builder).Append(p.Default.Float)
				case jobs.KindString:
					b.(*array.StringBuilder).Append(p.Default.Str)
				case jobs.KindBool:
					b.(*array.BooleanBuilder).Append(p.Default.Bool)
				}
			}
			cols[i] = b.NewArray()
			b.Release()
			made = append(made, cols[i])
		default:
			return nil, fmt.Errorf("column %q is %s in the file, %s for the job", f.Name, old.Field(j[0]).Type, f.Type)
		}
	}
	for _, f := range old.Fields() {
		if !schema.HasField(f.Name) {
			return nil, fmt.Errorf("column %q of the file is not in the job", f.Name)
		}
	}
	return array.NewRecordBatch(schema, cols, int64(n)), nil
}

// canGrow tells whether the file's batches fit a grown job (see grow).
func canGrow(file *arrow.Schema, job *jobs.Job, mem memory.Allocator) error {
	want := Schema(job)
	cols := emptyColumns(file, mem)
	empty := array.NewRecordBatch(file, cols, 0)
	for _, c := range cols {
		c.Release()
	}
	defer empty.Release()
	re, err := grow(empty, want, job, mem)
	if err != nil {
		return err
	}
	re.Release()
	return nil
}

func emptyColumns(s *arrow.Schema, mem memory.Allocator) []arrow.Array {
	cols := make([]arrow.Array, s.NumFields())
	for i, f := range s.Fields() {
		b := array.NewBuilder(mem, f.Type)
		cols[i] = b.NewArray()
		b.Release()
	}
	return cols
}

func paramNamed(job *jobs.Job, name string) *jobs.Param {
	for i, p := range params(job) {
		if p.Name == name {
			return &params(job)[i]
		}
	}
	return nil
}
