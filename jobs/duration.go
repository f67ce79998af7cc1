package jobs

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// ParseDuration reads a duration in any of the forms a job file accepts:
//
//   - Go durations with an optional leading day count: "2h", "90m", "1h30m",
//     "45s", "1.5h", "2d", "1d12h";
//   - clock forms: "H:MM:SS" ("1:30:00") and "MM:SS" ("30:00"), where only the
//     leading field may exceed 59;
//   - SLURM's "D-HH", "D-HH:MM" and "D-HH:MM:SS" ("1-00:00:00", "2-12").
//
// A bare number in a string ("90") is refused: SLURM reads it as minutes,
// most people as seconds. Negative durations are refused.
func ParseDuration(s string) (Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Duration{}, errors.New("empty duration")
	}
	if s[0] == '-' {
		return Duration{}, fmt.Errorf("duration %q is negative", s)
	}
	if isDigits(s) {
		return Duration{}, fmt.Errorf("duration %q has no unit: write %q, %q or an integer number of seconds", s, s+"m", s+"s")
	}
	var (
		d   time.Duration
		err error
	)
	switch {
	case strings.Contains(s, "-"):
		d, err = parseSlurmDays(s)
	case strings.Contains(s, ":"):
		d, err = parseClock(s, false)
	default:
		d, err = parseGo(s)
	}
	if err != nil {
		return Duration{}, fmt.Errorf("duration %q: %w", s, err)
	}
	return Duration{d}, nil
}

// DurationSeconds returns a Duration of n seconds, refusing negative values
// and values that do not fit.
func DurationSeconds(n int64) (Duration, error) {
	if n < 0 {
		return Duration{}, fmt.Errorf("duration %d is negative", n)
	}
	if n > math.MaxInt64/int64(time.Second) {
		return Duration{}, fmt.Errorf("duration %d s is too long", n)
	}
	return Duration{time.Duration(n) * time.Second}, nil
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// parseGo reads a Go duration with an optional leading "<n>d".
func parseGo(s string) (time.Duration, error) {
	var days time.Duration
	if i := strings.IndexByte(s, 'd'); i >= 0 {
		if !isDigits(s[:i]) {
			return 0, errors.New(`want forms such as "2h", "90m", "1h30m", "2d", "1:30:00" or "1-00:00:00"`)
		}
		n, err := strconv.ParseInt(s[:i], 10, 64)
		if err != nil || n > int64(math.MaxInt64/(24*time.Hour)) {
			return 0, errors.New("too long")
		}
		days = time.Duration(n) * 24 * time.Hour
		s = s[i+1:]
		if s == "" {
			return days, nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, errors.New(`want forms such as "2h", "90m", "1h30m", "2d", "1:30:00" or "1-00:00:00"`)
	}
	if d < 0 {
		return 0, errors.New("negative")
	}
	if d > math.MaxInt64-days {
		return 0, errors.New("too long")
	}
	return days + d, nil
}

// parseClock reads "H:MM:SS" or "MM:SS" (or, with hoursFirst, "HH" and
// "HH:MM" as SLURM writes them after "D-").
func parseClock(s string, hoursFirst bool) (time.Duration, error) {
	fields := strings.Split(s, ":")
	if len(fields) > 3 {
		return 0, errors.New("too many fields: want H:MM:SS, MM:SS or D-HH:MM:SS")
	}
	units := []time.Duration{time.Hour, time.Minute, time.Second}
	if !hoursFirst {
		units = units[3-len(fields):]
	}
	var total time.Duration
	for i, f := range fields {
		if !isDigits(f) {
			return 0, fmt.Errorf("field %q is not a number", f)
		}
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return 0, errors.New("too long")
		}
		limit := int64(60)
		if units[i] == time.Hour {
			limit = 24
		}
		if (i > 0 || hoursFirst) && n >= limit {
			return 0, fmt.Errorf("field %q must be below %d", f, limit)
		}
		if n > int64((math.MaxInt64-total)/units[i]) {
			return 0, errors.New("too long")
		}
		total += time.Duration(n) * units[i]
	}
	return total, nil
}

// parseSlurmDays reads "D-HH", "D-HH:MM" or "D-HH:MM:SS".
func parseSlurmDays(s string) (time.Duration, error) {
	day, rest, _ := strings.Cut(s, "-")
	if !isDigits(day) {
		return 0, errors.New("days must be a number (D-HH:MM:SS)")
	}
	n, err := strconv.ParseInt(day, 10, 64)
	if err != nil || n > int64(math.MaxInt64/(24*time.Hour))-1 {
		return 0, errors.New("too long")
	}
	d, err := parseClock(rest, true)
	if err != nil {
		return 0, err
	}
	return time.Duration(n)*24*time.Hour + d, nil
}

// UnmarshalText decodes any form ParseDuration accepts.
func (d *Duration) UnmarshalText(text []byte) error {
	v, err := ParseDuration(string(text))
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// UnmarshalTOML decodes a TOML string (see ParseDuration) or an integer
// number of seconds.
func (d *Duration) UnmarshalTOML(v any) error {
	switch v := v.(type) {
	case string:
		return d.UnmarshalText([]byte(v))
	case int64:
		s, err := DurationSeconds(v)
		if err != nil {
			return err
		}
		*d = s
		return nil
	default:
		return fmt.Errorf("want a duration string such as \"2h\" or an integer number of seconds, got %s", tomlType(v))
	}
}

// MarshalText writes the duration in Go's form ("1h30m0s"), which
// ParseDuration reads back.
func (d Duration) MarshalText() ([]byte, error) {
	return []byte(d.Duration.String()), nil
}

// seconds rounds up to whole seconds: a scheduler limit must never be
// shorter than asked.
func (d Duration) seconds() int64 {
	s := int64(d.Duration / time.Second)
	if d.Duration%time.Second > 0 {
		s++
	}
	return s
}

// HMS formats the duration as "HH:MM:SS" for PBS's walltime; hours may
// exceed 24 ("48:00:00"). Fractions of a second round up.
func (d Duration) HMS() string {
	s := d.seconds()
	return fmt.Sprintf("%02d:%02d:%02d", s/3600, s/60%60, s%60)
}

// SlurmTime formats the duration for sbatch --time: "D-HH:MM:SS" from one
// day on, "HH:MM:SS" below. Fractions of a second round up.
func (d Duration) SlurmTime() string {
	s := d.seconds()
	if s >= 86400 {
		return fmt.Sprintf("%d-%02d:%02d:%02d", s/86400, s/3600%24, s/60%60, s%60)
	}
	return fmt.Sprintf("%02d:%02d:%02d", s/3600, s/60%60, s%60)
}
