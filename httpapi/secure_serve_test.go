package httpapi

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestServeSafeByDefault runs the real `stirgate serve` over TLS with the
// safe layout and attacks it as the security review did: before the fix
// the one listener served signing to anyone, and "attest":"A" (HTTP) or
// "Attestation: A" (SIP) was signed A whatever the policy said.
func TestServeSafeByDefault(t *testing.T) {
	bin := stirgateBin(t)
	dir := t.TempDir()
	pub, api := freeTCP(t), freeTCP(t)
	sipAddr := freeUDP(t)
	cfg := fmt.Sprintf(`
[lab]
dir = "lab"
listen = %q

[http]
listen = %q

[[http.token]]
name = "pbx1"
sha256 = %q
scopes = ["sign", "verify"]
customer = "acme"

[[http.token]]
name = "anon"
sha256 = %q
scopes = ["sign"]

[[http.token]]
name = "noc"
sha256 = %q
scopes = ["read"]

[policy]
default = ""

[[policy.customer]]
name = "acme"
numbers = ["12155550121"]

[[policy.customer]]
name = "trunk"
sources = ["trunk-b"]

[store]
path = "outcomes.db"

[sip]
allow = ["127.0.0.1"]
attestation_indicator = true
unsigned = 403
reason = true

[[sip.listen]]
address = %q
transport = "udp"
mode = "sign"
`, pub, api, HashToken("tok-pbx"), HashToken("tok-anon"), HashToken("tok-noc"), sipAddr)
	cfgPath := filepath.Join(dir, "stirgate.toml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "serve", "--config", cfgPath)
	logf, err := os.Create(filepath.Join(dir, "serve.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("serve output:\n%s", b)
		}
	}()

	// Ready when the API answers /readyz over TLS (the lab certificate).
	var client *http.Client
	for deadline := time.Now().Add(30 * time.Second); client == nil; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("serve did not come up")
		}
		pemBytes, err := os.ReadFile(filepath.Join(dir, "lab", "tls.pem"))
		if err != nil {
			continue
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(pemBytes)
		c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
		if r, err := c.Get("https://" + api + "/readyz"); err == nil {
			r.Body.Close()
			if r.StatusCode == 200 {
				client = c
			}
		}
	}
	do := func(method, base, path, token, body string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(method, "https://"+base+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		r, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Body.Close()
		b, _ := io.ReadAll(r.Body)
		return r.StatusCode, string(b)
	}
	signA := func(orig string) string {
		return `{"signingRequest":{"attest":"A","dest":{"tn":["12155550131"]},"orig":{"tn":"` + orig + `"}}}`
	}

	// The public listener: certificates and /healthz, nothing else.
	for path, want := range map[string]int{
		"/certs/sp.pem": 200, "/healthz": 200,
		"/stir/v1/signing": 404, "/stir/v1/verification": 404, "/outcomes": 404, "/dashboard": 404, "/metrics": 404, "/readyz": 404,
	} {
		method := "GET"
		if strings.HasPrefix(path, "/stir/") {
			method = "POST"
		}
		if code, body := do(method, pub, path, "tok-pbx", signA("12155550121")); code != want {
			t.Errorf("public %s %s: %d, want %d: %s", method, path, code, want, body)
		}
	}

	// The API: no token, a wrong token, a token without the scope.
	if code, body := do("POST", api, "/stir/v1/signing", "", signA("12155550121")); code != 401 || !strings.Contains(body, `"unauthorized"`) {
		t.Errorf("unauthenticated signing: %d %s", code, body)
	}
	if code, _ := do("POST", api, "/stir/v1/signing", "tok-guess", signA("12155550121")); code != 401 {
		t.Errorf("wrong token: %d", code)
	}
	for _, path := range []string{"/outcomes", "/dashboard", "/metrics"} {
		if code, _ := do("GET", api, path, "", ""); code != 401 {
			t.Errorf("%s without a token: %d", path, code)
		}
		if code, _ := do("GET", api, path, "tok-pbx", ""); code != 403 {
			t.Errorf("%s with a sign token: %d", path, code)
		}
	}

	// Policy decides: an unknown source asking A is refused (default ""),
	// with a policy exception.
	code, body := do("POST", api, "/stir/v1/signing", "tok-anon", signA("12155550199"))
	if code != 403 || !strings.Contains(body, `"policyException":{"messageId":"POL4050"`) || !strings.Contains(body, `"sign_not_allowed"`) {
		t.Errorf("unknown source asking A: %d %s", code, body)
	}
	// The customer asking A for a number it does not own gets B.
	code, body = do("POST", api, "/stir/v1/signing", "tok-pbx", signA("12155550199"))
	var sr SigningResponse
	if code != 200 || json.Unmarshal([]byte(body), &sr) != nil || sr.SigningResponse.Attest != "B" {
		t.Fatalf("customer granted B asking A: %d %s", code, body)
	}
	// ...and it verifies B through the public listener's x5u.
	vb, _ := json.Marshal(map[string]any{"verificationRequest": map[string]any{
		"from": map[string]string{"tn": "12155550199"}, "to": map[string][]string{"tn": {"12155550131"}},
		"identity": sr.SigningResponse.Identity, "time": time.Now().Unix()}})
	code, body = do("POST", api, "/stir/v1/verification", "tok-pbx", string(vb))
	if code != 200 || !strings.Contains(body, `"verstat":"TN-Validation-Passed","attest":"B"`) {
		t.Errorf("verification: %d %s", code, body)
	}
	if !strings.Contains(sr.SigningResponse.Identity, "info=<https://"+pub+"/certs/sp.pem>") {
		t.Errorf("x5u is not the public listener: %s", sr.SigningResponse.Identity)
	}
	// Its own number: A.
	if code, body = do("POST", api, "/stir/v1/signing", "tok-pbx", signA("12155550121")); code != 200 || !strings.Contains(body, `"attest":"A"`) {
		t.Errorf("customer's own number: %d %s", code, body)
	}
	// The read token sees metrics, with the build.
	if code, body = do("GET", api, "/metrics", "tok-noc", ""); code != 200 || !strings.Contains(body, "stirgate_build_info{goversion=") {
		t.Errorf("metrics with read token: %d", code)
	}
	if code, _ = do("GET", api, "/outcomes", "tok-noc", ""); code != 200 {
		t.Errorf("outcomes with read token: %d", code)
	}

	// SIP: "Attestation: A" from a source the policy does not know is not
	// signed; from a trunk granted B it is signed B.
	sip := func(callID, from string) string {
		t.Helper()
		c, err := net.Dial("udp", sipAddr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		msg := "INVITE sip:+12155550131@redirect.example;user=phone SIP/2.0\r\n" +
			"Via: SIP/2.0/UDP " + c.LocalAddr().String() + ";rport;branch=z9hG4bK-" + callID + "\r\n" +
			"Max-Forwards: 70\r\n" +
			"From: " + from + ";tag=a1\r\n" +
			"To: <sip:+12155550131@redirect.example;user=phone>\r\n" +
			"Call-ID: " + callID + "\r\nCSeq: 1 INVITE\r\nAttestation: A\r\nContent-Length: 0\r\n\r\n"
		if _, err := c.Write([]byte(msg)); err != nil {
			t.Fatal(err)
		}
		// UDP: the first answer is the final one (a 302 or the refusal);
		// the deadline only bounds a lost datagram.
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		buf := make([]byte, 8192)
		n, err := c.Read(buf)
		if err != nil {
			t.Fatalf("no SIP answer: %v", err)
		}
		return string(buf[:n])
	}
	resp := sip("sip-unknown", `<sip:+12155550199@pbx.example;user=phone>`)
	if !strings.HasPrefix(resp, "SIP/2.0 403 Forbidden\r\n") || strings.Contains(resp, "\r\nIdentity:") ||
		!strings.Contains(resp, `Warning: 399 stirgate "sign_not_allowed"`) || !strings.Contains(resp, "Reason: SIP;cause=403") {
		t.Errorf("SIP Attestation: A from an unknown source:\n%s", resp)
	}
	resp = sip("sip-trunk", `<sip:+12155550199@pbx.example;user=phone>;otg=trunk-b`)
	if !strings.Contains(resp, "\r\nIdentity: ") || !strings.Contains(resp, "P-Attestation-Indicator: B\r\n") {
		t.Errorf("SIP Attestation: A from a trunk granted B:\n%s", resp)
	}
}

// TestServeRefusesExposedAPI: serve (like config check) refuses to start
// an API on a non-loopback address without tokens, naming the key.
func TestServeRefusesExposedAPI(t *testing.T) {
	bin := stirgateBin(t)
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "stirgate.toml")
	_, port, _ := net.SplitHostPort(freeTCP(t))
	if err := os.WriteFile(cfgPath, []byte("[lab]\ndir = \"lab\"\n\n[http]\nlisten = \"0.0.0.0:"+port+"\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"serve", "--config", cfgPath}, {"config", "check", cfgPath}} {
		out, err := exec.Command(bin, args...).CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), "http.listen") || !strings.Contains(string(out), "[[http.token]]") {
			t.Errorf("%s: %v\n%s", args[0], err, out)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "lab")); err == nil {
		t.Error("a refused config generated the lab")
	}
}

func freeUDP(t *testing.T) string {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().String()
}
