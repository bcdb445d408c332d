package httpapi

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// The request bodies of the signing and verification APIs are network
// input. Whatever arrives, the answer is one of the documented statuses
// with a JSON body naming a stable error, never a panic or a 5xx.

func fuzzAPI(f *testing.F, path string, seeds []string) {
	fx := newFixture(f, nil)
	for _, s := range seeds {
		f.Add(s)
	}
	allowed := map[int]bool{200: true, 400: true, 403: true, 413: true}
	f.Fuzz(func(t *testing.T, body string) {
		req := httptest.NewRequest("POST", path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		fx.api.ServeHTTP(w, req)
		if !allowed[w.Code] {
			t.Fatalf("status %d for %q: %s", w.Code, body, w.Body)
		}
		var b struct {
			Error string `json:"error"`
		}
		if err := json.Unmarshal(w.Body.Bytes(), &b); err != nil {
			t.Fatalf("answer is not JSON: %v: %s", err, w.Body)
		}
		if w.Code != http.StatusOK && b.Error == "" {
			t.Fatalf("status %d without an error name: %s", w.Code, w.Body)
		}
	})
}

func FuzzSigningBody(f *testing.F) {
	fuzzAPI(f, "/stir/v1/signing", []string{
		signOK,
		`{"signingRequest":{"dest":{"tn":["2155550131"]},"orig":{"tn":"+1 215 555 0121"}}}`,
		`{"signingRequest":{"attest":"D","dest":{"tn":["1"]},"orig":{"tn":"1"},"iat":-1}}`,
		`{"signingRequest":{"dest":{"tn":[]},"orig":null}}`,
		`{"signingRequest":`, `[]`, `null`, `{}`, "",
	})
}

func FuzzVerificationBody(f *testing.F) {
	fuzzAPI(f, "/stir/v1/verification", []string{
		`{"verificationRequest":{"from":{"tn":"12155550121"},"to":{"tn":["12155550131"]},"identity":"a.b.c;info=<https://certs.example.net/sp.pem>","time":1772366400}}`,
		`{"verificationRequest":{"from":{"tn":"1"},"to":{"tn":"1"},"identity":"x"}}`,
		`{"verificationRequest":{"from":{"tn":"1"},"to":{"tn":5},"identity":"x","time":0}}`,
		`{"verificationRequest":null}`, `{`, "",
	})
}
