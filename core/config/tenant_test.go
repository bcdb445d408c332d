package config

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stirgate/stirgate/core"
	"github.com/stirgate/stirgate/core/certs"
	"github.com/stirgate/stirgate/core/stir"
)

var tenantNow = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

// writeTenantLabs writes one lab PKI per name into dir/<name>/ (SPCs
// 1001, 1002, ...) and returns dir.
func writeTenantLabs(t *testing.T, names ...string) string {
	t.Helper()
	dir := t.TempDir()
	for i, n := range names {
		lab, err := certs.NewLab(certs.LabOptions{SPC: strconv.Itoa(1001 + i), Now: tenantNow.Add(-time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Join(dir, n), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := lab.WriteDir(filepath.Join(dir, n)); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func tenantTOML(name string) string {
	return "[[tenant]]\nname = \"" + name + "\"\nkey = \"" + name + "/sp.key\"\ncert = \"" + name + "/sp-chain.pem\"\nx5u = \"https://cr.example.net/" + name + ".pem\"\n"
}

const signerTOML = "[signer]\nkey = \"def/sp.key\"\ncert = \"def/sp-chain.pem\"\nx5u = \"https://cr.example.net/def.pem\"\n"

// TestTenantsBuild: [signer] is the default tenant, each [[tenant]] signs
// its customers' calls with its own certificate and SPC.
func TestTenantsBuild(t *testing.T) {
	dir := writeTenantLabs(t, "def", "blue", "green")
	text := signerTOML + tenantTOML("blue") + tenantTOML("green") + `
[policy]
default = "C"
[[policy.customer]]
name = "acme"
tenant = "blue"
sources = ["192.0.2.1"]
[[policy.customer]]
name = "beta"
tenant = "green"
sources = ["192.0.2.2"]
[[policy.customer]]
name = "gamma"
sources = ["192.0.2.3"]
`
	cfg, err := Parse([]byte(text), filepath.Join(dir, "stirgate.toml"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := cfg.NewSigner(func() time.Time { return tenantNow }, nil)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(s.Tenants()); n != 3 {
		t.Fatalf("%d tenants", n)
	}
	for src, want := range map[string][3]string{
		"192.0.2.1": {"blue", "1002", "blue"}, "192.0.2.2": {"green", "1003", "green"}, "192.0.2.3": {"default", "1001", "def"}, "203.0.113.1": {"default", "1001", "def"},
	} {
		res, err := s.Sign(context.Background(), core.SignRequest{Orig: "12155550121", Dest: []string{"12155550131"}, Source: src})
		if err != nil {
			t.Fatal(err)
		}
		if res.Tenant != want[0] || res.SPC != want[1] || res.X5U != "https://cr.example.net/"+want[2]+".pem" {
			t.Errorf("%s: tenant %s spc %s x5u %s, want %v", src, res.Tenant, res.SPC, res.X5U, want)
		}
	}
}

// TestTenantConfigRefusals: every way a tenant configuration cannot work
// is refused when the file is read or the signer built, never at the
// first call.
func TestTenantConfigRefusals(t *testing.T) {
	dir := writeTenantLabs(t, "def", "blue", "green")
	cust := func(tenant string) string {
		return "[[policy.customer]]\nname = \"acme\"\ntenant = \"" + tenant + "\"\n"
	}
	for name, tc := range map[string]struct {
		text string
		want string // in the error
	}{
		"default twice":         {signerTOML + tenantTOML("default"), `tenant "default": [signer] is the default tenant`},
		"unknown tenant":        {signerTOML + tenantTOML("blue") + cust("red"), `tenant "red" is no [[tenant]]`},
		"explicit default none": {tenantTOML("blue") + cust("default"), `tenant "default" is no [[tenant]]`},
		"defined twice":         {tenantTOML("blue") + tenantTOML("blue"), "defined twice"},
		"no name":               {strings.Replace(tenantTOML("blue"), `name = "blue"`, `name = ""`, 1), "tenant[0].name"},
		"slash in name":         {strings.Replace(tenantTOML("blue"), `name = "blue"`, `name = "a/b"`, 1), "tenant[0].name"},
		"no key":                {strings.Replace(tenantTOML("blue"), "key = \"blue/sp.key\"\n", "", 1), "key, cert and x5u are required"},
		"relative x5u":          {strings.Replace(tenantTOML("blue"), "https://cr.example.net/blue.pem", "blue.pem", 1), "not an absolute URL"},
		"bad origid":            {tenantTOML("blue") + "origid = \"nope\"\n", "not a UUID"},
		"next without activate": {tenantTOML("blue") + "next_key = \"green/sp.key\"\nnext_cert = \"green/sp-chain.pem\"\nnext_x5u = \"https://cr.example.net/g.pem\"\n", "go together"},
		"next without current":  {"[signer]\nnext_key = \"green/sp.key\"\nnext_cert = \"green/sp-chain.pem\"\nnext_x5u = \"https://cr.example.net/g.pem\"\nactivate = 2026-12-01T00:00:00Z\n", "needs a current one"},
		"next same x5u":         {tenantTOML("blue") + "next_key = \"green/sp.key\"\nnext_cert = \"green/sp-chain.pem\"\nnext_x5u = \"https://cr.example.net/blue.pem\"\nactivate = 2026-12-01T00:00:00Z\n", "the same URL as x5u"},
		"unknown key":           {tenantTOML("blue") + "keys = \"x\"\n", "unknown key"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Parse([]byte(tc.text), filepath.Join(dir, "stirgate.toml"))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("%v, want %q", err, tc.want)
			}
		})
	}
	// Parsed, but the credentials do not load.
	for name, tc := range map[string]struct {
		text string
		want string
	}{
		"key mismatch": {strings.Replace(tenantTOML("blue"), "blue/sp.key", "green/sp.key", 1), `tenant "blue"`},
		"missing cert": {strings.Replace(tenantTOML("blue"), "blue/sp-chain.pem", "nosuch.pem", 1), `tenant "blue" cert`},
		"next mismatch": {tenantTOML("blue") + "next_key = \"def/sp.key\"\nnext_cert = \"green/sp-chain.pem\"\nnext_x5u = \"https://cr.example.net/g.pem\"\nactivate = 2026-12-01T00:00:00Z\n",
			`tenant "blue" next`},
	} {
		t.Run(name, func(t *testing.T) {
			cfg, err := Parse([]byte(tc.text), filepath.Join(dir, "stirgate.toml"))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := cfg.NewSigner(func() time.Time { return tenantNow }, nil); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("%v, want %q", err, tc.want)
			}
		})
	}
	// No default credential: a customer without a tenant is accepted in
	// the file, and its calls are refused (not signed by blue).
	cfg, err := Parse([]byte(tenantTOML("blue")+"[[policy.customer]]\nname = \"gamma\"\nsources = [\"192.0.2.3\"]\n"), filepath.Join(dir, "stirgate.toml"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := cfg.NewSigner(func() time.Time { return tenantNow }, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Sign(context.Background(), core.SignRequest{Orig: "12155550121", Dest: []string{"12155550131"}, Source: "192.0.2.3"})
	var se *stir.Error
	if !errors.As(err, &se) || se.Name != stir.ErrSignCertInvalid.Name || !strings.Contains(err.Error(), `tenant "default"`) {
		t.Fatalf("customer without tenant and no default: %v", err)
	}
}

// TestTenantRotationConfig: next_* and activate build a rotation; the
// signature's time picks the credential.
func TestTenantRotationConfig(t *testing.T) {
	dir := writeTenantLabs(t, "def", "blue", "green")
	at := tenantNow.Add(time.Hour)
	text := tenantTOML("blue") + "next_key = \"green/sp.key\"\nnext_cert = \"green/sp-chain.pem\"\nnext_x5u = \"https://cr.example.net/blue-2.pem\"\nactivate = " +
		at.Format(time.RFC3339) + "\n" + signerTOML + "[policy]\n[[policy.customer]]\nname = \"acme\"\ntenant = \"blue\"\nsources = [\"192.0.2.1\"]\n"
	cfg, err := Parse([]byte(text), filepath.Join(dir, "stirgate.toml"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := cfg.NewSigner(func() time.Time { return tenantNow }, nil)
	if err != nil {
		t.Fatal(err)
	}
	for when, want := range map[time.Time]string{tenantNow: "https://cr.example.net/blue.pem", at.Add(-time.Second): "https://cr.example.net/blue.pem", at: "https://cr.example.net/blue-2.pem"} {
		res, err := s.Sign(context.Background(), core.SignRequest{Orig: "12155550121", Dest: []string{"12155550131"}, Source: "192.0.2.1", At: when})
		if err != nil {
			t.Fatal(err)
		}
		if res.X5U != want || res.Tenant != "blue" {
			t.Errorf("at %s: %s %s, want %s", when, res.Tenant, res.X5U, want)
		}
	}
}

// TestTenantRevoked: with [verifier] CRLs, a tenant whose own certificate
// is listed is refused (sign_cert_invalid naming it); the others sign.
func TestTenantRevoked(t *testing.T) {
	dir := writeTenantLabs(t, "def")
	lab, err := certs.NewLab(certs.LabOptions{SPC: "1002", Now: tenantNow.Add(-time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "blue"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := lab.WriteDir(filepath.Join(dir, "blue")); err != nil {
		t.Fatal(err)
	}
	crlPEM, err := lab.Revoke(lab.Leaf)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "blue-revoked.crl"), crlPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	text := signerTOML + tenantTOML("blue") + `
[policy]
[[policy.customer]]
name = "acme"
tenant = "blue"
sources = ["192.0.2.1"]
[[policy.customer]]
name = "gamma"
sources = ["192.0.2.3"]
[verifier]
trust = ["def/root.pem", "blue/root.pem"]
crl = ["blue-revoked.crl"]
`
	cfg, err := Parse([]byte(text), filepath.Join(dir, "stirgate.toml"))
	if err != nil {
		t.Fatal(err)
	}
	svc, err := cfg.Build(BuildOptions{Now: func() time.Time { return tenantNow }})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	sign := func(src string) (*core.SignResult, error) {
		return svc.Signer.Sign(context.Background(), core.SignRequest{Orig: "12155550121", Dest: []string{"12155550131"}, Source: src})
	}
	_, err = sign("192.0.2.1")
	var se *stir.Error
	if !errors.As(err, &se) || se.Name != stir.ErrSignCertInvalid.Name || !strings.Contains(err.Error(), `tenant "blue": certificate revoked`) {
		t.Fatalf("revoked tenant: %v", err)
	}
	if res, err := sign("192.0.2.3"); err != nil || res.Tenant != "default" {
		t.Fatalf("default tenant: %v %+v", err, res)
	}
}
