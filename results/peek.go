package results

import (
	"bufio"
	"encoding/binary"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/rankhub/rankhub/jobs"
)

// Summary is Peek's aggregation of a result file: one Group per distinct
// combination of the By columns, sorted by key.
type Summary struct {
	By       []string // grouping columns, in the order asked
	Outputs  []string // output columns, in file order
	Groups   []Group
	Rows     int  // rows read
	Failed   int  // failed rows read
	Complete bool // the file was complete (closed by its writer)
	Status   string
}

// Group is one combination of values of the By columns.
type Group struct {
	// Key holds one value per By column: int64 (int parameters, replicate,
	// rank, attempt, exit_status, task), float64, string or bool.
	Key    []any
	Rows   int    // rows in the group, failed ones included
	Failed int    // rows of failed tasks (exit_status != 0 or an error)
	Stats  []Stat // one per output, in Summary.Outputs order
}

// Stat summarizes one output over a group's non-null values.
type Stat struct {
	N    int     // non-null values
	Mean float64 // NaN when N == 0
	SEM  float64 // standard error of the mean: sample std / sqrt(N); NaN when N < 2
	Min  float64 // NaN when N == 0
	Max  float64 // NaN when N == 0
	m2   float64 // sum of squared deviations from the mean (Welford), for merging
}

func newStat() Stat { return Stat{Mean: math.NaN(), SEM: math.NaN(), Min: math.NaN(), Max: math.NaN()} }

// NewStat returns the Stat of no values.
func NewStat() Stat { return newStat() }

// Merge folds o into s exactly, as if s had seen o's values too (pooling
// groups), and updates SEM.
func (s *Stat) Merge(o Stat) {
	s.merge(o)
	s.finish()
}

// add folds x into s (Welford's update).
func (s *Stat) add(x float64) {
	s.N++
	if s.N == 1 {
		s.Mean, s.m2, s.Min, s.Max = x, 0, x, x
		return
	}
	d := x - s.Mean
	s.Mean += d / float64(s.N)
	s.m2 += d * (x - s.Mean)
	s.Min = math.Min(s.Min, x)
	s.Max = math.Max(s.Max, x)
}

// merge folds o into s (Chan et al.'s pairwise update).
func (s *Stat) merge(o Stat) {
	if o.N == 0 {
		return
	}
	if s.N == 0 {
		*s = o
		return
	}
	n := s.N + o.N
	d := o.Mean - s.Mean
	s.Mean += d * float64(o.N) / float64(n)
	s.m2 += o.m2 + d*d*float64(s.N)*float64(o.N)/float64(n)
	s.N = n
	s.Min = math.Min(s.Min, o.Min)
	s.Max = math.Max(s.Max, o.Max)
}

func (s *Stat) finish() {
	if s.N >= 2 {
		s.SEM = math.Sqrt(s.m2/float64(s.N-1)) / math.Sqrt(float64(s.N))
	} else {
		s.SEM = math.NaN()
	}
}

// groupable reports the columns Peek can group by, in file order.
func groupable(r *Reader) []string {
	out := []string{ColTask}
	out = append(out, r.Params()...)
	return append(out, ColReplicate, ColRank, ColHost, ColAttempt, ColExitStatus)
}

// Peek aggregates the rows of r per group of the by columns (sweep
// parameters, or task, replicate, rank, host, attempt, exit_status): for
// each output n, mean, standard error of the mean, min and max over the
// non-null values, and the failed rows per group. An empty by gives one
// group of all rows. Groups are sorted by key, numbers numerically.
func Peek(r *Reader, by []string) (*Summary, error) {
	return PeekFiles([]*Reader{r}, by)
}

// PeekFiles is Peek over the rows of several files of one job (see
// SameJob), as if they were one file. Complete is true when every file is;
// Status is the files' common status, or "" when they differ.
func PeekFiles(rs []*Reader, by []string) (*Summary, error) {
	if len(rs) == 0 {
		return nil, fmt.Errorf("results: peek: no file")
	}
	for _, o := range rs[1:] {
		if err := SameJob(rs[0], o); err != nil {
			return nil, err
		}
	}
	r := rs[0]
	avail := groupable(r)
	idx := make([]int, len(by))
	for i, name := range by {
		if !slices.Contains(avail, name) {
			return nil, fmt.Errorf("results: peek %s: %q is not a column to group by; available: %s", r.Path(), name, strings.Join(avail, ", "))
		}
		if slices.Contains(by[:i], name) {
			return nil, fmt.Errorf("results: peek %s: %q given twice", r.Path(), name)
		}
		idx[i] = r.Schema().FieldIndices(name)[0]
	}
	s := &Summary{By: slices.Clone(by), Complete: true}
	if st, ok := r.Status(); ok {
		s.Status = st.State
	}
	var recs []arrow.RecordBatch
	for _, f := range rs {
		s.Complete = s.Complete && f.Complete()
		if st, _ := f.Status(); st.State != s.Status {
			s.Status = ""
		}
		recs = append(recs, f.Records()...)
	}
	// A list output (parse = "table") is averaged element-wise: its
	// element e is the output "name[e]", as many as its longest list.
	width := make([]int, len(r.outputs))
	for k, o := range r.outputs {
		width[k] = 1
		if !o.list {
			s.Outputs = append(s.Outputs, o.name)
			continue
		}
		width[k] = 0
		for _, rec := range recs {
			l := rec.Column(o.idx).(*array.List)
			for i := 0; i < l.Len(); i++ {
				if a, b := l.ValueOffsets(i); l.IsValid(i) {
					width[k] = max(width[k], int(b-a))
				}
			}
		}
		for e := range width[k] {
			s.Outputs = append(s.Outputs, fmt.Sprintf("%s[%d]", o.name, e))
		}
	}
	groups := map[string]*Group{}
	var kb []byte
	key := make([]any, len(by))
	for _, rec := range recs {
		exit := rec.Column(r.fixed[ColExitStatus]).(*array.Int32)
		errc := rec.Column(r.fixed[ColError])
		outs := make([]arrow.Array, len(r.outputs))
		for k, o := range r.outputs {
			outs[k] = rec.Column(o.idx)
		}
		for i := 0; i < int(rec.NumRows()); i++ {
			kb = kb[:0]
			for j, c := range idx {
				key[j] = cell(rec.Column(c), i)
				kb = appendKey(kb, key[j])
			}
			g := groups[string(kb)]
			if g == nil {
				g = &Group{Key: slices.Clone(key), Stats: make([]Stat, len(s.Outputs))}
				for k := range g.Stats {
					g.Stats[k] = newStat()
				}
				groups[string(kb)] = g
			}
			g.Rows++
			s.Rows++
			if exit.Value(i) != 0 || errc.IsValid(i) {
				g.Failed++
				s.Failed++
				continue
			}
			at := 0 // g.Stats of output k start here
			for k, c := range outs {
				switch a := c.(type) {
				case *array.Float64:
					if a.IsValid(i) && !math.IsNaN(a.Value(i)) {
						g.Stats[at].add(a.Value(i))
					}
				case *array.List:
					if a.IsValid(i) {
						vals := a.ListValues().(*array.Float64)
						start, end := a.ValueOffsets(i)
						for e := start; e < end; e++ {
							if v := vals.Value(int(e)); vals.IsValid(int(e)) && !math.IsNaN(v) {
								g.Stats[at+int(e-start)].add(v)
							}
						}
					}
				}
				at += width[k]
			}
		}
	}
	for _, g := range groups {
		for k := range g.Stats {
			g.Stats[k].finish()
		}
		s.Groups = append(s.Groups, *g)
	}
	slices.SortFunc(s.Groups, func(a, b Group) int { return compareKeys(a.Key, b.Key) })
	return s, nil
}

// SameJob reports why the files of a and b cannot be read as one: a
// different job name or different columns. A task in both is refused too,
// since its rows would count twice.
func SameJob(a, b *Reader) error {
	na, nb := jobName(a), jobName(b)
	if na != nb {
		return fmt.Errorf("results: %s is job %q, %s is job %q: only files of one job can be read together", a.Path(), na, b.Path(), nb)
	}
	if err := sameColumns(a.Schema(), b.Schema()); err != nil {
		return fmt.Errorf("results: %s and %s are both job %q but their columns differ: %v", a.Path(), b.Path(), na, err)
	}
	seen := map[[2]uint64]bool{}
	for _, rec := range a.Records() {
		task, seed := rec.Column(0).(*array.Int64), rec.Column(a.fixed[ColSeed]).(*array.Uint64)
		for i := 0; i < int(rec.NumRows()); i++ {
			seen[[2]uint64{uint64(task.Value(i)), seed.Value(i)}] = true
		}
	}
	for _, rec := range b.Records() {
		task, seed := rec.Column(0).(*array.Int64), rec.Column(b.fixed[ColSeed]).(*array.Uint64)
		for i := 0; i < int(rec.NumRows()); i++ {
			if seen[[2]uint64{uint64(task.Value(i)), seed.Value(i)}] {
				return fmt.Errorf("results: task %d (seed %d) is in both %s and %s: its rows would count twice", task.Value(i), seed.Value(i), a.Path(), b.Path())
			}
		}
	}
	return nil
}

// jobName returns the [job] name recorded in r's job text, "" if none.
func jobName(r *Reader) string {
	job, err := jobs.Parse("job", []byte(r.Provenance().JobText))
	if err != nil {
		return ""
	}
	return job.Job.Name
}

// appendKey appends a value's type and bits, so that distinct values give
// distinct keys.
func appendKey(b []byte, v any) []byte {
	switch v := v.(type) {
	case int64:
		return binary.LittleEndian.AppendUint64(append(b, 'i'), uint64(v))
	case float64:
		return binary.LittleEndian.AppendUint64(append(b, 'f'), math.Float64bits(v))
	case bool:
		if v {
			return append(b, 't')
		}
		return append(b, 'b')
	case string:
		return append(binary.LittleEndian.AppendUint32(append(b, 's'), uint32(len(v))), v...)
	}
	return fmt.Appendf(append(b, '?'), "%T:%v\x00", v, v)
}

// cell returns a grouping column's value as int64, float64, string or bool.
func cell(a arrow.Array, i int) any {
	switch a := a.(type) {
	case *array.Int64:
		return a.Value(i)
	case *array.Int32:
		return int64(a.Value(i))
	case *array.Float64:
		return a.Value(i)
	case *array.String:
		return a.Value(i)
	case *array.Boolean:
		return a.Value(i)
	}
	return a.ValueStr(i)
}

// CompareKeys orders group keys as Peek sorts them: column by column,
// numbers numerically.
func CompareKeys(a, b []any) int { return compareKeys(a, b) }

func compareKeys(a, b []any) int {
	for i := range a {
		if c := compareValue(a[i], b[i]); c != 0 {
			return c
		}
	}
	return 0
}

func compareValue(a, b any) int {
	switch x := a.(type) {
	case int64:
		if y, ok := b.(int64); ok {
			return cmpOrdered(x, y)
		}
	case float64:
		if y, ok := b.(float64); ok {
			switch {
			case math.IsNaN(x) && math.IsNaN(y):
				return 0
			case math.IsNaN(x):
				return 1
			case math.IsNaN(y):
				return -1
			}
			return cmpOrdered(x, y)
		}
	case string:
		if y, ok := b.(string); ok {
			return strings.Compare(x, y)
		}
	case bool:
		if y, ok := b.(bool); ok {
			switch {
			case x == y:
				return 0
			case !x:
				return -1
			}
			return 1
		}
	}
	return strings.Compare(fmt.Sprint(a), fmt.Sprint(b))
}

func cmpOrdered[T int64 | float64](x, y T) int {
	switch {
	case x < y:
		return -1
	case x > y:
		return 1
	}
	return 0
}

// FormatKey formats a group key value as Peek's outputs do.
func FormatKey(v any) string { return formatKey(v) }

func formatKey(v any) string {
	switch v := v.(type) {
	case float64:
		return strconv.FormatFloat(v, 'g', -1, 64)
	case int64:
		return strconv.FormatInt(v, 10)
	}
	return fmt.Sprint(v)
}

func formatNum(x float64) string {
	if math.IsNaN(x) {
		return ""
	}
	return strconv.FormatFloat(x, 'g', 6, 64)
}

// WriteTable writes the summary as aligned text columns: the key, rows,
// failed, and per output "mean ± sem" (sem "-" for fewer than 2 values).
func (s *Summary) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	head := append(slices.Clone(s.By), "rows", "failed")
	head = append(head, s.Outputs...)
	fmt.Fprintln(tw, strings.Join(head, "\t"))
	for _, g := range s.Groups {
		cells := make([]string, 0, len(head))
		for _, k := range g.Key {
			cells = append(cells, formatKey(k))
		}
		cells = append(cells, strconv.Itoa(g.Rows), strconv.Itoa(g.Failed))
		for _, st := range g.Stats {
			switch {
			case st.N == 0:
				cells = append(cells, "-")
			case st.N < 2:
				cells = append(cells, formatNum(st.Mean)+" ± -")
			default:
				cells = append(cells, formatNum(st.Mean)+" ± "+formatNum(st.SEM))
			}
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	return tw.Flush()
}

// WriteCSV writes one header line and one line per group: the key columns,
// rows, failed, and per output <name>_n, _mean, _sem, _min, _max. A value
// that is not defined (mean of no values, sem of fewer than 2) is empty.
func (s *Summary) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	if err := cw.WriteAll(s.cells(fullNum)); err != nil {
		return err
	}
	return cw.Error()
}

// cells returns the header and one line per group of WriteCSV and
// WriteTSV, numbers formatted by num.
func (s *Summary) cells(num func(float64) string) [][]string {
	head := append(slices.Clone(s.By), "rows", "failed")
	for _, o := range s.Outputs {
		head = append(head, o+"_n", o+"_mean", o+"_sem", o+"_min", o+"_max")
	}
	out := [][]string{head}
	for _, g := range s.Groups {
		rec := make([]string, 0, len(head))
		for _, k := range g.Key {
			rec = append(rec, formatKey(k))
		}
		rec = append(rec, strconv.Itoa(g.Rows), strconv.Itoa(g.Failed))
		for _, st := range g.Stats {
			rec = append(rec, strconv.Itoa(st.N), num(st.Mean), num(st.SEM), num(st.Min), num(st.Max))
		}
		out = append(out, rec)
	}
	return out
}

// WriteTSV writes the summary for awk and gnuplot: a header line starting
// with "# ", then one line per group, fields separated by tabs, every line
// with the same number of fields: the key columns, rows, failed, and per
// output <name>_n, _mean, _sem, _min, _max; an undefined number is NaN. In
// gnuplot: set datafile separator "\t"; plot 'x.tsv' using 1:5:6 with
// yerrorbars (for one key column and the first output).
func (s *Summary) WriteTSV(w io.Writer) error {
	bw := bufio.NewWriter(w)
	for i, rec := range s.cells(tsvNum) {
		if i == 0 {
			bw.WriteString("# ")
		}
		bw.WriteString(strings.Join(tsvFields(rec), "\t") + "\n")
	}
	return bw.Flush()
}

// tsvNum formats x in full, NaN for an undefined value.
func tsvNum(x float64) string { return strconv.FormatFloat(x, 'g', -1, 64) }

// TSVEscape makes s one TSV field: backslash, tab, newline and carriage
// return are escaped as \\, \t, \n and \r; an empty string is "-".
func TSVEscape(s string) string {
	if s == "" {
		return "-"
	}
	if !strings.ContainsAny(s, "\\\t\n\r") {
		return s
	}
	return tsvReplacer.Replace(s)
}

var tsvReplacer = strings.NewReplacer("\\", "\\\\", "\t", "\\t", "\n", "\\n", "\r", "\\r")

func tsvFields(f []string) []string {
	for i := range f {
		f[i] = TSVEscape(f[i])
	}
	return f
}

func fullNum(x float64) string {
	if math.IsNaN(x) {
		return ""
	}
	return strconv.FormatFloat(x, 'g', -1, 64)
}

type jsonStat struct {
	N    int      `json:"n"`
	Mean *float64 `json:"mean"`
	SEM  *float64 `json:"sem"`
	Min  *float64 `json:"min"`
	Max  *float64 `json:"max"`
}

type jsonGroup struct {
	Key    []any               `json:"key"`
	Rows   int                 `json:"rows"`
	Failed int                 `json:"failed"`
	Stats  map[string]jsonStat `json:"stats"`
}

type jsonSummary struct {
	By       []string    `json:"by"`
	Outputs  []string    `json:"outputs"`
	Rows     int         `json:"rows"`
	Failed   int         `json:"failed"`
	Complete bool        `json:"complete"`
	Status   string      `json:"status,omitempty"`
	Groups   []jsonGroup `json:"groups"`
}

func jnum(x float64) *float64 {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return nil
	}
	return &x
}

// WriteJSON writes the summary as one JSON object: by, outputs, rows,
// failed, complete, status, and groups, each with key (one value per by
// column), rows, failed and stats per output name (n, mean, sem, min, max;
// null where undefined).
func (s *Summary) WriteJSON(w io.Writer) error {
	js := jsonSummary{By: nonNil(s.By), Outputs: nonNil(s.Outputs), Rows: s.Rows, Failed: s.Failed,
		Complete: s.Complete, Status: s.Status, Groups: []jsonGroup{}}
	for _, g := range s.Groups {
		jg := jsonGroup{Key: g.Key, Rows: g.Rows, Failed: g.Failed, Stats: map[string]jsonStat{}}
		if jg.Key == nil {
			jg.Key = []any{}
		}
		for k, st := range g.Stats {
			jg.Stats[s.Outputs[k]] = jsonStat{N: st.N, Mean: jnum(st.Mean), SEM: jnum(st.SEM), Min: jnum(st.Min), Max: jnum(st.Max)}
		}
		js.Groups = append(js.Groups, jg)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(js)
}
