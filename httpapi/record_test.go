package httpapi

import (
	"context"
	"encoding/json"
	"net/http"
	"path/filepath"
	"testing"

	"github.com/stirgate/stirgate/core"
	"github.com/stirgate/stirgate/outcome"
)

// TestRecord: every completed signing and verification is one row of the
// outcome store, with the client authentication named (through the
// context, or the Client hook) and the peer address.
func TestRecord(t *testing.T) {
	st, err := outcome.Open(context.Background(), outcome.Options{Path: filepath.Join(t.TempDir(), "o.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	f := newFixture(t, func(o *Options) { o.Recorder, o.System = st, "api1" })
	// As an authentication middleware would: the client rides the context.
	auth := func(client string, h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h.ServeHTTP(w, r.WithContext(WithClient(r.Context(), client)))
		})
	}
	f.api.mux.Handle("POST /auth/stir/v1/signing", auth("acme", http.StripPrefix("/auth", http.HandlerFunc(f.api.signing))))
	if r := f.do(t, "POST", "/auth/stir/v1/signing", "application/json", signOK); r.status != 200 {
		t.Fatalf("sign: %d %s", r.status, r.body)
	}
	// A refused signing is recorded too.
	if r := f.do(t, "POST", "/stir/v1/signing", "application/json", `{"signingRequest":{"attest":"A","dest":{"tn":["12155550131"]},"iat":1,"orig":{"tn":"12155550121"}}}`); r.status == 200 {
		t.Fatalf("stale sign accepted: %s", r.body)
	}
	s, err := f.signer.Sign(context.Background(), core.SignRequest{Orig: "12155550121", Dest: []string{"12155550131"}, Attest: "B"})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(map[string]any{"verificationRequest": map[string]any{
		"from": map[string]any{"tn": "12155550199"}, "to": map[string]any{"tn": "12155550131"}, "identity": s.Identity, "time": fixedNow.Unix()}})
	if r := f.do(t, "POST", "/stir/v1/verification", "application/json", string(b)); r.status != 200 {
		t.Fatalf("verify: %d %s", r.status, r.body)
	}
	rows, err := st.Query(context.Background(), outcome.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]outcome.Outcome{}
	for _, o := range rows {
		got[o.Kind+"/"+o.Result] = o
		if o.System != "api1" || o.Source != outcome.SourceHTTP || o.Peer != "192.0.2.1" {
			t.Errorf("row %+v", o)
		}
	}
	if len(rows) != 3 {
		t.Fatalf("%d rows: %+v", len(rows), rows)
	}
	if o := got["sign/signed"]; o.Client != "acme" || o.Attest != "A" || o.Orig != "12155550121" || o.Direction != "outbound" {
		t.Errorf("signed: %+v", o)
	}
	if o := got["sign/unsigned"]; o.ErrorName != "sign_date_out_of_window" || o.Client != "" {
		t.Errorf("unsigned: %+v", o)
	}
	if o := got["verify/fail"]; o.ErrorName != "orig_mismatch" || o.Orig != "12155550121" || o.X5U != testX5U || o.SPC != "" || o.Direction != "inbound" {
		t.Errorf("failed verification: %+v", o)
	}

	// The Client hook, for an authentication that keeps its own state.
	f = newFixture(t, func(o *Options) {
		o.Recorder, o.Client = st, func(r *http.Request) string { return "hook:" + r.Header.Get("X-Test-Client") }
	})
	if r := f.do(t, "POST", "/stir/v1/signing", "application/json", signOK, "X-Test-Client", "beta"); r.status != 200 {
		t.Fatalf("sign: %d %s", r.status, r.body)
	}
	rows, _ = st.Query(context.Background(), outcome.Filter{Result: "signed"})
	n := 0
	for _, o := range rows {
		if o.Client == "hook:beta" {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d rows of the hook's client", n)
	}
}
