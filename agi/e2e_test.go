package agi

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stirgate/stirgate/agi/agitest"
	"github.com/stirgate/stirgate/core"
	"github.com/stirgate/stirgate/core/certs"
	"github.com/stirgate/stirgate/core/policy"
	"github.com/stirgate/stirgate/core/stir"
	"github.com/stirgate/stirgate/core/tn"
	"github.com/stirgate/stirgate/core/x5u"
	"github.com/stirgate/stirgate/internal/testlog"
	"github.com/stirgate/stirgate/internal/testpki"
)

// End to end: the real core Signer and Verifier behind the FastAGI server,
// a lab PKI from internal/testpki served over TLS on loopback, Asterisk
// played by agitest. What the sessions set is then checked with the
// `stirgate verify` command.

const (
	e2eFrom = `"Alice" <sip:+12155550121@pbx.example;user=phone>;tag=a1`
	e2eTo   = `<sip:+12155550131@carrier.example;user=phone>`
)

type lab struct {
	lab  *certs.Lab
	srv  *httptest.Server
	dir  string // trust anchor and TLS CA files for the CLI
	now  time.Time
	cred *certs.SigningCredential
}

func newLab(t testing.TB) *lab {
	t.Helper()
	l := &lab{lab: testpki.Default(t), now: testpki.Now, dir: t.TempDir()}
	paths := map[string][]byte{
		"/sp.pem":        l.lab.ChainPEM(),
		"/expired.pem":   testpki.Expired(t, l.lab).ChainPEM,
		"/untrusted.pem": testpki.UntrustedRoot(t, l.lab).ChainPEM,
	}
	l.srv = testlog.NewTLSServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, ok := paths[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write(body)
	}))
	t.Cleanup(l.srv.Close)
	var err error
	if l.cred, err = l.lab.Signer(); err != nil {
		t.Fatal(err)
	}
	write := func(name string, data []byte) {
		if err := os.WriteFile(filepath.Join(l.dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("root.pem", certs.EncodePEM(l.lab.Root))
	write("tls.pem", certs.EncodePEM(l.srv.Certificate()))
	return l
}

func (l *lab) host() string { return strings.TrimPrefix(l.srv.URL, "https://") }

func (l *lab) signer(t testing.TB, path string) *core.Signer {
	t.Helper()
	// Policy: unknown sources are signed B, as a PBX that authenticates
	// its users but not their numbers would configure it.
	pol, err := policy.New(policy.Options{Default: stir.AttestPartial})
	if err != nil {
		t.Fatal(err)
	}
	s, err := core.NewSigner(core.SignerOptions{
		Credential: l.cred, X5U: l.srv.URL + path, Numbers: tn.NANP(), Policy: pol, Now: func() time.Time { return l.now },
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (l *lab) verifier(t testing.TB) *core.Verifier {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AddCert(l.srv.Certificate())
	v, err := core.NewVerifier(core.VerifierOptions{
		Roots:   l.lab.Roots(),
		Numbers: tn.NANP(),
		// A generous fetch timeout: the default 2 s is a production bound,
		// and a TLS handshake on a loaded test machine can take longer.
		Fetch: x5u.Options[*certs.Credential]{Policy: x5u.Policy{LabHosts: []string{l.host()}}, RootCAs: pool, Timeout: time.Minute},
		Now:   func() time.Time { return l.now },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Close() })
	return v
}

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// stirgateBin is $STIRGATE_BIN (set by make test) or a fresh build.
func stirgateBin(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("STIRGATE_BIN"); p != "" {
		return p
	}
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "stirgate-agi-e2e")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "stirgate")
		out, err := exec.Command("go", "build", "-o", binPath, "../cmd/stirgate").CombinedOutput()
		if err != nil {
			binErr = errorString("go build ./cmd/stirgate: " + err.Error() + "\n" + string(out))
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binPath != "" {
		_ = os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}

type errorString string

func (e errorString) Error() string { return string(e) }

// cliVerify runs `stirgate verify` on the headers and returns its result.
func (l *lab) cliVerify(t *testing.T, identity []string, from, to, date string) *stir.Result {
	t.Helper()
	args := []string{"verify",
		"--trust", filepath.Join(l.dir, "root.pem"), "--x5u-ca", filepath.Join(l.dir, "tls.pem"),
		"--lab-host", l.host(), "--at", strconv.FormatInt(l.now.Unix(), 10),
		"--from", from, "--to", to}
	if date != "" {
		args = append(args, "--date", date)
	}
	for _, id := range identity {
		args = append(args, "--identity", id)
	}
	cmd := exec.Command(stirgateBin(t), args...)
	cmd.Dir = t.TempDir()
	out, err := cmd.Output()
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		t.Fatalf("stirgate verify: %v", err)
	}
	var r stir.Result
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("stirgate verify printed %q: %v", out, err)
	}
	return &r
}

func TestEndToEndSignThenVerify(t *testing.T) {
	l := newLab(t)
	rec := &memRecorder{}
	srv, addr := start(t, Options{Service: Core{Signer: l.signer(t, "/sp.pem"), Verifier: l.verifier(t)}, Recorder: rec})

	// Outbound: the PBX signs before dialing.
	signed := play(t, addr, agitest.Channel{
		Script: "sign", CallerID: "2155550121", Exten: "12155550131", UniqueID: "1768478400.10",
		Args: []string{"attest=A"},
	})
	// attest=A asks above what the policy grants (default B): the policy
	// decides, so the call is signed B.
	checkVars(t, signed, map[string]string{VarResult: Signed, VarError: "", VarAttest: "B"})
	id, date, origid := signed.Set[VarIdentity], signed.Set[VarDate], signed.Set[VarOrigID]
	if !strings.HasSuffix(id, ";info=<"+l.srv.URL+"/sp.pem>;alg=ES256;ppt=shaken") || date == "" || origid == "" {
		t.Fatalf("signed: identity %q date %q origid %q", id, date, origid)
	}

	// What the sign session set, checked by the command-line verifier.
	if r := l.cliVerify(t, []string{id}, e2eFrom, e2eTo, date); r.Result != stir.Pass || r.OrigID != origid {
		t.Fatalf("stirgate verify of the signed call: %+v", r)
	}

	// Inbound at the far end: the same headers through the verify script.
	verified := play(t, addr, agitest.Channel{
		Script: "verify", UniqueID: "1768478400.11",
		Headers: map[string][]string{"Identity": {id}, "From": {e2eFrom}, "To": {e2eTo}, "Date": {date}},
	})
	checkVars(t, verified, map[string]string{
		VarResult: "pass", VarVerstat: string(stir.VerstatPassed), VarSIPCode: "", VarError: "",
		VarAttest: "B", VarOrigID: origid, VarSPC: "1234", VarX5U: l.srv.URL + "/sp.pem",
	})
	waitFor(t, func() bool { return srv.Stats().Recorded == 2 })
	out := rec.all()
	byKind := map[string]int{}
	for _, o := range out {
		byKind[o.Kind]++
		if o.Kind == "verify" && (o.Result != "pass" || o.SPC != "1234" || o.Orig != "12155550121" || o.Dest != "12155550131") {
			t.Errorf("verify outcome = %+v", o)
		}
		if o.Kind == "sign" && (o.Result != Signed || o.OrigID != origid || o.Orig != "12155550121") {
			t.Errorf("sign outcome = %+v", o)
		}
	}
	if byKind["sign"] != 1 || byKind["verify"] != 1 {
		t.Fatalf("outcomes = %+v", out)
	}
}

// TestEndToEndFailureClasses: every class of the conformance table surfaces
// as the right STIR_SIP_CODE and STIR_ERROR, and the command-line verifier
// agrees with the AGI session on the same headers.
func TestEndToEndFailureClasses(t *testing.T) {
	l := newLab(t)
	v := l.verifier(t)
	good := l.signer(t, "/sp.pem")
	sign := func(s *core.Signer, req core.SignRequest) string {
		t.Helper()
		if req.Orig == "" {
			req.Orig = "12155550121"
		}
		if len(req.Dest) == 0 {
			req.Dest = []string{"12155550131"}
		}
		req.Attest, req.Trusted = stir.AttestFull, true // the origin network's own signer
		r, err := s.Sign(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		return r.Identity
	}
	// tamper flips one character in the middle of the signature: still
	// 64 well-formed bytes, no longer a valid signature.
	tamper := func(id string) string {
		h, params, _ := strings.Cut(id, ";")
		i := len(h) - 20
		sub := byte('A')
		if h[i] == 'A' {
			sub = 'B'
		}
		return h[:i] + string(sub) + h[i+1:] + ";" + params
	}
	tests := []struct {
		name     string
		identity []string
		from, to string
		args     []string
		code     string
		errName  string
		result   string
	}{
		{"pass", []string{sign(good, core.SignRequest{})}, e2eFrom, e2eTo, nil, "", "", "pass"},
		// Not required: the call continues, no code; required: 428 for
		// strict rejection (verstat No-TN-Validation, so still "none").
		{"no identity, not required", nil, e2eFrom, e2eTo, nil, "", "no_identity", "none"},
		{"no identity, required", nil, e2eFrom, e2eTo, []string{"require=yes"}, "428", "no_identity", "none"},
		{"malformed header", []string{"not-a-jwt;info=<" + l.srv.URL + "/sp.pem>"}, e2eFrom, e2eTo, nil, "438", "header_malformed", "fail"},
		{"bad signature", []string{tamper(sign(good, core.SignRequest{}))}, e2eFrom, e2eTo, nil, "438", "signature_invalid", "fail"},
		{"orig mismatch", []string{sign(good, core.SignRequest{Orig: "12155550199"})}, e2eFrom, e2eTo, nil, "438", "orig_mismatch", "fail"},
		{"stale iat", []string{sign(good, core.SignRequest{At: l.now.Add(-5 * time.Minute)})}, e2eFrom, e2eTo, nil, "403", "stale_iat", "fail"},
		{"x5u not found", []string{sign(l.signer(t, "/missing.pem"), core.SignRequest{})}, e2eFrom, e2eTo, nil, "436", "x5u_fetch_failed", "fail"},
		{"expired certificate", []string{sign(l.signer(t, "/expired.pem"), core.SignRequest{})}, e2eFrom, e2eTo, nil, "437", "cert_expired", "fail"},
		{"untrusted chain", []string{sign(l.signer(t, "/untrusted.pem"), core.SignRequest{})}, e2eFrom, e2eTo, nil, "437", "cert_untrusted", "fail"},
	}
	rec := &memRecorder{}
	srv, addr := start(t, Options{Service: Core{Verifier: v}, Recorder: rec})
	var played int64
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hdrs := map[string][]string{"From": {tt.from}, "To": {tt.to}}
			if len(tt.identity) > 0 {
				hdrs["Identity"] = tt.identity
			}
			tr := play(t, addr, agitest.Channel{Script: "verify", Headers: hdrs, Args: tt.args})
			checkVars(t, tr, map[string]string{VarResult: tt.result, VarSIPCode: tt.code, VarError: tt.errName})
			// A failure records what the token said: the issue's "top
			// failing certificate hosts" and "origins" need x5u and orig.
			played++
			waitFor(t, func() bool { return srv.Stats().Recorded == played })
			all := rec.all()
			o := all[len(all)-1]
			if o.ErrorName != tt.errName {
				t.Fatalf("recorded %s, want %s", o.ErrorName, tt.errName)
			}
			if len(tt.identity) > 0 && tt.errName != "header_malformed" {
				if o.X5U == "" || o.Orig == "" || o.Dest == "" || o.Attest != "A" || o.OrigID == "" {
					t.Errorf("failure recorded without what was read: %+v", o)
				}
				if fetched := tt.errName == "" || tt.errName == "signature_invalid"; fetched && o.SPC == "" {
					t.Errorf("certificate obtained, SPC not recorded: %+v", o)
				}
			}
			if tt.args != nil {
				return // the CLI has its own flag for require; the row above covers it
			}
			r := l.cliVerify(t, tt.identity, tt.from, tt.to, "")
			if string(r.Result) != tr.Set[VarResult] || r.Error != tr.Set[VarError] || strconv.Itoa(r.SIPCode) != orZero(tr.Set[VarSIPCode]) {
				t.Errorf("stirgate verify says %s/%d/%s, the AGI session %s/%s/%s",
					r.Result, r.SIPCode, r.Error, tr.Set[VarResult], tr.Set[VarSIPCode], tr.Set[VarError])
			}
		})
	}
}

func orZero(s string) string {
	if s == "" {
		return "0"
	}
	return s
}

// BenchmarkAGISign and BenchmarkAGIVerify measure whole FastAGI sessions
// per second on loopback with the real core: connect, environment, every
// command of the script, close. Verification runs with a warm x5u cache.
func BenchmarkAGISign(b *testing.B) {
	benchSessions(b, "sign")
}

func BenchmarkAGIVerify(b *testing.B) {
	benchSessions(b, "verify")
}

func benchSessions(b *testing.B, script string) {
	l := newLab(b)
	signer := l.signer(b, "/sp.pem")
	verifier := l.verifier(b)
	srv := NewServer(Options{Service: Core{Signer: signer, Verifier: verifier}, Recorder: &memRecorder{}})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	addr := ln.Addr().String()
	go func() { _ = srv.Serve(context.Background(), ln) }()
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}()
	res, err := signer.Sign(context.Background(), core.SignRequest{Orig: "12155550121", Dest: []string{"12155550131"}, Attest: "A", Trusted: true})
	if err != nil {
		b.Fatal(err)
	}
	ch := agitest.Channel{Script: "sign", CallerID: "12155550121", Exten: "12155550131", Args: []string{"attest=A"}}
	if script == "verify" {
		ch = agitest.Channel{Script: "verify", Headers: map[string][]string{
			"Identity": {res.Identity}, "From": {e2eFrom}, "To": {e2eTo}, "Date": {res.Date}}}
	}
	want := map[string]string{"sign": Signed, "verify": "pass"}[script]
	// Warm the x5u cache and check the path once.
	if tr, err := ch.Run(context.Background(), addr); err != nil || tr.Set[VarResult] != want {
		b.Fatalf("warm-up: %v %v", err, tr)
	}
	b.ReportAllocs()
	b.SetParallelism(max(1, 16/runtime.GOMAXPROCS(0)))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			tr, err := ch.Run(context.Background(), addr)
			if err != nil || tr.Set[VarResult] != want {
				b.Errorf("session: %v %v", err, tr)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "sessions/s")
}

// TestEndToEndDivertedCall: a call signed at origin, diverted once by a
// forwarding network (RFC 8946), reaches the PBX at the new number; the
// verify script judges the chain and reports the diversion.
func TestEndToEndDivertedCall(t *testing.T) {
	l := newLab(t)
	signer := l.signer(t, "/sp.pem")
	rec := &memRecorder{}
	_, addr := start(t, Options{Service: Core{Signer: signer, Verifier: l.verifier(t)}, Recorder: rec})
	ctx := context.Background()
	shaken, err := signer.Sign(ctx, core.SignRequest{From: e2eFrom, To: e2eTo, Attest: "A", Trusted: true})
	if err != nil {
		t.Fatal(err)
	}
	div, err := signer.SignDiv(ctx, core.DivRequest{Identity: []string{shaken.Identity}, Dest: []string{"12155550141"}})
	if err != nil {
		t.Fatal(err)
	}
	hdrs := map[string][]string{"Identity": {div.Identity, shaken.Identity}, "From": {e2eFrom}, "To": {e2eTo}, "Date": {shaken.Date}}
	verified := play(t, addr, agitest.Channel{Script: "verify", UniqueID: "1768478400.21", Headers: hdrs, Args: []string{"target=12155550141"}})
	checkVars(t, verified, map[string]string{VarResult: "pass", VarDivCount: "1", VarDiv: "12155550131", VarAttest: "A"})

	// Reaching a number nobody diverted to: fail, and no diversion reported.
	wrong := play(t, addr, agitest.Channel{Script: "verify", UniqueID: "1768478400.22", Headers: hdrs, Args: []string{"target=12155550199"}})
	checkVars(t, wrong, map[string]string{VarResult: "fail", VarError: "dest_mismatch", VarSIPCode: "438", VarDivCount: "0", VarDiv: ""})

	// The records: the diversion on the pass only.
	waitFor(t, func() bool { return len(rec.all()) == 2 })
	for _, o := range rec.all() {
		if want := map[string]string{"1768478400.21": "12155550131", "1768478400.22": ""}[o.UniqueID]; o.Div != want {
			t.Errorf("%s recorded div %q, want %q", o.UniqueID, o.Div, want)
		}
	}
}

// TestEndToEndRCDCall: a branded call (RFC 9795) verified by the verify
// script sets the STIR_RCD_* variables; a failed one leaves them empty.
func TestEndToEndRCDCall(t *testing.T) {
	l := newLab(t)
	signer := l.signer(t, "/sp.pem")
	rec := &memRecorder{}
	_, addr := start(t, Options{Service: Core{Signer: signer, Verifier: l.verifier(t)}, Recorder: rec})
	signed, err := signer.Sign(context.Background(), core.SignRequest{From: e2eFrom, To: e2eTo, Attest: "A", Trusted: true,
		RCD: &core.RCD{Nam: "ACME Corp", Jcd: `["vcard",[["fn",{},"text","ACME Corp"]]]`}, Crn: "Your order"})
	if err != nil {
		t.Fatal(err)
	}
	hdrs := map[string][]string{"Identity": {signed.Identity}, "From": {e2eFrom}, "To": {e2eTo}, "Date": {signed.Date}}
	got := play(t, addr, agitest.Channel{Script: "verify", UniqueID: "1768478400.31", Headers: hdrs})
	checkVars(t, got, map[string]string{VarResult: "pass", VarRCDNam: "ACME Corp", VarRCDCrn: "Your order", VarRCDIcn: ""})
	if ci := got.Set[VarRCDCallInfo]; !strings.HasSuffix(ci, `;purpose=jcard;call-reason="Your order";verified`) {
		t.Fatalf("%s = %q", VarRCDCallInfo, ci)
	}
	hdrs["To"] = []string{"<sip:+12155550199@carrier.example>"}
	bad := play(t, addr, agitest.Channel{Script: "verify", UniqueID: "1768478400.32", Headers: hdrs})
	checkVars(t, bad, map[string]string{VarResult: "fail", VarRCDNam: "", VarRCDCrn: "", VarRCDCallInfo: ""})

	// The records: the rich call data on the pass only.
	waitFor(t, func() bool { return len(rec.all()) == 2 })
	for _, o := range rec.all() {
		got := o.RCDNam + "/" + o.RCDCrn
		if want := map[string]string{"1768478400.31": "ACME Corp/Your order", "1768478400.32": "/"}[o.UniqueID]; got != want {
			t.Errorf("%s recorded rcd %q, want %q", o.UniqueID, got, want)
		}
	}
}

// TestEndToEndSignDiv: the PBX forwards a received call and signs the
// diversion with sign?div=; the far end verifies the chain.
func TestEndToEndSignDiv(t *testing.T) {
	l := newLab(t)
	signer := l.signer(t, "/sp.pem")
	_, addr := start(t, Options{Service: Core{Signer: signer, Verifier: l.verifier(t)}, Recorder: &memRecorder{}})
	shaken, err := signer.Sign(context.Background(), core.SignRequest{From: e2eFrom, To: e2eTo, Attest: "A", Trusted: true})
	if err != nil {
		t.Fatal(err)
	}
	fwd := play(t, addr, agitest.Channel{Script: "sign", CallerID: "12155550121", Exten: "12155550141", UniqueID: "1768478400.41",
		Headers: map[string][]string{"Identity": {shaken.Identity}}, Args: []string{"div=", "hi=1.2"}})
	div := fwd.Set[VarIdentity]
	checkVars(t, fwd, map[string]string{VarResult: Signed, VarError: ""})
	if !strings.HasSuffix(div, ";ppt=div") {
		t.Fatalf("div identity %q", div)
	}
	got := play(t, addr, agitest.Channel{Script: "verify", UniqueID: "1768478400.42", Args: []string{"target=12155550141"},
		Headers: map[string][]string{"Identity": {shaken.Identity, div}, "From": {e2eFrom}, "To": {e2eTo}, "Date": {shaken.Date}}})
	checkVars(t, got, map[string]string{VarResult: "pass", VarDivCount: "1", VarDiv: "12155550131"})
	// Nothing received to divert: not signed.
	none := play(t, addr, agitest.Channel{Script: "sign", CallerID: "12155550121", Exten: "12155550141", UniqueID: "1768478400.43", Args: []string{"div="}})
	checkVars(t, none, map[string]string{VarResult: Unsigned, VarError: stir.ErrSignInput.Name, VarIdentity: ""})
}
