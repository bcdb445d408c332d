// Package ami is stirgate's Asterisk Manager Interface listener: it logs in
// to Asterisk's AMI, keeps the session alive, reconnects forever, and turns
// the dialplan's StirShaken UserEvents (enriched by Newchannel and Hangup)
// into outcome records.
//
// The AMI client is written here rather than taken from a library; see
// DEPENDENCY.md for why.
package ami

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Header is one "Key: Value" line of an AMI message.
type Header struct{ Key, Value string }

// Message is one AMI message: an ordered list of headers. It is not a map
// because AMI repeats keys (one ChanVariable line per channel variable)
// and order can matter.
type Message []Header

// Get returns the value of the first header named key (case-insensitive,
// as Asterisk's astman_get_header compares), or "".
func (m Message) Get(key string) string {
	for _, h := range m {
		if strings.EqualFold(h.Key, key) {
			return h.Value
		}
	}
	return ""
}

// All returns every value of key, in order.
func (m Message) All(key string) []string {
	var out []string
	for _, h := range m {
		if strings.EqualFold(h.Key, key) {
			out = append(out, h.Value)
		}
	}
	return out
}

// Var returns the channel variable name from the message's ChanVariable
// headers ("ChanVariable: NAME=value", one per variable listed in
// manager.conf channelvars), and whether it was present.
func (m Message) Var(name string) (string, bool) {
	for _, v := range m.All("ChanVariable") {
		k, val, ok := strings.Cut(v, "=")
		if ok && strings.EqualFold(k, name) {
			return val, true
		}
	}
	return "", false
}

// Event returns the Event header ("" for a response).
func (m Message) Event() string { return m.Get("Event") }

// Bytes serialises m with AMI's CRLF framing. A line of command output
// (Response: Follows; ReadMessage keeps it under the empty key) is written
// back as it came, without a colon, so that reading the bytes again gives
// the same message, leading blanks included.
func (m Message) Bytes() []byte {
	var b bytes.Buffer
	for _, h := range m {
		if h.Key == commandOutputKey && h.Value != "" && !strings.ContainsRune(h.Value, ':') {
			b.WriteString(h.Value)
			b.WriteString("\r\n")
			continue
		}
		b.WriteString(h.Key)
		b.WriteString(": ")
		b.WriteString(h.Value)
		b.WriteString("\r\n")
	}
	b.WriteString("\r\n")
	return b.Bytes()
}

// Limits on one message, so a broken or hostile peer cannot make the
// reader grow without bound.
const (
	MaxLineBytes     = 64 << 10
	MaxHeaders       = 1024
	maxLeadingBlanks = 1 << 16
	bannerPrefix     = "Asterisk Call Manager/"
	commandOutputKey = ""
)

// Parse errors.
var (
	ErrLineTooLong = errors.New("ami: line too long")
	ErrTooManyHdrs = errors.New("ami: too many headers")
	ErrBanner      = errors.New("ami: not an Asterisk Call Manager banner")
	errTruncated   = errors.New("ami: truncated message")
)

// readLine reads one line without its CR LF (a bare LF is accepted too).
func readLine(r *bufio.Reader) (string, error) {
	var buf []byte
	for {
		frag, err := r.ReadSlice('\n')
		if len(buf)+len(frag) > MaxLineBytes {
			return "", ErrLineTooLong
		}
		buf = append(buf, frag...)
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			return "", err
		}
		break
	}
	buf = bytes.TrimSuffix(buf, []byte("\n"))
	buf = bytes.TrimSuffix(buf, []byte("\r"))
	return string(buf), nil
}

// ReadBanner reads the greeting Asterisk writes on connect
// ("Asterisk Call Manager/9.0.0") and returns the AMI version.
func ReadBanner(r *bufio.Reader) (string, error) {
	line, err := readLine(r)
	if err != nil {
		return "", err
	}
	v, ok := strings.CutPrefix(line, bannerPrefix)
	if !ok {
		return "", fmt.Errorf("%w: %q", ErrBanner, line)
	}
	return v, nil
}

// ReadMessage reads one message: header lines up to an empty line. Blank
// lines before a message are skipped. A line without a colon (the body of
// an old-style "Response: Follows" command output) is kept with an empty
// key.
func ReadMessage(r *bufio.Reader) (Message, error) {
	var m Message
	blanks := 0
	for {
		line, err := readLine(r)
		if err != nil {
			if errors.Is(err, io.EOF) && len(m) > 0 {
				return nil, fmt.Errorf("%w: %w", errTruncated, err)
			}
			return nil, err
		}
		if line == "" {
			if len(m) == 0 {
				if blanks++; blanks > maxLeadingBlanks {
					return nil, errors.New("ami: too many blank lines")
				}
				continue
			}
			return m, nil
		}
		if len(m) >= MaxHeaders {
			return nil, ErrTooManyHdrs
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			m = append(m, Header{Key: commandOutputKey, Value: line})
			continue
		}
		m = append(m, Header{Key: strings.TrimRight(k, " \t"), Value: strings.TrimLeft(v, " \t")})
	}
}
