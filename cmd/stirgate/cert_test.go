package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stirgate/stirgate/core/certs"
	"github.com/stirgate/stirgate/internal/testpki"
)

// pinCertClock fixes the cert command's clock at testpki.Now.
func pinCertClock(t *testing.T) {
	t.Helper()
	old := certNow
	certNow = func() time.Time { return testpki.Now }
	t.Cleanup(func() { certNow = old })
}

func certCLI(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	code = runCert(context.Background(), args, &out, &errb)
	return out.String(), errb.String(), code
}

func writeFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func decodeCertReport(t *testing.T, out string) certCheckReport {
	t.Helper()
	var rep certCheckReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v in %q", err, out)
	}
	return rep
}

func TestCertLabThenCheck(t *testing.T) {
	pinCertClock(t)
	dir := filepath.Join(t.TempDir(), "lab")
	out, errOut, code := certCLI(t, "lab", "--out", dir, "--spc", "987J", "--days", "30")
	if code != exitOK {
		t.Fatalf("cert lab: %d %s", code, errOut)
	}
	if !strings.Contains(out, "987J") || !strings.Contains(out, certs.LabChainFile) {
		t.Errorf("summary %q", out)
	}
	lab, err := certs.LoadLab(dir)
	if err != nil {
		t.Fatal(err)
	}
	if lab.SPC != "987J" || !lab.Leaf.NotAfter.Equal(testpki.Now.Add(30*24*time.Hour)) {
		t.Fatalf("lab SPC %s, leaf until %v", lab.SPC, lab.Leaf.NotAfter)
	}

	// Flags after the files, as people type them.
	out, errOut, code = certCLI(t, "check",
		filepath.Join(dir, certs.LabChainFile), filepath.Join(dir, certs.LabRootFile), filepath.Join(dir, certs.LabCAFile),
		"--trust", filepath.Join(dir, certs.LabRootFile),
		"--crl", filepath.Join(dir, certs.LabCRLFile), "--crl", filepath.Join(dir, certs.LabCRLSignerFile), "--json")
	if code != exitOK {
		t.Fatalf("cert check: %d %s %s", code, out, errOut)
	}
	rep := decodeCertReport(t, out)
	if !rep.OK || len(rep.Files) != 3 {
		t.Fatalf("report %+v", rep)
	}
	chainRep := rep.Files[0]
	if len(chainRep.Certificates) != 2 || chainRep.Certificates[0].Role != certs.RoleEE || chainRep.Certificates[1].Role != certs.RoleCA {
		t.Fatalf("chain file certificates %+v", chainRep.Certificates)
	}
	if chainRep.Certificates[0].DaysLeft != 30 {
		t.Errorf("days left %d, want 30", chainRep.Certificates[0].DaysLeft)
	}
	if c := chainRep.Chain; c == nil || !c.OK || c.SPC != "987J" || c.PathDepth != 3 || c.DaysLeft != 30 {
		t.Fatalf("chain %+v", c)
	}
	if rep.Files[1].Chain != nil || rep.Files[1].Certificates[0].Role != certs.RoleRoot {
		t.Errorf("root file %+v", rep.Files[1])
	}
	for _, f := range rep.Files {
		for _, c := range f.Certificates {
			if len(c.Checks) < 15 {
				t.Errorf("%s [%d]: only %d checks", f.File, c.Index, len(c.Checks))
			}
		}
	}

	// The text report names every rule.
	out, _, code = certCLI(t, "check", filepath.Join(dir, certs.LabLeafFile))
	if code != exitOK {
		t.Fatalf("text check: %d", code)
	}
	for _, rule := range []string{certs.RuleKey, certs.RuleTNAuthList, certs.RulePolicy, ruleValidity} {
		if !strings.Contains(out, "pass "+rule) {
			t.Errorf("text report lacks %q:\n%s", "pass "+rule, out)
		}
	}
}

func TestCertCheckFailures(t *testing.T) {
	pinCertClock(t)
	lab := testpki.Default(t)
	dir := t.TempDir()
	root := writeFile(t, dir, "root.pem", certs.EncodePEM(lab.Root))
	tests := []struct {
		name      string
		pem       []byte
		trust     bool
		wantRule  string // a certificate check that must fail
		wantChain string // the chain error Name, with trust
	}{
		{name: "RSA leaf", pem: testpki.RSALeaf(t, lab).ChainPEM, wantRule: certs.RuleKey},
		{name: "P-384 leaf", pem: testpki.P384Leaf(t, lab).ChainPEM, trust: true, wantRule: certs.RuleKey, wantChain: "cert_profile"},
		{name: "no TNAuthList", pem: testpki.NoTNAuthList(t, lab).ChainPEM, trust: true, wantRule: certs.RuleTNAuthList, wantChain: "cert_no_tnauthlist"},
		{name: "expired", pem: testpki.Expired(t, lab).ChainPEM, trust: true, wantRule: ruleValidity, wantChain: "cert_expired"},
		{name: "not yet valid", pem: testpki.NotYetValid(t, lab).ChainPEM, wantRule: ruleValidity},
		{name: "untrusted", pem: testpki.UntrustedRoot(t, lab).ChainPEM, trust: true, wantChain: "cert_untrusted"},
		{name: "unparseable certificate", pem: []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), wantRule: "parse"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args := []string{"check", "--json", writeFile(t, t.TempDir(), "x.pem", tc.pem)}
			if tc.trust {
				args = append(args, "--trust", root)
			}
			out, errOut, code := certCLI(t, args...)
			if code != exitFail {
				t.Fatalf("exit %d, want %d: %s %s", code, exitFail, out, errOut)
			}
			rep := decodeCertReport(t, out)
			if rep.OK || rep.Files[0].OK {
				t.Fatal("report says ok")
			}
			if tc.wantRule != "" {
				found := false
				for _, c := range rep.Files[0].Certificates[0].Checks {
					found = found || (c.Rule == tc.wantRule && !c.OK)
				}
				if !found {
					t.Errorf("rule %s did not fail: %+v", tc.wantRule, rep.Files[0].Certificates[0].Checks)
				}
			}
			if tc.wantChain != "" {
				if c := rep.Files[0].Chain; c == nil || c.OK || c.Error != tc.wantChain {
					t.Errorf("chain %+v, want error %s", c, tc.wantChain)
				}
			}
		})
	}

	t.Run("missing file", func(t *testing.T) {
		out, _, code := certCLI(t, "check", filepath.Join(dir, "absent.pem"))
		if code != exitFail || !strings.Contains(out, "FAIL") {
			t.Fatalf("exit %d: %s", code, out)
		}
	})
	t.Run("not a certificate", func(t *testing.T) {
		_, _, code := certCLI(t, "check", writeFile(t, dir, "junk.pem", []byte("junk")))
		if code != exitFail {
			t.Fatalf("exit %d", code)
		}
	})
	t.Run("DER certificate", func(t *testing.T) {
		_, _, code := certCLI(t, "check", writeFile(t, dir, "leaf.der", lab.Leaf.Raw))
		if code != exitOK {
			t.Fatalf("exit %d", code)
		}
	})
}

func TestCertUsage(t *testing.T) {
	pinCertClock(t)
	dir := t.TempDir()
	leaf := writeFile(t, dir, "leaf.pem", certs.EncodePEM(testpki.Default(t).Leaf))
	tests := []struct {
		name string
		args []string
		want int
	}{
		{"no subcommand", nil, exitUsage},
		{"unknown subcommand", []string{"frob"}, exitUsage},
		{"help", []string{"help"}, exitOK},
		{"lab without --out", []string{"lab"}, exitUsage},
		{"lab with zero days", []string{"lab", "--out", filepath.Join(dir, "x"), "--days", "0"}, exitUsage},
		{"lab with a bad SPC", []string{"lab", "--out", filepath.Join(dir, "y"), "--spc", "a\tb"}, exitUsage},
		{"lab with an argument", []string{"lab", "--out", filepath.Join(dir, "z"), "extra"}, exitUsage},
		{"lab with an unknown flag", []string{"lab", "--out", filepath.Join(dir, "w"), "--frob"}, exitUsage},
		{"lab -h", []string{"lab", "-h"}, exitOK},
		{"check without files", []string{"check", "--json"}, exitUsage},
		{"check with an unknown flag", []string{"check", leaf, "--frob"}, exitUsage},
		{"check with a missing trust file", []string{"check", leaf, "--trust", filepath.Join(dir, "none.pem")}, exitUsage},
		{"check with --crl but no --trust", []string{"check", leaf, "--crl", leaf}, exitUsage},
		{"check after --", []string{"check", "--", leaf}, exitOK},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, errOut, code := certCLI(t, tc.args...); code != tc.want {
				t.Fatalf("exit %d, want %d (%s)", code, tc.want, errOut)
			}
		})
	}
	// Dispatch from the top-level command.
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"cert", "check", leaf}, &out, &errb); code != exitOK {
		t.Fatalf("stirgate cert check: %d %s", code, errb.String())
	}
}

func TestDaysLeft(t *testing.T) {
	now := testpki.Now
	day := 24 * time.Hour
	for _, tc := range []struct {
		d    time.Duration
		want int
	}{{30 * day, 30}, {30*day - time.Second, 29}, {0, 0}, {-time.Hour, -1}, {-day, -1}, {-day - time.Hour, -2}} {
		if got := daysLeft(now.Add(tc.d), now); got != tc.want {
			t.Errorf("daysLeft(%v) = %d, want %d", tc.d, got, tc.want)
		}
	}
}
