package main

import (
	"crypto/x509"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stirgate/stirgate/core/certs"
)

// TestCertKeyAndCSR: the key is private to its owner and never
// overwritten; the request carries the SPC in a TNAuthList, the subject
// asked for, a valid signature by that key, and openssl reads it too.
func TestCertKeyAndCSR(t *testing.T) {
	dir := t.TempDir()
	keyFile, csrFile := filepath.Join(dir, "sp.key"), filepath.Join(dir, "sp.csr")
	if _, stderr, code := certCLI(t, "key", "--out", keyFile); code != exitOK {
		t.Fatalf("cert key: %d %s", code, stderr)
	}
	st, err := os.Stat(keyFile)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v %v, want 0600", st.Mode().Perm(), err)
	}
	before, _ := os.ReadFile(keyFile)
	if _, stderr, code := certCLI(t, "key", "--out", keyFile); code != exitFail || !strings.Contains(stderr, "not overwritten") {
		t.Fatalf("second cert key: %d %s", code, stderr)
	}
	if after, _ := os.ReadFile(keyFile); string(after) != string(before) {
		t.Fatal("the key was overwritten")
	}

	stdout, stderr, code := certCLI(t, "csr", "--key", keyFile, "--spc", "567J", "--subject", `C=US,O=Example\, Inc.`, "--out", csrFile)
	if code != exitOK {
		t.Fatalf("cert csr: %d %s", code, stderr)
	}
	if !strings.Contains(stdout, "SHAKEN 567J") {
		t.Fatalf("stdout %q", stdout)
	}
	data, _ := os.ReadFile(csrFile)
	blk, _ := pem.Decode(data)
	if blk == nil || blk.Type != "CERTIFICATE REQUEST" {
		t.Fatalf("not a PEM request:\n%s", data)
	}
	csr, err := x509.ParseCertificateRequest(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if err := csr.CheckSignature(); err != nil {
		t.Fatal(err)
	}
	if csr.Subject.Organization[0] != "Example, Inc." || csr.Subject.CommonName != "SHAKEN 567J" {
		t.Fatalf("subject %v", csr.Subject)
	}
	key, _ := certs.ParsePrivateKey(before)
	if !key.PublicKey.Equal(csr.PublicKey) {
		t.Fatal("request is for another key")
	}
	spc := ""
	for _, e := range csr.Extensions {
		if e.Id.Equal(certs.OIDTNAuthList) {
			l, err := certs.ParseTNAuthList(e.Value)
			if err != nil {
				t.Fatal(err)
			}
			spc = l.SPC()
		}
	}
	if spc != "567J" {
		t.Fatalf("TNAuthList SPC %q", spc)
	}
	// An independent reader: openssl verifies the request's signature.
	if openssl, err := exec.LookPath("openssl"); err == nil {
		if out, err := exec.Command(openssl, "req", "-in", csrFile, "-noout", "-verify").CombinedOutput(); err != nil {
			t.Fatalf("openssl req -verify: %v\n%s", err, out)
		}
	}

	for _, bad := range [][]string{
		{"csr", "--key", keyFile, "--spc", "567J", "--subject", "O=Example", "--out", filepath.Join(dir, "x.csr")},
		{"csr", "--key", keyFile, "--spc", "567J", "--subject", "C=US,O=Example,OU=Ops", "--out", filepath.Join(dir, "y.csr")},
		{"csr", "--key", keyFile, "--spc", "5 7", "--subject", "C=US,O=Example", "--out", filepath.Join(dir, "z.csr")},
		{"csr", "--key", keyFile, "--spc", "567J", "--subject", "C=US,O=Example"},
	} {
		if _, _, code := certCLI(t, bad...); code != exitUsage {
			t.Errorf("%v: exit %d, want %d", bad, code, exitUsage)
		}
	}
	if _, stderr, code := certCLI(t, "csr", "--key", keyFile, "--spc", "567J", "--subject", "C=US,O=Example", "--out", csrFile); code != exitFail || !strings.Contains(stderr, "not overwritten") {
		t.Fatalf("csr over an existing file: %d %s", code, stderr)
	}
}
