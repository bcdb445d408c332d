package sipredirect

import (
	"hash/fnv"
	"net/netip"
	"strconv"
	"strings"
)

// Answer is a response as the Handler decides it; the fields every
// response copies from its request (Via, From, To, Call-ID, CSeq) are
// added when it is encoded.
type Answer struct {
	Code   int
	Reason string
	// Fields are extra header fields, in order, with their names as sent.
	Fields []Field
	// From, when set, replaces the From value copied from the request (the
	// verification answer marks it with verstat).
	From string

	// Outcome and Error describe the answer for logs and metrics:
	// signed, unsigned, pass, fail, none, rejected, options, refused, ...
	Outcome string
	Error   string
}

func (a *Answer) add(name, value string) { a.Fields = append(a.Fields, Field{name, value}) }

// serverName is the Server header of every response.
const serverName = "stirgate"

// encode writes the response to r. src is where the request came from: the
// top Via gains received and rport (RFC 3261 §18.2.1, RFC 3581) so that the
// peer sees the address the answer went to.
func encode(r *Request, a *Answer, src netip.AddrPort) []byte {
	var b strings.Builder
	b.Grow(512 + len(r.raw)/2)
	b.WriteString("SIP/2.0 ")
	b.WriteString(strconv.Itoa(a.Code))
	b.WriteByte(' ')
	b.WriteString(a.Reason)
	b.WriteString("\r\n")
	first := true
	for _, f := range r.Fields {
		if f.Name != "via" {
			continue
		}
		v := f.Value
		if first {
			v = stampVia(v, src)
			first = false
		}
		writeField(&b, "Via", v)
	}
	from := r.Get("from")
	if a.From != "" {
		from = a.From
	}
	if from != "" {
		writeField(&b, "From", from)
	}
	if to := r.Get("to"); to != "" {
		if r.toTag == "" && a.Code > 100 {
			to += ";tag=" + localTag(r)
		}
		writeField(&b, "To", to)
	}
	if r.CallID != "" {
		writeField(&b, "Call-ID", r.CallID)
	}
	if c := r.Get("cseq"); c != "" {
		writeField(&b, "CSeq", c)
	}
	for _, f := range a.Fields {
		writeField(&b, f.Name, f.Value)
	}
	writeField(&b, "Server", serverName)
	b.WriteString("Content-Length: 0\r\n\r\n")
	return []byte(b.String())
}

func writeField(b *strings.Builder, name, value string) {
	b.WriteString(name)
	b.WriteString(": ")
	b.WriteString(value)
	b.WriteString("\r\n")
}

// stampVia adds received (when the sent-by host is not the source address,
// or rport was asked for) and fills an empty rport, on the first element.
func stampVia(v string, src netip.AddrPort) string {
	if !src.IsValid() {
		return v
	}
	elem := firstElement(v)
	rest := strings.TrimPrefix(v, elem)
	params := viaParams(elem)
	host := viaSentBy(elem)
	if h, _, ok := strings.Cut(strings.TrimPrefix(host, "["), "]"); ok {
		host = h
	} else if i := strings.LastIndexByte(host, ':'); i >= 0 && strings.Count(host, ":") == 1 {
		host = host[:i]
	}
	ip := src.Addr().Unmap().String()
	rport := hasParam(params, "rport")
	var out strings.Builder
	out.Grow(len(v) + 40)
	if rport {
		// Replace a bare rport with rport=<port>; keep a valued one.
		out.WriteString(setRport(elem, src.Port()))
	} else {
		out.WriteString(elem)
	}
	if (host != ip || rport) && !hasParam(params, "received") {
		out.WriteString(";received=")
		out.WriteString(ip)
	}
	out.WriteString(rest)
	return out.String()
}

func hasParam(params, name string) bool {
	for _, seg := range strings.Split(params, ";") {
		k, _, _ := strings.Cut(seg, "=")
		if strings.EqualFold(strings.TrimSpace(k), name) {
			return true
		}
	}
	return false
}

func setRport(elem string, port uint16) string {
	segs := strings.Split(elem, ";")
	for i, seg := range segs {
		if i > 0 && strings.EqualFold(strings.TrimSpace(seg), "rport") {
			segs[i] = "rport=" + strconv.Itoa(int(port))
		}
	}
	return strings.Join(segs, ";")
}

// localTag is the To tag of our responses: derived from the transaction so
// that a retransmitted request, even one answered afresh, gets the same tag.
func localTag(r *Request) string {
	h := fnv.New64a()
	h.Write([]byte(r.txKey()))
	return strconv.FormatUint(h.Sum64(), 36)
}

// trying is the 100 sent to a retransmission while the first copy is still
// being worked on: it stops the client's INVITE retransmissions (RFC 3261
// §17.1.1.2) without a second signature.
func trying(r *Request, src netip.AddrPort) []byte {
	return encode(r, &Answer{Code: 100, Reason: "Trying"}, src)
}
