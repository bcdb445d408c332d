package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/stirgate/stirgate/core"
	"github.com/stirgate/stirgate/core/certs"
	"github.com/stirgate/stirgate/core/identity"
	"github.com/stirgate/stirgate/core/passport"
	"github.com/stirgate/stirgate/core/stir"
)

// Bounds on what the library reads, so that a wrong path (a device, a
// log file) or a hostile argument costs little.
const (
	maxKeyFile   = 64 << 10
	maxArgument  = 64 << 10
	maxSigners   = 256
	maxFutureIAT = 60 * time.Second
)

// library is the process-wide state behind the C functions. The secsipid
// API has no handle, so there is exactly one; every field is guarded.
type library struct {
	settings
	log *slog.Logger
	now func() time.Time

	mu  sync.Mutex
	cur *engine

	smu     sync.Mutex
	signers map[signerKey]*signerEntry
}

func newLibrary() *library {
	return &library{
		settings: settings{opts: defaultOptions()},
		log:      slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})).With("lib", "libsecsipid/stirgate"),
		now:      time.Now,
		signers:  map[signerKey]*signerEntry{},
	}
}

// acquire returns the engine of the current options; release it after use.
func (l *library) acquire() *engine {
	o, gen := l.get()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cur == nil || l.cur.gen != gen {
		if l.cur != nil {
			l.cur.retire()
		}
		l.cur = newEngine(o, gen, l.log, func() time.Time { return l.now() })
	}
	l.cur.users.Add(1)
	return l.cur
}

// keySource is a private or public key given by path (keyPath) or by
// value (keyData), as the API's twin functions take it.
type keySource struct {
	path string
	data []byte
}

// readKey returns the PEM bytes of k. A path may be a file name or a
// file:// URL; http(s) URLs are handled by the caller.
func readKey(k keySource) ([]byte, int) {
	if k.path == "" {
		return k.data, retOK
	}
	p := strings.TrimPrefix(k.path, "file://")
	f, err := os.Open(p)
	if err != nil {
		return nil, retFileRead
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil || len(b) > maxKeyFile {
		return nil, retFileRead
	}
	return b, retOK
}

// parsePrivateKey reads a P-256 key (certs.ParsePrivateKey) and maps a
// failure to libsecsipid's codes: DER that does not parse is an invalid
// key, anything else a key in the wrong format.
func parsePrivateKey(data []byte) (*ecdsa.PrivateKey, int) {
	k, err := certs.ParsePrivateKey(data)
	if err != nil {
		if e := stir.As(err); e != nil && e.Err != nil {
			return nil, retPrvKeyInvalid
		}
		return nil, retPrvKeyFormat
	}
	return k, retOK
}

type signerKey struct {
	key string // "path:" + path or "data:" + SHA-256 of the PEM
	x5u string
	gen uint64
}

type signerEntry struct {
	s       *core.Signer
	modTime time.Time
	size    int64
}

// signer returns a core Signer for the key and x5u, parsing the key only
// when the file changed: the original reads and parses it on every call.
func (l *library) signer(e *engine, k keySource, x5uURL string) (*core.Signer, int) {
	sk := signerKey{x5u: x5uURL, gen: e.gen}
	var fi os.FileInfo
	if k.path != "" {
		var err error
		if fi, err = os.Stat(strings.TrimPrefix(k.path, "file://")); err != nil {
			return nil, retFileRead
		}
		sk.key = "path:" + k.path
	} else {
		sum := sha256.Sum256(k.data)
		sk.key = "data:" + hex.EncodeToString(sum[:])
	}
	l.smu.Lock()
	se := l.signers[sk]
	l.smu.Unlock()
	if se != nil && (fi == nil || fi.ModTime().Equal(se.modTime) && fi.Size() == se.size) {
		return se.s, retOK
	}

	data, rc := readKey(k)
	if rc != retOK {
		return nil, rc
	}
	key, rc := parsePrivateKey(data)
	if rc != retOK {
		return nil, rc
	}
	// The secsipid API signs with a bare key: there is no certificate to
	// take a validity window or an SPC from, so the window is open.
	cred := &certs.SigningCredential{Key: key, NotBefore: time.Unix(1, 0), NotAfter: time.Unix(1<<40, 0)}
	s, err := core.NewSigner(core.SignerOptions{Credential: cred, X5U: x5uURL, Numbers: e.numbers, AnyOrigID: true, Now: l.now, Logger: l.log})
	if err != nil {
		return nil, codeOf(err)
	}
	se = &signerEntry{s: s}
	if fi != nil {
		se.modTime, se.size = fi.ModTime(), fi.Size()
	}
	l.smu.Lock()
	if len(l.signers) >= maxSigners {
		clear(l.signers)
	}
	l.signers[sk] = se
	l.smu.Unlock()
	return s, retOK
}

// getIdentity is SecSIPIDGetIdentity and SecSIPIDGetIdentityPrvKey.
func (l *library) getIdentity(origTN, destTN, attest, origID, x5uURL string, k keySource) (string, int) {
	e := l.acquire()
	defer e.release()
	if e.err != 0 {
		return "", e.err
	}
	if x5uURL == "" {
		x5uURL = e.opts.x5u
	}
	if x5uURL == "" {
		return "", retNoX5U
	}
	s, rc := l.signer(e, k, x5uURL)
	if rc != retOK {
		return "", rc
	}
	req := core.SignRequest{
		Orig:   origTN,
		Dest:   []string{destTN},
		Attest: stir.Attestation(attest),
		OrigID: origID,
		// libsecsipid's caller (a Kamailio script) names the level
		// itself, in its own process.
		Trusted: true,
	}
	r, err := s.Sign(context.Background(), req)
	if err != nil {
		e.rec.Signed(req, nil, err)
		return "", codeOf(err)
	}
	e.rec.Signed(req, r, nil)
	return r.Identity, retOK
}

var b64 = base64.RawURLEncoding

// signJSON is SecSIPIDSignJSONHP and SecSIPIDSignJSONHPPrvKey: it signs
// the given header and payload text as they are (trimmed), which is what
// the original does; it refuses text that is not a JSON object.
func (l *library) signJSON(headerJSON, payloadJSON string, k keySource) (string, int) {
	h := strings.TrimSpace(headerJSON)
	p := strings.TrimSpace(payloadJSON)
	if !isJSONObject(h) {
		return "", retJSONHdrParse
	}
	if !isJSONObject(p) {
		return "", retJSONPayloadParse
	}
	data, rc := readKey(k)
	if rc != retOK {
		return "", rc
	}
	key, rc := parsePrivateKey(data)
	if rc != retOK {
		return "", rc
	}
	input := b64.EncodeToString([]byte(h)) + "." + b64.EncodeToString([]byte(p))
	sig, err := jwt.SigningMethodES256.Sign(input, key)
	if err != nil {
		return "", retJSONSignatureFailed
	}
	return input + "." + b64.EncodeToString(sig), retOK
}

func isJSONObject(s string) bool {
	return strings.HasPrefix(s, "{") && json.Valid([]byte(s))
}

// checkMode says what the identity argument holds.
type checkMode int

const (
	checkToken checkMode = iota // SecSIPIDCheck: the token, parameters optional
	checkFull                   // SecSIPIDCheckFull*: the whole header value
)

// check is every SecSIPIDCheck* function. With no key (x5u mode) the
// credential comes from info/x5u and the whole decision is the core
// Verifier's. With a key (pubkey mode: a file, URL or value the operator
// trusts) the same core parsers, freshness rule and signature check run
// against that key, and a certificate given as the key is validated to
// the trust anchors whenever any are configured.
func (l *library) check(value string, mode checkMode, expire int, k keySource, timeout int) int {
	value = strings.TrimSpace(value)
	if value == "" {
		return retSIPHdrEmpty
	}
	e := l.acquire()
	defer e.release()
	if e.err != 0 {
		return e.err
	}
	ctx, cancel := context.WithTimeout(context.Background(), deadline(timeout))
	defer cancel()
	if k.path == "" && k.data == nil {
		return l.checkX5U(ctx, e, value, expire)
	}
	return l.checkKey(ctx, e, value, mode, expire, k)
}

func deadline(timeout int) time.Duration {
	if timeout <= 0 || timeout > 30 {
		return 5 * time.Second
	}
	return time.Duration(timeout) * time.Second
}

func (l *library) checkX5U(ctx context.Context, e *engine, value string, expire int) int {
	v, rc := e.verifier(expire)
	if rc != retOK {
		return rc
	}
	if !strings.ContainsRune(value, ';') {
		// A bare token: its own x5u is where the credential lives.
		tok, err := passport.Parse(value)
		if err != nil {
			return codeOf(err)
		}
		value = identity.Format(value, tok.Header.X5U)
	}
	from, to := requestFor(value)
	res := v.Verify(ctx, core.VerifyRequest{Identity: []string{value}, From: from, To: to, RequireIdentity: true})
	e.rec.Verified(res)
	if res.Result == stir.Pass {
		return retOK
	}
	return codeOf(res.Err)
}

// requestFor makes the From and To a request carrying value would have.
// The secsipid API passes no request, so the orig/dest binding (row 8 of
// the conformance table) is the script's business; the Verifier is given
// the token's own numbers, as tel URIs that bypass national rules.
func requestFor(value string) (from, to string) {
	h, err := identity.Parse(value)
	if err != nil {
		return "", ""
	}
	tok, err := passport.Parse(h.Token)
	if err != nil || len(tok.Claims.Dest) == 0 {
		return "", ""
	}
	return telURI(tok.Claims.Orig), telURI(tok.Claims.Dest[0])
}

func telURI(n string) string {
	if n != "" && (n[0] == '#' || n[0] == '*') {
		return "<tel:" + n + ">"
	}
	return "<tel:+" + n + ">"
}

func (l *library) checkKey(ctx context.Context, e *engine, value string, mode checkMode, expire int, k keySource) int {
	var tok *passport.Token
	var err error
	if mode == checkFull || strings.ContainsRune(value, ';') {
		h, err := identity.Parse(value)
		if err != nil {
			return codeOf(err)
		}
		if !h.IsShaken() {
			return retSIPHdrPpt
		}
		if h.Alg != "" && h.Alg != passport.Alg {
			return retSIPHdrAlg
		}
		if tok, err = passport.Parse(h.Token); err != nil {
			return codeOf(err)
		}
		if h.Ppt != "" && h.Ppt != tok.Header.Ppt {
			return retJSONHdrPpt
		}
		if tok.Header.X5U != h.Info {
			return retJSONHdrX5U
		}
	} else if tok, err = passport.Parse(value); err != nil {
		return codeOf(err)
	}

	now := l.now()
	age := now.Sub(time.Unix(tok.Claims.IAT, 0))
	if expire > 0 && age > time.Duration(expire)*time.Second {
		return retJSONPayloadExpired
	}
	if -age > maxFutureIAT {
		return retJSONPayloadFuture
	}

	pub, rc := l.publicKey(ctx, e, k, now)
	if rc != retOK {
		return rc
	}
	if err := tok.Verify(pub); err != nil {
		return codeOf(err)
	}
	return retOK
}

// publicKey reads the key material of pubkey mode: a PEM public key, or a
// certificate chain (leaf first) whose leaf key is used. A chain is
// validated against the trust anchors when any are configured.
func (l *library) publicKey(ctx context.Context, e *engine, k keySource, now time.Time) (*ecdsa.PublicKey, int) {
	var data []byte
	if strings.HasPrefix(k.path, "https://") || strings.HasPrefix(k.path, "http://") {
		c, rc := e.urlCache()
		if rc != retOK {
			return nil, rc
		}
		b, err := c.Get(ctx, k.path)
		if err != nil {
			return nil, codeOf(err)
		}
		data = b
	} else {
		var rc int
		if data, rc = readKey(k); rc != retOK {
			return nil, rc
		}
	}
	var chain []*x509.Certificate
	var pub any
	rest := data
	for {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		switch blk.Type {
		case "PUBLIC KEY":
			if pub != nil || chain != nil {
				return nil, retCertInvalidFormat
			}
			p, err := x509.ParsePKIXPublicKey(blk.Bytes)
			if err != nil {
				return nil, retCertInvalidFormat
			}
			pub = p
		case "CERTIFICATE":
			if pub != nil && chain == nil {
				return nil, retCertInvalidFormat
			}
			c, err := x509.ParseCertificate(blk.Bytes)
			if err != nil {
				return nil, retCertInvalidFormat
			}
			chain = append(chain, c)
			if len(chain) == 1 {
				pub = c.PublicKey
			}
		}
	}
	if pub == nil || len(bytes.TrimSpace(data)) == 0 {
		return nil, retCertInvalidFormat
	}
	roots, crl := e.roots()
	if len(chain) > 0 && e.caSet && roots == nil {
		// A CA was configured but cannot be used: validating nothing
		// would be the silent downgrade the original makes.
		return nil, e.trustErr
	}
	if roots != nil && len(chain) > 0 {
		if _, err := certs.Verify(chain, certs.VerifyOptions{Roots: roots, CurrentTime: now, CRL: crl}); err != nil {
			return nil, codeOf(err)
		}
	} else if len(chain) > 0 && (now.Before(chain[0].NotBefore) || now.After(chain[0].NotAfter)) {
		return nil, retCertExpired
	}
	ec, ok := pub.(*ecdsa.PublicKey)
	if !ok || ec.Curve != elliptic.P256() {
		return nil, retCertInvalidEC
	}
	return ec, retOK
}

// getURL is SecSIPIDGetURLContent: a bounded fetch under the x5u URL
// policy, through the same memory and disk cache.
func (l *library) getURL(url string, timeout int) ([]byte, int) {
	if url == "" {
		return nil, retHTTPInvalidURL
	}
	e := l.acquire()
	defer e.release()
	c, rc := e.urlCache()
	if rc != retOK {
		return nil, rc
	}
	ctx, cancel := context.WithTimeout(context.Background(), deadline(timeout))
	defer cancel()
	b, err := c.Get(ctx, url)
	if err != nil {
		return nil, codeOf(err)
	}
	return b, retOK
}
