package main

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stirgate/stirgate/core/certs"
	"github.com/stirgate/stirgate/internal/testlog"
)

// TestConfigCheckCannotSign: config check fails for a signing credential
// that is expired (or not yet valid), which a service would load and then
// fail every signature with.
func TestConfigCheckCannotSign(t *testing.T) {
	for name, at := range map[string]time.Time{
		"expired":       time.Now().Add(-10 * 24 * time.Hour),
		"not yet valid": time.Now().Add(10 * 24 * time.Hour),
	} {
		t.Run(name, func(t *testing.T) {
			lab, err := certs.NewLab(certs.LabOptions{Now: at, Days: 1})
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			if err := lab.WriteDir(dir); err != nil {
				t.Fatal(err)
			}
			f := filepath.Join(dir, "stirgate.toml")
			os.WriteFile(f, []byte("[signer]\nkey = \"sp.key\"\ncert = \"sp-chain.pem\"\nx5u = \"https://certs.example.net/sp.pem\"\n[policy]\ndefault = \"C\"\n"), 0o644)
			_, stderr, code := cli(t, "config", "check", f)
			if code != 2 || !strings.Contains(stderr, "signer.cert: ") {
				t.Fatalf("exit %d, stderr %q", code, stderr)
			}
		})
	}
}

// TestVerifyFetchesCRL: `stirgate verify --config` with [verifier]
// crl_urls fetches the STI-PA CRL over TLS from a loopback server, keeps
// it in crl_dir, and a later run with the server down uses that copy; a
// run with neither answers 437 crl_unusable (crl_stale = "reject").
func TestVerifyFetchesCRL(t *testing.T) {
	lab, err := certs.NewLab(certs.LabOptions{})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := lab.WriteDir(dir); err != nil {
		t.Fatal(err)
	}
	revoked, err := lab.Revoke(lab.Leaf)
	if err != nil {
		t.Fatal(err)
	}
	var hits atomic.Int32
	srv := testlog.NewTLSServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Write(revoked)
	}))
	os.WriteFile(filepath.Join(dir, "tls-ca.pem"), certs.EncodePEM(srv.Certificate()), 0o644)
	conf := func(name, crlDir string) string {
		f := filepath.Join(dir, name)
		os.WriteFile(f, []byte(`[verifier]
trust = ["root.pem"]
crl_urls = ["`+srv.URL+`/sti-pa.crl"]
crl_signers = ["crl-signer.pem"]
crl_dir = "`+crlDir+`"
[x5u]
lab_hosts = ["`+strings.TrimPrefix(srv.URL, "https://")+`"]
ca_file = "tls-ca.pem"
timeout = "30s"
`), 0o644)
		return f
	}
	id, _, code := cli(t, "sign", "--key", filepath.Join(dir, "sp.key"), "--cert", filepath.Join(dir, "sp-chain.pem"),
		"--x5u", labX5U, "--orig", "12155550121", "--dest", "12155550131", "--attest", "A")
	if code != 0 {
		t.Fatal("sign failed")
	}
	verify := func(cfg, want string) {
		t.Helper()
		out, stderr, _ := cli(t, "verify", "--config", cfg, "--preload", labX5U+"="+filepath.Join(dir, "sp-chain.pem"),
			"--identity", strings.TrimSpace(id), "--from", "<sip:+12155550121@a.example>", "--to", "<sip:+12155550131@b.example>")
		r := decodeResult(t, out)
		if r.Error != want || r.SIPCode != 437 {
			t.Fatalf("%s: %+v, want 437 %s\n%s", filepath.Base(cfg), r, want, stderr)
		}
	}
	withDisk := conf("disk.toml", "crl")
	verify(withDisk, "cert_revoked")
	if hits.Load() != 1 {
		t.Fatalf("%d CRL requests, want 1", hits.Load())
	}
	srv.Close()
	verify(withDisk, "cert_revoked") // the copy on disk, no network
	verify(conf("nodisk.toml", ""), "crl_unusable")
	if hits.Load() != 1 {
		t.Fatalf("%d CRL requests, want 1", hits.Load())
	}
}

// TestVerifyFetchesCRLDP: with crl_from_certs and no crl_urls, `stirgate
// verify --config` fetches the CRL from the distribution point the lab's
// STI-CA certificate names (a loopback TLS server), checks it and answers
// 437 cert_revoked; without crl_from_certs nothing is fetched and the call
// passes (the negative control).
func TestVerifyFetchesCRLDP(t *testing.T) {
	var body atomic.Pointer[[]byte]
	var hits atomic.Int32
	srv := testlog.NewTLSServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if b := body.Load(); b != nil && r.URL.Path == "/sti-pa.crl" {
			w.Write(*b)
			return
		}
		http.NotFound(w, r)
	}))
	lab, err := certs.NewLab(certs.LabOptions{CRLURL: srv.URL + "/sti-pa.crl"})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := lab.WriteDir(dir); err != nil {
		t.Fatal(err)
	}
	revoked, err := lab.Revoke(lab.Leaf)
	if err != nil {
		t.Fatal(err)
	}
	body.Store(&revoked)
	os.WriteFile(filepath.Join(dir, "tls-ca.pem"), certs.EncodePEM(srv.Certificate()), 0o644)
	conf := func(name, extra string) string {
		f := filepath.Join(dir, name)
		os.WriteFile(f, []byte(`[verifier]
trust = ["root.pem"]
crl_signers = ["crl-signer.pem"]
`+extra+`
[x5u]
lab_hosts = ["`+strings.TrimPrefix(srv.URL, "https://")+`"]
ca_file = "tls-ca.pem"
timeout = "30s"
`), 0o644)
		return f
	}
	id, _, code := cli(t, "sign", "--key", filepath.Join(dir, "sp.key"), "--cert", filepath.Join(dir, "sp-chain.pem"),
		"--x5u", labX5U, "--orig", "12155550121", "--dest", "12155550131", "--attest", "A")
	if code != 0 {
		t.Fatal("sign failed")
	}
	verify := func(cfg string) result {
		t.Helper()
		out, _, _ := cli(t, "verify", "--config", cfg, "--preload", labX5U+"="+filepath.Join(dir, "sp-chain.pem"),
			"--identity", strings.TrimSpace(id), "--from", "<sip:+12155550121@a.example>", "--to", "<sip:+12155550131@b.example>")
		return decodeResult(t, out)
	}
	if r := verify(conf("off.toml", "")); r.Result != "pass" || hits.Load() != 0 {
		t.Fatalf("without crl_from_certs: %+v after %d CRL requests; want a pass and none", r, hits.Load())
	}
	if r := verify(conf("dp.toml", "crl_from_certs = true")); r.Error != "cert_revoked" || r.SIPCode != 437 {
		t.Fatalf("with crl_from_certs: %+v, want 437 cert_revoked", r)
	}
	if hits.Load() != 1 {
		t.Fatalf("%d CRL requests, want 1", hits.Load())
	}
}
