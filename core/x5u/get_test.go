package x5u

import (
	"context"
	"crypto/x509"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stirgate/stirgate/core/stir"
	"github.com/stirgate/stirgate/internal/testlog"
)

// TestGet: the one-shot fetch other PKI data uses applies the same URL
// policy, address rules, body cap and redirect refusal as the cache.
func TestGet(t *testing.T) {
	var accept string
	srv := testlog.NewTLSServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		accept = r.Header.Get("Accept")
		switch r.URL.Path {
		case "/ok":
			w.Write([]byte("body"))
		case "/big":
			w.Write([]byte(strings.Repeat("x", 100)))
		case "/redirect":
			http.Redirect(w, r, "/ok", http.StatusFound)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	host := strings.TrimPrefix(srv.URL, "https://")
	lab := GetOptions{Policy: Policy{LabHosts: []string{host}}, RootCAs: pool, MaxBody: 50, Accept: "application/pkix-crl", Timeout: 30 * time.Second}
	ctx := context.Background()

	b, err := Get(ctx, srv.URL+"/ok", lab)
	if err != nil || string(b) != "body" || accept != "application/pkix-crl" {
		t.Fatalf("%q %v, Accept %q", b, err, accept)
	}
	for _, tc := range []struct {
		url  string
		o    GetOptions
		want *stir.Error
	}{
		{srv.URL + "/big", lab, stir.ErrX5UBadContent},
		{srv.URL + "/redirect", lab, stir.ErrX5UFetchFailed},
		{srv.URL + "/missing", lab, stir.ErrX5UFetchFailed},
		{srv.URL + "/ok", GetOptions{RootCAs: pool}, stir.ErrX5UForbidden},        // loopback without lab_hosts
		{"http://" + host + "/ok", lab, stir.ErrX5UForbidden},                     // http without allow_http
		{srv.URL + "/ok?x=1", lab, stir.ErrX5UForbidden},                          // query
		{srv.URL + "/ok", GetOptions{Policy: lab.Policy}, stir.ErrX5UFetchFailed}, // TLS: unknown root
	} {
		_, err := Get(ctx, tc.url, tc.o)
		var se *stir.Error
		if !errors.As(err, &se) || se.Name != tc.want.Name {
			t.Errorf("%s: %v, want %s", tc.url, err, tc.want.Name)
		}
	}
}
