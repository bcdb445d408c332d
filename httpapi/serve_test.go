package httpapi

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stirgate/stirgate/outcome/spool"
)

// TestServe runs `stirgate serve --config` as operators do and drives it
// over HTTPS: signing, verification through its own x5u endpoint, metrics,
// outcome pages, SIGHUP reloads (good and broken) and SIGTERM.

func stirgateBin(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("STIRGATE_BIN"); p != "" {
		return p
	}
	out := filepath.Join(t.TempDir(), "stirgate")
	if b, err := exec.Command("go", "build", "-o", out, "../cmd/stirgate").CombinedOutput(); err != nil {
		t.Fatalf("building stirgate: %v\n%s", err, b)
	}
	return out
}

func freeTCP(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

const serveConfig = `
[lab]
dir = "lab"
listen = %q

[policy]
default = "B"

[store]
path = "outcomes.db"
system = "node-t"
spool_dir = "spool"

[http]
cert_max_age = %q
`

func TestServe(t *testing.T) {
	bin := stirgateBin(t)
	dir := t.TempDir()
	addr := freeTCP(t)
	cfgPath := filepath.Join(dir, "stirgate.toml")
	write := func(body string) {
		if err := os.WriteFile(cfgPath, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(fmt.Sprintf(serveConfig, addr, "24h"))
	cmd := exec.Command(bin, "serve", "--config", cfgPath)
	// A file, not a buffer: the child writes it directly, so reading it
	// races with nothing.
	logf, err := os.Create(filepath.Join(dir, "serve.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	logs := func() string { b, _ := os.ReadFile(logf.Name()); return string(b) }
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		_ = cmd.Process.Kill()
		if t.Failed() {
			t.Logf("serve output:\n%s", logs())
		}
	}()

	base := "https://" + addr
	var client *http.Client
	deadline := time.Now().Add(20 * time.Second)
	for client == nil {
		if time.Now().After(deadline) {
			t.Fatal("serve did not come up")
		}
		time.Sleep(100 * time.Millisecond)
		pemBytes, err := os.ReadFile(filepath.Join(dir, "lab", "tls.pem"))
		if err != nil {
			continue
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(pemBytes)
		c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
		if r, err := c.Get(base + "/readyz"); err == nil {
			r.Body.Close()
			if r.StatusCode == 200 {
				client = c
			}
		}
	}
	get := func(path string) (*http.Response, string) {
		t.Helper()
		r, err := client.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Body.Close()
		b, _ := io.ReadAll(r.Body)
		return r, string(b)
	}
	post := func(path, body string) string {
		t.Helper()
		r, err := client.Post(base+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer r.Body.Close()
		b, _ := io.ReadAll(r.Body)
		if r.StatusCode != 200 {
			t.Fatalf("%s: %d %s", path, r.StatusCode, b)
		}
		return string(b)
	}

	// Sign, then verify: the verifier fetches the chain from this very
	// server's /certs/sp.pem over TLS.
	var sr SigningResponse
	if err := json.Unmarshal([]byte(post("/stir/v1/signing", `{"signingRequest":{"dest":{"tn":["12155550131"]},"orig":{"tn":"12155550121"}}}`)), &sr); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(sr.SigningResponse.Identity, "info=<"+base+"/certs/sp.pem>") {
		t.Fatalf("identity x5u is not this server: %s", sr.SigningResponse.Identity)
	}
	vb, _ := json.Marshal(map[string]any{"verificationRequest": map[string]any{
		"from": map[string]string{"tn": "12155550121"}, "to": map[string][]string{"tn": {"12155550131"}},
		"identity": sr.SigningResponse.Identity, "time": time.Now().Unix()}})
	var vr VerificationResponse
	if err := json.Unmarshal([]byte(post("/stir/v1/verification", string(vb))), &vr); err != nil {
		t.Fatal(err)
	}
	if vr.VerificationResponse.Verstat != "TN-Validation-Passed" || vr.VerificationResponse.Attest != "B" {
		t.Fatalf("verification %+v", vr.VerificationResponse)
	}
	_, m := get("/metrics")
	for _, want := range []string{
		`stirgate_x5u_fetch_duration_seconds_count{result="ok"} 1`,
		`stirgate_requests_total{error="",op="verify",result="pass",surface="http"} 1`,
		`stirgate_signing_cert_not_after_timestamp_seconds{`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if r, body := get("/outcomes"); r.StatusCode != 200 || !strings.Contains(body, `"outcomes"`) {
		t.Errorf("/outcomes: %d %s", r.StatusCode, body)
	}
	// Every surface records: the HTTP signing and verification above, and
	// a Kamailio worker's spooled check, which serve collects.
	sw, err := spool.Open(spool.Options{Dir: filepath.Join(dir, "spool"), Prefix: "kamailio-test"})
	if err != nil {
		t.Fatal(err)
	}
	sw.Record(spool.Record{Time: time.Now().UTC(), System: "kam1", UniqueID: "k-1", Kind: "verify", Direction: "inbound",
		Result: "fail", ErrorName: "stale_iat", Source: "kamailio"})
	if err := sw.Close(); err != nil {
		t.Fatal(err)
	}
	sources := func() string {
		_, body := get("/outcomes")
		var res struct {
			Outcomes []struct{ Kind, Source, System string } `json:"outcomes"`
		}
		json.Unmarshal([]byte(body), &res)
		var got []string
		for _, o := range res.Outcomes {
			got = append(got, o.Kind+"/"+o.Source+"/"+o.System)
		}
		sort.Strings(got)
		return strings.Join(got, " ")
	}
	for end := time.Now().Add(15 * time.Second); sources() != "sign/http/node-t verify/http/node-t verify/kamailio/kam1"; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("recorded outcomes: %s", sources())
		}
	}
	if left, _ := os.ReadDir(filepath.Join(dir, "spool")); len(left) != 0 {
		t.Errorf("spool not emptied: %v", left)
	}
	if r, _ := get("/certs/sp.pem"); r.Header.Get("Cache-Control") != "public, max-age=86400" {
		t.Fatalf("Cache-Control %q", r.Header.Get("Cache-Control"))
	}

	// A good reload takes effect; a broken one keeps the running config.
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
			if ok() {
				return
			}
		}
		t.Fatalf("timed out waiting for %s", what)
	}
	write(fmt.Sprintf(serveConfig, addr, "48h"))
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor("reload", func() bool {
		r, _ := get("/certs/sp.pem")
		return r.Header.Get("Cache-Control") == "public, max-age=172800"
	})
	write("[http]\ncert_max_age = 5\n")
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor("failed reload counted", func() bool {
		_, m := get("/metrics")
		return strings.Contains(m, `stirgate_reloads_total{result="error"} 1`)
	})
	if r, _ := get("/certs/sp.pem"); r.Header.Get("Cache-Control") != "public, max-age=172800" {
		t.Fatalf("broken reload changed the config: %q", r.Header.Get("Cache-Control"))
	}
	if _, m := get("/metrics"); !strings.Contains(m, `stirgate_reloads_total{result="ok"} 1`) {
		t.Error("good reload not counted")
	}

	// SIGTERM: a clean exit.
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("serve exited with %v", err)
		}
	case <-ctx.Done():
		t.Fatal("serve did not stop on SIGTERM")
	}
	if l := logs(); !strings.Contains(l, "reloaded") || !strings.Contains(l, "reload failed") {
		t.Errorf("reloads not logged:\n%s", l)
	}
}
