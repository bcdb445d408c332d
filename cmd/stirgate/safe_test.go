package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stirgate/stirgate/core/certs"
	"github.com/stirgate/stirgate/core/config"
	"github.com/stirgate/stirgate/httpapi"
)

// labAt writes a lab whose clock is at and whose leaf lives days.
func labAt(t *testing.T, at time.Time, days int) string {
	t.Helper()
	dir := t.TempDir()
	lab, err := certs.NewLab(certs.LabOptions{Now: at, Days: days})
	if err != nil {
		t.Fatal(err)
	}
	if err := lab.WriteDir(dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

const signerVerifier = `
[signer]
key = "sp.key"
cert = "sp-chain.pem"
x5u = "https://certs.example.net/sp.pem"
[verifier]
trust = ["root.pem"]
`

// TestConfigCheckReadiness: config check exits 2 for every config under
// which serve would not be ready, not only for syntax. Before, an expired
// signing certificate was logged and the exit status was 0.
func TestConfigCheckReadiness(t *testing.T) {
	now := time.Now()
	for name, tc := range map[string]struct {
		dir, text, want string
	}{
		"expired signing cert":   {labAt(t, now.Add(-72*time.Hour), 1), signerVerifier, "signer.cert: certificate expired"},
		"not yet valid":          {labAt(t, now.Add(72*time.Hour), 365), signerVerifier, "signer.cert: certificate not valid before"},
		"expired trust anchor":   {labAt(t, now.Add(-4*365*24*time.Hour), 365), "[verifier]\ntrust = [\"root.pem\"]\n", "no usable trust anchor"},
		"anchor is not a CA":     {newLab(t), "[verifier]\ntrust = [\"sp.pem\"]\n", "is not a CA"},
		"key does not match":     {newLab(t), strings.Replace(signerVerifier, "sp.key", "other.key", 1), "does not match"},
		"api exposed, no tokens": {newLab(t), "[http]\nlisten = \"0.0.0.0:8443\"\n", "http.listen \"0.0.0.0:8443\" is not a loopback address"},
		"lab exposed, no tokens": {newLab(t), "[lab]\ndir = \"lab\"\nlisten = \"[::]:8443\"\n", "lab.listen"},
	} {
		t.Run(name, func(t *testing.T) {
			if name == "key does not match" {
				other, err := certs.NewLab(certs.LabOptions{})
				if err != nil {
					t.Fatal(err)
				}
				if err := other.WriteDir(filepath.Join(tc.dir, "o")); err != nil {
					t.Fatal(err)
				}
				b, _ := os.ReadFile(filepath.Join(tc.dir, "o", "sp.key"))
				os.WriteFile(filepath.Join(tc.dir, "other.key"), b, 0o600)
			}
			f := filepath.Join(tc.dir, "c.toml")
			os.WriteFile(f, []byte(tc.text), 0o644)
			out, stderr, code := cli(t, "config", "check", f)
			if code != 2 || !strings.Contains(stderr, tc.want) {
				t.Fatalf("exit %d, stdout %q, stderr %q lacks %q", code, out, stderr, tc.want)
			}
		})
	}
	// The same exposed API with a token, or on loopback, is fine.
	dir := newLab(t)
	for _, text := range []string{
		"[http]\nlisten = \"0.0.0.0:8443\"\n[[http.token]]\nname = \"pbx\"\nsha256 = \"" + httpapi.HashToken("t") + "\"\nscopes = [\"sign\"]\n",
		"[http]\nlisten = \"127.0.0.1:8443\"\n[publish]\nlisten = \"0.0.0.0:443\"\n",
	} {
		f := filepath.Join(dir, "ok.toml")
		os.WriteFile(f, []byte(text), 0o644)
		if out, stderr, code := cli(t, "config", "check", f); code != 0 {
			t.Fatalf("%s: exit %d %s %s", text, code, out, stderr)
		}
	}
}

func TestConfigCheckHelp(t *testing.T) {
	dir := t.TempDir()
	wd, _ := os.Getwd()
	defer os.Chdir(wd)
	os.Chdir(dir)
	for _, args := range [][]string{{"config", "-h"}, {"config", "check", "-h"}, {"config", "check", "--help"}} {
		out, stderr, code := cli(t, args...)
		if code != 0 || !strings.Contains(out+stderr, "usage: stirgate config check FILE") || strings.Contains(stderr, "no such file") {
			t.Errorf("%q: exit %d %q %q", args, code, out, stderr)
		}
	}
}

// TestVerifyWritesNoFiles: before, verify without --config generated a
// lab PKI in the current directory.
func TestVerifyWritesNoFiles(t *testing.T) {
	dir := t.TempDir()
	wd, _ := os.Getwd()
	defer os.Chdir(wd)
	if err := os.Chdir(dir); err != nil {
		t.Fatal(err)
	}
	_, stderr, code := cli(t, "verify", "--identity", "a.b.c;info=<https://x.example/a.pem>", "--from", "sip:+12155550121@a", "--to", "sip:+12155550131@b")
	if code != 2 || !strings.Contains(stderr, "--trust") {
		t.Fatalf("exit %d %s", code, stderr)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("verify wrote %v", ents)
	}
}

func TestVersion(t *testing.T) {
	for _, a := range []string{"version", "--version"} {
		out, _, code := cli(t, a)
		if code != 0 || !strings.HasPrefix(out, "stirgate ") || !strings.Contains(out, "go1.") {
			t.Fatalf("%s: exit %d %q", a, code, out)
		}
	}
}

// TestToken: the printed block is a valid [[http.token]] whose hash is
// the printed token's.
func TestToken(t *testing.T) {
	out, stderr, code := cli(t, "token", "pbx1", "--scopes", "sign,read")
	if code != 0 {
		t.Fatalf("exit %d %s", code, stderr)
	}
	c, err := config.Parse([]byte("[http]\nlisten = \"0.0.0.0:1\"\n"+out), "")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	tok := lines[1]
	if len(c.HTTP.Tokens) != 1 || c.HTTP.Tokens[0].Name != "pbx1" || c.HTTP.Tokens[0].SHA256 != httpapi.HashToken(tok) || len(c.HTTP.Tokens[0].Scopes) != 2 {
		t.Fatalf("%+v (token %q)", c.HTTP.Tokens, tok)
	}
	if _, _, code := cli(t, "token", "x", "--scopes", "admin"); code != 2 {
		t.Fatal("unknown scope accepted")
	}
}
