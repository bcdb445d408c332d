package agi

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/stirgate/stirgate/core"
	"github.com/stirgate/stirgate/core/disposition"
	"github.com/stirgate/stirgate/core/stir"
	"github.com/stirgate/stirgate/outcome"
)

// Channel variables the scripts set. Every script sets every one of its
// variables (empty when not applicable), so a value left by an earlier AGI
// call on the same channel never survives, and it sets STIR_RESULT last:
// an empty STIR_RESULT after the AGI means the session did not complete.
const (
	VarResult   = "STIR_RESULT"   // sign: signed|unsigned|error; verify: pass|fail|none
	VarError    = "STIR_ERROR"    // stable error name (stir.Error.Name), empty on success
	VarIdentity = "STIR_IDENTITY" // sign: Identity header value
	VarDate     = "STIR_DATE"     // sign: Date header value matching iat
	VarAttest   = "STIR_ATTEST"   // A, B or C
	VarOrigID   = "STIR_ORIGID"   // origid
	VarVerstat  = "STIR_VERSTAT"  // verify: TN-Validation-Passed|-Failed|No-TN-Validation
	VarSIPCode  = "STIR_SIP_CODE" // verify: 403, 428, 436, 437, 438; empty on pass
	VarReason   = "STIR_REASON"   // verify: reason phrase for STIR_SIP_CODE
	VarSPC      = "STIR_SPC"      // verify: service provider code of the signer
	VarX5U      = "STIR_X5U"      // verify: certificate URL
	// A diverted call (RFC 8946), on pass: how many diversions were
	// verified, and the diverting numbers, first diversion first,
	// comma-separated. "0" and empty otherwise.
	VarDivCount = "STIR_DIV_COUNT"
	VarDiv      = "STIR_DIV_TN"
	// Verified rich call data (RFC 9795), on pass: display name, call
	// reason, logo URL, and the RFC 9796 Call-Info values to add to the
	// outgoing leg, joined by ", " (one header value). Empty otherwise.
	VarRCDNam      = "STIR_RCD_NAM"
	VarRCDCrn      = "STIR_RCD_CRN"
	VarRCDIcn      = "STIR_RCD_ICN"
	VarRCDCallInfo = "STIR_RCD_CALL_INFO"
)

// Sign outcomes (STIR_RESULT of the sign script).
const (
	Signed   = "signed"
	Unsigned = "unsigned" // policy or input: this call is not ours to sign
	Errored  = "error"    // the signer failed; the call goes out unsigned
)

type variable struct{ name, value string }

// options are the per-call settings: the script's query
// (agi://host/sign?attest=B) then the AGI arguments "key=value", which
// override the query key by key. A key may repeat (dest=).
type options map[string][]string

func (o options) get(k string) string {
	if v := o[k]; len(v) > 0 {
		return v[len(v)-1]
	}
	return ""
}

var allowed = map[string]map[string]bool{
	"sign":   {"orig": true, "dest": true, "attest": true, "origid": true, "customer": true, "source": true, "callid": true, "linkedid": true, "div": true, "hi": true},
	"verify": {"require": true, "linkedid": true, "target": true},
}

func parseOptions(env Env) (options, error) {
	script := env.Script()
	o := options{}
	for k, v := range env.Query() {
		o[strings.ToLower(k)] = v
	}
	fromArgs := map[string]bool{}
	for _, a := range env.Args() {
		if a == "" {
			continue // AGI(url,,x) leaves empty arguments
		}
		k, v, ok := strings.Cut(a, "=")
		k = strings.ToLower(strings.TrimSpace(k))
		if !ok || k == "" {
			return o, fmt.Errorf("argument %q: want key=value", a)
		}
		if !fromArgs[k] {
			fromArgs[k] = true
			delete(o, k)
		}
		o[k] = append(o[k], strings.TrimSpace(v))
	}
	var unknown []string
	for k := range o {
		if !allowed[script][k] {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return o, fmt.Errorf("unknown option %s for %s", strings.Join(unknown, ", "), script)
	}
	return o, nil
}

// linkedID is the linkedid= option, else CHANNEL(linkedid). It is only
// recorded, so failing to read it does not fail the session by itself.
func linkedID(ctx context.Context, sess *Session, o options) (string, error) {
	if v := o.get("linkedid"); v != "" {
		return v, nil
	}
	v, _, err := sess.GetVariable(ctx, "CHANNEL(linkedid)")
	var re *ReplyError
	if errors.As(err, &re) {
		return "", nil
	}
	return v, err
}

// sign runs the sign script. The returned Outcome is recorded even when
// the session failed half-way, once signing was attempted.
//
// judged is called once the outcome is known, before the variables are set.
func (s *Server) sign(ctx context.Context, sess *Session, svc Service, judged func(*outcome.Outcome)) (*outcome.Outcome, error) {
	env := sess.Env
	out := &outcome.Outcome{
		Time: s.opts.Now(), UniqueID: env["agi_uniqueid"], Kind: outcome.KindSign, Direction: "outbound",
	}
	o, optErr := parseOptions(env)
	lid, err := linkedID(ctx, sess, o)
	if err != nil {
		return nil, err
	}
	out.LinkedID = lid

	var res *core.SignResult
	var signErr error
	if optErr != nil {
		signErr = stir.ErrSignInput.With("agi options", optErr)
	} else {
		if _, divert := o["div"]; divert {
			// A forwarded call (RFC 8946): keep the received Identity and
			// sign a div PASSporT beside it, to the dialled number.
			res, signErr = s.signDiv(ctx, sess, svc, env, o)
		} else {
			var req core.SignRequest
			if req, signErr = signRequest(env, o, lid); signErr == nil {
				out.Orig, out.Dest = req.Orig, strings.Join(req.Dest, ",")
				res, signErr = svc.Sign(ctx, req)
			}
		}
	}

	vars := []variable{{VarIdentity, ""}, {VarDate, ""}, {VarAttest, ""}, {VarOrigID, ""}, {VarError, ""}, {VarResult, Signed}}
	if signErr == nil && res != nil {
		// The Identity travels in one SET VARIABLE: make sure it fits
		// before promising "signed".
		if n := len("SET VARIABLE "+VarIdentity+" ") + len(res.Identity) + 3; n > MaxCommandLine {
			signErr = stir.ErrInternal.Withf("Identity header of %d bytes does not fit an AGI command", len(res.Identity))
		}
	}
	if signErr == nil && res == nil {
		signErr = stir.ErrInternal.Withf("signer returned no result")
	}
	if signErr != nil {
		e := stir.As(signErr)
		if e == nil {
			e = stir.ErrInternal.With("", signErr)
		}
		vars[4].value = e.Name
		vars[5].value = signOutcome(e)
		out.Result, out.ErrorName, out.SIPCode, out.Reason = vars[5].value, e.Name, e.SIPCode, e.Reason
		out.SetRefused(signErr)
		s.log.Info("agi sign: not signed", "uniqueid", out.UniqueID, "result", out.Result, "err", signErr)
	} else {
		vars[0].value, vars[1].value = res.Identity, res.Date
		vars[2].value, vars[3].value = string(res.Attest), res.OrigID
		out.Result, out.Attest, out.OrigID, out.X5U = Signed, string(res.Attest), res.OrigID, res.X5U
		out.SetSigned(res)
		if res.Orig != "" {
			out.Orig, out.Dest = res.Orig, strings.Join(res.Dest, ",")
		}
	}
	judged(out)
	return out, setAll(ctx, sess, vars)
}

// signOutcome tells "this call is not ours to sign" (policy, input, an
// existing signature) from a signer fault.
func signOutcome(e *stir.Error) string {
	for _, u := range []*stir.Error{stir.ErrSignNotAllowed, stir.ErrAlreadySigned, stir.ErrSignInput, stir.ErrSignDate} {
		if errors.Is(e, u) {
			return Unsigned
		}
	}
	return Errored
}

// signRequest builds the request: orig from orig= or CALLERID(num), dest
// from dest= or EXTEN (res_agi.c sends both in the environment as
// agi_callerid and agi_extension; an absent caller number prints as
// "unknown").
func signRequest(env Env, o options, linkedID string) (core.SignRequest, error) {
	req := core.SignRequest{
		Orig:     o.get("orig"),
		Dest:     o["dest"],
		OrigID:   o.get("origid"),
		Customer: o.get("customer"),
		Source:   o.get("source"),
		CallID:   o.get("callid"),
	}
	if req.Orig == "" {
		if c := env["agi_callerid"]; c != "unknown" {
			req.Orig = c
		}
	}
	if req.Orig == "" {
		return req, stir.ErrSignInput.Withf("no calling number: CALLERID(num) is empty and no orig= argument")
	}
	if len(req.Dest) == 0 && env["agi_extension"] != "" {
		req.Dest = []string{env["agi_extension"]}
	}
	if a := o.get("attest"); a != "" {
		at, err := stir.ParseAttestation(a)
		if err != nil {
			return req, stir.ErrSignInput.With("attest=", err)
		}
		req.Attest = at
	}
	if req.CallID == "" {
		// The linked id is one per call across its legs and retries, so a
		// generated origid stays stable when the dialplan signs again.
		req.CallID = linkedID
		if req.CallID == "" {
			req.CallID = env["agi_uniqueid"]
		}
	}
	return req, nil
}

// Header expressions read by verify. PJSIP_HEADER(read,Name,N) returns the
// Nth header of that name on the INVITE, empty when there is none. GET FULL
// VARIABLE is used because GET VARIABLE reads into a 1024-byte buffer and
// an Identity header is routinely longer.
func headerExpr(name string, n int) string {
	if n == 0 {
		return "${PJSIP_HEADER(read," + name + ")}"
	}
	return "${PJSIP_HEADER(read," + name + "," + strconv.Itoa(n) + ")}"
}

// fullVariableCut is the length of a GET FULL VARIABLE value cut by the
// tmp[4096] buffer of the releases that have one.
const fullVariableCut = 4095

// verify runs the verify script.
//
// judged is called once the outcome is known, before the variables are set.
func (s *Server) verify(ctx context.Context, sess *Session, svc Service, judged func(*outcome.Outcome)) (*outcome.Outcome, error) {
	env := sess.Env
	out := &outcome.Outcome{
		Time: s.opts.Now(), UniqueID: env["agi_uniqueid"], Kind: outcome.KindVerify, Direction: "inbound",
	}
	o, optErr := parseOptions(env)
	lid, err := linkedID(ctx, sess, o)
	if err != nil {
		s.recordBroken(out, err)
		judged(out)
		return out, err
	}
	out.LinkedID = lid

	var res *stir.Result
	if optErr != nil {
		res = (&stir.Result{}).Failed(stir.ErrInternal.With("agi options", optErr))
	} else {
		// target is the Request-URI or dialled number a diverted call
		// reached (${EXTEN}): the last div PASSporT's dest must name it.
		req := core.VerifyRequest{RequireIdentity: s.opts.RequireIdentity, Target: o.get("target")}
		switch strings.ToLower(o.get("require")) {
		case "":
		case "yes", "true", "1":
			req.RequireIdentity = true
		case "no", "false", "0":
			req.RequireIdentity = false
		default:
			optErr = fmt.Errorf("require=%q: want yes or no", o.get("require"))
			res = (&stir.Result{}).Failed(stir.ErrInternal.With("agi options", optErr))
		}
		if res == nil {
			var cut int
			req.Identity, cut, err = s.readIdentity(ctx, sess)
			if err != nil {
				s.recordBroken(out, err)
				judged(out)
				return out, err
			}
			for _, h := range []struct {
				name string
				dst  *string
			}{{"From", &req.From}, {"P-Asserted-Identity", &req.PAI}, {"To", &req.To}, {"Date", &req.Date}} {
				if *h.dst, _, err = sess.GetFullVariable(ctx, headerExpr(h.name, 0)); err != nil {
					s.recordBroken(out, err)
					judged(out)
					return out, err
				}
			}
			if len(req.Identity) == 0 && cut > 0 {
				res = (&stir.Result{}).Failed(stir.ErrIdentityTooLong.Withf(
					"%d Identity header(s) reached GET FULL VARIABLE's %d-byte limit and may have been cut", cut, fullVariableCut))
			} else {
				res = svc.Verify(ctx, req)
			}
		}
	}
	if res == nil {
		res = (&stir.Result{}).Failed(stir.ErrInternal.Withf("verifier returned no result"))
	}
	if optErr != nil {
		s.rl.Warn(s.log, "agi verify: bad options", "uniqueid", out.UniqueID, "err", optErr)
	}

	code := ""
	if res.SIPCode != 0 {
		code = strconv.Itoa(res.SIPCode)
	}
	// On a failure the Result still carries what the token claimed, for
	// the record; the dialplan sees an attestation only once it is
	// verified, so that no route can trust an unverified "A".
	attest, origID := string(res.Attest), res.OrigID
	if res.Result != stir.Pass {
		attest, origID = "", ""
	}
	vars := []variable{
		{VarVerstat, string(res.Verstat)}, {VarSIPCode, code}, {VarReason, res.Reason},
		{VarError, res.Error}, {VarAttest, attest}, {VarOrigID, origID},
		{VarSPC, res.SPC}, {VarX5U, res.X5U},
		{VarDivCount, strconv.Itoa(len(res.Div))}, {VarDiv, divTNs(res.Div)},
	}
	var rcd stir.RCD
	var callInfo string
	if res.Result == stir.Pass && res.RCD != nil {
		rcd, callInfo = *res.RCD, strings.Join(disposition.CallInfo(res.RCD), ", ")
	}
	vars = append(vars, variable{VarRCDNam, rcd.Nam}, variable{VarRCDCrn, rcd.Crn}, variable{VarRCDIcn, rcd.Icn},
		variable{VarRCDCallInfo, callInfo}, variable{VarResult, string(res.Result)})
	out.Result, out.Verstat, out.Attest, out.OrigID = string(res.Result), string(res.Verstat), string(res.Attest), res.OrigID
	out.SIPCode, out.ErrorName, out.Reason, out.X5U, out.SPC = res.SIPCode, res.Error, res.Reason, res.X5U, res.SPC
	out.Orig, out.Dest = res.Orig, strings.Join(res.Dest, ",")
	out.SetExtensions(res)
	judged(out)
	return out, setAll(ctx, sess, vars)
}

func divTNs(div []stir.Div) string {
	tns := make([]string, len(div))
	for i, d := range div {
		tns[i] = d.TN
	}
	return strings.Join(tns, ",")
}

// signDiv reads the received Identity headers and signs the diversion of
// the call from div= (default: the received dest) to dest= or the
// dialled extension.
func (s *Server) signDiv(ctx context.Context, sess *Session, svc Service, env Env, o options) (*core.SignResult, error) {
	ds, ok := svc.(DivSigner)
	if !ok {
		return nil, stir.ErrInternal.Withf("this service does not sign diversions")
	}
	ids, _, err := s.readIdentity(ctx, sess)
	if err != nil {
		return nil, stir.ErrInternal.With("reading Identity headers", err)
	}
	req := core.DivRequest{Identity: ids, Div: o.get("div"), HI: o.get("hi"), Dest: o["dest"]}
	if len(req.Dest) == 0 && env["agi_extension"] != "" {
		req.Dest = []string{env["agi_extension"]}
	}
	return ds.SignDiv(ctx, req)
}

// recordBroken marks an outcome whose headers could not be read: nothing
// was judged, and the record says so rather than staying silent.
func (s *Server) recordBroken(out *outcome.Outcome, err error) {
	out.Result = Errored
	out.ErrorName = stir.ErrInternal.Name
	out.Reason = "agi session failed before verification: " + err.Error()
}

// readIdentity reads Identity headers 1, 2, ... until one is empty, at most
// MaxIdentityHeaders+1 of them, then the compact form "y" the same way.
// Headers that may have been cut by Asterisk's buffer are left out and
// counted.
func (s *Server) readIdentity(ctx context.Context, sess *Session) (ids []string, cut int, err error) {
	limit := s.opts.MaxIdentityHeaders + 1
	for _, name := range []string{"Identity", "y"} {
		for n := 1; len(ids)+cut < limit; n++ {
			v, _, err := sess.GetFullVariable(ctx, headerExpr(name, n))
			if err != nil {
				return nil, 0, err
			}
			if v == "" {
				break
			}
			// Exactly 4095 bytes is what the fixed buffer leaves of a
			// longer value; a longer reply proves a release without it.
			if len(v) == fullVariableCut {
				cut++
				continue
			}
			ids = append(ids, v)
		}
	}
	return ids, cut, nil
}

// setAll sets vars in order. A dead channel's 511 or a transport failure
// stops it: later variables (STIR_RESULT last) stay unset, which the
// dialplan reads as "did not complete".
func setAll(ctx context.Context, sess *Session, vars []variable) error {
	for _, v := range vars {
		val := strings.Map(func(r rune) rune {
			if r == '\r' || r == '\n' || r == 0 {
				return ' '
			}
			return r
		}, v.value)
		if err := sess.SetVariable(ctx, v.name, val); err != nil {
			return fmt.Errorf("set %s: %w", v.name, err)
		}
	}
	return nil
}
