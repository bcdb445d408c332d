package certs_test

import (
	"crypto/x509"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stirgate/stirgate/core/certs"
	"github.com/stirgate/stirgate/core/stir"
	"github.com/stirgate/stirgate/internal/testpki"
)

func TestNewLab(t *testing.T) {
	now := testpki.Now
	day := 24 * time.Hour
	tests := []struct {
		name    string
		opts    certs.LabOptions
		spc     string
		days    int
		crlURL  string
		wantErr bool
	}{
		{name: "defaults", opts: certs.LabOptions{Now: now}, spc: "1234", days: 365, crlURL: certs.DefaultLabCRLURL},
		{name: "custom", opts: certs.LabOptions{Now: now, SPC: "987J", Days: 30, CRLURL: "https://crl.example.test/sti.crl"}, spc: "987J", days: 30, crlURL: "https://crl.example.test/sti.crl"},
		{name: "SPC with a control character", opts: certs.LabOptions{Now: now, SPC: "12\n4"}, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			lab, err := certs.NewLab(tc.opts)
			if tc.wantErr {
				if err == nil {
					t.Fatal("no error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			profiles := map[certs.Role]bool{}
			for role, cert := range map[certs.Role]*x509.Certificate{certs.RoleRoot: lab.Root, certs.RoleCA: lab.CA, certs.RoleEE: lab.Leaf} {
				if got := certs.RoleOf(cert); got != role {
					t.Errorf("RoleOf = %s, want %s", got, role)
				}
				if f := certs.Failed(certs.CheckProfile(cert, role)); len(f) > 0 {
					t.Errorf("%s fails the profile: %+v", role, f)
				}
				profiles[role] = true
			}
			if len(profiles) != 3 {
				t.Fatal("not every role checked")
			}
			if lab.SPC != tc.spc || lab.Leaf.Subject.CommonName != "SHAKEN "+tc.spc {
				t.Errorf("SPC %q, CN %q", lab.SPC, lab.Leaf.Subject.CommonName)
			}
			if !lab.Leaf.NotBefore.Equal(now.Add(-time.Hour)) || !lab.Leaf.NotAfter.Equal(now.Add(time.Duration(tc.days)*day)) {
				t.Errorf("leaf valid %v..%v", lab.Leaf.NotBefore, lab.Leaf.NotAfter)
			}
			if !lab.CA.NotAfter.After(lab.Leaf.NotAfter) || !lab.Root.NotAfter.After(lab.CA.NotAfter) {
				t.Error("CA or root expires before what it issued")
			}
			for _, c := range []*x509.Certificate{lab.Leaf, lab.CA} {
				if len(c.CRLDistributionPoints) != 1 || c.CRLDistributionPoints[0] != tc.crlURL {
					t.Errorf("%s CRLDP %v", c.Subject.CommonName, c.CRLDistributionPoints)
				}
			}
			cred, err := certs.Verify(lab.Chain(), certs.VerifyOptions{Roots: lab.Roots(), CurrentTime: now})
			wantName(t, err, nil)
			if cred.SPC != tc.spc {
				t.Errorf("verified SPC %q", cred.SPC)
			}
		})
	}
}

func TestLabWriteLoad(t *testing.T) {
	lab := testpki.Default(t)
	dir := filepath.Join(t.TempDir(), "lab")
	if err := lab.WriteDir(dir); err != nil {
		t.Fatal(err)
	}
	// Writing twice over existing files keeps the key private.
	if err := os.Chmod(filepath.Join(dir, certs.LabKeyFile), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := lab.WriteDir(dir); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{certs.LabRootFile, certs.LabCAFile, certs.LabLeafFile, certs.LabChainFile,
		certs.LabKeyFile, certs.LabCRLSignerFile, certs.LabCRLFile} {
		st, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if f == certs.LabKeyFile && st.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", f, st.Mode().Perm())
		}
	}
	chain, err := os.ReadFile(filepath.Join(dir, certs.LabChainFile))
	if err != nil {
		t.Fatal(err)
	}
	if string(chain) != string(lab.ChainPEM()) {
		t.Error("sp-chain.pem is not the leaf then the intermediate")
	}

	got, err := certs.LoadLab(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Root.Equal(lab.Root) || !got.CA.Equal(lab.CA) || !got.Leaf.Equal(lab.Leaf) ||
		!got.CRLSigner.Equal(lab.CRLSigner) || !got.LeafKey.Equal(lab.LeafKey) || got.SPC != lab.SPC {
		t.Fatal("loaded lab differs")
	}
	set, err := got.CRLSet()
	if err != nil {
		t.Fatal(err)
	}
	_, err = certs.Verify(got.Chain(), certs.VerifyOptions{Roots: got.Roots(), CurrentTime: lab.Now, CRL: set})
	wantName(t, err, nil)
	if _, err := got.Signer(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := got.IssueLeaf(certs.LeafOptions{}); err == nil {
		t.Error("a loaded lab issued a certificate without a CA key")
	}
	if _, err := got.Revoke(got.Leaf); err == nil {
		t.Error("a loaded lab revoked without a CRL signer key")
	}

	t.Run("missing file", func(t *testing.T) {
		d := t.TempDir()
		if err := lab.WriteDir(d); err != nil {
			t.Fatal(err)
		}
		os.Remove(filepath.Join(d, certs.LabCRLFile))
		if _, err := certs.LoadLab(d); err == nil {
			t.Fatal("no error")
		}
	})
	t.Run("sp.pem not the chain's leaf", func(t *testing.T) {
		d := t.TempDir()
		if err := lab.WriteDir(d); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, certs.LabLeafFile), certs.EncodePEM(lab.CA), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := certs.LoadLab(d); err == nil {
			t.Fatal("no error")
		}
	})
	t.Run("key of another lab", func(t *testing.T) {
		d := t.TempDir()
		if err := lab.WriteDir(d); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, certs.LabKeyFile), testpki.UntrustedRoot(t, lab).KeyPEM, 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := certs.LoadLab(d)
		wantName(t, err, stir.ErrSignKey)
	})
}
