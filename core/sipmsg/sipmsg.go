// Package sipmsg reads one SIP request from bytes, for the command line
// (`stirgate verify --message FILE`) and for tests. It is a careful reader,
// not a SIP stack: it bounds what it reads, unfolds headers, and knows the
// compact header names, but it does not interpret header values beyond what
// STIR needs (the To tag).
//
// Its errors are *ParseError, not stir errors: a request that cannot be
// read says nothing about its Identity header.
package sipmsg

import (
	"fmt"
	"strconv"
	"strings"
)

// Limits bound what Parse reads. The zero value means the defaults.
type Limits struct {
	MaxBytes   int // whole message; 0 means 64 KiB
	MaxHeaders int // header fields; 0 means 200
	MaxLine    int // one line, and one header after unfolding; 0 means 16 KiB
}

// Default limits.
const (
	DefaultMaxBytes   = 64 << 10
	DefaultMaxHeaders = 200
	DefaultMaxLine    = 16 << 10
)

func (l Limits) withDefaults() Limits {
	if l.MaxBytes <= 0 {
		l.MaxBytes = DefaultMaxBytes
	}
	if l.MaxHeaders <= 0 {
		l.MaxHeaders = DefaultMaxHeaders
	}
	if l.MaxLine <= 0 {
		l.MaxLine = DefaultMaxLine
	}
	return l
}

// Message is one SIP request.
type Message struct {
	Method     string
	RequestURI string
	Version    string  // as received; always "SIP/2.0" in any letter case
	Headers    []Field // in order received, folded lines joined
	Body       []byte  // a copy; cut to Content-Length when that is shorter
}

// Field is one header field. Name is as received (a compact "y" stays
// "y"); Value has folding replaced by one space and no surrounding
// whitespace.
type Field struct {
	Name  string
	Value string
}

// ParseError reports why a message could not be read. Line is the
// 1-based physical line, or 0 for the message as a whole.
type ParseError struct {
	Line int
	Msg  string
}

func (e *ParseError) Error() string {
	if e.Line == 0 {
		return "sipmsg: " + e.Msg
	}
	return "sipmsg: line " + strconv.Itoa(e.Line) + ": " + e.Msg
}

func errf(line int, format string, args ...any) *ParseError {
	return &ParseError{Line: line, Msg: fmt.Sprintf(format, args...)}
}

// Parse reads one SIP request. Lines may end in CRLF or a bare LF; header
// lines starting with a space or tab continue the previous header (RFC 3261
// §7.3.1); whitespace around ':' is allowed. Empty lines before the request
// line are skipped (RFC 3261 §7.5). A message with no blank line after the
// headers has an empty body. Responses are refused.
func Parse(raw []byte, lim Limits) (*Message, error) {
	lim = lim.withDefaults()
	if len(raw) > lim.MaxBytes {
		return nil, errf(0, "message of %d bytes exceeds the limit of %d", len(raw), lim.MaxBytes)
	}
	s := string(raw)
	if i := strings.IndexByte(s, 0); i >= 0 {
		return nil, errf(strings.Count(s[:i], "\n")+1, "NUL byte")
	}

	r := lineReader{s: s, max: lim.MaxLine}
	line, ok, err := r.next()
	for ok && err == nil && line == "" {
		line, ok, err = r.next()
	}
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, errf(0, "missing request line")
	}
	m := &Message{}
	if err := m.parseRequestLine(line, r.n); err != nil {
		return nil, err
	}

	for {
		line, ok, err = r.next()
		if err != nil {
			return nil, err
		}
		if !ok || line == "" {
			break
		}
		if err := checkCtl(line, r.n); err != nil {
			return nil, err
		}
		if line[0] == ' ' || line[0] == '\t' {
			if len(m.Headers) == 0 {
				return nil, errf(r.n, "continuation line before any header")
			}
			f := &m.Headers[len(m.Headers)-1]
			if cont := trimWS(line); cont != "" {
				if f.Value == "" {
					f.Value = cont
				} else {
					f.Value += " " + cont
				}
			}
			if len(f.Name)+len(f.Value)+2 > lim.MaxLine {
				return nil, errf(r.n, "header %q exceeds %d bytes after unfolding", f.Name, lim.MaxLine)
			}
			continue
		}
		colon := strings.IndexByte(line, ':')
		if colon < 0 {
			return nil, errf(r.n, "header line without ':'")
		}
		name := strings.TrimRight(line[:colon], " \t")
		if !isToken(name) {
			return nil, errf(r.n, "bad header name %.40q", name)
		}
		if len(m.Headers) == lim.MaxHeaders {
			return nil, errf(r.n, "more than %d header fields", lim.MaxHeaders)
		}
		m.Headers = append(m.Headers, Field{Name: name, Value: trimWS(line[colon+1:])})
	}

	body := s[r.pos:]
	if cl := m.Get("Content-Length"); cl != "" {
		n, err := strconv.Atoi(cl)
		if err != nil || n < 0 || cl[0] == '+' {
			return nil, errf(0, "bad Content-Length %.20q", cl)
		}
		// A longer Content-Length is tolerated: a file saved with bare LF
		// is shorter than the message it was.
		if n < len(body) {
			body = body[:n]
		}
	}
	if body != "" {
		m.Body = []byte(body)
	}
	return m, nil
}

func (m *Message) parseRequestLine(line string, n int) error {
	if err := checkCtl(line, n); err != nil {
		return err
	}
	method, rest, ok1 := strings.Cut(line, " ")
	uri, version, ok2 := strings.Cut(rest, " ")
	if !ok1 || !ok2 {
		return errf(n, "request line %.60q is not METHOD SP Request-URI SP SIP/2.0", line)
	}
	if strings.HasPrefix(strings.ToUpper(method), "SIP/") {
		return errf(n, "a status line: only requests are read")
	}
	if !isToken(method) {
		return errf(n, "bad method %.40q", method)
	}
	if uri == "" || strings.ContainsAny(uri, " \t") || !strings.Contains(uri, ":") {
		return errf(n, "bad Request-URI %.60q", uri)
	}
	if !strings.EqualFold(version, "SIP/2.0") {
		return errf(n, "bad SIP version %.20q", version)
	}
	m.Method, m.RequestURI, m.Version = method, uri, version
	return nil
}

// lineReader yields physical lines without their CRLF or LF.
type lineReader struct {
	s   string
	pos int // start of the next line
	n   int // number of the line last returned
	max int
}

func (r *lineReader) next() (string, bool, error) {
	if r.pos >= len(r.s) {
		return "", false, nil
	}
	r.n++
	rest := r.s[r.pos:]
	end := strings.IndexByte(rest, '\n')
	if end < 0 {
		end = len(rest)
		r.pos = len(r.s)
	} else {
		r.pos += end + 1
	}
	line := strings.TrimSuffix(rest[:end], "\r")
	if len(line) > r.max {
		return "", false, errf(r.n, "line of %d bytes exceeds the limit of %d", len(line), r.max)
	}
	return line, true, nil
}

// checkCtl refuses control bytes other than HT inside a line; a stray CR is
// the classic way to smuggle a header past one parser and not another.
func checkCtl(line string, n int) error {
	for i := 0; i < len(line); i++ {
		if c := line[i]; c < 0x20 && c != '\t' || c == 0x7f {
			return errf(n, "control byte %q", c)
		}
	}
	return nil
}

func trimWS(s string) string { return strings.Trim(s, " \t") }

// isToken reports a non-empty RFC 3261 token.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
			continue
		}
		switch c {
		case '-', '.', '!', '%', '*', '_', '+', '`', '\'', '~':
			continue
		}
		return false
	}
	return true
}
