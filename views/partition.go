package views

import (
	"fmt"
	"reflect"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
)

// partition splits n rows into k contiguous blocks whose sizes differ by at
// most one, the larger ones first (IPython's scatter): bounds[i]..bounds[i+1].
func partition(n, k int) []int {
	b := make([]int, k+1)
	q, r := n/k, n%k
	for i := 0; i < k; i++ {
		sz := q
		if i < r {
			sz++
		}
		b[i+1] = b[i] + sz
	}
	return b
}

// seqsLen checks that every sequence has the same number of rows.
func seqsLen(seqs []any) (int, error) {
	if len(seqs) == 0 {
		return 0, fmt.Errorf("views: no sequence given")
	}
	n := -1
	for i, s := range seqs {
		m, ok := rowsOf(s)
		if !ok {
			return 0, fmt.Errorf("views: sequence %d: %T cannot be partitioned by rows (want a slice or an Arrow array, record or chunked array)", i+1, s)
		}
		if n >= 0 && m != n {
			return 0, fmt.Errorf("views: sequence %d has %d rows, sequence 1 has %d", i+1, m, n)
		}
		n = m
	}
	return n, nil
}

// sliceRows returns rows [i, j) of a sequence without copying its data.
// The caller owns the returned Arrow values only as long as the input lives
// (they are sent before the call returns).
func sliceRows(v any, i, j int) (any, error) {
	switch x := v.(type) {
	case arrow.Array:
		return array.NewSlice(x, int64(i), int64(j)), nil
	case arrow.RecordBatch:
		return x.NewSlice(int64(i), int64(j)), nil
	case *arrow.Chunked:
		return array.NewChunkedSlice(x, int64(i), int64(j)), nil
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Slice:
		return rv.Slice(i, j).Interface(), nil
	case reflect.Array:
		out := reflect.MakeSlice(reflect.SliceOf(rv.Type().Elem()), j-i, j-i)
		reflect.Copy(out, rv.Slice(i, j))
		return out.Interface(), nil
	}
	return nil, fmt.Errorf("views: %T cannot be partitioned by rows", v)
}

// concat joins gathered parts: Go slices of one type into one slice, Arrow
// arrays into a chunked array, records into a table (no data copied).
func concat(parts []any) (any, error) {
	if len(parts) == 0 {
		return []any{}, nil
	}
	switch parts[0].(type) {
	case arrow.Array:
		arrs := make([]arrow.Array, len(parts))
		for i, p := range parts {
			a, ok := p.(arrow.Array)
			if !ok || !arrow.TypeEqual(a.DataType(), parts[0].(arrow.Array).DataType()) {
				return nil, fmt.Errorf("%w: part %d is %T, part 0 is %s", ErrCannotGather, i, p, parts[0].(arrow.Array).DataType())
			}
			arrs[i] = a
		}
		return arrow.NewChunked(arrs[0].DataType(), arrs), nil
	case arrow.RecordBatch:
		recs := make([]arrow.RecordBatch, len(parts))
		for i, p := range parts {
			r, ok := p.(arrow.RecordBatch)
			if !ok || !r.Schema().Equal(parts[0].(arrow.RecordBatch).Schema()) {
				return nil, fmt.Errorf("%w: part %d is not a record with part 0's schema", ErrCannotGather, i)
			}
			recs[i] = r
		}
		return array.NewTableFromRecords(recs[0].Schema(), recs), nil
	}
	t := reflect.TypeOf(parts[0])
	if t == nil || t.Kind() != reflect.Slice {
		return nil, fmt.Errorf("%w: part 0 is %T, not a slice", ErrCannotGather, parts[0])
	}
	out := reflect.MakeSlice(t, 0, 0)
	for i, p := range parts {
		rv := reflect.ValueOf(p)
		if rv.Type() != t {
			return nil, fmt.Errorf("%w: part %d is %T, part 0 is %s", ErrCannotGather, i, p, t)
		}
		out = reflect.AppendSlice(out, rv)
	}
	return out.Interface(), nil
}
