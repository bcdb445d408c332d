package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stirgate/stirgate/core/certs"
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
			if code != 2 || !strings.Contains(stderr, "signer.cert: cannot sign now") {
				t.Fatalf("exit %d, stderr %q", code, stderr)
			}
		})
	}
}
