package sipredirect

import (
	"bytes"
	"strconv"
	"strings"
)

// Limits bound what the parser accepts from a peer. Zero fields take the
// defaults noted on each.
type Limits struct {
	MaxSize    int // whole message in bytes (default 65535, the UDP maximum)
	MaxHeaders int // header fields (default 128)
}

func (l Limits) withDefaults() Limits {
	if l.MaxSize <= 0 {
		l.MaxSize = 65535
	}
	if l.MaxHeaders <= 0 {
		l.MaxHeaders = 128
	}
	return l
}

// Field is one header field as received, unfolded. Name is the long-form
// name in lower case ("call-id" for "i"), so look-ups need no case folding.
type Field struct {
	Name  string
	Value string
}

// Request is a parsed SIP request: the parts a redirect server reads.
type Request struct {
	Method  string
	URI     string
	Fields  []Field
	CallID  string
	CSeq    uint32
	CSeqM   string // CSeq method
	Body    []byte
	raw     []byte
	viaTop  string // first Via value (first element of the first Via field)
	branch  string
	fromTag string
	toTag   string
}

// ParseError says why a message was refused. Reason is short enough for a
// SIP reason phrase; Answerable is false when the message lacks what a
// response needs (a Via), so that the only safe action is to drop it.
type ParseError struct {
	Reason     string
	Answerable bool
	// Partial holds what could be read, so a 400 can echo Via, From, To,
	// Call-ID and CSeq.
	Partial *Request
}

func (e *ParseError) Error() string { return "sip: " + e.Reason }

// compact maps RFC 3261 §7.3.3 (and later RFCs') compact names to long ones.
var compact = map[string]string{
	"i": "call-id", "f": "from", "t": "to", "v": "via", "l": "content-length",
	"m": "contact", "y": "identity", "c": "content-type", "e": "content-encoding",
	"k": "supported", "s": "subject", "o": "event", "r": "refer-to", "u": "allow-events",
	"a": "accept-contact", "b": "referred-by", "x": "session-expires", "j": "reject-contact",
	"d": "request-disposition",
}

// ParseRequest parses one SIP request. datagram is true for UDP, where the
// message is the whole packet and a Content-Length beyond it is an error
// (RFC 3261 §18.3). Responses (status lines) come back as a ParseError that
// is not answerable: a redirect server never sends requests, so any response
// it receives is noise.
func ParseRequest(raw []byte, lim Limits, datagram bool) (*Request, error) {
	lim = lim.withDefaults()
	if len(raw) > lim.MaxSize {
		return nil, &ParseError{Reason: "Message Too Large"}
	}
	// Leading CRLFs are keep-alives (RFC 5626 §3.5.1) before a message.
	raw = bytes.TrimLeft(raw, "\r\n")
	if len(raw) == 0 {
		return nil, &ParseError{Reason: "Empty Message"}
	}
	head, body, ok := splitHead(raw)
	if !ok {
		return nil, &ParseError{Reason: "Incomplete Header"}
	}
	r := &Request{raw: raw}
	lines := splitLines(head)
	if len(lines) == 0 {
		return nil, &ParseError{Reason: "Empty Message"}
	}
	startErr := r.parseStart(lines[0])
	if startErr == "response" {
		return nil, &ParseError{Reason: "Unexpected Response"}
	}
	var perr string
	if startErr != "" {
		perr = startErr
	}
	// Unfold continuation lines (RFC 3261 §7.3.1) while splitting fields.
	for _, ln := range lines[1:] {
		if ln == "" {
			continue
		}
		// A CR left inside a line (splitLines takes only the CR of a
		// line end) is a line break to some peers: a value carrying one
		// would be echoed into the response as a header of the sender's
		// choosing.
		if strings.IndexByte(ln, '\r') >= 0 {
			if perr == "" {
				perr = "Malformed Header Line"
			}
			continue
		}
		if ln[0] == ' ' || ln[0] == '\t' {
			if len(r.Fields) == 0 {
				if perr == "" {
					perr = "Bad Header Folding"
				}
				continue
			}
			f := &r.Fields[len(r.Fields)-1]
			f.Value = strings.TrimSpace(f.Value + " " + strings.TrimSpace(ln))
			continue
		}
		colon := strings.IndexByte(ln, ':')
		if colon <= 0 {
			if perr == "" {
				perr = "Malformed Header Line"
			}
			continue
		}
		name := strings.TrimRight(ln[:colon], " \t")
		if !isToken(name) {
			if perr == "" {
				perr = "Malformed Header Name"
			}
			continue
		}
		if len(r.Fields) >= lim.MaxHeaders {
			perr = "Too Many Headers"
			break
		}
		name = strings.ToLower(name)
		if long, ok := compact[name]; ok {
			name = long
		}
		r.Fields = append(r.Fields, Field{Name: name, Value: strings.TrimSpace(ln[colon+1:])})
	}
	if perr == "" {
		perr = r.check()
	} else {
		r.check() // still fill Call-ID, CSeq, Via for the 400
	}
	if perr == "" {
		perr = r.setBody(body, datagram)
	}
	if perr != "" {
		return nil, &ParseError{Reason: perr, Answerable: r.viaTop != "", Partial: r}
	}
	return r, nil
}

// splitHead finds the empty line ending the header. Bare LF line ends are
// tolerated, as RFC 3261 §7.5 asks of receivers in practice.
func splitHead(raw []byte) (head, body []byte, ok bool) {
	if i := bytes.Index(raw, []byte("\r\n\r\n")); i >= 0 {
		if j := bytes.Index(raw[:i+2], []byte("\n\n")); j >= 0 {
			return raw[:j], raw[j+2:], true
		}
		return raw[:i], raw[i+4:], true
	}
	if i := bytes.Index(raw, []byte("\n\n")); i >= 0 {
		return raw[:i], raw[i+2:], true
	}
	return nil, nil, false
}

func splitLines(head []byte) []string {
	parts := strings.Split(string(head), "\n")
	for i, p := range parts {
		parts[i] = strings.TrimSuffix(p, "\r")
	}
	return parts
}

// parseStart reads "METHOD SP Request-URI SP SIP/2.0".
func (r *Request) parseStart(line string) string {
	if strings.HasPrefix(line, "SIP/") {
		return "response"
	}
	m, rest, ok1 := strings.Cut(line, " ")
	uri, ver, ok2 := strings.Cut(rest, " ")
	if !ok1 || !ok2 || !isToken(m) {
		return "Malformed Request Line"
	}
	r.Method = m
	// No URI holds a control character (RFC 3261 §25.1). A bare CR left
	// in the line (splitLines takes only the CR of a line end) would reach
	// the 302's Contact, where peers read it as a line break.
	if uri == "" || strings.ContainsFunc(uri, func(c rune) bool { return c <= ' ' || c == 0x7f }) || !strings.Contains(uri, ":") {
		return "Malformed Request-URI"
	}
	r.URI = uri
	if !strings.EqualFold(ver, "SIP/2.0") {
		return "Unsupported SIP Version"
	}
	return ""
}

// check validates the mandatory fields of RFC 3261 §8.1.1 and caches the
// values transaction matching needs.
func (r *Request) check() string {
	var problem string
	note := func(p string) {
		if problem == "" {
			problem = p
		}
	}
	if v := r.Get("via"); v != "" {
		r.viaTop = firstElement(v)
		r.branch = param(viaParams(r.viaTop), "branch")
	} else {
		note("Missing Via")
	}
	from, to := r.Get("from"), r.Get("to")
	if from == "" {
		note("Missing From")
	}
	if to == "" {
		note("Missing To")
	}
	r.fromTag = param(headerParams(from), "tag")
	r.toTag = param(headerParams(to), "tag")
	r.CallID = r.Get("call-id")
	if r.CallID == "" {
		note("Missing Call-ID")
	}
	if c := r.Get("cseq"); c == "" {
		note("Missing CSeq")
	} else {
		num, m, _ := strings.Cut(c, " ")
		n, err := strconv.ParseUint(num, 10, 32)
		m = strings.TrimSpace(m)
		switch {
		case err != nil || m == "" || !isToken(m):
			note("Malformed CSeq")
		case r.Method != "" && m != r.Method:
			note("CSeq Method Mismatch")
		default:
			r.CSeq, r.CSeqM = uint32(n), m
		}
	}
	for _, name := range []string{"via", "from", "to", "call-id", "cseq"} {
		if name != "via" && r.count(name) > 1 {
			note("Duplicate " + canonicalName(name))
		}
	}
	return problem
}

func (r *Request) setBody(body []byte, datagram bool) string {
	cl := r.Get("content-length")
	if cl == "" {
		if !datagram && len(body) > 0 {
			return "Missing Content-Length"
		}
		r.Body = body
		return ""
	}
	n, err := strconv.Atoi(cl)
	if err != nil || n < 0 {
		return "Malformed Content-Length"
	}
	if n > len(body) {
		return "Content-Length Exceeds Message"
	}
	r.Body = body[:n]
	return ""
}

// Get returns the first value of the named field (long form, lower case),
// or "".
func (r *Request) Get(name string) string {
	for _, f := range r.Fields {
		if f.Name == name {
			return f.Value
		}
	}
	return ""
}

// Has reports whether the named field is present, even with an empty value.
func (r *Request) Has(name string) bool {
	for _, f := range r.Fields {
		if f.Name == name {
			return true
		}
	}
	return false
}

// Values returns every value of the named field, in order.
func (r *Request) Values(name string) []string {
	var out []string
	for _, f := range r.Fields {
		if f.Name == name {
			out = append(out, f.Value)
		}
	}
	return out
}

func (r *Request) count(name string) int {
	n := 0
	for _, f := range r.Fields {
		if f.Name == name {
			n++
		}
	}
	return n
}

// FromTag and ToTag return the tag parameters ("" when absent).
func (r *Request) FromTag() string { return r.fromTag }

// ToTag returns the To tag; an INVITE with one is not an initial request.
func (r *Request) ToTag() string { return r.toTag }

// Branch returns the top Via branch parameter.
func (r *Request) Branch() string { return r.branch }

// txKey identifies the transaction for retransmission matching (RFC 3261
// §17.2.3): the branch with its sent-by when the branch is RFC 3261
// compliant, else the RFC 2543 fields.
func (r *Request) txKey() string {
	m := r.CSeqM
	if m == "ACK" {
		m = "INVITE"
	}
	if strings.HasPrefix(r.branch, "z9hG4bK") {
		return m + "|" + r.branch + "|" + viaSentBy(r.viaTop)
	}
	return m + "|" + r.CallID + "|" + strconv.FormatUint(uint64(r.CSeq), 10) + "|" + r.fromTag + "|" + r.toTag + "|" + r.viaTop
}

func canonicalName(n string) string {
	switch n {
	case "call-id":
		return "Call-ID"
	case "cseq":
		return "CSeq"
	}
	return strings.ToUpper(n[:1]) + n[1:]
}

func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("-.!%*_+`'~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// firstElement returns the first comma-separated element of a header value,
// ignoring commas inside quotes and angle brackets.
func firstElement(v string) string {
	depth, quoted := 0, false
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case c == '\\' && quoted:
			i++
		case c == '"':
			quoted = !quoted
		case quoted:
		case c == '<':
			depth++
		case c == '>':
			if depth > 0 {
				depth--
			}
		case c == ',' && depth == 0:
			return strings.TrimSpace(v[:i])
		}
	}
	return strings.TrimSpace(v)
}

// viaParams returns the ";..." parameter part of one Via element.
func viaParams(via string) string {
	if i := strings.IndexByte(via, ';'); i >= 0 {
		return via[i:]
	}
	return ""
}

// viaSentBy returns the host[:port] of one Via element.
func viaSentBy(via string) string {
	s := via
	if i := strings.IndexByte(s, ';'); i >= 0 {
		s = s[:i]
	}
	if i := strings.LastIndexAny(s, " \t"); i >= 0 {
		s = s[i+1:]
	}
	return strings.TrimSpace(s)
}

// headerParams returns the header parameters of a name-addr or addr-spec
// header value (From, To): what follows the URI.
func headerParams(v string) string {
	quoted := false
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case c == '\\' && quoted:
			i++
		case c == '"':
			quoted = !quoted
		case quoted:
		case c == '<':
			if j := strings.IndexByte(v[i:], '>'); j >= 0 {
				rest := v[i+j+1:]
				if k := strings.IndexByte(rest, ';'); k >= 0 {
					return rest[k:]
				}
				return ""
			}
			return ""
		}
	}
	// addr-spec: every ';' parameter belongs to the header (RFC 3261 §20).
	if i := strings.IndexByte(v, ';'); i >= 0 {
		return v[i:]
	}
	return ""
}

// param finds name in a ";a=b;c" parameter list (case-insensitive name).
func param(params, name string) string {
	for params != "" {
		params = strings.TrimLeft(params, "; \t")
		seg := params
		if i := strings.IndexByte(params, ';'); i >= 0 {
			seg, params = params[:i], params[i:]
		} else {
			params = ""
		}
		k, v, _ := strings.Cut(seg, "=")
		if strings.EqualFold(strings.TrimSpace(k), name) {
			return strings.Trim(strings.TrimSpace(v), `"`)
		}
	}
	return ""
}
