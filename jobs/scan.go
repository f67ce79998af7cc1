package jobs

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// BurntSushi/toml v1.6 keeps the position of every value in its MetaData but
// exports none of it (only ParseError has a position). keyScanner recovers
// where each key is written: a small scanner over the source that follows
// table headers ([a.b], [[a]]), dotted keys, quoted keys ("..." with escapes,
// '...'), inline tables, arrays, all four kinds of strings and comments. It
// runs only on documents the TOML parser has accepted, so it does not
// validate; it must merely never panic and always make progress.
//
// The position of a key is that of its last segment where it is first
// written: for "[sweep.T]" the key sweep.T is at "T", and for "a.b = 1" in
// [job] the key job.a is at "a" and job.a.b at "b". Columns count bytes.

type keyScanner struct {
	src  string
	i    int
	line int
	col  int
	pos  map[string]Pos
}

// scanKeys returns the position of every key in src, by toml.Key.String.
func scanKeys(src string) map[string]Pos {
	s := &keyScanner{src: src, line: 1, col: 1, pos: make(map[string]Pos)}
	s.document()
	return s.pos
}

func (s *keyScanner) eof() bool { return s.i >= len(s.src) }

func (s *keyScanner) peek(k int) byte {
	if s.i+k < len(s.src) {
		return s.src[s.i+k]
	}
	return 0
}

func (s *keyScanner) adv() {
	if s.eof() {
		return
	}
	if s.src[s.i] == '\n' {
		s.line++
		s.col = 1
	} else {
		s.col++
	}
	s.i++
}

func (s *keyScanner) advN(n int) {
	for range n {
		s.adv()
	}
}

func (s *keyScanner) here() Pos { return Pos{Line: s.line, Col: s.col} }

func (s *keyScanner) record(key []string, p Pos) {
	k := keyString(key)
	if _, ok := s.pos[k]; !ok {
		s.pos[k] = p
	}
}

// skipWS skips spaces and tabs.
func (s *keyScanner) skipWS() {
	for !s.eof() && (s.src[s.i] == ' ' || s.src[s.i] == '\t') {
		s.adv()
	}
}

// skipBlank skips white space, newlines and comments.
func (s *keyScanner) skipBlank() {
	for !s.eof() {
		switch s.src[s.i] {
		case ' ', '\t', '\r', '\n':
			s.adv()
		case '#':
			s.skipLine()
		default:
			return
		}
	}
}

// skipLine skips to the next newline (not consuming it).
func (s *keyScanner) skipLine() {
	for !s.eof() && s.src[s.i] != '\n' {
		s.adv()
	}
}

func (s *keyScanner) document() {
	var table []string
	for {
		s.skipBlank()
		if s.eof() {
			return
		}
		start := s.i
		if s.src[s.i] == '[' {
			closing := "]"
			s.adv()
			if s.peek(0) == '[' {
				closing = "]]"
				s.adv()
			}
			segs, poss := s.key()
			for n := range segs {
				s.record(sub(nil, segs[:n+1]...), poss[n])
			}
			table = segs
			s.skipWS()
			if strings.HasPrefix(s.src[s.i:], closing) {
				s.advN(len(closing))
			}
		} else {
			segs, poss := s.key()
			for n := range segs {
				s.record(sub(table, segs[:n+1]...), poss[n])
			}
			s.skipWS()
			if s.peek(0) == '=' {
				s.adv()
				s.value(sub(table, segs...))
			}
		}
		s.skipWS()
		s.skipLine()
		if s.i == start {
			s.adv()
		}
	}
}

// key reads a possibly dotted key and returns its segments and their
// positions. It returns no segments if there is no key here.
func (s *keyScanner) key() (segs []string, poss []Pos) {
	for {
		s.skipWS()
		p := s.here()
		var seg string
		switch s.peek(0) {
		case '"':
			seg = s.basicString()
		case '\'':
			seg = s.literalString()
		default:
			start := s.i
			for !s.eof() && isBare(s.src[s.i]) {
				s.adv()
			}
			if s.i == start {
				return segs, poss
			}
			seg = s.src[start:s.i]
		}
		segs = append(segs, seg)
		poss = append(poss, p)
		s.skipWS()
		if s.peek(0) != '.' {
			return segs, poss
		}
		s.adv()
	}
}

func isBare(c byte) bool {
	return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}

// items scans the comma-separated items of an inline table or array up to
// and including the closing byte; item reads one item. Every turn advances
// at least one byte, so broken input cannot stall the scan.
func (s *keyScanner) items(closing byte, item func()) {
	for {
		s.skipBlank()
		if s.eof() {
			return
		}
		switch s.src[s.i] {
		case closing:
			s.adv()
			return
		case ',':
			s.adv()
			continue
		}
		start := s.i
		item()
		if s.i == start {
			s.adv()
		}
	}
}

// value skips one value, recording the keys of inline tables under key.
func (s *keyScanner) value(key []string) {
	s.skipWS()
	switch s.peek(0) {
	case '{':
		s.adv()
		s.items('}', func() {
			segs, poss := s.key()
			for n := range segs {
				s.record(sub(key, segs[:n+1]...), poss[n])
			}
			s.skipWS()
			if s.peek(0) == '=' {
				s.adv()
				s.value(sub(key, segs...))
			}
		})
	case '[':
		s.adv()
		s.items(']', func() { s.value(key) })
	case '"':
		if strings.HasPrefix(s.src[s.i:], `"""`) {
			s.multiline('"', true)
		} else {
			s.basicString()
		}
	case '\'':
		if strings.HasPrefix(s.src[s.i:], `'''`) {
			s.multiline('\'', false)
		} else {
			s.literalString()
		}
	default:
		for !s.eof() && !strings.ContainsRune(" \t\r\n,]}#", rune(s.src[s.i])) {
			s.adv()
		}
	}
}

// multiline skips a multi-line string delimited by three q's. Up to two
// extra quotes before the closing delimiter belong to the content.
func (s *keyScanner) multiline(q byte, escapes bool) {
	s.advN(3)
	delim := strings.Repeat(string(q), 3)
	for !s.eof() {
		if escapes && s.src[s.i] == '\\' {
			s.advN(2)
			continue
		}
		if strings.HasPrefix(s.src[s.i:], delim) {
			s.advN(3)
			for n := 0; n < 2 && s.peek(0) == q; n++ {
				s.adv()
			}
			return
		}
		s.adv()
	}
}

// literalString reads '...' and returns its content.
func (s *keyScanner) literalString() string {
	s.adv()
	start := s.i
	for !s.eof() && s.src[s.i] != '\'' && s.src[s.i] != '\n' {
		s.adv()
	}
	out := s.src[start:s.i]
	if s.peek(0) == '\'' {
		s.adv()
	}
	return out
}

// basicString reads "..." and returns its content with escapes decoded as
// TOML 1.1 defines them.
func (s *keyScanner) basicString() string {
	s.adv()
	var b strings.Builder
	for !s.eof() {
		c := s.src[s.i]
		switch c {
		case '"':
			s.adv()
			return b.String()
		case '\n':
			return b.String()
		case '\\':
			s.adv()
			s.escape(&b)
		default:
			b.WriteByte(c)
			s.adv()
		}
	}
	return b.String()
}

func (s *keyScanner) escape(b *strings.Builder) {
	c := s.peek(0)
	s.adv()
	hex := 0
	switch c {
	case 'b':
		b.WriteByte('\b')
	case 't':
		b.WriteByte('\t')
	case 'n':
		b.WriteByte('\n')
	case 'f':
		b.WriteByte('\f')
	case 'r':
		b.WriteByte('\r')
	case 'e':
		b.WriteByte(0x1b)
	case '"', '\\':
		b.WriteByte(c)
	case 'x':
		hex = 2
	case 'u':
		hex = 4
	case 'U':
		hex = 8
	default:
		b.WriteByte(c)
	}
	if hex == 0 {
		return
	}
	end := min(s.i+hex, len(s.src))
	digits := s.src[s.i:end]
	s.advN(len(digits))
	r, err := strconv.ParseUint(digits, 16, 32)
	if err != nil || !utf8.ValidRune(rune(r)) {
		b.WriteRune(utf8.RuneError)
		return
	}
	b.WriteRune(rune(r))
}
