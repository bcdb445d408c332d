package sipredirect

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"time"

	"github.com/stirgate/stirgate/core"
	"github.com/stirgate/stirgate/core/disposition"
	"github.com/stirgate/stirgate/core/stir"
	"github.com/stirgate/stirgate/core/tn"
	"github.com/stirgate/stirgate/outcome"
)

// Mode says what an INVITE on a listener asks for.
type Mode string

// Modes. Auto verifies an INVITE that carries a non-empty Identity and
// signs any other, which suits one port shared by both directions.
const (
	Auto   Mode = "auto"
	Sign   Mode = "sign"
	Verify Mode = "verify"
)

// ParseMode accepts "", auto, sign and verify ("" is auto).
func ParseMode(s string) (Mode, error) {
	switch Mode(s) {
	case "", Auto:
		return Auto, nil
	case Sign, Verify:
		return Mode(s), nil
	}
	return "", fmt.Errorf("sip mode %q: want auto, sign or verify", s)
}

// Profile adapts the answer to one kind of switch, chosen by source
// address. Sippy's 1CallConnect connector, for one, reads X-Identity and
// X-Date instead of Identity and Date.
type Profile struct {
	Name    string
	Sources []netip.Prefix
	// IdentityHeader and DateHeader name the answer's fields (defaults
	// Identity and Date). On verification, IdentityHeader is read as well
	// as Identity.
	IdentityHeader string
	DateHeader     string
}

// The X variant a request can ask for with an empty X-Identity marker.
var xProfile = Profile{Name: "x-identity", IdentityHeader: "X-Identity", DateHeader: "X-Date"}

// Options configures a Handler. The zero value answers OPTIONS from
// loopback and refuses to sign or verify.
type Options struct {
	// Signer signs; nil answers every signing request with Unsigned.
	Signer *core.Signer
	// Verifier verifies; nil answers verification requests 503.
	Verifier *core.Verifier
	// Disposition is the strict or relaxed handling of a failed
	// verification (config [verifier] mode).
	Disposition disposition.Options
	// RequireIdentity makes "no Identity" on a verify listener a failure.
	RequireIdentity bool

	// Allow lists the sources served; others get 403. Empty admits
	// loopback only: a signing server open to the world signs for anyone.
	Allow []netip.Prefix

	// Contact is the redirect target. Empty: the Request-URI. A URI without
	// a user part ("sip:gw.example.net:5080") gets the Request-URI's user.
	Contact string

	// Unsigned is the answer when a call must not be signed: 302 (redirect
	// without Identity, the default), 403 (refused, e.g. by policy), 404 or
	// 503 (route advance), or 603.
	Unsigned int

	// Reason adds `Reason: SIP;cause=302;text="..."` to signing answers,
	// naming the attestation or the error.
	Reason bool

	// AttestationHeader is the request field a switch may use to choose
	// the attestation ("Attestation" by default; "-" ignores it).
	AttestationHeader string

	// AttestationIndicator and OriginationID add P-Attestation-Indicator
	// and P-Origination-ID to answers that carry a signed or verified call.
	AttestationIndicator bool
	OriginationID        bool

	// Profiles adapt answers per source; the first match wins.
	Profiles []Profile

	// Timeout bounds one signing or verification (default 1.5 s), well
	// inside the 2 s that SBCs and Asterisk wait for an answer.
	Timeout time.Duration

	// Observe, when set, is told of every signing and verification. It must
	// not block.
	Observe func(op string, d time.Duration, outcome, errName string)

	// Recorder, when set, is given one outcome per signing and
	// verification answer, keyed on the Call-ID. It must not block (an
	// outcome.Writer queues and spills); System names this node in it.
	Recorder outcome.Recorder
	System   string

	Logger *slog.Logger
}

// Handler decides the answer to one request. It is immutable and safe for
// concurrent use; a reload builds a new one and swaps it in the Server.
type Handler struct {
	o       Options
	contact string
	attHdr  string
}

// NewHandler validates o and builds a Handler.
func NewHandler(o Options) (*Handler, error) {
	switch o.Unsigned {
	case 0:
		o.Unsigned = 302
	case 302, 403, 404, 503, 603:
	default:
		return nil, fmt.Errorf("sip unsigned answer %d: want 302, 403, 404, 503 or 603", o.Unsigned)
	}
	if o.Timeout <= 0 {
		o.Timeout = 1500 * time.Millisecond
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	h := &Handler{o: o, attHdr: "attestation"}
	switch o.AttestationHeader {
	case "":
	case "-":
		h.attHdr = ""
	default:
		if !isToken(o.AttestationHeader) {
			return nil, fmt.Errorf("sip attestation header %q: not a header name", o.AttestationHeader)
		}
		h.attHdr = strings.ToLower(o.AttestationHeader)
	}
	if o.Contact != "" {
		if !strings.HasPrefix(strings.ToLower(o.Contact), "sip:") && !strings.HasPrefix(strings.ToLower(o.Contact), "sips:") {
			return nil, fmt.Errorf("sip contact %q: want a sip: or sips: URI", o.Contact)
		}
		h.contact = o.Contact
	}
	for i, p := range o.Profiles {
		if p.IdentityHeader != "" && !isToken(p.IdentityHeader) || p.DateHeader != "" && !isToken(p.DateHeader) {
			return nil, fmt.Errorf("sip profile %d (%s): header names must be tokens", i+1, p.Name)
		}
	}
	return h, nil
}

// Allowed reports whether src may use the service.
func (h *Handler) Allowed(src netip.Addr) bool {
	src = src.Unmap()
	if len(h.o.Allow) == 0 {
		return src.IsLoopback()
	}
	for _, p := range h.o.Allow {
		if p.Contains(src) {
			return true
		}
	}
	return false
}

var allowed = "INVITE, ACK, CANCEL, OPTIONS"

// Handle answers one request. A nil Answer means no response (ACK).
func (h *Handler) Handle(ctx context.Context, mode Mode, r *Request, src netip.AddrPort) *Answer {
	if !h.Allowed(src.Addr()) {
		if r.Method == "ACK" {
			return nil
		}
		return &Answer{Code: 403, Reason: "Forbidden", Outcome: "refused", Error: "source_not_allowed"}
	}
	switch r.Method {
	case "ACK":
		return nil
	case "OPTIONS":
		a := &Answer{Code: 200, Reason: "OK", Outcome: "options"}
		a.add("Allow", allowed)
		a.add("Accept", "application/sdp")
		return a
	case "CANCEL":
		// Every INVITE is answered at once, so there is nothing to cancel;
		// 200 ends the CANCEL transaction (RFC 3261 §9.2).
		return &Answer{Code: 200, Reason: "OK", Outcome: "cancel"}
	case "INVITE":
	default:
		a := &Answer{Code: 405, Reason: "Method Not Allowed", Outcome: "method"}
		a.add("Allow", allowed)
		return a
	}
	if r.toTag != "" {
		return &Answer{Code: 481, Reason: "Call/Transaction Does Not Exist", Outcome: "in_dialog", Error: stir.ErrNotInitialInvite.Name}
	}
	prof := h.profile(src.Addr(), r)
	listener := mode
	if mode == Auto {
		mode = Sign
		if len(nonEmpty(h.identities(r, prof))) > 0 {
			mode = Verify
		}
	}
	ctx, cancel := context.WithTimeout(ctx, h.o.Timeout)
	defer cancel()
	c := call{r: r, src: src, p: prof, mode: listener}
	if mode == Verify {
		return h.verify(ctx, c)
	}
	return h.sign(ctx, c)
}

// call is one INVITE being answered: what the record of it needs besides
// the verdict.
type call struct {
	r    *Request
	src  netip.AddrPort
	p    Profile
	mode Mode // the listener's mode before auto was resolved
}

// record hands the outcome of one answer to the Recorder.
func (h *Handler) record(c call, kind string, fill func(*outcome.Outcome)) {
	if h.o.Recorder == nil {
		return
	}
	o := outcome.Outcome{
		Time: time.Now().UTC(), System: h.o.System, UniqueID: c.r.CallID, Kind: kind,
		Source: outcome.SourceSIP, Peer: c.src.Addr().Unmap().String(), Profile: c.p.Name, Mode: string(c.mode),
	}
	if o.Profile == "" {
		o.Profile = "default"
	}
	if kind == outcome.KindSign {
		o.Direction = "outbound"
	} else {
		o.Direction = "inbound"
	}
	if otg := param(headerParams(c.r.Get("from")), "otg"); otg != "" {
		o.Peer = otg
	}
	fill(&o)
	if err := h.o.Recorder.Record(context.Background(), o); err != nil {
		h.o.Logger.Warn("outcome not recorded", "call_id", c.r.CallID, "err", err)
	}
}

// profile picks the answer variant: an empty X-Identity field asks for the
// X variant; otherwise the first profile matching the source.
func (h *Handler) profile(src netip.Addr, r *Request) Profile {
	if r.Has("x-identity") && r.Get("x-identity") == "" {
		return xProfile
	}
	src = src.Unmap()
	for _, p := range h.o.Profiles {
		for _, pfx := range p.Sources {
			if pfx.Contains(src) {
				return p
			}
		}
	}
	return Profile{}
}

func (p Profile) identityHeader() string {
	if p.IdentityHeader == "" {
		return "Identity"
	}
	return p.IdentityHeader
}

func (p Profile) dateHeader() string {
	if p.DateHeader == "" {
		return "Date"
	}
	return p.DateHeader
}

// identities collects Identity (and compact y) values, plus the profile's
// own field when it has one.
func (h *Handler) identities(r *Request, p Profile) []string {
	out := r.Values("identity")
	if n := strings.ToLower(p.identityHeader()); n != "identity" {
		out = append(out, r.Values(n)...)
	}
	return out
}

func nonEmpty(v []string) []string {
	var out []string
	for _, s := range v {
		if strings.TrimSpace(s) != "" {
			out = append(out, s)
		}
	}
	return out
}

// target is the Contact of a redirect.
func (h *Handler) target(r *Request) string {
	if h.contact == "" {
		return r.URI
	}
	c := h.contact
	scheme, rest, _ := strings.Cut(c, ":")
	if strings.Contains(rest, "@") {
		return c
	}
	user := requestUser(r.URI)
	if user == "" {
		return c
	}
	return scheme + ":" + user + "@" + rest
}

// requestUser returns the user part of a sip URI, or "".
func requestUser(uri string) string {
	_, rest, ok := strings.Cut(uri, ":")
	if !ok {
		return ""
	}
	at := strings.IndexByte(rest, '@')
	if at < 0 {
		return ""
	}
	user := rest[:at]
	if i := strings.IndexByte(user, ':'); i >= 0 { // user:password
		user = user[:i]
	}
	return user
}

func (h *Handler) observe(op string, start time.Time, outcome, errName string) {
	if h.o.Observe != nil {
		h.o.Observe(op, time.Since(start), outcome, errName)
	}
}

func (h *Handler) sign(ctx context.Context, c call) *Answer {
	r, src, p := c.r, c.src, c.p
	start := time.Now()
	if h.o.Signer == nil {
		return h.unsigned(c, stir.ErrSignNotAllowed.Withf("no signer configured"), start)
	}
	if len(nonEmpty(h.identities(r, p))) > 0 {
		// Conformance §1.11: never a second SHAKEN Identity. The switch
		// keeps what it has.
		return h.unsigned(c, stir.ErrAlreadySigned.Withf("request already carries an Identity"), start)
	}
	req := core.SignRequest{
		From:   r.Get("from"),
		PAI:    firstElement(r.Get("p-asserted-identity")),
		To:     r.Get("to"),
		Date:   r.Get("date"),
		CallID: r.CallID,
		Source: PolicySource(r.Get("from"), src.Addr().Unmap().String()),
	}
	if h.attHdr != "" {
		if v := strings.TrimSpace(r.Get(h.attHdr)); v != "" {
			a, err := stir.ParseAttestation(strings.ToUpper(v))
			if err != nil {
				return h.unsigned(c, stir.ErrSignInput.With("attestation field", err), start)
			}
			req.Attest = a
		}
	}
	res, err := h.o.Signer.Sign(ctx, req)
	if err != nil {
		return h.unsigned(c, err, start)
	}
	a := &Answer{Code: 302, Reason: "Moved Temporarily", Outcome: "signed"}
	a.add("Contact", "<"+h.target(r)+">")
	a.add(p.identityHeader(), res.Identity)
	a.add(p.dateHeader(), res.Date)
	if h.o.AttestationIndicator {
		a.add("P-Attestation-Indicator", string(res.Attest))
	}
	if h.o.OriginationID {
		a.add("P-Origination-ID", res.OrigID)
	}
	if h.o.Reason {
		a.add("Reason", disposition.ReasonHeader("SIP", 302, "Signed, attestation "+string(res.Attest)))
	}
	h.observe("sign", start, "signed", "")
	h.record(c, outcome.KindSign, func(o *outcome.Outcome) {
		o.Result, o.Attest, o.OrigID, o.Orig, o.Dest, o.SIPCode = "signed", string(res.Attest), res.OrigID, res.Orig, strings.Join(res.Dest, ","), 0
		o.SetSigned(res)
	})
	h.o.Logger.Debug("signed", "call_id", r.CallID, "orig", res.Orig, "dest", res.Dest, "attest", res.Attest)
	return a
}

// unsigned is the configured answer for a call that is not signed.
func (h *Handler) unsigned(c call, err error, start time.Time) *Answer {
	r := c.r
	e := stir.As(err)
	if e == nil {
		e = stir.ErrInternal.With("", err)
	}
	a := &Answer{Code: h.o.Unsigned, Outcome: "unsigned", Error: e.Name}
	switch h.o.Unsigned {
	case 302:
		a.Reason = "Moved Temporarily"
		a.add("Contact", "<"+h.target(r)+">")
	case 403:
		a.Reason = "Forbidden"
	case 404:
		a.Reason = "Not Found"
	case 503:
		a.Reason = "Service Unavailable"
	case 603:
		a.Reason = "Decline"
	}
	a.add("Warning", `399 `+serverName+` "`+e.Name+`"`)
	if h.o.Reason {
		a.add("Reason", disposition.ReasonHeader("SIP", h.o.Unsigned, "Not signed: "+e.Name))
	}
	h.observe("sign", start, "unsigned", e.Name)
	h.record(c, outcome.KindSign, func(o *outcome.Outcome) {
		o.Result, o.ErrorName, o.Reason, o.SIPCode = "unsigned", e.Name, e.Error(), e.SIPCode
		o.SetRefused(err)
	})
	if !errors.Is(e, stir.ErrAlreadySigned) {
		h.o.Logger.Info("not signed", "call_id", r.CallID, "error", e.Name, "detail", e.Error())
	}
	return a
}

func (h *Handler) verify(ctx context.Context, c call) *Answer {
	r, p := c.r, c.p
	start := time.Now()
	if h.o.Verifier == nil {
		h.observe("verify", start, "error", "verifier_not_configured")
		h.record(c, outcome.KindVerify, func(o *outcome.Outcome) {
			o.Result, o.ErrorName, o.SIPCode = "error", "verifier_not_configured", 503
		})
		a := &Answer{Code: 503, Reason: "Service Unavailable", Outcome: "error", Error: "verifier_not_configured"}
		a.add("Warning", `399 `+serverName+` "verifier_not_configured"`)
		return a
	}
	from := tn.StripVerstat(r.Get("from"))
	pai := tn.StripVerstat(r.Get("p-asserted-identity"))
	res := h.o.Verifier.Verify(ctx, core.VerifyRequest{
		Identity:        nonEmpty(h.identities(r, p)),
		From:            from,
		PAI:             firstElement(pai),
		To:              r.Get("to"),
		Date:            r.Get("date"),
		Target:          r.URI, // a diverted call's last div PASSporT names it (RFC 8946)
		RequireIdentity: h.o.RequireIdentity,
	})
	act := disposition.Decide(res, h.o.Disposition)
	h.observe("verify", start, string(res.Result), res.Error)
	h.record(c, outcome.KindVerify, func(o *outcome.Outcome) {
		o.Result, o.Verstat, o.Attest, o.OrigID = string(res.Result), string(res.Verstat), string(res.Attest), res.OrigID
		o.ErrorName, o.Reason, o.X5U, o.SPC = res.Error, res.Reason, res.X5U, res.SPC
		o.Orig, o.Dest, o.SIPCode = res.Orig, strings.Join(res.Dest, ","), res.SIPCode
		o.SetExtensions(res)
	})
	if act.Reject {
		a := &Answer{Code: act.Code, Reason: act.Reason, Outcome: "rejected", Error: res.Error}
		a.add("Warning", `399 `+serverName+` "`+res.Error+`"`)
		return a
	}
	a := &Answer{Code: 302, Reason: "Moved Temporarily", Outcome: string(res.Result), Error: res.Error}
	a.add("Contact", tn.AddVerstat("<"+h.target(r)+">", act.Verstat))
	a.From = tn.AddVerstat(from, act.Verstat)
	if pai == "" {
		pai = addrOnly(from)
	}
	if pai != "" {
		a.add("P-Asserted-Identity", tn.AddVerstat(pai, act.Verstat))
	}
	if res.Result == stir.Pass {
		if h.o.AttestationIndicator && res.Attest != "" {
			a.add("P-Attestation-Indicator", string(res.Attest))
		}
		if h.o.OriginationID && res.OrigID != "" {
			a.add("P-Origination-ID", res.OrigID)
		}
		// Verified rich call data (RFC 9796) for the next hop.
		for _, ci := range act.CallInfo {
			a.add("Call-Info", ci)
		}
	}
	if act.ReasonHeader != "" {
		a.add("Reason", act.ReasonHeader)
	}
	return a
}

// addrOnly returns the name-addr of a From value without its header
// parameters (tag), to become a P-Asserted-Identity.
func addrOnly(v string) string {
	if i := strings.IndexByte(v, '<'); i >= 0 {
		if j := strings.IndexByte(v[i:], '>'); j >= 0 {
			return v[:i+j+1]
		}
		return ""
	}
	if i := strings.IndexByte(v, ';'); i >= 0 {
		return strings.TrimSpace(v[:i])
	}
	return strings.TrimSpace(v)
}

// PolicySource is the policy key of a request to sign: the otg parameter
// of its From (a trunk group) when present, else the source address.
// `stirgate sign --source` uses it to sign as this server would.
func PolicySource(from, addr string) string {
	if otg := param(headerParams(from), "otg"); otg != "" {
		return otg
	}
	return addr
}
