package jobs

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// Load reads, decodes and validates the job file at path. See Parse.
func Load(path string) (*Job, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("jobs: %w", err)
	}
	return Parse(path, data)
}

// LoadEngines is Load for an engines job (`rankhub submit --join`): every
// rank is an engine joining a running hub and none is a hub, so one rank is
// enough. See ParseEngines.
func LoadEngines(path string) (*Job, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("jobs: %w", err)
	}
	return ParseEngines(path, data)
}

// ParseEngines is Parse for an engines job (see LoadEngines). Apply keeps
// the job an engines job.
func ParseEngines(file string, data []byte) (*Job, error) {
	return parse(file, data, true)
}

// Parse decodes and validates a job file's contents; file names it in
// diagnostics and anchors relative paths ("" for text held in memory).
//
// On success the job has its defaults applied (see Defaults), its sweep
// validated and its warnings in Job.Warnings. Otherwise the error is an
// *Errors holding every problem found, each with file, line, column and
// dotted key; nothing is returned for a job that has any error.
func Parse(file string, data []byte) (*Job, error) {
	return parse(file, data, false)
}

func parse(file string, data []byte, engines bool) (*Job, error) {
	src := string(data)
	var raw map[string]any
	md, err := toml.Decode(src, &raw)
	if err != nil {
		return nil, &Errors{Diags: []Diag{syntaxDiag(file, err)}}
	}
	j := &Job{File: file, Source: slices.Clone(data), pos: scanKeys(src), engines: engines}
	d := newDiags(file, j.pos, nil)
	dec := decoder{d: d, md: md, order: keyOrder(md.Keys())}
	dec.document(j, raw)
	j.decodeWarns = d.warns
	j.Defaults()
	verr := j.Validate()
	if len(d.errs) == 0 {
		if verr != nil {
			return nil, verr
		}
		return j, nil
	}
	// Report validation errors too, except those about keys that already
	// failed to decode (their zero values would only repeat the problem).
	all := d.errs
	if e, ok := verr.(*Errors); ok {
		for _, v := range e.Diags {
			if !d.failedUnder(v.Key) {
				all = append(all, v)
			}
		}
	}
	sortDiags(all)
	return nil, &Errors{Diags: all}
}

// syntaxDiag turns the TOML parser's error into a diagnostic.
func syntaxDiag(file string, err error) Diag {
	var pe toml.ParseError
	if errors.As(err, &pe) {
		line, col := pe.Position.Line, pe.Position.Col
		if line < 1 {
			line, col = 1, 1
		}
		if col < 1 {
			col = 1
		}
		return Diag{File: file, Line: line, Col: col, Key: pe.LastKey, Msg: "syntax error: " + pe.Message}
	}
	return Diag{File: file, Line: 1, Col: 1, Msg: err.Error()}
}

// keyOrder maps every key path (by toml.Key.String) to its rank in the file,
// from MetaData.Keys, which keeps the order of the document.
func keyOrder(keys []toml.Key) map[string]int {
	order := make(map[string]int, len(keys))
	for i, k := range keys {
		if _, ok := order[k.String()]; !ok {
			order[k.String()] = i
		}
	}
	return order
}

// decoder turns the generic TOML tree into a Job, checking types and
// reporting unknown keys. BurntSushi/toml's MetaData.Undecoded cannot help
// here: the tree is decoded into map[string]any (so that every error is
// found, not just the first), and the library counts nothing under an
// interface as decoded. Unknown keys are instead those the schema below does
// not name; MetaData.Keys gives the file order.
type decoder struct {
	d     *diags
	md    toml.MetaData
	order map[string]int
}

// keys returns the keys of table (found at path) in file order.
func (dec *decoder) keys(path []string, table map[string]any) []string {
	ks := make([]string, 0, len(table))
	for k := range table {
		ks = append(ks, k)
	}
	rank := func(k string) int {
		if r, ok := dec.order[keyString(sub(path, k))]; ok {
			return r
		}
		return math.MaxInt
	}
	slices.SortStableFunc(ks, func(a, b string) int {
		if ra, rb := rank(a), rank(b); ra != rb {
			return ra - rb
		}
		return strings.Compare(a, b)
	})
	return ks
}

// tomlType names the TOML type of a decoded value, for messages.
func tomlType(v any) string {
	switch v.(type) {
	case string:
		return "string"
	case int64:
		return "integer"
	case float64:
		return "float"
	case bool:
		return "boolean"
	case time.Time:
		return "datetime"
	case []any:
		return "array"
	case map[string]any:
		return "table"
	case []map[string]any:
		return "array of tables"
	default:
		return fmt.Sprintf("%T", v)
	}
}

// unknown reports a key the schema does not know, suggesting a close one.
func (dec *decoder) unknown(key []string, known []string) {
	name := key[len(key)-1]
	best, bestDist := "", 2+len(name)/5
	for _, k := range known {
		if dist := editDistance(strings.ToLower(name), k); dist < bestDist {
			best, bestDist = k, dist
		}
	}
	if best != "" {
		dec.d.errorf(key, "unknown key (did you mean %q?)", best)
		return
	}
	dec.d.errorf(key, "unknown key (known: %s)", strings.Join(known, ", "))
}

// editDistance is the Levenshtein distance of two short strings.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func (dec *decoder) document(j *Job, raw map[string]any) {
	known := []string{"job", "task", "sweep", "results"}
	for _, k := range dec.keys(nil, raw) {
		key := []string{k}
		v := raw[k]
		if !slices.Contains(known, k) {
			if _, isTable := v.(map[string]any); !isTable && slices.Contains(jobKeys(), k) {
				dec.d.errorf(key, "key outside any table: put it under [job]")
				continue
			}
			dec.unknown(key, known)
			continue
		}
		table, ok := v.(map[string]any)
		if !ok {
			dec.d.errorf(key, "want a table [%s], got %s", k, tomlType(v))
			continue
		}
		switch k {
		case "job":
			dec.job(&j.Job, key, table)
		case "task":
			j.Task = &TaskSpec{}
			dec.task(j.Task, key, table)
		case "sweep":
			j.Sweep = &SweepSpec{}
			dec.sweep(j.Sweep, key, table)
		case "results":
			j.Results = &ResultsSpec{}
			dec.results(j.Results, key, table)
		}
	}
}

// field decodes one known key of a table.
type field func(dec *decoder, key []string, v any)

func (dec *decoder) table(path []string, table map[string]any, fields map[string]field) {
	known := make([]string, 0, len(fields))
	for k := range fields {
		known = append(known, k)
	}
	slices.Sort(known)
	for _, k := range dec.keys(path, table) {
		key := sub(path, k)
		if f, ok := fields[k]; ok {
			f(dec, key, table[k])
		} else {
			dec.unknown(key, known)
		}
	}
}

// Typed setters: each checks the TOML type and reports a mismatch at key.

func str(p *string) field {
	return func(dec *decoder, key []string, v any) {
		if s, ok := v.(string); ok {
			*p = s
			return
		}
		dec.d.errorf(key, "want a string, got %s", tomlType(v))
	}
}

func integer(p *int) field {
	return func(dec *decoder, key []string, v any) {
		n, ok := v.(int64)
		if !ok {
			dec.d.errorf(key, "want an integer, got %s", tomlType(v))
			return
		}
		if n < math.MinInt32 || n > math.MaxInt32 {
			dec.d.errorf(key, "%d is out of range", n)
			return
		}
		*p = int(n)
	}
}

func boolean(p **bool) field {
	return func(dec *decoder, key []string, v any) {
		b, ok := v.(bool)
		if !ok {
			dec.d.errorf(key, "want true or false, got %s", tomlType(v))
			return
		}
		*p = &b
	}
}

// plainBool decodes a boolean whose default is false.
func plainBool(p *bool) field {
	var b *bool
	set := boolean(&b)
	return func(dec *decoder, key []string, v any) {
		if set(dec, key, v); b != nil {
			*p = *b
		}
	}
}

func duration(p *Duration) field {
	return func(dec *decoder, key []string, v any) {
		if err := p.UnmarshalTOML(v); err != nil {
			dec.d.errorf(key, "%v", err)
		}
	}
}

func strs(p *[]string) field {
	return func(dec *decoder, key []string, v any) {
		arr, ok := v.([]any)
		if !ok {
			dec.d.errorf(key, "want an array of strings, got %s", tomlType(v))
			return
		}
		out := make([]string, 0, len(arr))
		for i, e := range arr {
			s, ok := e.(string)
			if !ok {
				dec.d.errorf(key, "element %d: want a string, got %s", i, tomlType(e))
				return
			}
			out = append(out, s)
		}
		*p = out
	}
}

func seed(p *uint64) field {
	return func(dec *decoder, key []string, v any) {
		n, ok := v.(int64)
		if !ok {
			dec.d.errorf(key, "want an integer, got %s", tomlType(v))
			return
		}
		if n < 0 {
			dec.d.errorf(key, "%d is negative", n)
			return
		}
		*p = uint64(n)
	}
}

func env(p *map[string]string) field {
	return func(dec *decoder, key []string, v any) {
		t, ok := v.(map[string]any)
		if !ok {
			dec.d.errorf(key, "want a table of NAME = value, got %s", tomlType(v))
			return
		}
		out := make(map[string]string, len(t))
		for _, k := range dec.keys(key, t) {
			switch e := t[k].(type) {
			case string:
				out[k] = e
			case int64, float64, bool:
				out[k] = formatScalar(e)
			default:
				dec.d.errorf(sub(key, k), "want a string, number or boolean, got %s", tomlType(e))
			}
		}
		*p = out
	}
}

func jobFields(s *JobSpec) map[string]field {
	return map[string]field{
		"name":           str(&s.Name),
		"scheduler":      str(&s.Scheduler),
		"ranks":          integer(&s.Ranks),
		"nodes":          integer(&s.Nodes),
		"ranks_per_node": integer(&s.RanksPerNode),
		"cpus_per_rank":  integer(&s.CPUsPerRank),
		"memory":         str(&s.Memory),
		"walltime":       duration(&s.Walltime),
		"partition":      str(&s.Partition),
		"queue":          str(&s.Queue),
		"account":        str(&s.Account),
		"qos":            str(&s.QoS),
		"email":          str(&s.Email),
		"mail_type":      str(&s.MailType),
		"output":         str(&s.Output),
		"error":          str(&s.Error),
		"setup":          strs(&s.Setup),
		"env":            env(&s.Env),
		"directives":     strs(&s.Directives),
		"template":       str(&s.Template),
		"program":        strs(&s.Program),
		"workdir":        str(&s.Workdir),
		"abort_on_error": boolean(&s.AbortOnError),
		"seed":           seed(&s.Seed),
		"transport":      str(&s.Transport),
		"heartbeat":      duration(&s.Heartbeat),
		"signal_lead":    duration(&s.SignalLead),
		"requeue":        boolean(&s.Requeue),
		"network":        str(&s.Network),
		"tls":            str(&s.TLS),
		"max_frame":      str(&s.MaxFrame),
		"pbs_dialect":    str(&s.PBSDialect),
		"starter":        str(&s.Starter),
		"group_readable": plainBool(&s.GroupReadable),
	}
}

// jobKeys lists the keys of [job], for hints.
func jobKeys() []string {
	var ks []string
	for k := range jobFields(&JobSpec{}) {
		ks = append(ks, k)
	}
	return ks
}

func (dec *decoder) job(s *JobSpec, path []string, t map[string]any) {
	dec.table(path, t, jobFields(s))
}

func (dec *decoder) task(s *TaskSpec, path []string, t map[string]any) {
	dec.table(path, t, map[string]field{
		"command":  str(&s.Command),
		"function": str(&s.Function),
		"outputs":  strs(&s.Outputs),
		"parse":    str(&s.Parse),
		"timeout":  duration(&s.Timeout),
		"retries":  integer(&s.Retries),
		"shell":    str(&s.Shell),
		"comment":  str(&s.Comment),
		"stdin":    str(&s.Stdin),
		"inputs":   strs(&s.Inputs),
	})
}

func (dec *decoder) results(s *ResultsSpec, path []string, t map[string]any) {
	dec.table(path, t, map[string]field{
		"path":           str(&s.Path),
		"group_by":       strs(&s.GroupBy),
		"flush_interval": duration(&s.FlushInterval),
		"flush_rows":     integer(&s.FlushRows),
		"text_limit":     integer(&s.TextLimit),
	})
}

// jobDir is the directory relative paths in the job are taken from.
func jobDir(file string) string {
	if file == "" {
		return "."
	}
	return filepath.Dir(file)
}
