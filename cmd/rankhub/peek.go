package main

import (
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/rankhub/rankhub/jobs"
	"github.com/rankhub/rankhub/results"
	"github.com/rankhub/rankhub/results/plot"
)

type peekFlags struct {
	by, format, plot, x, y string
	logx, logy             bool
}

func newPeekFlags(fl *peekFlags) *flag.FlagSet {
	fs := flag.NewFlagSet("peek", flag.ContinueOnError)
	fs.StringVar(&fl.by, "by", "", "group by these columns, comma separated (default: the job's [results].group_by)")
	fs.StringVar(&fl.format, "format", "table", "output format: table, tsv (for awk and gnuplot: # header, tab-separated, NaN when undefined), csv or json")
	fs.StringVar(&fl.plot, "plot", "", "also draw mean ± standard error to this SVG file (needs --x and --y)")
	fs.StringVar(&fl.x, "x", "", "plot: the parameter on the x axis")
	fs.StringVar(&fl.y, "y", "", "plot: the output on the y axis")
	fs.BoolVar(&fl.logx, "logx", false, "plot: logarithmic x axis")
	fs.BoolVar(&fl.logy, "logy", false, "plot: logarithmic y axis")
	return fs
}

func init() {
	register(&command{name: "peek", summary: "per-group n, mean, standard error, min, max of a result file, also while it is written",
		usage: "results.arrow [more.arrow of the same job...] [--by L,T] [--format table|tsv|csv|json] [--plot out.svg --x T --y energy [--logx] [--logy]]", run: runPeek})
	flagSets["peek"] = func() *flag.FlagSet { return newPeekFlags(&peekFlags{}) }
}

func runPeek(args []string, stdout, stderr io.Writer) error {
	var fl peekFlags
	fs := newPeekFlags(&fl)
	// Files before, between or after the flags.
	files, err := parseMixed("peek", fs, args, stdout)
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return &usageError{msg: "no result file given"}
	}
	rs, closeAll, err := openAll("peek", files, stderr)
	if err != nil {
		return err
	}
	defer closeAll()
	r := rs[0]
	var by []string
	if fl.by != "" {
		for _, b := range strings.Split(fl.by, ",") {
			if b = strings.TrimSpace(b); b != "" {
				by = append(by, b)
			}
		}
	} else if job, err := jobs.Parse("result file provenance", []byte(r.Provenance().JobText)); err == nil && job.Results != nil {
		by = job.Results.GroupBy
	}
	s, err := results.PeekFiles(rs, by)
	if err != nil {
		return err
	}
	switch fl.format {
	case "table":
		if err = s.WriteTable(stdout); err == nil {
			err = results.WriteAdaptive(stdout, r) // adaptive sweeps: why each group stopped
		}
	case "csv":
		err = s.WriteCSV(stdout)
	case "json":
		err = s.WriteJSON(stdout)
	case "tsv":
		err = s.WriteTSV(stdout)
	default:
		return &usageError{msg: fmt.Sprintf("--format %q: use table, tsv, csv or json", fl.format)}
	}
	if err != nil {
		return err
	}
	if fl.plot != "" {
		if fl.x == "" || fl.y == "" {
			return &usageError{msg: "--plot needs --x and --y"}
		}
		rest := make([]string, 0, len(by))
		for _, b := range by {
			if b != fl.x {
				rest = append(rest, b)
			}
		}
		ps := s
		if len(by) == 0 || !slices.Contains(by, fl.x) {
			ps, err = results.PeekFiles(rs, append([]string{fl.x}, rest...))
			if err != nil {
				return err
			}
		}
		o := plot.Options{X: fl.x, Y: fl.y, Series: rest, LogX: fl.logx, LogY: fl.logy,
			Note: plot.PartialNote(ps, r.Provenance().Tasks)}
		if err := plot.SVG(ps, o, fl.plot); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "rankhub peek: plot written to %s\n", fl.plot)
	}
	return nil
}
