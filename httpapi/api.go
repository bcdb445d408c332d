// Package httpapi is the HTTP face of `stirgate serve`: the ATIS-1000082
// signing and verification API, the x5u endpoint that publishes our own
// certificate chain, Prometheus metrics and health checks. It is a thin
// adapter: every decision is the core Signer's or Verifier's.
package httpapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/stirgate/stirgate/core"
	"github.com/stirgate/stirgate/core/stir"
	"github.com/stirgate/stirgate/outcome"
)

// Options configures an API. Zero fields take the defaults noted.
type Options struct {
	// Signer serves /stir/v1/signing and /certs/; nil answers 503.
	Signer *core.Signer
	// Verifier serves /stir/v1/verification; nil answers 503.
	Verifier *core.Verifier
	// Metrics serves /metrics and counts requests; nil disables both.
	Metrics *Metrics
	// MaxBody caps request bodies (default 64 KiB); larger ones get 413.
	MaxBody int64
	// CertMaxAge is the Cache-Control max-age of /certs/ (default 24h).
	CertMaxAge time.Duration
	// CertName publishes the default tenant's chain at
	// /certs/<CertName>.pem (default: the base name of the signer's x5u
	// path, else "sp"). Every tenant's chain is also at /certs/<name>.pem,
	// and each x5u a tenant signs with (current and next) at its base name.
	CertName string
	// Timeout bounds one signing or verification (default 2 s).
	Timeout time.Duration
	// Ready reports readiness for /readyz; nil means ready when a signer or
	// verifier is configured.
	Ready func() error
	// Mount adds handlers at other paths ("/outcomes", "/dashboard"), each
	// serving its path and everything below it.
	Mount map[string]http.Handler
	// Auth authenticates callers of signing (scope sign), verification
	// (verify), metrics and the mounted pages (read). Nil serves anyone:
	// only for an API on loopback, which config enforces.
	Auth   *Auth
	Logger *slog.Logger

	// Recorder, when set, is given one outcome per completed signing and
	// verification (see record.go). It must not block; System names this
	// node in it, and Client (default: ClientFrom the request's context)
	// the authenticated client.
	Recorder outcome.Recorder
	System   string
	Client   func(*http.Request) string
}

// API is an http.Handler. Build a new one to change its configuration and
// swap it in a Switch.
type API struct {
	o       Options
	mux     *http.ServeMux
	pub     map[string]pubEntry // /certs/<file>: see publishTable
	certURL string
}

// New builds the API.
func New(o Options) (*API, error) {
	if o.MaxBody <= 0 {
		o.MaxBody = 64 << 10
	}
	if o.CertMaxAge <= 0 {
		o.CertMaxAge = 24 * time.Hour
	}
	if o.Timeout <= 0 {
		o.Timeout = 2 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	a := &API{o: o, mux: http.NewServeMux()}
	if o.Signer != nil && o.CertName == "" {
		o.CertName = certNameFromURL(o.Signer.X5U())
	}
	if o.CertName == "" {
		o.CertName = "sp"
	}
	if strings.ContainsAny(o.CertName, "/?#") {
		return nil, fmt.Errorf("httpapi: cert name %q", o.CertName)
	}
	a.o = o
	a.certURL = "/certs/" + o.CertName + ".pem"
	if o.Signer != nil {
		a.pub = publishTable(o.Signer, o.CertName)
	}
	a.mux.Handle("/stir/v1/signing", a.guard(ScopeSign, http.HandlerFunc(a.signing)))
	a.mux.Handle("/stir/v1/verification", a.guard(ScopeVerify, http.HandlerFunc(a.verification)))
	a.mux.HandleFunc("GET /certs/{file}", a.certs)
	a.mux.HandleFunc("GET /healthz", healthz)
	a.mux.HandleFunc("GET /readyz", a.readyz)
	if o.Metrics != nil {
		a.mux.Handle("GET /metrics", a.guard(ScopeRead, o.Metrics.Handler()))
	}
	for p, h := range o.Mount {
		p = "/" + strings.Trim(p, "/")
		h = a.guard(ScopeRead, h)
		a.mux.Handle(p, h)
		a.mux.Handle(p+"/", h)
	}
	a.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		a.fail(w, r, http.StatusNotFound, errNotFound.Withf("no resource at %s", r.URL.Path))
	})
	return a, nil
}

func healthz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = io.WriteString(w, "ok\n")
}

// certNameFromURL returns the base name of an x5u path without ".pem".
func certNameFromURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	b := strings.TrimSuffix(path.Base(u.Path), ".pem")
	if b == "" || b == "." || b == "/" {
		return ""
	}
	return b
}

// CertPath is where the chain is published ("/certs/sp.pem").
func (a *API) CertPath() string { return a.certURL }

// ServeHTTP echoes X-RequestID and routes.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id := r.Header.Get("X-RequestID")
	if id == "" || len(id) > 128 {
		id = newRequestID()
	}
	w.Header().Set("X-RequestID", id)
	a.mux.ServeHTTP(w, r)
}

func newRequestID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Request-level errors of the HTTP surface. Their Name is API, like every
// *stir.Error; SIPCode is unused here.
var (
	errContentType = &stir.Error{Name: "content_type_unsupported", Reason: "Unsupported Media Type"}
	errBodyMissing = &stir.Error{Name: "body_missing", Reason: "Bad Request"}
	errBodyLarge   = &stir.Error{Name: "body_too_large", Reason: "Request Entity Too Large"}
	errJSON        = &stir.Error{Name: "body_malformed", Reason: "Bad Request"}
	errMissing     = &stir.Error{Name: "parameter_missing", Reason: "Bad Request"}
	errInvalid     = &stir.Error{Name: "parameter_invalid", Reason: "Bad Request"}
	errMethod      = &stir.Error{Name: "method_not_allowed", Reason: "Method Not Allowed"}
	errNotFound    = &stir.Error{Name: "not_found", Reason: "Not Found"}
	errUnavailable = &stir.Error{Name: "service_unavailable", Reason: "Service Unavailable"}
)

// messageID maps an error to the ATIS-1000082 service exception id; the
// stable error name beside it is what clients should test.
func messageID(e *stir.Error) string {
	switch e.Name {
	case errBodyMissing.Name:
		return "SVC4000"
	case errMissing.Name:
		return "SVC4001"
	case errContentType.Name:
		return "SVC4003"
	case errInvalid.Name, errJSON.Name, errBodyLarge.Name, stir.ErrSignInput.Name, stir.ErrSignDate.Name:
		return "SVC4004"
	case stir.ErrSignNotAllowed.Name:
		return "POL4050"
	case errUnauthorized.Name, errScope.Name, errSource.Name:
		return ""
	}
	return "SVC5000"
}

// errorBody is the JSON of every failed request: ATIS-1000082's
// requestError plus the stable error name and its detail.
type errorBody struct {
	RequestError struct {
		Exception *exception `json:"serviceException,omitempty"`
		Policy    *exception `json:"policyException,omitempty"`
	} `json:"requestError"`
	Error  string `json:"error"`
	Detail string `json:"detail,omitempty"`
}

type exception struct {
	MessageID string   `json:"messageId"`
	Text      string   `json:"text"`
	Variables []string `json:"variables,omitempty"`
}

func (a *API) fail(w http.ResponseWriter, r *http.Request, status int, e *stir.Error, vars ...string) {
	var b errorBody
	ex := &exception{MessageID: messageID(e), Text: e.Reason, Variables: vars}
	switch {
	case ex.MessageID == "":
	case strings.HasPrefix(ex.MessageID, "POL"):
		b.RequestError.Policy = ex
	default:
		b.RequestError.Exception = ex
	}
	b.Error, b.Detail = e.Name, e.Error()
	if status == http.StatusMethodNotAllowed {
		w.Header().Set("Allow", "POST")
	}
	writeJSON(w, status, b)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

// readJSON checks method, content type and size, then decodes the body
// into v. It writes the error answer itself and returns false on failure.
func (a *API) readJSON(w http.ResponseWriter, r *http.Request, surface string, v any) bool {
	if r.Method != http.MethodPost {
		a.fail(w, r, http.StatusMethodNotAllowed, errMethod.Withf("%s %s", r.Method, r.URL.Path))
		return false
	}
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		a.o.Metrics.Dropped("http", errContentType.Name)
		a.fail(w, r, http.StatusUnsupportedMediaType, errContentType.Withf("Content-Type %q, want application/json", r.Header.Get("Content-Type")), r.Header.Get("Content-Type"))
		return false
	}
	if r.ContentLength > a.o.MaxBody {
		a.o.Metrics.Dropped("http", errBodyLarge.Name)
		a.fail(w, r, http.StatusRequestEntityTooLarge, errBodyLarge.Withf("%d bytes, limit %d", r.ContentLength, a.o.MaxBody))
		return false
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, a.o.MaxBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			a.o.Metrics.Dropped("http", errBodyLarge.Name)
			a.fail(w, r, http.StatusRequestEntityTooLarge, errBodyLarge.Withf("limit %d bytes", a.o.MaxBody))
			return false
		}
		a.fail(w, r, http.StatusBadRequest, errJSON.With("reading body", err))
		return false
	}
	if len(strings.TrimSpace(string(body))) == 0 {
		a.o.Metrics.Dropped("http", errBodyMissing.Name)
		a.fail(w, r, http.StatusBadRequest, errBodyMissing.Withf("empty body"))
		return false
	}
	dec := json.NewDecoder(strings.NewReader(string(body)))
	if err := dec.Decode(v); err != nil {
		a.o.Metrics.Dropped("http", errJSON.Name)
		a.fail(w, r, http.StatusBadRequest, errJSON.With("JSON", err))
		return false
	}
	if dec.More() {
		a.o.Metrics.Dropped("http", errJSON.Name)
		a.fail(w, r, http.StatusBadRequest, errJSON.Withf("data after the JSON object"))
		return false
	}
	return true
}

// SigningRequest is the body of POST /stir/v1/signing (ATIS-1000082).
type SigningRequest struct {
	SigningRequest *struct {
		Attest string `json:"attest"`
		Dest   *struct {
			TN []string `json:"tn"`
		} `json:"dest"`
		IAT  *int64 `json:"iat"`
		Orig *struct {
			TN string `json:"tn"`
		} `json:"orig"`
		OrigID string `json:"origid"`
	} `json:"signingRequest"`
}

// SigningResponse is the answer of a successful signing.
type SigningResponse struct {
	SigningResponse struct {
		Identity string `json:"identity"`
		// Attest is the level used: the policy's, which a request may only
		// lower (not part of ATIS-1000082; clients may ignore it).
		Attest string `json:"attest,omitempty"`
	} `json:"signingResponse"`
}

func (a *API) signing(w http.ResponseWriter, r *http.Request) {
	var req SigningRequest
	if !a.readJSON(w, r, "sign", &req) {
		return
	}
	sr := req.SigningRequest
	switch {
	case sr == nil:
		a.fail(w, r, http.StatusBadRequest, errMissing.Withf("signingRequest"), "signingRequest")
		return
	case sr.Orig == nil || sr.Orig.TN == "":
		a.fail(w, r, http.StatusBadRequest, errMissing.Withf("orig.tn"), "orig")
		return
	case sr.Dest == nil || len(sr.Dest.TN) == 0:
		a.fail(w, r, http.StatusBadRequest, errMissing.Withf("dest.tn"), "dest")
		return
	}
	if a.o.Signer == nil {
		a.fail(w, r, http.StatusServiceUnavailable, errUnavailable.Withf("no signer configured"))
		return
	}
	in := core.SignRequest{Orig: sr.Orig.TN, Dest: sr.Dest.TN, OrigID: sr.OrigID, Source: remoteIP(r)}
	if c := ClientFrom(r.Context()); c != nil {
		in.Client, in.Customer = c.Name, c.Customer
	}
	if sr.Attest != "" {
		at, err := stir.ParseAttestation(sr.Attest)
		if err != nil {
			a.fail(w, r, http.StatusBadRequest, errInvalid.With("attest", err), "attest")
			return
		}
		in.Attest = at
	}
	if sr.IAT != nil {
		if *sr.IAT <= 0 {
			a.fail(w, r, http.StatusBadRequest, errInvalid.Withf("iat %d", *sr.IAT), "iat")
			return
		}
		// iat travels as a Date so that the signer applies its freshness
		// window: a client cannot mint tokens for another time.
		in.Date = core.FormatDate(time.Unix(*sr.IAT, 0))
	}
	ctx, cancel := context.WithTimeout(r.Context(), a.o.Timeout)
	defer cancel()
	start := time.Now()
	res, err := a.o.Signer.Sign(ctx, in)
	if err != nil {
		e := stir.As(err)
		if e == nil {
			e = stir.ErrInternal.With("", err)
		}
		a.o.Metrics.Observe("http", "sign", time.Since(start), "unsigned", e.Name)
		status := http.StatusBadRequest
		switch {
		case errors.Is(e, stir.ErrSignNotAllowed):
			status = http.StatusForbidden
		case e.SIPCode >= 500 || e.SIPCode == 0:
			status = http.StatusInternalServerError
		}
		a.o.Logger.Info("http sign refused", "client", in.Client, "source", in.Source, "error", e.Name, "detail", e.Error())
		a.record(r, outcome.KindSign, func(o *outcome.Outcome) {
			if in.Client != "" {
				o.Client = in.Client
			}
			o.Result, o.ErrorName, o.Reason, o.SIPCode, o.Orig, o.Dest = "unsigned", e.Name, e.Error(), e.SIPCode, in.Orig, strings.Join(in.Dest, ",")
			o.SetRefused(err)
		})
		a.fail(w, r, status, e)
		return
	}
	a.o.Metrics.Observe("http", "sign", time.Since(start), "signed", "")
	a.o.Logger.Debug("http signed", "client", res.Client, "customer", res.Customer, "attest", res.Attest, "why", res.Why)
	a.record(r, outcome.KindSign, func(o *outcome.Outcome) {
		if res.Client != "" {
			o.Client = res.Client
		}
		o.Result, o.Attest, o.OrigID, o.Orig, o.Dest = "signed", string(res.Attest), res.OrigID, res.Orig, strings.Join(res.Dest, ",")
		o.SetSigned(res)
	})
	var out SigningResponse
	out.SigningResponse.Identity = res.Identity
	out.SigningResponse.Attest = string(res.Attest)
	writeJSON(w, http.StatusOK, out)
}

// VerificationRequest is the body of POST /stir/v1/verification.
type VerificationRequest struct {
	VerificationRequest *struct {
		From *struct {
			TN string `json:"tn"`
		} `json:"from"`
		To *struct {
			TN tnList `json:"tn"`
		} `json:"to"`
		Identity string `json:"identity"`
		// Identities (an extension of ATIS-1000082, which carries one
		// Identity) are the call's other Identity header values: the div
		// PASSporTs of a diverted call (RFC 8946), whose chain must end at
		// to.tn, the number the call is now for.
		Identities []string `json:"identities"`
		Time       *int64   `json:"time"`
	} `json:"verificationRequest"`
}

// tnList accepts "tn": "1215..." as well as "tn": ["1215..."], since
// clients differ.
type tnList []string

func (t *tnList) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*t = tnList{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return errors.New("tn: want a string or an array of strings")
	}
	*t = many
	return nil
}

// VerificationResponse is the answer of a completed verification, passed
// or not: ATIS-1000082's verstat, reasoncode and reasontext, plus the
// stable error name and the attestation of a passed call.
type VerificationResponse struct {
	VerificationResponse struct {
		Verstat    string `json:"verstat"`
		ReasonCode int    `json:"reasoncode,omitempty"`
		ReasonText string `json:"reasontext,omitempty"`
		Error      string `json:"error,omitempty"`
		Attest     string `json:"attest,omitempty"`
		OrigID     string `json:"origid,omitempty"`
		// On a pass only, as `stirgate verify` prints them: the verified
		// div chain's diverting numbers and rich call data (RFC 9795).
		Div []stir.Div `json:"div,omitempty"`
		RCD *stir.RCD  `json:"rcd,omitempty"`
	} `json:"verificationResponse"`
}

func (a *API) verification(w http.ResponseWriter, r *http.Request) {
	var req VerificationRequest
	if !a.readJSON(w, r, "verify", &req) {
		return
	}
	vr := req.VerificationRequest
	switch {
	case vr == nil:
		a.fail(w, r, http.StatusBadRequest, errMissing.Withf("verificationRequest"), "verificationRequest")
		return
	case vr.From == nil || vr.From.TN == "":
		a.fail(w, r, http.StatusBadRequest, errMissing.Withf("from.tn"), "from")
		return
	case vr.To == nil || len(vr.To.TN) == 0 || vr.To.TN[0] == "":
		a.fail(w, r, http.StatusBadRequest, errMissing.Withf("to.tn"), "to")
		return
	case vr.Identity == "":
		a.fail(w, r, http.StatusBadRequest, errMissing.Withf("identity"), "identity")
		return
	}
	if a.o.Verifier == nil {
		a.fail(w, r, http.StatusServiceUnavailable, errUnavailable.Withf("no verifier configured"))
		return
	}
	in := core.VerifyRequest{Identity: append([]string{vr.Identity}, vr.Identities...), From: telURI(vr.From.TN), To: telURI(vr.To.TN[0])}
	if vr.Time != nil {
		if *vr.Time <= 0 {
			a.fail(w, r, http.StatusBadRequest, errInvalid.Withf("time %d", *vr.Time), "time")
			return
		}
		in.Date = core.FormatDate(time.Unix(*vr.Time, 0))
	}
	ctx, cancel := context.WithTimeout(r.Context(), a.o.Timeout)
	defer cancel()
	start := time.Now()
	res := a.o.Verifier.Verify(ctx, in)
	a.o.Metrics.Observe("http", "verify", time.Since(start), string(res.Result), res.Error)
	a.record(r, outcome.KindVerify, func(o *outcome.Outcome) {
		o.Result, o.Verstat, o.Attest, o.OrigID = string(res.Result), string(res.Verstat), string(res.Attest), res.OrigID
		o.SIPCode, o.ErrorName, o.Reason, o.X5U, o.SPC = res.SIPCode, res.Error, res.Reason, res.X5U, res.SPC
		o.Orig, o.Dest = res.Orig, strings.Join(res.Dest, ",")
		if o.Orig == "" {
			o.Orig, o.Dest = vr.From.TN, vr.To.TN[0]
		}
		o.SetExtensions(res)
	})
	var out VerificationResponse
	v := &out.VerificationResponse
	v.Verstat = string(res.Verstat)
	if res.Result == stir.Pass {
		v.Attest, v.OrigID = string(res.Attest), res.OrigID
		v.Div, v.RCD = res.Div, res.RCD
	} else {
		v.ReasonCode, v.ReasonText, v.Error = res.SIPCode, res.Reason, res.Error
	}
	writeJSON(w, http.StatusOK, out)
}

// telURI makes a header value of a bare number so that the verifier
// canonicalises it exactly as it does a SIP From or To.
func telURI(n string) string {
	n = strings.TrimSpace(n)
	if n != "" && n[0] >= '0' && n[0] <= '9' {
		n = "+" + n
	}
	return "<tel:" + n + ">"
}

func remoteIP(r *http.Request) string {
	host := r.RemoteAddr
	if i := strings.LastIndexByte(host, ':'); i >= 0 {
		host = strings.Trim(host[:i], "[]")
	}
	return host
}

// certs publishes the signing chain, leaf first, as an x5u target.
func (a *API) certs(w http.ResponseWriter, r *http.Request) {
	e, ok := a.pub[r.PathValue("file")]
	if !ok {
		a.fail(w, r, http.StatusNotFound, errNotFound.Withf("no certificate at %s", r.URL.Path))
		return
	}
	c := e.at(time.Now())
	h := w.Header()
	h.Set("ETag", c.etag)
	h.Set("Cache-Control", "public, max-age="+strconv.Itoa(int(a.o.CertMaxAge/time.Second)))
	if inm := r.Header.Get("If-None-Match"); inm != "" && etagMatch(inm, c.etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	h.Set("Content-Type", "application/pem-certificate-chain")
	h.Set("Content-Length", strconv.Itoa(len(c.body)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(c.body)
	}
}

// etagMatch implements If-None-Match's weak comparison over a list.
func etagMatch(header, etag string) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == "*" || t == etag {
			return true
		}
	}
	return false
}

func (a *API) readyz(w http.ResponseWriter, r *http.Request) {
	err := a.ready()
	var deg *Degraded
	if errors.As(err, &deg) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, "ready, degraded: "+deg.Error()+"\n")
		return
	}
	if err != nil {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, "not ready: "+err.Error()+"\n")
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = io.WriteString(w, "ready\n")
}

func (a *API) ready() error {
	if a.o.Ready != nil {
		return a.o.Ready()
	}
	if a.o.Signer == nil && a.o.Verifier == nil {
		return errors.New("neither signer nor verifier configured")
	}
	return Readiness(a.o.Signer, a.o.Verifier, time.Now())
}
