package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stirgate/stirgate/core/certs"
	"github.com/stirgate/stirgate/internal/capbench"
	"github.com/stirgate/stirgate/outcome"
)

// The tenants end to end: `stirgate serve` signs for three tenants (three
// lab PKIs, three SPCs) over the SIP redirect (driven by SIPp) and the
// HTTP API; every call verifies with its own tenant's published chain, by
// `stirgate verify` and by secsipidx, and never with another tenant's.

// tenantLabs are the PKIs of the test: the default tenant ([signer]),
// blue, green, blue's next credential, and an expired one.
var tenantLabs = []struct{ name, spc string }{{"def", "1001"}, {"blue", "1002"}, {"green", "1003"}, {"blue2", "1002"}}

type tenantEnv struct {
	dir, cfg      string
	sip, api, pub string
	labs          map[string]*certs.Lab
	tokens        map[string]string // customer -> bearer token
}

func x5uOf(name string) string { return "https://certs.example.net/certs/" + name + ".pem" }

func freeAddr(t *testing.T, network string) string {
	t.Helper()
	if network == "udp" {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.LocalAddr().String()
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// newTenantEnv writes the labs and a config: [signer] is the default
// tenant, blue and green are [[tenant]]s, acme (otg-acme, owns
// 12155550121) signs as blue, beta as green, gamma as the default;
// extra is appended to blue's [[tenant]] table (a rotation).
func newTenantEnv(t *testing.T, blueExtra string) *tenantEnv {
	t.Helper()
	e := &tenantEnv{dir: t.TempDir(), labs: map[string]*certs.Lab{}, tokens: map[string]string{}}
	for _, l := range tenantLabs {
		lab, err := certs.NewLab(certs.LabOptions{SPC: l.spc})
		if err != nil {
			t.Fatal(err)
		}
		d := filepath.Join(e.dir, l.name)
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := lab.WriteDir(d); err != nil {
			t.Fatal(err)
		}
		der, err := x509.MarshalPKIXPublicKey(lab.Leaf.PublicKey)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "sp.pub"), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o644); err != nil {
			t.Fatal(err)
		}
		e.labs[l.name] = lab
	}
	// A tenant whose certificate expired: its customer's calls are refused.
	old, err := certs.NewLab(certs.LabOptions{SPC: "1004", Now: time.Now().Add(-10 * 24 * time.Hour), Days: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(e.dir, "old"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := old.WriteDir(filepath.Join(e.dir, "old")); err != nil {
		t.Fatal(err)
	}
	e.sip, e.api, e.pub = freeAddr(t, "udp"), freeAddr(t, "tcp"), freeAddr(t, "tcp")
	var tokens strings.Builder
	for _, c := range []string{"acme", "beta", "gamma", "delta"} {
		tok := "token-" + c + "-0123456789abcdef"
		sum := sha256.Sum256([]byte(tok))
		e.tokens[c] = tok
		fmt.Fprintf(&tokens, "[[http.token]]\nname = %q\nsha256 = %q\nscopes = [\"sign\"]\ncustomer = %q\n", c+"-api", hex.EncodeToString(sum[:]), c)
	}
	cfg := fmt.Sprintf(`
[log]
level = "info"

[signer]
key = "def/sp.key"
cert = "def/sp-chain.pem"
x5u = %q

[[tenant]]
name = "blue"
key = "blue/sp.key"
cert = "blue/sp-chain.pem"
x5u = %q
%s
[[tenant]]
name = "green"
key = "green/sp.key"
cert = "green/sp-chain.pem"
x5u = %q

[[tenant]]
name = "old"
key = "old/sp.key"
cert = "old/sp-chain.pem"
x5u = "https://certs.example.net/certs/old.pem"

[policy]
default = ""

[[policy.customer]]
name = "delta"
tenant = "old"
sources = ["otg-delta"]

[[policy.customer]]
name = "acme"
tenant = "blue"
numbers = ["12155550121"]
sources = ["otg-acme"]

[[policy.customer]]
name = "beta"
tenant = "green"
sources = ["otg-beta"]

[[policy.customer]]
name = "gamma"
sources = ["otg-gamma"]

[store]
path = "outcomes.db"
spill_path = "spill.jsonl"

[http]
listen = %q
%s
[publish]
listen = %q

[[sip.listen]]
address = %q
transport = "udp"
mode = "sign"
`, x5uOf("sp"), x5uOf("blue"), blueExtra, x5uOf("green"), e.api, tokens.String(), e.pub, e.sip)
	e.cfg = filepath.Join(e.dir, "stirgate.toml")
	if err := os.WriteFile(e.cfg, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return e
}

// serve runs `stirgate serve --config` in this process until stop, which
// returns its exit code once the outcome writer has drained.
func (e *tenantEnv) serve(t *testing.T) (stop func() int, logs *syncBuffer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	logs = &syncBuffer{}
	go func() { done <- run(ctx, []string{"serve", "--config", e.cfg}, io.Discard, logs) }()
	stopped := false
	stop = func() int {
		if stopped {
			return 0
		}
		stopped = true
		cancel()
		return <-done
	}
	t.Cleanup(func() { stop() })
	// Ready: the SIP listener is the last to start and logs when it does.
	for !strings.Contains(logs.String(), "sip redirect listening") {
		select {
		case code := <-done:
			t.Fatalf("serve exited %d:\n%s", code, logs.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
	return stop, logs
}

// published fetches the chain at /certs/<file> of the public listener.
func (e *tenantEnv) published(t *testing.T, file string) []byte {
	t.Helper()
	resp, err := http.Get("http://" + e.pub + "/certs/" + file)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("/certs/%s: %d %s", file, resp.StatusCode, b)
	}
	return b
}

// sippCall runs SIPp's sign_otg scenario calls times at rate for one
// customer trunk and returns every Identity it got. With quit set, SIPp
// places calls until quit is closed, then finishes those in flight.
func sippCall(t *testing.T, target, otg, orig string, calls, rate int, quit <-chan struct{}) (idents []string, ok, failed int) {
	t.Helper()
	sipp, err := exec.LookPath("sipp")
	if err != nil {
		t.Fatal("sipp is not installed (make test-deps installs it): ", err)
	}
	dir := t.TempDir()
	scen, err := filepath.Abs(filepath.Join("testdata", "sipp", "sign_otg.xml"))
	if err != nil {
		t.Fatal(err)
	}
	local := freeAddr(t, "udp")
	_, port, _ := net.SplitHostPort(local)
	args := []string{"-sf", scen, "-i", "127.0.0.1", "-p", port, "-t", "u1", "-nostdin",
		"-key", "otg", otg, "-key", "orig", orig, "-r", strconv.Itoa(rate), "-m", strconv.Itoa(calls),
		"-recv_timeout", "2000", "-timeout", "60s", "-timeout_error",
		"-trace_logs", "-log_file", filepath.Join(dir, "logs.log"),
		"-trace_err", "-error_file", filepath.Join(dir, "errors.log"),
		"-trace_stat", "-stf", filepath.Join(dir, "stat.csv"), "-fd", "1", target}
	cmd := exec.Command(sipp, args...)
	cmd.Dir = dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	var runErr error
	select {
	case runErr = <-exited:
	case <-quit:
		// USR1: SIPp's soft exit: no new calls, those in flight finish.
		_ = cmd.Process.Signal(syscall.SIGUSR1)
		runErr = <-exited
	}
	b, _ := os.ReadFile(filepath.Join(dir, "logs.log"))
	for _, ln := range strings.Split(string(b), "\n") {
		if v, found := strings.CutPrefix(strings.TrimSpace(ln), "IDENTITY "); found {
			idents = append(idents, strings.TrimSpace(v))
		}
	}
	ok, failed = statCounts(t, filepath.Join(dir, "stat.csv"))
	if runErr != nil || failed != 0 {
		eb, _ := os.ReadFile(filepath.Join(dir, "errors.log"))
		t.Errorf("sipp (%s): %v, %d ok, %d failed\n%s\n%s", otg, runErr, ok, failed, tail(string(eb), 2000), tail(out.String(), 2000))
	}
	return idents, ok, failed
}

// statCounts reads the cumulative successful and failed calls from the
// last line of SIPp's statistics file.
func statCounts(t *testing.T, path string) (ok, failed int) {
	t.Helper()
	ok, failed, err := capbench.StatCounts(path)
	if err != nil {
		t.Fatalf("sipp statistics: %v", err)
	}
	return ok, failed
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// httpSign signs through the API as customer's client.
func (e *tenantEnv) httpSign(t *testing.T, customer, orig string) (int, map[string]any) {
	t.Helper()
	body := fmt.Sprintf(`{"signingRequest":{"dest":{"tn":["12155550131"]},"iat":%d,"orig":{"tn":%q}}}`, time.Now().Unix(), orig)
	req, _ := http.NewRequest("POST", "http://"+e.api+"/stir/v1/signing", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+e.tokens[customer])
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, out
}

// claimsOf decodes a PASSporT's x5u (from info) and claims, unverified.
func claimsOf(t *testing.T, ident string) (x5u string, attest string, iat int64) {
	t.Helper()
	tok, params, _ := strings.Cut(ident, ";")
	if i := strings.Index(params, "info=<"); i >= 0 {
		x5u = params[i+6:]
		x5u = x5u[:strings.IndexByte(x5u, '>')]
	}
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWS: %s", ident)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		Attest string `json:"attest"`
		IAT    int64  `json:"iat"`
	}
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	return x5u, c.Attest, c.IAT
}

// verifyWith checks ident with `stirgate verify` against lab's root, the
// chain file preloaded at the token's own x5u, and with secsipidx against
// lab's leaf key; it reports whether both passed (and fails the test when
// they disagree).
func (e *tenantEnv) verifyWith(t *testing.T, ident, lab, chainFile, orig string) bool {
	t.Helper()
	x5u, _, iat := claimsOf(t, ident)
	out, _, _ := cli(t, "verify", "--trust", filepath.Join(e.dir, lab, "root.pem"), "--preload", x5u+"="+chainFile, "--offline",
		"--at", strconv.FormatInt(iat, 10), "--identity", ident,
		"--from", "<sip:+"+strings.TrimPrefix(orig, "+")+"@a.example;user=phone>", "--to", "<sip:+12155550131@b.example;user=phone>")
	r := decodeResult(t, out)
	f := filepath.Join(t.TempDir(), "identity.txt")
	if err := os.WriteFile(f, []byte(ident), 0o644); err != nil {
		t.Fatal(err)
	}
	sx, err := exec.Command("secsipidx", "-check", "-fidentity", f, "-fpubkey", filepath.Join(e.dir, lab, "sp.pub"), "-expire", "600").CombinedOutput()
	sxOK := err == nil
	if (r.Result == "pass") != sxOK {
		t.Errorf("stirgate verify (%s %s) and secsipidx (%v %s) disagree on a token checked with %s's chain", r.Result, r.Error, err, sx, lab)
	}
	return r.Result == "pass" && sxOK
}

type tenantCase struct{ customer, otg, orig, lab, spc, attest, rule string }

// TestTenantsEndToEnd: three customers, three tenants, over SIP (SIPp)
// and HTTP. Each call verifies with its tenant's published chain and
// with no other; the records carry tenant, SPC, customer, rule and
// client, and `stirgate report` reads them back per tenant.
func TestTenantsEndToEnd(t *testing.T) {
	if _, err := exec.LookPath("secsipidx"); err != nil {
		t.Fatal("secsipidx is not installed (make test-deps installs it): ", err)
	}
	e := newTenantEnv(t, "")
	stop, logs := e.serve(t)

	// Each tenant's chain is on the public listener, at /certs/<name>.pem
	// and at its x5u's name; only public material.
	chains := map[string]string{} // lab -> file of the published chain
	for lab, files := range map[string][]string{"def": {"sp.pem", "default.pem"}, "blue": {"blue.pem"}, "green": {"green.pem"}} {
		for _, file := range files {
			b := e.published(t, file)
			if !bytes.Equal(b, e.labs[lab].ChainPEM()) {
				t.Fatalf("/certs/%s is not %s's chain", file, lab)
			}
			if bytes.Contains(b, []byte("PRIVATE")) {
				t.Fatalf("/certs/%s carries a private key", file)
			}
			chains[lab] = filepath.Join(e.dir, "published-"+file)
			if err := os.WriteFile(chains[lab], b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	if resp, err := http.Get("http://" + e.pub + "/certs/nosuch.pem"); err != nil || resp.StatusCode != 404 {
		t.Fatalf("/certs/nosuch.pem: %v %v", resp, err)
	}

	cases := []tenantCase{
		{"acme", "otg-acme", "+12155550121", "blue", "1002", "A", "customer_number"},
		{"beta", "otg-beta", "+12155550122", "green", "1003", "B", "customer"},
		{"gamma", "otg-gamma", "+12155550123", "def", "1001", "B", "customer"},
	}
	signed := 0
	for _, c := range cases {
		t.Run(c.customer, func(t *testing.T) {
			var idents []string
			sip, _, _ := sippCall(t, e.sip, c.otg, c.orig, 2, 10, nil)
			if len(sip) != 2 {
				t.Fatalf("SIPp got %d Identity headers, want 2", len(sip))
			}
			idents = append(idents, sip...)
			code, out := e.httpSign(t, c.customer, c.orig)
			if code != 200 {
				t.Fatalf("HTTP signing: %d %v", code, out)
			}
			idents = append(idents, out["signingResponse"].(map[string]any)["identity"].(string))
			signed += len(idents)
			for _, id := range idents {
				x5u, attest, _ := claimsOf(t, id)
				want := map[string]string{"blue": x5uOf("blue"), "green": x5uOf("green"), "def": x5uOf("sp")}[c.lab]
				if x5u != want || attest != c.attest {
					t.Errorf("x5u %s attest %s, want %s %s", x5u, attest, want, c.attest)
				}
				for _, other := range []string{"def", "blue", "green"} {
					if got := e.verifyWith(t, id, other, chains[other], c.orig); got != (other == c.lab) {
						t.Errorf("%s's call verifies with %s's chain: %v", c.customer, other, got)
					}
				}
			}
		})
	}

	// delta's tenant cannot sign: refused, naming the tenant, never
	// signed with another tenant's certificate.
	code, out := e.httpSign(t, "delta", "+12155550124")
	if code != 500 || out["error"] != "sign_cert_invalid" || !strings.Contains(fmt.Sprint(out["detail"]), `tenant "old"`) {
		t.Errorf("delta: %d %v", code, out)
	}
	if code := stop(); code != 0 {
		t.Fatalf("serve exited %d:\n%s", code, logs.String())
	}

	// The records: one per signature, with the arrangement.
	st, err := outcome.Open(context.Background(), outcome.Options{Path: filepath.Join(e.dir, "outcomes.db")})
	if err != nil {
		t.Fatal(err)
	}
	os, err := st.Query(context.Background(), outcome.Filter{Kind: outcome.KindSign, Result: "signed", Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	// delta's refusal is recorded against whom it was for.
	refused, err := st.Query(context.Background(), outcome.Filter{Kind: outcome.KindSign, Result: "unsigned", Limit: 1000})
	st.Close()
	if err != nil {
		t.Fatal(err)
	}
	if len(refused) != 1 || refused[0].Tenant != "old" || refused[0].Customer != "delta" || refused[0].SPC != "1004" ||
		refused[0].ErrorName != "sign_cert_invalid" || refused[0].Client != "delta-api" {
		t.Errorf("refusal records %+v, want one for tenant old, customer delta", refused)
	}
	if len(os) != signed {
		t.Fatalf("%d sign records, want %d", len(os), signed)
	}
	byCustomer := map[string]int{}
	for _, o := range os {
		var want *tenantCase
		for i := range cases {
			if cases[i].customer == o.Customer {
				want = &cases[i]
			}
		}
		tenant := map[string]string{"def": "default", "blue": "blue", "green": "green"}
		if want == nil || o.Tenant != tenant[want.lab] || o.SPC != want.spc || o.Rule != want.rule || o.Attest != want.attest || o.Result != "signed" {
			t.Errorf("record %+v", o)
			continue
		}
		if (o.Source == outcome.SourceHTTP) != (o.Client == want.customer+"-api") {
			t.Errorf("record client %q from %s", o.Client, o.Source)
		}
		byCustomer[o.Customer]++
	}
	for _, c := range cases {
		if byCustomer[c.customer] != 3 {
			t.Errorf("%s: %d records, want 3", c.customer, byCustomer[c.customer])
		}
	}

	// stirgate report --by tenant: volume and attestation mix per tenant.
	csvOut, stderr, code := cli(t, "report", "--config", e.cfg, "--by", "tenant", "--format", "csv")
	if code != 0 {
		t.Fatalf("report --by tenant: %d %s", code, stderr)
	}
	for _, want := range []string{"blue,3,3,0,3,0,0,,0", "green,3,3,0,0,3,0,,0", "default,3,3,0,0,3,0,,0"} {
		if !strings.Contains(csvOut, want+"\n") {
			t.Errorf("report --by tenant lacks %q:\n%s", want, csvOut)
		}
	}
	recs, stderr, code := cli(t, "report", "--config", e.cfg, "--records", "--tenant", "blue")
	if code != 0 {
		t.Fatalf("report --records: %d %s", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(recs), "\n")
	if len(lines) != 4 || lines[0] != strings.Join(recordsCSVHeader, ",") {
		t.Fatalf("records:\n%s", recs)
	}
	for _, ln := range lines[1:] {
		f := strings.Split(ln, ",")
		if f[3] != "blue" || f[4] != "1002" || f[5] != "acme" || f[6] != "customer_number" {
			t.Errorf("record row %s", ln)
		}
	}
}
