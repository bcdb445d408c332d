package httpapi

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"net/netip"
	"strings"

	"github.com/stirgate/stirgate/core/stir"
)

// Scopes a client may hold.
const (
	ScopeSign   = "sign"   // POST /stir/v1/signing
	ScopeVerify = "verify" // POST /stir/v1/verification
	ScopeRead   = "read"   // /outcomes, /dashboard, /metrics (they hold calling and called numbers)
)

// Client is an authenticated caller of the API.
type Client struct {
	Name string
	// Customer is the policy customer the client signs for ("" = matched
	// by source address).
	Customer string
	Scopes   []string
}

func (c *Client) may(scope string) bool {
	for _, s := range c.Scopes {
		if s == scope {
			return true
		}
	}
	return false
}

// Auth authenticates the API's callers. Bearer tokens, not client
// certificates: every PBX script, curl and Prometheus can send a header,
// a token is named and revoked by deleting one config line, and only its
// SHA-256 is stored, so the config file does not hold a credential.
type Auth struct {
	// Tokens maps the hex SHA-256 of a bearer token to its client.
	Tokens map[string]*Client
	// Allow limits callers to these sources; empty admits any source.
	Allow []netip.Prefix
}

// HashToken is the hex SHA-256 under which a token is stored.
func HashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// Authentication errors. They are not ATIS-1000082 exceptions (the API
// leaves authentication to the deployment), so their body carries only
// the stable name and detail.
var (
	errUnauthorized = &stir.Error{Name: "unauthorized", Reason: "Unauthorized"}
	errScope        = &stir.Error{Name: "scope_missing", Reason: "Forbidden"}
	errSource       = &stir.Error{Name: "source_not_allowed", Reason: "Forbidden"}
)

type clientKey struct{}

// ClientFrom returns the client a request was authenticated as, or nil.
func ClientFrom(ctx context.Context) *Client {
	c, _ := ctx.Value(clientKey{}).(*Client)
	return c
}

// token reads "Authorization: Bearer T", or Basic with T as the password
// (what a browser sends for the dashboard).
func token(r *http.Request) string {
	h := r.Header.Get("Authorization")
	scheme, rest, _ := strings.Cut(h, " ")
	switch {
	case strings.EqualFold(scheme, "Bearer"):
		return strings.TrimSpace(rest)
	case strings.EqualFold(scheme, "Basic"):
		b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(rest))
		if err != nil {
			return ""
		}
		_, pw, _ := strings.Cut(string(b), ":")
		return pw
	}
	return ""
}

// guard wraps h: the source must be allowed and, when tokens are
// configured, the caller must present one holding scope. With a nil Auth
// (an API on loopback with no tokens, which config permits) every local
// caller is served.
func (a *API) guard(scope string, h http.Handler) http.Handler {
	au := a.o.Auth
	if au == nil {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(au.Allow) > 0 {
			ok := false
			if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
				for _, p := range au.Allow {
					if p.Contains(ap.Addr().Unmap()) {
						ok = true
						break
					}
				}
			}
			if !ok {
				a.o.Metrics.Dropped("http", errSource.Name)
				a.fail(w, r, http.StatusForbidden, errSource.Withf("source %s is not in http.allow", remoteIP(r)))
				return
			}
		}
		if len(au.Tokens) == 0 {
			h.ServeHTTP(w, r)
			return
		}
		c := au.Tokens[HashToken(token(r))]
		if c == nil {
			a.o.Metrics.Dropped("http", errUnauthorized.Name)
			w.Header().Set("WWW-Authenticate", `Bearer realm="stirgate", Basic realm="stirgate"`)
			a.fail(w, r, http.StatusUnauthorized, errUnauthorized.Withf("a bearer token from [[http.token]] is required"))
			return
		}
		if !c.may(scope) {
			a.o.Metrics.Dropped("http", errScope.Name)
			a.fail(w, r, http.StatusForbidden, errScope.Withf("client %q lacks scope %q", c.Name, scope))
			return
		}
		h.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), clientKey{}, c)))
	})
}

// Public is the handler of the public listener: the certificate chain at
// /certs/<name>.pem and /healthz, and 404 for everything else, so that the
// one port facing the internet offers no signing, verification, outcomes,
// dashboard or metrics.
func (a *API) Public() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /certs/{file}", a.certs)
	mux.HandleFunc("GET /healthz", healthz)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		a.fail(w, r, http.StatusNotFound, errNotFound.Withf("no resource at %s", r.URL.Path))
	})
	return mux
}
