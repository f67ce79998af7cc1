package sweep

import (
	"fmt"
	"strconv"
	"strings"
)

// Bounds on what the engine keeps of a shell task's output: a task that
// prints a gigabyte costs the engine these bytes, not a gigabyte.
const (
	outputHead = 4 << 10  // first bytes kept
	outputTail = 64 << 10 // last bytes kept (the last-line rule reads them)
	kvTokenMax = 256      // longest name=value token the key-value rule reads
)

// boundedOutput is an io.Writer that keeps the head and the tail of a stream
// and counts its bytes; with names set it also scans name=value tokens as
// they stream by, keeping the last one of each name, so the key-value rule
// sees pairs printed anywhere in the output.
type boundedOutput struct {
	head  []byte
	tail  []byte // ring of outputTail bytes once full
	pos   int    // next write position in tail when full
	full  bool
	total int64

	names []string
	last  []string // last token of each name
	tok   []byte   // token being read
	long  bool     // the token being read is too long to keep

	// Comment lines (their first non-blank bytes are prefix) hold no
	// name=value pairs: the scan skips them.
	prefix    string
	midLine   bool // past the start of the current line's text
	matched   int  // bytes of prefix matched at the line's start
	inComment bool // the current line is a comment
}

func newBoundedOutput(names []string) *boundedOutput {
	b := &boundedOutput{head: make([]byte, 0, outputHead), tail: make([]byte, 0, outputTail)}
	if names != nil {
		b.names, b.last = names, make([]string, len(names))
		b.tok = make([]byte, 0, kvTokenMax)
	}
	return b
}

func (b *boundedOutput) Write(p []byte) (int, error) {
	b.total += int64(len(p))
	if n := min(len(p), outputHead-len(b.head)); n > 0 {
		b.head = append(b.head, p[:n]...)
	}
	b.writeTail(p)
	if b.names != nil {
		b.scan(p)
	}
	return len(p), nil
}

func (b *boundedOutput) writeTail(p []byte) {
	if len(p) >= outputTail {
		b.tail = append(b.tail[:0], p[len(p)-outputTail:]...)
		b.pos, b.full = 0, true
		return
	}
	if !b.full {
		n := min(len(p), outputTail-len(b.tail))
		b.tail = append(b.tail, p[:n]...)
		p = p[n:]
		if len(b.tail) < outputTail {
			return
		}
		b.full = true
	}
	for len(p) > 0 {
		n := copy(b.tail[b.pos:], p)
		b.pos = (b.pos + n) % outputTail
		p = p[n:]
	}
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'
}

func (b *boundedOutput) scan(p []byte) {
	for _, c := range p {
		if c == '\n' {
			b.endToken()
			b.midLine, b.matched, b.inComment = false, 0, false
			continue
		}
		if b.inComment {
			continue
		}
		if !b.midLine && b.prefix != "" {
			if b.matched == 0 && isSpace(c) {
				continue
			}
			if c == b.prefix[b.matched] {
				b.matched++
				if b.matched == len(b.prefix) {
					b.inComment, b.tok, b.long = true, b.tok[:0], false
				} else {
					b.tok = append(b.tok, c)
				}
				continue
			}
		}
		b.midLine = true
		if !isSpace(c) {
			if len(b.tok) < kvTokenMax {
				b.tok = append(b.tok, c)
			} else {
				b.long = true
			}
			continue
		}
		b.endToken()
	}
}

func (b *boundedOutput) endToken() {
	if len(b.tok) > 0 && !b.long {
		if k, _, ok := strings.Cut(string(b.tok), "="); ok {
			for i, n := range b.names {
				if k == n {
					b.last[i] = string(b.tok)
				}
			}
		}
	}
	b.tok, b.long = b.tok[:0], false
}

// Tail returns the last bytes kept, in order.
func (b *boundedOutput) Tail() string {
	if !b.full {
		return string(b.tail)
	}
	return string(b.tail[b.pos:]) + string(b.tail[:b.pos])
}

// Truncated reports whether bytes were dropped between head and tail.
func (b *boundedOutput) Truncated() bool { return b.total > int64(len(b.head)+len(b.tail)) && b.full }

// Text is what a row may keep of the output: all of it when it fit, else
// the head, a marker with the number of bytes left out, and the tail.
func (b *boundedOutput) Text() string {
	if !b.full {
		return string(b.tail)
	}
	if omitted := b.total - int64(len(b.head)) - outputTail; omitted > 0 {
		return string(b.head) + fmt.Sprintf("\n…[%d bytes omitted]…\n", omitted) + b.Tail()
	}
	return b.Tail()
}

// parse applies the job's parse rule to what was kept; lines starting
// with comment are not read.
func (b *boundedOutput) parse(rule, comment string, names []string, out []float64) error {
	if rule == "key-value" {
		if !b.inComment {
			b.endToken()
		}
		return ParseOutputs(rule, "", strings.Join(b.last, " "), names, out)
	}
	tail := b.Tail()
	if b.full && b.total > outputTail {
		// The last result line must lie wholly in what was kept: a line
		// break before it.
		if i := lastDataLine(tail, comment); i <= 0 && strings.TrimSpace(tail) != "" {
			return fmt.Errorf("the last line of stdout is longer than the %d bytes kept of a %d-byte output", outputTail, b.total)
		}
	}
	return ParseOutputs(rule, comment, tail, names, out)
}

// table reads every line of what was kept that is neither blank nor a
// comment as one number per output (parse = "table"): output j's list is
// column j. The whole output must have been kept.
func (b *boundedOutput) table(comment string, names []string) ([][]float64, error) {
	if b.full && b.total > outputTail {
		return nil, fmt.Errorf("a table output must fit the %d bytes kept of stdout; this one has %d", outputTail, b.total)
	}
	return ParseTable(comment, b.Tail(), names)
}

// ParseTable implements parse = "table": every line of stdout that is
// neither blank nor a comment holds one number per output (blanks or
// commas between); output j's list is their column j, in order.
func ParseTable(comment, stdout string, names []string) ([][]float64, error) {
	lists := make([][]float64, len(names))
	for n, line := range strings.Split(stdout, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || (comment != "" && strings.HasPrefix(line, comment)) {
			continue
		}
		fields := strings.FieldsFunc(line, func(r rune) bool { return r == ' ' || r == '\t' || r == ',' })
		if len(fields) != len(names) {
			return nil, fmt.Errorf("line %d of stdout has %d field(s), want %d (%s): %q", n+1, len(fields), len(names), strings.Join(names, " "), truncate(line, 200))
		}
		for j, f := range fields {
			v, err := strconv.ParseFloat(f, 64)
			if err != nil {
				return nil, fmt.Errorf("line %d of stdout: output %s: %q is not a number", n+1, names[j], f)
			}
			lists[j] = append(lists[j], v)
		}
	}
	if len(lists) > 0 && len(lists[0]) == 0 {
		return nil, fmt.Errorf("stdout has no table line; want %d number(s) per line (%s)", len(names), strings.Join(names, " "))
	}
	return lists, nil
}

// lastDataLine is the offset in s of its last line that is neither blank
// nor a comment (its first non-blank bytes are comment; "" = none), -1
// when there is none.
func lastDataLine(s, comment string) int {
	end := len(s)
	for end > 0 {
		start := strings.LastIndexByte(s[:end], '\n') + 1
		line := strings.TrimSpace(s[start:end])
		if line != "" && (comment == "" || !strings.HasPrefix(line, comment)) {
			return start
		}
		end = max(start-1, 0)
	}
	return -1
}
