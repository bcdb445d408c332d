package httpapi

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"github.com/stirgate/stirgate/core"
	"github.com/stirgate/stirgate/core/policy"
	"github.com/stirgate/stirgate/core/tn"
)

func authFixture(t *testing.T, allow ...netip.Prefix) *fixture {
	return newFixture(t, func(o *Options) {
		o.Mount = map[string]http.Handler{"/outcomes": okHandler("outcomes")}
		o.Auth = &Auth{Allow: allow, Tokens: map[string]*Client{
			HashToken("tok-sign"): {Name: "pbx1", Scopes: []string{ScopeSign}},
			HashToken("tok-read"): {Name: "noc", Scopes: []string{ScopeRead}},
		}}
	})
}

func okHandler(s string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte(s)) })
}

func bareError(t *testing.T, body string) string {
	t.Helper()
	var b struct{ Error string }
	if err := json.Unmarshal([]byte(body), &b); err != nil {
		t.Fatalf("not JSON: %s", body)
	}
	return b.Error
}

// TestAuth: with tokens configured every API route but /certs/, /healthz
// and /readyz wants a bearer token holding the route's scope.
func TestAuth(t *testing.T) {
	f := authFixture(t)
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte("noc:tok-read"))
	for _, tc := range []struct {
		name, method, path, auth string
		status                   int
		err                      string
	}{
		{"sign without token", "POST", "/stir/v1/signing", "", 401, "unauthorized"},
		{"sign with unknown token", "POST", "/stir/v1/signing", "Bearer nope", 401, "unauthorized"},
		{"sign with read token", "POST", "/stir/v1/signing", "Bearer tok-read", 403, "scope_missing"},
		{"sign with sign token", "POST", "/stir/v1/signing", "Bearer tok-sign", 200, ""},
		{"verify with sign token", "POST", "/stir/v1/verification", "Bearer tok-sign", 403, "scope_missing"},
		{"metrics without token", "GET", "/metrics", "", 401, "unauthorized"},
		{"metrics with basic read", "GET", "/metrics", basic, 200, ""},
		{"outcomes without token", "GET", "/outcomes", "", 401, "unauthorized"},
		{"outcomes with sign token", "GET", "/outcomes", "Bearer tok-sign", 403, "scope_missing"},
		{"outcomes with read token", "GET", "/outcomes/x", "Bearer tok-read", 200, ""},
		{"certs open", "GET", "/certs/sp.pem", "", 200, ""},
		{"healthz open", "GET", "/healthz", "", 200, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var hdr []string
			if tc.auth != "" {
				hdr = []string{"Authorization", tc.auth}
			}
			r := f.do(t, tc.method, tc.path, "application/json", signOK, hdr...)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.body)
			}
			if tc.err != "" {
				if got := bareError(t, r.body); got != tc.err {
					t.Fatalf("error %q, want %q", got, tc.err)
				}
			}
			if tc.status == 401 && r.header.Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
		})
	}
}

func TestAuthAllowList(t *testing.T) {
	f := authFixture(t, netip.MustParsePrefix("10.0.0.0/8"))
	r := f.do(t, "POST", "/stir/v1/signing", "application/json", signOK, "Authorization", "Bearer tok-sign")
	if r.status != 403 || bareError(t, r.body) != "source_not_allowed" {
		t.Fatalf("%d %s", r.status, r.body)
	}
}

// TestPublicServesOnlyCertificates: the public listener's handler.
func TestPublicServesOnlyCertificates(t *testing.T) {
	f := newFixture(t, func(o *Options) {
		o.Mount = map[string]http.Handler{"/outcomes": okHandler("x"), "/dashboard": okHandler("x")}
	})
	pub := f.api.Public()
	for path, want := range map[string]int{
		"/certs/sp.pem": 200, "/healthz": 200,
		"/stir/v1/signing": 404, "/stir/v1/verification": 404, "/outcomes": 404, "/dashboard": 404, "/metrics": 404, "/readyz": 404, "/certs/other.pem": 404,
	} {
		w := httptest.NewRecorder()
		pub.ServeHTTP(w, httptest.NewRequest("GET", path, nil))
		if w.Code != want {
			t.Errorf("%s: %d, want %d", path, w.Code, want)
		}
	}
	w := httptest.NewRecorder()
	pub.ServeHTTP(w, httptest.NewRequest("POST", "/stir/v1/signing", strings.NewReader(signOK)))
	if w.Code != 404 {
		t.Errorf("POST signing on the public handler: %d", w.Code)
	}
}

// TestSigningPolicyRefusal: "attest":"A" from a source no customer owns,
// with no default attestation, is refused with a policy exception; an A
// request from a customer granted B is signed B.
func TestSigningPolicyRefusal(t *testing.T) {
	f := newFixture(t, func(o *Options) {
		pol, err := policy.New(policy.Options{Customers: []policy.Customer{{Name: "pbx", Sources: []string{"192.0.2.1"}}}})
		if err != nil {
			t.Fatal(err)
		}
		cred := o.Signer.Credential()
		o.Signer, err = core.NewSigner(core.SignerOptions{Credential: cred, X5U: testX5U, Numbers: tn.NANP(), Policy: pol, Now: clock})
		if err != nil {
			t.Fatal(err)
		}
	})
	// 192.0.2.1 is the customer: granted B (the number is not theirs).
	r := f.do(t, "POST", "/stir/v1/signing", "application/json", signOK)
	var out SigningResponse
	if r.status != 200 || json.Unmarshal([]byte(r.body), &out) != nil || out.SigningResponse.Attest != "B" {
		t.Fatalf("customer asking A: %d %s", r.status, r.body)
	}
	// Any other source: refused.
	req := httptest.NewRequest("POST", "/stir/v1/signing", strings.NewReader(signOK))
	req.RemoteAddr = "203.0.113.9:4000"
	req.Header.Set("Content-Type", "application/json")
	w := httptest.NewRecorder()
	f.api.ServeHTTP(w, req)
	var b struct {
		Error        string
		RequestError struct {
			PolicyException *struct {
				MessageID string `json:"messageId"`
			} `json:"policyException"`
		} `json:"requestError"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &b); err != nil || w.Code != 403 || b.Error != "sign_not_allowed" ||
		b.RequestError.PolicyException == nil || b.RequestError.PolicyException.MessageID != "POL4050" {
		t.Fatalf("unknown source asking A: %d %s", w.Code, w.Body)
	}
}
