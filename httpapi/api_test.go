package httpapi

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/stirgate/stirgate/core"
	"github.com/stirgate/stirgate/core/certs"
	"github.com/stirgate/stirgate/core/policy"
	"github.com/stirgate/stirgate/core/stir"
	"github.com/stirgate/stirgate/core/tn"
	"github.com/stirgate/stirgate/core/x5u"
)

const testX5U = "https://certs.example.net/sp.pem"

var fixedNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func clock() time.Time { return fixedNow }

type fixture struct {
	lab      *certs.Lab
	signer   *core.Signer
	verifier *core.Verifier
	metrics  *Metrics
	api      *API
}

func newFixture(t testing.TB, mod func(*Options)) *fixture {
	t.Helper()
	lab, err := certs.NewLab(certs.LabOptions{SPC: "1234", Now: fixedNow})
	if err != nil {
		t.Fatal(err)
	}
	cred, err := lab.Signer()
	if err != nil {
		t.Fatal(err)
	}
	// httptest requests come from 192.0.2.1: the customer owns the test
	// caller's number, so its calls earn A.
	pol, err := policy.New(policy.Options{Default: "C", Customers: []policy.Customer{
		{Name: "pbx", Numbers: []string{"12155550121"}, Sources: []string{"192.0.2.1"}}}})
	if err != nil {
		t.Fatal(err)
	}
	s, err := core.NewSigner(core.SignerOptions{Credential: cred, X5U: testX5U, Numbers: tn.NANP(), Policy: pol, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	m := NewMetrics(clock)
	v, err := core.NewVerifier(core.VerifierOptions{
		Roots:   lab.Roots(),
		Fetch:   x5u.Options[*certs.Credential]{Offline: true, PreloadBytes: map[string][]byte{testX5U: lab.ChainPEM()}, Observe: m.ObserveFetch},
		Numbers: tn.NANP(),
		Now:     clock,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Close() })
	m.SetSource(Source{Signer: s, Verifier: v})
	o := Options{Signer: s, Verifier: v, Metrics: m, MaxBody: 2048}
	if mod != nil {
		mod(&o)
	}
	a, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{lab: lab, signer: s, verifier: v, metrics: m, api: a}
}

type reply struct {
	status int
	header http.Header
	body   string
}

func (f *fixture) do(t *testing.T, method, path, ctype, body string, hdr ...string) reply {
	t.Helper()
	var rd io.Reader = strings.NewReader(body)
	if strings.HasPrefix(ctype, "chunked:") {
		// No Content-Length: the size limit must hold while reading.
		ctype = strings.TrimPrefix(ctype, "chunked:")
		rd = io.MultiReader(strings.NewReader(body))
	}
	r := httptest.NewRequest(method, path, rd)
	if _, ok := rd.(*strings.Reader); !ok {
		r.ContentLength = -1
	}
	if ctype != "" {
		r.Header.Set("Content-Type", ctype)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	f.api.ServeHTTP(w, r)
	return reply{w.Code, w.Header(), w.Body.String()}
}

func errorName(t *testing.T, body string) string {
	t.Helper()
	var b struct {
		Error        string `json:"error"`
		RequestError struct {
			ServiceException *struct{ MessageID string } `json:"serviceException"`
			PolicyException  *struct{ MessageID string } `json:"policyException"`
		} `json:"requestError"`
	}
	if err := json.Unmarshal([]byte(body), &b); err != nil {
		t.Fatalf("error body is not JSON: %v: %s", err, body)
	}
	if b.RequestError.ServiceException == nil && b.RequestError.PolicyException == nil {
		t.Fatalf("error body without requestError exception: %s", body)
	}
	return b.Error
}

const signOK = `{"signingRequest":{"attest":"A","dest":{"tn":["12155550131"]},"iat":1772366400,"orig":{"tn":"12155550121"},"origid":"123e4567-e89b-12d3-a456-426655440000"}}`

func TestSigning(t *testing.T) {
	f := newFixture(t, nil)
	big := `{"signingRequest":{"orig":{"tn":"12155550121"},"dest":{"tn":["` + strings.Repeat("1", 3000) + `"]}}}`
	tests := []struct {
		name   string
		method string
		ctype  string
		body   string
		status int
		err    string // stable error name; "" = success
		attest stir.Attestation
	}{
		{name: "ok", ctype: "application/json", body: signOK, status: 200, attest: "A"},
		{name: "ok with charset", ctype: "application/json; charset=utf-8", body: signOK, status: 200, attest: "A"},
		{name: "policy attestation", ctype: "application/json", body: `{"signingRequest":{"dest":{"tn":["2155550131"]},"orig":{"tn":"+1 215 555 0121"}}}`, status: 200, attest: "A"},
		{name: "wrong content type", ctype: "text/plain", body: signOK, status: 415, err: "content_type_unsupported"},
		{name: "no content type", body: signOK, status: 415, err: "content_type_unsupported"},
		{name: "malformed JSON", ctype: "application/json", body: `{"signingRequest":{"orig":`, status: 400, err: "body_malformed"},
		{name: "JSON wrong type", ctype: "application/json", body: `{"signingRequest":{"orig":{"tn":12}}}`, status: 400, err: "body_malformed"},
		{name: "trailing data", ctype: "application/json", body: signOK + `{}`, status: 400, err: "body_malformed"},
		{name: "empty body", ctype: "application/json", body: "", status: 400, err: "body_missing"},
		{name: "oversized", ctype: "application/json", body: big, status: 413, err: "body_too_large"},
		{name: "oversized chunked", ctype: "chunked:application/json", body: big, status: 413, err: "body_too_large"},
		{name: "no signingRequest", ctype: "application/json", body: `{}`, status: 400, err: "parameter_missing"},
		{name: "no orig", ctype: "application/json", body: `{"signingRequest":{"dest":{"tn":["12155550131"]}}}`, status: 400, err: "parameter_missing"},
		{name: "no dest", ctype: "application/json", body: `{"signingRequest":{"orig":{"tn":"12155550121"},"dest":{"tn":[]}}}`, status: 400, err: "parameter_missing"},
		{name: "bad attest", ctype: "application/json", body: `{"signingRequest":{"attest":"D","dest":{"tn":["12155550131"]},"orig":{"tn":"12155550121"}}}`, status: 400, err: "parameter_invalid"},
		{name: "bad number", ctype: "application/json", body: `{"signingRequest":{"dest":{"tn":["12155550131"]},"orig":{"tn":"alice"}}}`, status: 400, err: stir.ErrSignInput.Name},
		{name: "stale iat", ctype: "application/json", body: `{"signingRequest":{"attest":"A","dest":{"tn":["12155550131"]},"iat":1772360000,"orig":{"tn":"12155550121"}}}`, status: 400, err: stir.ErrSignDate.Name},
		{name: "GET", method: "GET", status: 405, err: "method_not_allowed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := tc.method
			if m == "" {
				m = "POST"
			}
			r := f.do(t, m, "/stir/v1/signing", tc.ctype, tc.body, "X-RequestID", "req-"+tc.name)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.body)
			}
			if got := r.header.Get("X-RequestID"); got != "req-"+tc.name {
				t.Errorf("X-RequestID %q not echoed", got)
			}
			if ct := r.header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			if tc.err != "" {
				if got := errorName(t, r.body); got != tc.err {
					t.Fatalf("error %q, want %q: %s", got, tc.err, r.body)
				}
				return
			}
			var out SigningResponse
			if err := json.Unmarshal([]byte(r.body), &out); err != nil {
				t.Fatal(err)
			}
			res := f.verifier.Verify(context.Background(), core.VerifyRequest{
				Identity: []string{out.SigningResponse.Identity}, From: "<tel:+12155550121>", To: "<tel:+12155550131>"})
			if res.Result != stir.Pass || res.Attest != tc.attest {
				t.Fatalf("identity does not verify as %s: %+v", tc.attest, res)
			}
		})
	}
	if got := testutil.ToFloat64(f.metrics.requests.WithLabelValues("http", "sign", "signed", "")); got != 3 {
		t.Errorf("signed counter %v, want 3", got)
	}
	if got := testutil.ToFloat64(f.metrics.dropped.WithLabelValues("http", "content_type_unsupported")); got != 2 {
		t.Errorf("dropped content type %v, want 2", got)
	}
}

func TestVerification(t *testing.T) {
	f := newFixture(t, nil)
	s, err := f.signer.Sign(context.Background(), core.SignRequest{Orig: "12155550121", Dest: []string{"12155550131"}, Attest: "B", Trusted: true, OrigID: "123e4567-e89b-12d3-a456-426655440000"})
	if err != nil {
		t.Fatal(err)
	}
	body := func(from, to, ident string, tm int64) string {
		b, _ := json.Marshal(map[string]any{"verificationRequest": map[string]any{
			"from": map[string]any{"tn": from}, "to": map[string]any{"tn": []string{to}}, "identity": ident, "time": tm}})
		return string(b)
	}
	tests := []struct {
		name    string
		body    string
		status  int
		err     string
		verstat string
		code    int
	}{
		{name: "pass", body: body("12155550121", "12155550131", s.Identity, fixedNow.Unix()), status: 200, verstat: "TN-Validation-Passed"},
		{name: "pass, to as string", body: `{"verificationRequest":{"from":{"tn":"12155550121"},"to":{"tn":"12155550131"},"identity":"` + s.Identity + `"}}`, status: 200, verstat: "TN-Validation-Passed"},
		{name: "dest mismatch", body: body("12155550121", "12155550199", s.Identity, fixedNow.Unix()), status: 200, verstat: "TN-Validation-Failed", code: 438, err: stir.ErrDestMismatch.Name},
		{name: "stale time", body: body("12155550121", "12155550131", s.Identity, fixedNow.Unix()-3600), status: 200, verstat: "TN-Validation-Failed", code: 403, err: stir.ErrStaleDate.Name},
		{name: "garbage identity", body: body("12155550121", "12155550131", "a.b.c;info=<https://x.example/a.pem>", fixedNow.Unix()), status: 200, verstat: "TN-Validation-Failed", code: 438},
		{name: "no identity", body: body("12155550121", "12155550131", "", fixedNow.Unix()), status: 400, err: "parameter_missing"},
		{name: "no from", body: `{"verificationRequest":{"to":{"tn":["1"]},"identity":"x"}}`, status: 400, err: "parameter_missing"},
		{name: "to of wrong type", body: `{"verificationRequest":{"from":{"tn":"1"},"to":{"tn":5},"identity":"x"}}`, status: 400, err: "body_malformed"},
		{name: "malformed", body: `{"verificationRequest":`, status: 400, err: "body_malformed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := f.do(t, "POST", "/stir/v1/verification", "application/json", tc.body)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.body)
			}
			if r.header.Get("X-RequestID") == "" {
				t.Error("no X-RequestID generated")
			}
			if tc.status != 200 {
				if got := errorName(t, r.body); got != tc.err {
					t.Fatalf("error %q, want %q", got, tc.err)
				}
				return
			}
			var out VerificationResponse
			if err := json.Unmarshal([]byte(r.body), &out); err != nil {
				t.Fatal(err)
			}
			v := out.VerificationResponse
			if v.Verstat != tc.verstat || v.ReasonCode != tc.code {
				t.Fatalf("got %+v, want verstat %s code %d", v, tc.verstat, tc.code)
			}
			if tc.err != "" && v.Error != tc.err {
				t.Errorf("error %q, want %q", v.Error, tc.err)
			}
			if tc.code == 0 && (v.Attest != "B" || v.OrigID == "" || v.Error != "") {
				t.Errorf("pass without attest/origid: %+v", v)
			}
			if tc.code != 0 && v.ReasonText == "" {
				t.Errorf("failure without reasontext: %+v", v)
			}
		})
	}
	if got := testutil.ToFloat64(f.metrics.requests.WithLabelValues("http", "verify", "pass", "")); got != 2 {
		t.Errorf("pass counter %v, want 2", got)
	}
}

func TestCerts(t *testing.T) {
	f := newFixture(t, nil)
	r := f.do(t, "GET", "/certs/sp.pem", "", "")
	if r.status != 200 || r.header.Get("Content-Type") != "application/pem-certificate-chain" {
		t.Fatalf("status %d type %q", r.status, r.header.Get("Content-Type"))
	}
	if cc := r.header.Get("Cache-Control"); cc != "public, max-age=86400" {
		t.Errorf("Cache-Control %q", cc)
	}
	var chain []*x509.Certificate
	rest := []byte(r.body)
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		chain = append(chain, c)
	}
	if len(chain) != 2 || !chain[0].Equal(f.lab.Leaf) || !chain[1].Equal(f.lab.CA) {
		t.Fatalf("chain is not leaf then intermediate (%d certs)", len(chain))
	}
	etag := r.header.Get("ETag")
	if etag == "" {
		t.Fatal("no ETag")
	}
	for _, inm := range []string{etag, `"other", ` + etag, "W/" + etag, "*"} {
		if r := f.do(t, "GET", "/certs/sp.pem", "", "", "If-None-Match", inm); r.status != 304 || r.body != "" {
			t.Errorf("If-None-Match %s: status %d", inm, r.status)
		}
	}
	if r := f.do(t, "GET", "/certs/sp.pem", "", "", "If-None-Match", `"other"`); r.status != 200 {
		t.Errorf("stale ETag: status %d", r.status)
	}
	if r := f.do(t, "HEAD", "/certs/sp.pem", "", ""); r.status != 200 || r.body != "" || r.header.Get("Content-Length") == "" {
		t.Errorf("HEAD: %d %q", r.status, r.body)
	}
	if r := f.do(t, "GET", "/certs/other.pem", "", ""); r.status != 404 || errorName(t, r.body) != "not_found" {
		t.Errorf("unknown cert: %d", r.status)
	}
	g := newFixture(t, func(o *Options) { o.CertName, o.CertMaxAge = "shaken", 48*time.Hour })
	if r := g.do(t, "GET", "/certs/shaken.pem", "", ""); r.status != 200 || r.header.Get("Cache-Control") != "public, max-age="+strconv.Itoa(48*3600) {
		t.Errorf("named cert: %d %q", r.status, r.header.Get("Cache-Control"))
	}
}

func TestHealthMetricsMount(t *testing.T) {
	mounted := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "outcomes:"+r.URL.Path) })
	f := newFixture(t, func(o *Options) { o.Mount = map[string]http.Handler{"/outcomes": mounted, "dashboard": mounted} })
	if r := f.do(t, "GET", "/healthz", "", ""); r.status != 200 {
		t.Errorf("healthz %d", r.status)
	}
	if r := f.do(t, "GET", "/readyz", "", ""); r.status != 200 {
		t.Errorf("readyz %d", r.status)
	}
	for _, p := range []string{"/outcomes", "/outcomes/x", "/dashboard"} {
		if r := f.do(t, "GET", p, "", ""); r.status != 200 || r.body != "outcomes:"+p {
			t.Errorf("%s: %d %q", p, r.status, r.body)
		}
	}
	if r := f.do(t, "GET", "/nothing", "", ""); r.status != 404 {
		t.Errorf("unknown path %d", r.status)
	}
	f.do(t, "POST", "/stir/v1/signing", "application/json", signOK)
	s, _ := f.signer.Sign(context.Background(), core.SignRequest{Orig: "12155550121", Dest: []string{"12155550131"}, Attest: "A"})
	// A preloaded chain is validated on first use (a miss), then served
	// from memory (a hit).
	for i := 0; i < 2; i++ {
		f.verifier.Verify(context.Background(), core.VerifyRequest{Identity: []string{s.Identity}, From: "<tel:+12155550121>", To: "<tel:+12155550131>"})
	}
	r := f.do(t, "GET", "/metrics", "", "")
	if r.status != 200 {
		t.Fatalf("metrics %d", r.status)
	}
	for _, want := range []string{
		`stirgate_requests_total{error="",op="sign",result="signed",surface="http"} 1`,
		`stirgate_sign_duration_seconds_count{surface="http"} 1`,
		`stirgate_x5u_cache_total{event="hit"} 1`,
		`stirgate_x5u_cache_total{event="miss"} 1`,
		`stirgate_x5u_cache_entries 1`,
		`stirgate_signing_cert_not_after_timestamp_seconds{spc="1234"`,
	} {
		if !strings.Contains(r.body, want) {
			t.Errorf("metrics lack %s\n%s", want, grep(r.body, "stirgate_x5u_cache"))
		}
	}
	if n, err := testutil.GatherAndCount(f.metrics.Registry(), "stirgate_signing_cert_not_after_timestamp_seconds"); err != nil || n != 2 {
		t.Errorf("expiry series %d (%v), want one per chain certificate", n, err)
	}
	problems, err := testutil.GatherAndLint(f.metrics.Registry())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}

	notReady := newFixture(t, func(o *Options) { o.Ready = func() error { return errors.New("draining") } })
	if r := notReady.do(t, "GET", "/readyz", "", ""); r.status != 503 || !strings.Contains(r.body, "draining") {
		t.Errorf("readyz when not ready: %d %q", r.status, r.body)
	}
}

func TestSwitch(t *testing.T) {
	sw := NewSwitch(nil)
	w := httptest.NewRecorder()
	sw.ServeHTTP(w, httptest.NewRequest("GET", "/", nil))
	if w.Code != 503 {
		t.Fatalf("empty switch %d", w.Code)
	}
	sw.Store(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) }))
	w = httptest.NewRecorder()
	sw.ServeHTTP(w, httptest.NewRequest("GET", "/", nil))
	if w.Code != 204 {
		t.Fatalf("switched %d", w.Code)
	}
}

func grep(s, sub string) string {
	var out []string
	for _, ln := range strings.Split(s, "\n") {
		if strings.Contains(ln, sub) {
			out = append(out, ln)
		}
	}
	return strings.Join(out, "\n")
}
