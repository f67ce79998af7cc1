package slurm

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// MaxHostlist is the largest number of host names ExpandHostlist returns;
// a longer expansion is an error rather than an allocation of that size.
const MaxHostlist = 1 << 20

// ErrHostlist is wrapped by every error of ExpandHostlist.
var ErrHostlist = errors.New("slurm: bad hostlist")

// ExpandHostlist expands SLURM hostlist syntax, as in SLURM_JOB_NODELIST,
// into host names in order: "n[001-003,010],gpu7" gives n001 n002 n003 n010
// gpu7. Several bracket groups in one name give their product, the first
// group varying slowest: "a[1-2]b[3-4]" gives a1b3 a1b4 a2b3 a2b4. A range
// pads every number to the width of its lower bound ("[08-10]" gives 08 09
// 10). The empty string gives no hosts. Malformed input is an error that
// wraps ErrHostlist and names the offset.
func ExpandHostlist(s string) ([]string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	var out []string
	start, depth := 0, 0
	for i := 0; i <= len(s); i++ {
		if i < len(s) {
			switch s[i] {
			case '[':
				depth++
				if depth > 1 {
					return nil, fmt.Errorf("%w %q: nested '[' at offset %d", ErrHostlist, s, i)
				}
				continue
			case ']':
				depth--
				if depth < 0 {
					return nil, fmt.Errorf("%w %q: ']' without '[' at offset %d", ErrHostlist, s, i)
				}
				continue
			case ',':
				if depth > 0 {
					continue
				}
			default:
				continue
			}
		}
		if depth != 0 {
			return nil, fmt.Errorf("%w %q: '[' at end of input is not closed", ErrHostlist, s)
		}
		hosts, err := expandOne(s, start, s[start:i], MaxHostlist-len(out))
		if err != nil {
			return nil, err
		}
		out = append(out, hosts...)
		start = i + 1
	}
	return out, nil
}

// expandOne expands one host expression (no top-level commas) found at
// offset off of the full list s, producing at most limit names.
func expandOne(s string, off int, expr string, limit int) ([]string, error) {
	if expr == "" {
		return nil, fmt.Errorf("%w %q: empty host name at offset %d", ErrHostlist, s, off)
	}
	if strings.ContainsAny(expr, " \t\r\n") {
		return nil, fmt.Errorf("%w %q: blank inside host name at offset %d", ErrHostlist, s, off)
	}
	names := []string{""}
	rest := expr
	pos := off
	for rest != "" {
		open := strings.IndexByte(rest, '[')
		if open < 0 {
			for i := range names {
				names[i] += rest
			}
			break
		}
		lit := rest[:open]
		end := strings.IndexByte(rest, ']')
		if end < open {
			return nil, fmt.Errorf("%w %q: '[' at offset %d is not closed", ErrHostlist, s, pos+open)
		}
		items, err := expandBracket(s, pos+open+1, rest[open+1:end], limit)
		if err != nil {
			return nil, err
		}
		if len(names)*len(items) > limit {
			return nil, fmt.Errorf("%w %q: expands to more than %d hosts", ErrHostlist, s, MaxHostlist)
		}
		next := make([]string, 0, len(names)*len(items))
		for _, n := range names {
			for _, it := range items {
				next = append(next, n+lit+it)
			}
		}
		names = next
		pos += end + 1
		rest = rest[end+1:]
	}
	return names, nil
}

// expandBracket expands the inside of one bracket group: comma-separated
// numbers and lo-hi ranges, found at offset off of s.
func expandBracket(s string, off int, in string, limit int) ([]string, error) {
	if in == "" {
		return nil, fmt.Errorf("%w %q: empty brackets at offset %d", ErrHostlist, s, off)
	}
	var out []string
	for _, item := range strings.Split(in, ",") {
		lo, hi, isRange := strings.Cut(item, "-")
		if !isRange {
			hi = lo
		}
		a, err := parseNum(s, off, lo)
		if err != nil {
			return nil, err
		}
		b, err := parseNum(s, off, hi)
		if err != nil {
			return nil, err
		}
		if b < a {
			return nil, fmt.Errorf("%w %q: range %q at offset %d runs backwards", ErrHostlist, s, item, off)
		}
		if b-a >= uint64(limit-len(out)) {
			return nil, fmt.Errorf("%w %q: expands to more than %d hosts", ErrHostlist, s, MaxHostlist)
		}
		for v := a; ; v++ {
			out = append(out, pad(v, len(lo)))
			if v == b {
				break
			}
		}
		off += len(item) + 1
	}
	return out, nil
}

func parseNum(s string, off int, n string) (uint64, error) {
	if n == "" {
		return 0, fmt.Errorf("%w %q: missing number at offset %d", ErrHostlist, s, off)
	}
	for i := 0; i < len(n); i++ {
		if n[i] < '0' || n[i] > '9' {
			return 0, fmt.Errorf("%w %q: %q at offset %d is not a number or range", ErrHostlist, s, n, off)
		}
	}
	v, err := strconv.ParseUint(n, 10, 64)
	if err != nil || len(n) > 18 {
		return 0, fmt.Errorf("%w %q: number %q at offset %d is too large", ErrHostlist, s, n, off)
	}
	return v, nil
}

// pad formats v with at least width digits, zero-padded.
func pad(v uint64, width int) string {
	d := strconv.FormatUint(v, 10)
	if len(d) < width {
		d = strings.Repeat("0", width-len(d)) + d
	}
	return d
}

// CompressHostlist writes hosts in SLURM hostlist syntax, the inverse of
// ExpandHostlist: ExpandHostlist(CompressHostlist(h)) returns h, order and
// duplicates included. Neighbouring names that differ only in their last
// run of digits share one bracket group, and consecutive numbers become
// ranges: n001 n002 n003 n010 gpu7 gives "n[001-003,010],gpu7". Host names
// must not contain '[', ']', ',' or blanks (no host name does).
func CompressHostlist(hosts []string) string {
	var b strings.Builder
	i := 0
	for i < len(hosts) {
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		pre, num, suf := splitLastNumber(hosts[i])
		if num == "" {
			b.WriteString(hosts[i])
			i++
			continue
		}
		// Gather the run of hosts with the same prefix and suffix.
		j := i + 1
		for j < len(hosts) {
			p, n, s := splitLastNumber(hosts[j])
			if n == "" || p != pre || s != suf {
				break
			}
			j++
		}
		if j == i+1 {
			b.WriteString(hosts[i])
			i++
			continue
		}
		b.WriteString(pre)
		b.WriteByte('[')
		writeRanges(&b, hosts[i:j], len(pre), len(suf))
		b.WriteByte(']')
		b.WriteString(suf)
		i = j
	}
	return b.String()
}

// writeRanges writes the numbers of hosts (all sharing a prefix of length
// np and a suffix of length ns) as comma-separated ranges. A range lo-hi is
// used only where expanding it gives back exactly the same digit strings.
func writeRanges(b *strings.Builder, hosts []string, np, ns int) {
	first := true
	k := 0
	for k < len(hosts) {
		lo := hosts[k][np : len(hosts[k])-ns]
		last, _ := strconv.ParseUint(lo, 10, 64)
		m := k + 1
		for m < len(hosts) {
			n := hosts[m][np : len(hosts[m])-ns]
			if last == ^uint64(0) || pad(last+1, len(lo)) != n {
				break
			}
			last++
			m++
		}
		if !first {
			b.WriteByte(',')
		}
		first = false
		b.WriteString(lo)
		if m > k+1 {
			b.WriteByte('-')
			b.WriteString(pad(last, len(lo)))
		}
		k = m
	}
}

// splitLastNumber splits a host name at its last run of digits. The number
// is "" when the name has no digits or the run is too long to be a
// hostlist number (more than 18 digits).
func splitLastNumber(h string) (pre, num, suf string) {
	end := len(h)
	for end > 0 && (h[end-1] < '0' || h[end-1] > '9') {
		end--
	}
	start := end
	for start > 0 && h[start-1] >= '0' && h[start-1] <= '9' {
		start--
	}
	if start == end || end-start > 18 {
		return h, "", ""
	}
	return h[:start], h[start:end], h[end:]
}
