package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/stirgate/stirgate/core"
	"github.com/stirgate/stirgate/core/certs"
	"github.com/stirgate/stirgate/core/config"
	"github.com/stirgate/stirgate/core/identity"
	"github.com/stirgate/stirgate/core/passport"
	"github.com/stirgate/stirgate/core/sipmsg"
	"github.com/stirgate/stirgate/core/stir"
	"github.com/stirgate/stirgate/core/tn"
	"github.com/stirgate/stirgate/sipredirect"
)

func init() {
	register("sign", "print a signed Identity header value", runSign)
	register("verify", "verify Identity headers and print the result as JSON", runVerify)
	register("decode", "show an Identity header's JOSE header, claims and parameters", runDecode)
}

func fixedClock(at int64) func() time.Time {
	if at == 0 {
		return time.Now
	}
	t := time.Unix(at, 0)
	return func() time.Time { return t }
}

func runSign(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("sign", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		cfgPath = fs.String("config", "", "config file (signer and policy); with --from/--to")
		keyFile = fs.String("key", "", "PEM private key (P-256)")
		certF   = fs.String("cert", "", "PEM certificate chain of the key (checked against the key)")
		x5uURL  = fs.String("x5u", "", "certificate URL written into x5u and info")
		orig    = fs.String("orig", "", "calling number")
		dest    = fs.String("dest", "", "called number(s), comma-separated")
		attest  = fs.String("attest", "", "attestation A, B or C (default: policy)")
		origid  = fs.String("origid", "", "origination identifier (default: new UUID)")
		at      = fs.Int64("at", 0, "signing time, Unix seconds (default: now)")
		from    = fs.String("from", "", "From header value")
		pai     = fs.String("pai", "", "P-Asserted-Identity header value")
		to      = fs.String("to", "", "To header value")
		date    = fs.String("date", "", "Date header value")
		cust    = fs.String("customer", "", "policy customer or trunk name")
		source  = fs.String("source", "", "source address or tag: with --config, sign as the SIP redirect would for a request from it (prints JSON)")
		asJSON  = fs.Bool("json", false, "print identity, date, attest, origid, tenant, spc and rule as JSON")
		div     = fs.String("div", "", "sign a diversion (RFC 8946): the diverting number or Diversion header value; needs the received --identity and the new --dest or --target")
		hi      = fs.String("hi", "", "History-Info index of the diversion (div.hi), with --div")
		target  = fs.String("target", "", "Request-URI of the retargeted call, with --div (new target when --dest is empty)")
		recv    multiFlag
		rcdNam  = fs.String("rcd-nam", "", "rich call data (RFC 9795): display name; with --rcd-icn/--rcd-jcl/--rcd-jcd")
		rcdIcn  = fs.String("rcd-icn", "", "rich call data: logo URL (fetched and hashed into rcdi)")
		rcdJcl  = fs.String("rcd-jcl", "", "rich call data: jCard URL (fetched and hashed into rcdi)")
		rcdJcd  = fs.String("rcd-jcd", "", "rich call data: inline jCard JSON")
		crn     = fs.String("crn", "", "call reason (RFC 9795 crn)")
	)
	fs.Var(&recv, "identity", "received Identity header value to divert (repeatable; implies a diversion)")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	now := fixedClock(*at)
	var signer *core.Signer
	var err error
	if *keyFile != "" {
		if *x5uURL == "" {
			fmt.Fprintln(stderr, "stirgate sign: --key needs --x5u")
			return exitUsage
		}
		signer, err = signerFromFlags(*keyFile, *certF, *x5uURL, now)
	} else {
		var cfg *config.Config
		if cfg, err = loadConfig(*cfgPath); err == nil {
			log := newLogger(stderr, cfg.Log)
			if err = cfg.PrepareLab(time.Now(), log); err == nil {
				signer, err = cfg.NewSigner(now, log)
			}
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "stirgate sign: %v\n", err)
		return exitUsage
	}
	if *div != "" || len(recv) > 0 {
		dreq := core.DivRequest{Identity: recv, Div: *div, HI: *hi, Target: *target, At: now()}
		if *dest != "" {
			dreq.Dest = strings.Split(*dest, ",")
		}
		res, err := signer.SignDiv(ctx, dreq)
		if err != nil {
			fmt.Fprintf(stderr, "stirgate sign: %v\n", err)
			return exitFail
		}
		if *asJSON {
			out := map[string]any{"identity": res.Identity, "orig": res.Orig, "dest": res.Dest, "div": res.Div, "iat": res.IAT, "x5u": res.X5U}
			if res.HI != "" {
				out["hi"] = res.HI
			}
			return printJSON(stdout, out, exitOK)
		}
		fmt.Fprintln(stdout, res.Identity)
		return exitOK
	}
	req := core.SignRequest{
		Orig: *orig, From: *from, PAI: *pai, To: *to, Date: *date,
		Attest: stir.Attestation(*attest), OrigID: *origid, Customer: *cust, Source: *source,
		// The operator at the command line chooses the level.
		Trusted: *attest != "",
		At:      now(),
	}
	// --source with a config signs as the SIP redirect server would for a
	// request from that address: the policy matches the source (or the
	// From's otg), and a requested level may only lower what it grants.
	asSIP := *source != "" && *keyFile == "" && *cust == ""
	if asSIP {
		req.Source, req.Trusted = sipredirect.PolicySource(*from, *source), false
	}
	if *dest != "" {
		req.Dest = strings.Split(*dest, ",")
	}
	if *rcdNam != "" || *rcdIcn != "" || *rcdJcl != "" || *rcdJcd != "" {
		req.RCD = &core.RCD{Nam: *rcdNam, Icn: *rcdIcn, Jcl: *rcdJcl, Jcd: *rcdJcd}
	}
	req.Crn = *crn
	res, err := signer.Sign(ctx, req)
	if err != nil {
		fmt.Fprintf(stderr, "stirgate sign: %v\n", err)
		return exitFail
	}
	if *asJSON || asSIP {
		out := map[string]any{
			"identity": res.Identity, "date": res.Date, "attest": res.Attest, "origid": res.OrigID,
			"orig": res.Orig, "dest": res.Dest, "iat": res.IAT, "x5u": res.X5U,
			"tenant": res.Tenant, "spc": res.SPC, "rule": res.Rule, "why": res.Why,
		}
		if res.Customer != "" {
			out["customer"] = res.Customer
		}
		return printJSON(stdout, out, exitOK)
	}
	fmt.Fprintln(stdout, res.Identity)
	return exitOK
}

// signerFromFlags builds a signer from --key (and --cert when given). A
// bare key signs with no certificate checks: that is what interop tests
// with other implementations' keys need.
func signerFromFlags(keyFile, certFile, x5uURL string, now func() time.Time) (*core.Signer, error) {
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, err
	}
	var cred *certs.SigningCredential
	if certFile != "" {
		chain, err := os.ReadFile(certFile)
		if err != nil {
			return nil, err
		}
		if cred, err = certs.LoadSigner(keyPEM, chain); err != nil {
			return nil, err
		}
	} else {
		key, err := certs.ParsePrivateKey(keyPEM)
		if err != nil {
			return nil, err
		}
		cred = &certs.SigningCredential{Key: key, NotAfter: time.Unix(1<<62, 0)}
	}
	return core.NewSigner(core.SignerOptions{Credential: cred, X5U: x5uURL, Numbers: tn.NANP(), Now: now})
}

func runVerify(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		cfgPath  = fs.String("config", "", "config file ([verifier], [x5u]); default: --trust, else the lab in ./.stirgate if `stirgate serve` made one")
		trust    multiFlag
		crl      multiFlag
		preload  multiFlag
		labHosts multiFlag
		idents   multiFlag
		offline  = fs.Bool("offline", false, "never fetch: only preloaded or disk-cached certificates")
		at       = fs.Int64("at", 0, "verification time, Unix seconds (default: now)")
		require  = fs.Bool("require-identity", false, "no Identity header is a failure (428)")
		strict   = fs.Bool("strict", false, "require canonical JSON and a UUID origid")
		from     = fs.String("from", "", "From header value")
		pai      = fs.String("pai", "", "P-Asserted-Identity header value")
		to       = fs.String("to", "", "To header value")
		date     = fs.String("date", "", "Date header value")
		target   = fs.String("target", "", "Request-URI: the target a diverted call's last div PASSporT must name (default To)")
		message  = fs.String("message", "", "raw SIP request file (headers as captured)")
		x5uCA    = fs.String("x5u-ca", "", "extra TLS roots for x5u hosts (labs)")
		allowHTP = fs.Bool("allow-http", false, "admit http x5u URLs (labs)")
	)
	fs.Var(&trust, "trust", "trust anchor PEM file (repeatable)")
	fs.Var(&crl, "crl", "CRL file, PEM or DER (repeatable)")
	fs.Var(&preload, "preload", "URL=FILE: serve this x5u from a local PEM file (repeatable)")
	fs.Var(&labHosts, "lab-host", "host:port admitted for x5u even on loopback (labs, repeatable)")
	fs.Var(&idents, "identity", "Identity header value (repeatable)")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if *message == "" && len(idents) == 0 && *from == "" && *to == "" {
		fmt.Fprintln(stderr, "stirgate verify: give --identity with --from/--to, or --message FILE")
		return exitUsage
	}
	if *message != "" && (len(idents) > 0 || *from != "" || *to != "" || *pai != "" || *date != "" || *target != "") {
		fmt.Fprintln(stderr, "stirgate verify: --message excludes --identity/--from/--pai/--to/--date/--target")
		return exitUsage
	}
	var cfg *config.Config
	var err error
	switch {
	case *cfgPath == "" && len(trust) > 0:
		cfg = &config.Config{}
	case *cfgPath == "" && !labExists(config.Default()):
		// A verification writes no files: it uses the lab only when one
		// is already there, and never generates one.
		fmt.Fprintln(stderr, "stirgate verify: no trust anchors: give --trust FILE or --config FILE (or run `stirgate serve` once to make the lab in ./.stirgate)")
		return exitUsage
	default:
		cfg, err = loadConfig(*cfgPath)
	}
	if err != nil {
		fmt.Fprintf(stderr, "stirgate verify: %v\n", err)
		return exitUsage
	}
	log := newLogger(stderr, cfg.Log)
	if err := cfg.PrepareLab(time.Now(), log); err != nil {
		fmt.Fprintf(stderr, "stirgate verify: %v\n", err)
		return exitUsage
	}
	if len(trust) > 0 {
		cfg.Verifier.Trust = trust
	}
	cfg.Verifier.CRL = append(cfg.Verifier.CRL, crl...)
	cfg.Verifier.RequireIdentity = cfg.Verifier.RequireIdentity || *require
	cfg.Verifier.Strict = cfg.Verifier.Strict || *strict
	cfg.X5U.Offline = cfg.X5U.Offline || *offline
	cfg.X5U.AllowHTTP = cfg.X5U.AllowHTTP || *allowHTP
	cfg.X5U.LabHosts = append(cfg.X5U.LabHosts, labHosts...)
	if *x5uCA != "" {
		cfg.X5U.CAFile = *x5uCA
	}
	for _, p := range preload {
		u, f, ok := strings.Cut(p, "=")
		if !ok {
			fmt.Fprintf(stderr, "stirgate verify: --preload %q: want URL=FILE\n", p)
			return exitUsage
		}
		if cfg.X5U.Preload == nil {
			cfg.X5U.Preload = map[string]string{}
		}
		cfg.X5U.Preload[u] = f
	}
	v, err := cfg.NewVerifier(fixedClock(*at), log)
	if err != nil {
		fmt.Fprintf(stderr, "stirgate verify: %v\n", err)
		return exitUsage
	}
	defer v.Close()

	req := core.VerifyRequest{Identity: idents, From: *from, PAI: *pai, To: *to, Date: *date, Target: *target}
	if *message != "" {
		if req, err = requestFromMessage(*message); err != nil {
			fmt.Fprintf(stderr, "stirgate verify: %v\n", err)
			return exitUsage
		}
	}
	res := v.Verify(ctx, req)
	code := exitFail
	if res.Result == stir.Pass {
		code = exitOK
	}
	return printJSON(stdout, res, code)
}

// labExists reports whether cfg's lab is complete on disk, so that
// PrepareLab would only read it.
func labExists(cfg *config.Config) bool {
	dir := cfg.Resolve(cfg.Lab.WithDefaults().Dir)
	for _, f := range []string{"sp.key", config.LabTLSKey, "root.pem"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			return false
		}
	}
	return true
}

// requestFromMessage reads a captured SIP request.
func requestFromMessage(path string) (core.VerifyRequest, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return core.VerifyRequest{}, err
	}
	m, err := sipmsg.Parse(raw, sipmsg.Limits{})
	if err != nil {
		return core.VerifyRequest{}, fmt.Errorf("%s: %w", path, err)
	}
	return core.VerifyRequest{
		Identity: m.Values("Identity"),
		From:     m.Get("From"),
		PAI:      m.Get("P-Asserted-Identity"),
		To:       m.Get("To"),
		Date:     m.Get("Date"),
		Target:   m.RequestURI,
	}, nil
}

func printJSON(w io.Writer, v any, code int) int {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return exitUsage
	}
	return code
}

func runDecode(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("decode", flag.ContinueOnError)
	fs.SetOutput(stderr)
	message := fs.String("message", "", "raw SIP request file")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	var values []string
	switch {
	case *message != "":
		req, err := requestFromMessage(*message)
		if err != nil {
			fmt.Fprintf(stderr, "stirgate decode: %v\n", err)
			return exitUsage
		}
		values = req.Identity
	case fs.NArg() == 1:
		values = []string{fs.Arg(0)}
	default:
		fmt.Fprintln(stderr, "usage: stirgate decode VALUE | --message FILE")
		return exitUsage
	}
	code := exitOK
	for i, v := range values {
		out := map[string]any{"index": i + 1}
		h, err := identity.Parse(v)
		if err != nil {
			out["error"] = errName(err)
			out["detail"] = err.Error()
			code = exitFail
			printJSONIndent(stdout, out)
			continue
		}
		out["params"] = map[string]string{"info": h.Info, "alg": h.Alg, "ppt": h.Ppt}
		tok, err := passport.Parse(h.Token)
		if err != nil {
			out["error"] = errName(err)
			out["detail"] = err.Error()
			code = exitFail
			// Show what can be shown, even of a token we would reject.
			seg := strings.Split(h.Token, ".")
			if len(seg) == 3 {
				if b, err := decodeSeg(seg[0]); err == nil {
					out["header_raw"] = b
				}
				if b, err := decodeSeg(seg[1]); err == nil {
					out["claims_raw"] = b
				}
			}
		} else {
			out["header"] = json.RawMessage(tok.HeaderJSON())
			if json.Valid(tok.ClaimsJSON()) {
				out["claims"] = json.RawMessage(tok.ClaimsJSON())
			}
			out["canonical"] = tok.Canonical()
			out["iat_time"] = time.Unix(tok.Claims.IAT, 0).UTC().Format(time.RFC3339)
		}
		printJSONIndent(stdout, out)
	}
	return code
}

func decodeSeg(s string) (string, error) {
	b, err := base64URL.DecodeString(s)
	return string(b), err
}

func errName(err error) string {
	if e := stir.As(err); e != nil {
		return e.Name
	}
	return "internal_error"
}

func printJSONIndent(w io.Writer, v any) {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

var base64URL = base64.RawURLEncoding
