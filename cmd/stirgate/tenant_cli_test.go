package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stirgate/stirgate/core/certs"
)

// TestSignAsSIP: `stirgate sign --config --from --to --source` signs as
// the SIP redirect would for a request from that address (or the From's
// otg): the policy decides, the JSON names tenant, SPC, customer and rule,
// and a requested level may only lower the grant.
func TestSignAsSIP(t *testing.T) {
	e := newTenantEnv(t, "")
	from := func(tn, otg string) string {
		h := "<sip:+" + tn + "@a.example;user=phone>;tag=1"
		if otg != "" {
			h += ";otg=" + otg
		}
		return h
	}
	for _, tc := range []struct {
		name, from, source, attest       string
		tenant, spc, customer, rule, got string
	}{
		{"otg of a customer", from("12155550121", "otg-acme"), "192.0.2.1", "", "blue", "1002", "acme", "customer_number", "A"},
		{"source is the otg", from("12155550199", ""), "otg-beta", "", "green", "1003", "beta", "customer", "B"},
		{"asks above the grant", from("12155550199", "otg-acme"), "192.0.2.1", "A", "blue", "1002", "acme", "customer", "B"},
		{"asks below the grant", from("12155550121", "otg-acme"), "192.0.2.1", "C", "blue", "1002", "acme", "requested_lower", "C"},
		{"default tenant", from("12155550199", "otg-gamma"), "192.0.2.1", "", "default", "1001", "gamma", "customer", "B"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := []string{"sign", "--config", e.cfg, "--from", tc.from, "--to", "<sip:+12155550131@b.example>", "--source", tc.source}
			if tc.attest != "" {
				args = append(args, "--attest", tc.attest)
			}
			out, stderr, code := cli(t, args...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			var r map[string]any
			if err := json.Unmarshal([]byte(out), &r); err != nil {
				t.Fatalf("%v: %s", err, out)
			}
			if r["tenant"] != tc.tenant || r["spc"] != tc.spc || r["customer"] != tc.customer || r["rule"] != tc.rule || r["attest"] != tc.got {
				t.Errorf("got %v", r)
			}
		})
	}
	// No customer, no gateway, no default attestation: refused as the SIP
	// redirect would refuse it.
	_, stderr, code := cli(t, "sign", "--config", e.cfg, "--from", from("12155550199", ""), "--to", "<sip:+12155550131@b.example>", "--source", "203.0.113.5")
	if code == 0 || !strings.Contains(stderr, "sign_not_allowed") {
		t.Errorf("unknown source: exit %d %s", code, stderr)
	}
}

// TestConfigCheckTenants: config check fails for any tenant whose
// credential cannot sign now, naming it, and for a next credential that
// cannot sign at its activation; it passes for a sound rotation.
func TestConfigCheckTenants(t *testing.T) {
	e := newTenantEnv(t, "")
	if out, stderr, code := cli(t, "config", "check", e.cfg); code != 2 || !strings.Contains(stderr, `tenant "old" cert: certificate expired`) || strings.Contains(stderr, `tenant "blue"`) {
		t.Fatalf("expired tenant: exit %d %s %s", code, out, stderr)
	}
	// Without the expired tenant and its customer, the file is sound.
	b, err := os.ReadFile(e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	sound := strings.Replace(strings.Replace(string(b), "[[tenant]]\nname = \"old\"\nkey = \"old/sp.key\"\ncert = \"old/sp-chain.pem\"\nx5u = \"https://certs.example.net/certs/old.pem\"\n", "", 1),
		"[[policy.customer]]\nname = \"delta\"\ntenant = \"old\"\nsources = [\"otg-delta\"]\n", "", 1)
	sound = strings.Replace(sound, "customer = \"delta\"", "customer = \"gamma\"", 1)
	write := func(text string) string {
		p := filepath.Join(e.dir, "check.toml")
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	if _, stderr, code := cli(t, "config", "check", write(sound)); code != 0 {
		t.Fatalf("sound config: exit %d %s", code, stderr)
	}
	// A next credential that has expired by its activation instant.
	old, err := certs.NewLab(certs.LabOptions{SPC: "1002", Now: time.Now().Add(-10 * 24 * time.Hour), Days: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(e.dir, "blue-old"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := old.WriteDir(filepath.Join(e.dir, "blue-old")); err != nil {
		t.Fatal(err)
	}
	rot := func(dir string, at time.Time) string {
		return strings.Replace(sound, "x5u = \""+x5uOf("blue")+"\"\n", "x5u = \""+x5uOf("blue")+"\"\nnext_key = \""+dir+"/sp.key\"\nnext_cert = \""+dir+
			"/sp-chain.pem\"\nnext_x5u = \""+x5uOf("blue-next")+"\"\nactivate = "+at.UTC().Format(time.RFC3339)+"\n", 1)
	}
	if _, stderr, code := cli(t, "config", "check", write(rot("blue-old", time.Now().Add(time.Hour)))); code != 2 || !strings.Contains(stderr, "cannot sign at its activation") {
		t.Fatalf("next expired by its activation: exit %d %s", code, stderr)
	}
	// Active already and expired: it must sign now and cannot.
	if _, stderr, code := cli(t, "config", "check", write(rot("blue-old", time.Now().Add(-time.Hour)))); code != 2 || !strings.Contains(stderr, `tenant "blue" cert (next, active since`) {
		t.Fatalf("active next expired: exit %d %s", code, stderr)
	}
	if _, stderr, code := cli(t, "config", "check", write(rot("blue2", time.Now().Add(time.Hour)))); code != 0 {
		t.Fatalf("sound rotation: exit %d %s", code, stderr)
	}
	// Green's certificate listed in a [verifier] CRL: it cannot sign.
	crl, err := e.labs["green"].Revoke(e.labs["green"].Leaf)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(e.dir, "green.crl"), crl, 0o644); err != nil {
		t.Fatal(err)
	}
	withCRL := sound + "\n[verifier]\ntrust = [\"def/root.pem\", \"green/root.pem\"]\ncrl = [\"green.crl\"]\n"
	if _, stderr, code := cli(t, "config", "check", write(withCRL)); code != 2 || !strings.Contains(stderr, `tenant "green" cert: cert_revoked`) {
		t.Fatalf("revoked tenant: exit %d %s", code, stderr)
	}
}
