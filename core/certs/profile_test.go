//go:debug x509negativeserial=1

// The directive above lets crypto/x509 parse the zlint fixtures with
// negative serial numbers, so that the serial rule itself is exercised;
// production binaries keep Go's default and refuse such certificates.

package certs

import (
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func readCert(t testing.TB, path string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatalf("%s: no PEM block", path)
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return c
}

// zlintRole follows the fixture naming: shakenCa* are intermediates,
// shakenRoot* roots, everything else end-entity certificates.
func zlintRole(name string) Role {
	switch {
	case strings.HasPrefix(name, "shakenCa"):
		return RoleCA
	case strings.HasPrefix(name, "shakenRoot"):
		return RoleRoot
	}
	return RoleEE
}

// TestCheckProfileZlint runs every zlint SHAKEN fixture. Baselines must pass
// every rule; every other fixture must fail the rule its name states (fail)
// and, where the fixture exists to show a rule passing, pass it (pass).
// The profile has no time-dependent rule, so no clock is involved.
func TestCheckProfileZlint(t *testing.T) {
	const all = "*"
	tests := map[string]struct {
		fail []string
		pass []string
	}{
		"shakenCert.pem": {pass: []string{all}},
		"shakenCa.pem":   {pass: []string{all}},
		"shakenRoot.pem": {pass: []string{all}},

		"shakenBasicConstNo.pem":          {fail: []string{RuleBasicConst}},
		"shakenBasicConstNotCritical.pem": {fail: []string{RuleBasicConst}},

		// Fixtures for CP-version detection: each carries exactly one
		// SHAKEN policy OID of its version, and nothing else of note.
		"shakenCP1_1Cert.pem":    {pass: []string{RulePolicy, RuleSigAlg, RuleKey}},
		"shakenCP1_2Cert.pem":    {pass: []string{RulePolicy, RuleSigAlg, RuleKey}},
		"shakenCP1_3Cert.pem":    {pass: []string{RulePolicy, RuleSigAlg, RuleKey}},
		"shakenCP1_4Cert.pem":    {pass: []string{RulePolicy, RuleSigAlg, RuleKey}},
		"shakenCP1_4WSHA1.pem":   {fail: []string{RuleSigAlg}, pass: []string{RulePolicy}},
		"shakenCP1_4WSHA384.pem": {fail: []string{RuleSigAlg, RuleKey}, pass: []string{RulePolicy}},

		"shakenCRLPointFile.pem":     {fail: []string{RuleCRLDP}},
		"shakenCRLPointMultiple.pem": {fail: []string{RuleCRLDP}},
		// Reachability needs the network, which a profile check never
		// uses: these two have a well-formed single HTTP(S) point.
		"shakenCRLPointGet.pem":         {pass: []string{RuleCRLDP}},
		"shakenCRLPointUnreachable.pem": {pass: []string{RuleCRLDP}, fail: []string{RuleSubject, RuleKeyUsage}},

		"shakenCaCertPolicyCritical.pem": {fail: []string{RulePolicy}},
		"shakenCaCertPolicyMultiple.pem": {fail: []string{RulePolicy}},
		"shakenCaCertPolicyNo.pem":       {fail: []string{RulePolicy}},
		"shakenCaEmpty.pem":              {fail: []string{RuleSubject, RuleKeyUsage, RulePolicy, RuleCRLDP, RuleAuthorityKeyID}},
		"shakenCaExtOdd.pem":             {fail: []string{RuleExtensions}},
		"shakenCaIssuerWithoutC.pem":     {fail: []string{RuleIssuer}},
		"shakenCaIssuerWithoutCN.pem":    {fail: []string{RuleIssuer}},
		"shakenCaIssuerWithoutO.pem":     {fail: []string{RuleIssuer}},
		"shakenCaKeyAlgP384.pem":         {fail: []string{RuleKey}},
		"shakenCaKeyAlgRSA.pem":          {fail: []string{RuleKey, RuleSigAlg}},

		"shakenCaKeyUsageCertSignCRLSignDigSign.pem": {pass: []string{RuleKeyUsage}, fail: []string{RuleKeyUsageCRL}},
		"shakenCaKeyUsageCertSignDigSign.pem":        {pass: []string{RuleKeyUsage, RuleKeyUsageCRL}},
		"shakenCaKeyUsageOddFlag.pem":                {fail: []string{RuleKeyUsage}},
		"shakenCaKeyUsageWCRL.pem":                   {pass: []string{RuleKeyUsage}, fail: []string{RuleKeyUsageCRL}},
		"shakenCaKeyUsageWithoutCertSign.pem":        {fail: []string{RuleKeyUsage}},

		"shakenCaSerialLess64bit.pem":     {fail: []string{RuleSerial}},
		"shakenCaSerialNegative.pem":      {fail: []string{RuleSerial}},
		"shakenCaSigAlgSHA1.pem":          {fail: []string{RuleSigAlg}},
		"shakenCaSubject.pem":             {pass: []string{RuleSubject, RuleSubjectCN, RuleSubjectRDN}},
		"shakenCaSubjectCN.pem":           {fail: []string{RuleSubjectCN}},
		"shakenCaSubjectWEmail.pem":       {fail: []string{RuleSubjectRDN}},
		"shakenCaSubjectWithoutC.pem":     {fail: []string{RuleSubject}},
		"shakenCaSubjectWithoutCN.pem":    {fail: []string{RuleSubject, RuleSubjectCN}},
		"shakenCaSubjectWithoutO.pem":     {fail: []string{RuleSubject}},
		"shakenCaVersion2.pem":            {fail: []string{RuleVersion}},
		"shakenCertEmpty.pem":             {fail: []string{RuleSubject, RuleBasicConst, RuleKeyUsage, RulePolicy, RuleTNAuthList}},
		"shakenCertPolicyCritical.pem":    {fail: []string{RulePolicy}},
		"shakenCertPolicyIncorrect.pem":   {fail: []string{RulePolicy}},
		"shakenCertPolicyMultiple.pem":    {fail: []string{RulePolicy}},
		"shakenCertPolicyNo.pem":          {fail: []string{RulePolicy}},
		"shakenCertV2.pem":                {fail: []string{RuleVersion}},
		"shakenExtOdd.pem":                {fail: []string{RuleExtensions}},
		"shakenIssuerWithoutC.pem":        {fail: []string{RuleIssuer}},
		"shakenIssuerWithoutCN.pem":       {fail: []string{RuleIssuer}},
		"shakenIssuerWithoutO.pem":        {fail: []string{RuleIssuer}},
		"shakenKeyAlgP384.pem":            {fail: []string{RuleKey}},
		"shakenKeyAlgRSA.pem":             {fail: []string{RuleKey}},
		"shakenKeyUsageNotCritical.pem":   {fail: []string{RuleKeyUsage}},
		"shakenKeyUsageOdd.pem":           {fail: []string{RuleKeyUsage}},
		"shakenRootAKIWrong.pem":          {fail: []string{RuleAuthorityKeyID}},
		"shakenRootCertPolicy.pem":        {fail: []string{RulePolicy}},
		"shakenRootExtOdd.pem":            {fail: []string{RuleExtensions}},
		"shakenRootNoAKI.pem":             {fail: []string{RuleAuthorityKeyID}},
		"shakenSerialNumberLess64bit.pem": {fail: []string{RuleSerial}},
		"shakenSerialNumberNegative.pem":  {fail: []string{RuleSerial}},
		"shakenSerialNumberPadded.pem":    {fail: []string{RuleSerial}},
		"shakenSigAlgSHA1.pem":            {fail: []string{RuleSigAlg}},

		"shakenSubject.pem":                      {pass: []string{RuleSubject, RuleSubjectCN, RuleSubjectSerial, RuleSubjectRDN}},
		"shakenSubjectAmbiguous.pem":             {fail: []string{RuleSubjectCN}},
		"shakenSubjectCN.pem":                    {fail: []string{RuleSubjectCN}},
		"shakenSubjectWEmail.pem":                {fail: []string{RuleSubjectRDN}},
		"shakenSubjectWSerialNumberMultiple.pem": {fail: []string{RuleSubjectSerial}},
		"shakenSubjectWithoutC.pem":              {fail: []string{RuleSubject}},
		"shakenSubjectWithoutCN.pem":             {fail: []string{RuleSubject, RuleSubjectCN}},
		"shakenSubjectWithoutO.pem":              {fail: []string{RuleSubject}},
		"shakenSubjectWithoutSerialNumber.pem":   {fail: []string{RuleSubjectSerial}},

		"shakenTNAuthEmpty.pem":       {fail: []string{RuleTNAuthList, RuleSubjectCN}},
		"shakenTNAuthEmptyString.pem": {fail: []string{RuleTNAuthList}},
		"shakenTNAuthMultiple.pem":    {fail: []string{RuleTNAuthList}},
		"shakenTNAuthWithoutSPC.pem":  {fail: []string{RuleTNAuthList}},
	}

	files, err := filepath.Glob("testdata/zlint/*.pem")
	if err != nil || len(files) != 75 {
		t.Fatalf("want 75 zlint fixtures, got %d (%v)", len(files), err)
	}
	for _, f := range files {
		name := filepath.Base(f)
		tc, ok := tests[name]
		if !ok {
			t.Errorf("%s: fixture without an expectation", name)
			continue
		}
		t.Run(name, func(t *testing.T) {
			checks := CheckProfile(readCert(t, f), zlintRole(name))
			got := map[string]Check{}
			for _, c := range checks {
				if _, dup := got[c.Rule]; dup {
					t.Fatalf("rule %s reported twice", c.Rule)
				}
				got[c.Rule] = c
			}
			if slices.Contains(tc.pass, all) {
				if f := Failed(checks); len(f) > 0 {
					t.Errorf("baseline fails %+v", f)
				}
				return
			}
			for _, r := range tc.fail {
				c, ok := got[r]
				if !ok {
					t.Errorf("rule %s not reported", r)
				} else if c.OK {
					t.Errorf("rule %s passed, want fail", r)
				} else if c.Detail == "" {
					t.Errorf("rule %s failed without detail", r)
				}
			}
			for _, r := range tc.pass {
				if c, ok := got[r]; !ok || !c.OK {
					t.Errorf("rule %s: %+v, want pass", r, c)
				}
			}
		})
	}
	for name := range tests {
		if _, err := os.Stat(filepath.Join("testdata/zlint", name)); err != nil {
			t.Errorf("expectation for missing fixture %s", name)
		}
	}
}

func TestRoleOf(t *testing.T) {
	for _, tc := range []struct {
		file string
		want Role
	}{
		{"shakenCert.pem", RoleEE},
		{"shakenCa.pem", RoleCA},
		{"shakenRoot.pem", RoleRoot},
	} {
		t.Run(tc.file, func(t *testing.T) {
			if got := RoleOf(readCert(t, "testdata/zlint/"+tc.file)); got != tc.want {
				t.Errorf("RoleOf = %s, want %s", got, tc.want)
			}
		})
	}
}
