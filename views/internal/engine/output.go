package engine

import (
	"fmt"
	"strings"
)

// MaxOutputKeep is how much of a command's stdout, and of its stderr, an
// engine keeps at each end: the first and the last MaxOutputKeep bytes. What
// lies between is counted, left out and marked, so a command printing 10 GB
// costs the engine 4 MiB per stream, and its answer fits in a frame.
const MaxOutputKeep = 1 << 20

// Capture is the writer a command's output stream goes to: it keeps the
// head and a ring of the tail and counts the rest.
type Capture struct {
	head  []byte
	tail  []byte // a ring once full: the oldest byte at pos
	pos   int
	total int64
}

func (c *Capture) Write(p []byte) (int, error) {
	n := len(p)
	c.total += int64(n)
	if room := MaxOutputKeep - len(c.head); room > 0 {
		k := min(room, len(p))
		c.head = append(c.head, p[:k]...)
		p = p[k:]
	}
	if room := MaxOutputKeep - len(c.tail); room > 0 {
		k := min(room, len(p))
		c.tail = append(c.tail, p[:k]...)
		p = p[k:]
	}
	if len(p) >= MaxOutputKeep {
		p = p[len(p)-MaxOutputKeep:]
		copy(c.tail, p)
		c.pos = 0
		return n, nil
	}
	for len(p) > 0 {
		k := copy(c.tail[c.pos:], p)
		c.pos = (c.pos + k) % MaxOutputKeep
		p = p[k:]
	}
	return n, nil
}

// Text returns what was kept, with a mark where bytes were left out, and
// how many were.
func (c *Capture) Text(stream string) (string, int64) {
	omitted := c.total - int64(len(c.head)) - int64(len(c.tail))
	mark := ""
	if omitted > 0 {
		mark = OmittedMark(omitted, stream)
	}
	var b strings.Builder
	b.Grow(len(c.head) + len(mark) + len(c.tail))
	b.Write(c.head)
	b.WriteString(mark)
	b.Write(c.tail[c.pos:])
	b.Write(c.tail[:c.pos])
	return b.String(), omitted
}

// OmittedMark is the line that replaces the middle of a long output.
func OmittedMark(n int64, stream string) string {
	return fmt.Sprintf("\n[rankhub: %d bytes of %s left out here; the first and last %d are kept]\n", n, stream, MaxOutputKeep)
}
