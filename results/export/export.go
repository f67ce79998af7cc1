// Package export writes the rows of rankhub result files in the formats
// other tools read: TSV for awk and gnuplot, CSV, JSON Lines, and Parquet
// (which DuckDB, pandas and polars read natively).
//
// Only the CLI imports it, so rank binaries do not link the Parquet writer.
//
// Usage:
//
//	r, err := results.Open("ising.arrow")
//	err = export.Write(os.Stdout, []*results.Reader{r}, export.TSV, nil)
//
// Several files of one job (results.SameJob) are written as one table.
package export

import (
	"bufio"
	"encoding/csv"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/rankhub/rankhub/results"
)

// Formats.
const (
	TSV     = "tsv"     // tab-separated; header line "# name\tname..."; null numbers NaN, other nulls "-"
	CSV     = "csv"     // RFC 4180 with a header line; nulls empty
	JSON    = "json"    // JSON Lines: one object per row; nulls, NaN and infinities null
	Parquet = "parquet" // Parquet, Snappy-compressed, with the Arrow schema and the rankhub.* provenance in its metadata
)

// Formats lists the formats Write knows.
var Formats = []string{TSV, CSV, JSON, Parquet}

// Write writes the rows of rs (files of one job, in order) to w in format,
// with the columns named in columns (all, in file order, when empty).
func Write(w io.Writer, rs []*results.Reader, format string, columns []string) error {
	if len(rs) == 0 {
		return fmt.Errorf("export: no file")
	}
	if !slices.Contains(Formats, format) {
		return fmt.Errorf("export: format %q: use one of %s", format, strings.Join(Formats, ", "))
	}
	for _, o := range rs[1:] {
		if err := results.SameJob(rs[0], o); err != nil {
			return err
		}
	}
	schema, idx, err := project(rs[0].Schema(), columns)
	if err != nil {
		return fmt.Errorf("export %s: %w", rs[0].Path(), err)
	}
	var recs []arrow.RecordBatch
	for _, r := range rs {
		for _, rec := range r.Records() {
			cols := make([]arrow.Array, len(idx))
			for i, c := range idx {
				cols[i] = rec.Column(c)
			}
			recs = append(recs, array.NewRecordBatch(schema, cols, rec.NumRows()))
		}
	}
	defer func() {
		for _, rec := range recs {
			rec.Release()
		}
	}()
	switch format {
	case Parquet:
		return writeParquet(w, schema, recs)
	case JSON:
		return writeJSON(w, schema, recs)
	}
	return writeText(w, schema, recs, format)
}

// project returns the schema of the named columns (all when names is
// empty) and their indices.
func project(s *arrow.Schema, names []string) (*arrow.Schema, []int, error) {
	if len(names) == 0 {
		idx := make([]int, s.NumFields())
		for i := range idx {
			idx[i] = i
		}
		return s, idx, nil
	}
	var fields []arrow.Field
	var idx []int
	for _, n := range names {
		i := s.FieldIndices(n)
		if len(i) == 0 {
			all := make([]string, s.NumFields())
			for k, f := range s.Fields() {
				all[k] = f.Name
			}
			return nil, nil, fmt.Errorf("no column %q; the columns are %s", n, strings.Join(all, ", "))
		}
		if slices.Contains(idx, i[0]) {
			return nil, nil, fmt.Errorf("column %q given twice", n)
		}
		fields, idx = append(fields, s.Field(i[0])), append(idx, i[0])
	}
	md := s.Metadata()
	return arrow.NewSchema(fields, &md), idx, nil
}

func writeParquet(w io.Writer, schema *arrow.Schema, recs []arrow.RecordBatch) error {
	// Dictionaries only for strings (parameters, host, error repeat);
	// numbers such as task, seed and times are mostly distinct, and
	// dictionary-encoding them costs most of the export's time.
	opts := []parquet.WriterProperty{parquet.WithCompression(compress.Codecs.Snappy), parquet.WithMaxRowGroupLength(1 << 17),
		parquet.WithDictionaryDefault(false)}
	for _, f := range schema.Fields() {
		if f.Type.ID() == arrow.STRING {
			opts = append(opts, parquet.WithDictionaryFor(f.Name, true))
		}
	}
	props := parquet.NewWriterProperties(opts...)
	fw, err := pqarrow.NewFileWriter(schema, w, props, pqarrow.NewArrowWriterProperties(pqarrow.WithStoreSchema()))
	if err != nil {
		return fmt.Errorf("export: parquet: %w", err)
	}
	for _, rec := range recs {
		if err := fw.WriteBuffered(rec); err != nil {
			fw.Close()
			return fmt.Errorf("export: parquet: %w", err)
		}
	}
	if err := fw.Close(); err != nil {
		return fmt.Errorf("export: parquet: %w", err)
	}
	return nil
}

// writeText writes TSV or CSV.
func writeText(w io.Writer, schema *arrow.Schema, recs []arrow.RecordBatch, format string) error {
	bw := bufio.NewWriterSize(w, 1<<16)
	names := make([]string, schema.NumFields())
	for i, f := range schema.Fields() {
		names[i] = f.Name
	}
	if format == CSV {
		cw := csv.NewWriter(bw)
		cw.Write(names)
		rec := make([]string, len(names))
		var buf []byte
		for _, b := range recs {
			for i := 0; i < int(b.NumRows()); i++ {
				for c, col := range b.Columns() {
					buf = appendCell(buf[:0], col, i, "", "")
					rec[c] = string(buf)
				}
				if err := cw.Write(rec); err != nil {
					return err
				}
			}
		}
		cw.Flush()
		if err := cw.Error(); err != nil {
			return err
		}
		return bw.Flush()
	}
	for i := range names {
		names[i] = results.TSVEscape(names[i])
	}
	bw.WriteString("# " + strings.Join(names, "\t") + "\n")
	var line []byte
	for _, b := range recs {
		for i := 0; i < int(b.NumRows()); i++ {
			line = line[:0]
			for c, col := range b.Columns() {
				if c > 0 {
					line = append(line, '\t')
				}
				start := len(line)
				line = appendCell(line, col, i, "NaN", "-")
				if _, ok := col.(*array.String); ok && col.IsValid(i) {
					esc := results.TSVEscape(string(line[start:]))
					line = append(line[:start], esc...)
				}
			}
			line = append(line, '\n')
			if _, err := bw.Write(line); err != nil {
				return err
			}
		}
	}
	return bw.Flush()
}

// appendCell appends row i of a as text: numbers in full, timestamps in
// RFC 3339, lists as their elements joined by ",". A null is nullNum for a
// floating-point column and null otherwise.
func appendCell(b []byte, a arrow.Array, i int, nullNum, null string) []byte {
	if a.IsNull(i) {
		if _, ok := a.(*array.Float64); ok {
			return append(b, nullNum...)
		}
		return append(b, null...)
	}
	switch a := a.(type) {
	case *array.Int64:
		return strconv.AppendInt(b, a.Value(i), 10)
	case *array.Int32:
		return strconv.AppendInt(b, int64(a.Value(i)), 10)
	case *array.Uint64:
		return strconv.AppendUint(b, a.Value(i), 10)
	case *array.Float64:
		return strconv.AppendFloat(b, a.Value(i), 'g', -1, 64)
	case *array.String:
		return append(b, a.Value(i)...)
	case *array.Boolean:
		return strconv.AppendBool(b, a.Value(i))
	case *array.Timestamp:
		return timeOf(a, i).AppendFormat(b, time.RFC3339Nano)
	case *array.List:
		start, end := a.ValueOffsets(i)
		for k := start; k < end; k++ {
			if k > start {
				b = append(b, ',')
			}
			b = appendCell(b, a.ListValues(), int(k), nullNum, null)
		}
		return b
	}
	return append(b, a.ValueStr(i)...)
}

func timeOf(a *array.Timestamp, i int) time.Time {
	unit := a.DataType().(*arrow.TimestampType).Unit
	return a.Value(i).ToTime(unit).UTC()
}

// appendJSON appends row i of a as a JSON value: null for a null, NaN or
// infinity; timestamps as RFC 3339 strings; lists as arrays.
func appendJSON(b []byte, a arrow.Array, i int) []byte {
	if a.IsNull(i) {
		return append(b, "null"...)
	}
	switch a := a.(type) {
	case *array.Int64, *array.Int32, *array.Uint64, *array.Boolean:
		return appendCell(b, a, i, "", "")
	case *array.Float64:
		if v := a.Value(i); !math.IsNaN(v) && !math.IsInf(v, 0) {
			return strconv.AppendFloat(b, v, 'g', -1, 64)
		}
		return append(b, "null"...)
	case *array.String:
		return appendJSONString(b, a.Value(i))
	case *array.Timestamp:
		b = append(b, '"')
		return append(timeOf(a, i).AppendFormat(b, time.RFC3339Nano), '"')
	case *array.List:
		start, end := a.ValueOffsets(i)
		b = append(b, '[')
		for k := start; k < end; k++ {
			if k > start {
				b = append(b, ',')
			}
			b = appendJSON(b, a.ListValues(), int(k))
		}
		return append(b, ']')
	}
	return appendJSONString(b, a.ValueStr(i))
}

// appendJSONString appends s as a JSON string; invalid UTF-8 becomes
// U+FFFD.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b = append(b, '\\', byte(r))
		case r == '\n':
			b = append(b, '\\', 'n')
		case r == '\t':
			b = append(b, '\\', 't')
		case r == '\r':
			b = append(b, '\\', 'r')
		case r < 0x20 || r == 0x2028 || r == 0x2029:
			b = append(b, '\\', 'u', hex[r>>12&0xf], hex[r>>8&0xf], hex[r>>4&0xf], hex[r&0xf])
		default:
			b = utf8.AppendRune(b, r)
		}
	}
	return append(b, '"')
}

func writeJSON(w io.Writer, schema *arrow.Schema, recs []arrow.RecordBatch) error {
	bw := bufio.NewWriterSize(w, 1<<16)
	keys := make([][]byte, schema.NumFields())
	for i, f := range schema.Fields() {
		keys[i] = appendJSONString(nil, f.Name)
	}
	var line []byte
	for _, b := range recs {
		for i := 0; i < int(b.NumRows()); i++ {
			line = append(line[:0], '{')
			for c, col := range b.Columns() {
				if c > 0 {
					line = append(line, ',')
				}
				line = append(line, keys[c]...)
				line = append(line, ':')
				line = appendJSON(line, col, i)
			}
			line = append(line, '}', '\n')
			if _, err := bw.Write(line); err != nil {
				return err
			}
		}
	}
	return bw.Flush()
}
