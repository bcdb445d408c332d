package main

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/stirgate/stirgate/core/certs"
	"github.com/stirgate/stirgate/core/stir"
)

func init() {
	register("cert", "cert lab | check | key | csr: lab PKI, SHAKEN profile checks, a key and the request for your STI-CA", runCert)
}

// certNow is the clock of the cert command; tests pin it.
var certNow = time.Now

const certUsageText = `usage:
  stirgate cert lab --out DIR [--spc CODE] [--days N]
      write a lab SHAKEN PKI (root, STI-CA, STI-SP leaf and key, CRL signer, CRL) into DIR
  stirgate cert check FILE... [--trust PEM] [--crl FILE]... [--json]
      report every ATIS-1000080 profile rule for each certificate in each FILE;
      with --trust, also verify each FILE that starts with an end-entity
      certificate as an x5u chain (leaf first) against the anchors in PEM
  stirgate cert key --out FILE
      write a new P-256 private key (PKCS#8 PEM, mode 0600); never overwrites
  stirgate cert csr --key FILE --spc CODE --subject "C=US,O=Example Telecom" --out FILE
      write the PKCS#10 request for an STI-SP certificate: the TNAuthList
      extension with CODE (ATIS-1000080) and CN "SHAKEN CODE" unless CN= is given

exit status: 0 all checks pass, 1 a check failed, 2 usage error
`

func runCert(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, certUsageText)
		return exitUsage
	}
	switch args[0] {
	case "lab":
		return runCertLab(args[1:], stdout, stderr)
	case "check":
		return runCertCheck(args[1:], stdout, stderr)
	case "key":
		return runCertKey(args[1:], stdout, stderr)
	case "csr":
		return runCertCSR(args[1:], stdout, stderr)
	case "-h", "--help", "help":
		fmt.Fprint(stdout, certUsageText)
		return exitOK
	}
	fmt.Fprintf(stderr, "stirgate cert: unknown subcommand %q\n\n%s", args[0], certUsageText)
	return exitUsage
}

// parseInterspersed parses flags that may come before, between or after
// the positional arguments (stdlib flag stops at the first positional).
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		// After "--" everything is positional.
		if len(args) > len(rest) && args[len(args)-len(rest)-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

func flagExit(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	return exitUsage
}

func runCertLab(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("cert lab", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", "", "directory to write the lab PKI into (required)")
	spc := fs.String("spc", "1234", "service provider code of the leaf certificate")
	days := fs.Int("days", 365, "leaf validity in days (the CA gets twice, the root three times)")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return flagExit(err)
	}
	if len(pos) > 0 || *out == "" || *days <= 0 {
		fmt.Fprintln(stderr, "stirgate cert lab: want --out DIR, a positive --days and no arguments")
		fs.Usage()
		return exitUsage
	}
	lab, err := certs.NewLab(certs.LabOptions{SPC: *spc, Days: *days, Now: certNow()})
	if err != nil {
		fmt.Fprintf(stderr, "stirgate cert lab: %v\n", err)
		return exitUsage
	}
	if err := lab.WriteDir(*out); err != nil {
		fmt.Fprintf(stderr, "stirgate cert lab: %v\n", err)
		return exitFail
	}
	fmt.Fprintf(stdout, "lab PKI for SPC %s in %s (leaf valid until %s)\n", lab.SPC, *out, lab.Leaf.NotAfter.UTC().Format(time.RFC3339))
	for _, f := range []struct{ name, what string }{
		{certs.LabRootFile, "trust anchor: give it to verifiers"},
		{certs.LabCAFile, "intermediate STI-CA"},
		{certs.LabLeafFile, "STI-SP certificate"},
		{certs.LabChainFile, "leaf + intermediate: serve it at the x5u URL"},
		{certs.LabKeyFile, "STI-SP private key (PKCS#8, mode 0600)"},
		{certs.LabCRLSignerFile, "CRL signer certificate"},
		{certs.LabCRLFile, "indirect CRL (empty)"},
	} {
		fmt.Fprintf(stdout, "  %s\n      %s\n", filepath.Join(*out, f.name), f.what)
	}
	return exitOK
}

// Report types: the --json output is this shape.
type certCheckReport struct {
	OK    bool             `json:"ok"`
	Files []certFileReport `json:"files"`
}

type certFileReport struct {
	File         string           `json:"file"`
	OK           bool             `json:"ok"`
	Error        string           `json:"error,omitempty"`
	Certificates []certOneReport  `json:"certificates"`
	Chain        *certChainReport `json:"chain,omitempty"`
}

type certOneReport struct {
	Index     int           `json:"index"`
	Subject   string        `json:"subject,omitempty"`
	Issuer    string        `json:"issuer,omitempty"`
	Role      certs.Role    `json:"role,omitempty"`
	Serial    string        `json:"serial,omitempty"`
	NotBefore *time.Time    `json:"not_before,omitempty"`
	NotAfter  *time.Time    `json:"not_after,omitempty"`
	DaysLeft  int           `json:"days_left"`
	OK        bool          `json:"ok"`
	Checks    []certs.Check `json:"checks"`
}

type certChainReport struct {
	OK        bool       `json:"ok"`
	Error     string     `json:"error,omitempty"`
	Detail    string     `json:"detail,omitempty"`
	SPC       string     `json:"spc,omitempty"`
	Policy    string     `json:"policy,omitempty"`
	NotAfter  *time.Time `json:"not_after,omitempty"`
	DaysLeft  int        `json:"days_left,omitempty"`
	PathDepth int        `json:"path_length,omitempty"`
}

// ruleValidity is the CLI's own check beside the profile rules, which are
// time-free: is the certificate valid now?
const ruleValidity = "validity"

func runCertCheck(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("cert check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	trust := fs.String("trust", "", "PEM file of trust anchors; verify each FILE as a chain against them")
	var crls multiFlag
	fs.Var(&crls, "crl", "CRL file (PEM or DER) or CRL signer certificate, for chain verification (repeatable)")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	files, err := parseInterspersed(fs, args)
	if err != nil {
		return flagExit(err)
	}
	if len(files) == 0 {
		fmt.Fprintln(stderr, "stirgate cert check: no FILE given")
		fs.Usage()
		return exitUsage
	}
	if len(crls) > 0 && *trust == "" {
		fmt.Fprintln(stderr, "stirgate cert check: --crl needs --trust")
		return exitUsage
	}
	now := certNow()
	var opts *certs.VerifyOptions
	if *trust != "" {
		roots, err := readTrust(*trust)
		if err != nil {
			fmt.Fprintf(stderr, "stirgate cert check: --trust: %v\n", err)
			return exitUsage
		}
		opts = &certs.VerifyOptions{Roots: roots, CurrentTime: now}
		if len(crls) > 0 {
			if opts.CRL, err = certs.LoadCRLSet(crls...); err != nil {
				fmt.Fprintf(stderr, "stirgate cert check: --crl: %v\n", err)
				return exitUsage
			}
		}
	}

	rep := certCheckReport{OK: true}
	for _, f := range files {
		fr := checkFile(f, now, opts)
		rep.OK = rep.OK && fr.OK
		rep.Files = append(rep.Files, fr)
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return exitFail
		}
	} else {
		printCertReport(stdout, rep)
	}
	if !rep.OK {
		return exitFail
	}
	return exitOK
}

func readTrust(path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	cs, _, err := readCertFile(b)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	for _, c := range cs {
		if c == nil {
			return nil, errors.New("a certificate does not parse")
		}
		pool.AddCert(c)
	}
	return pool, nil
}

// readCertFile reads every CERTIFICATE block of a PEM file (other blocks
// are skipped), or one DER certificate. A block that does not parse is a
// nil certificate with its error, so the report can still show the rest.
func readCertFile(b []byte) ([]*x509.Certificate, []error, error) {
	var cs []*x509.Certificate
	var errs []error
	rest := b
	for {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		cs, errs = append(cs, c), append(errs, err)
	}
	if len(cs) == 0 {
		c, err := x509.ParseCertificate(b)
		if err != nil {
			return nil, nil, errors.New("no PEM certificate and not a DER certificate")
		}
		cs, errs = append(cs, c), append(errs, nil)
	}
	return cs, errs, nil
}

func daysLeft(notAfter, now time.Time) int {
	d := notAfter.Sub(now)
	days := int(d / (24 * time.Hour))
	if d < 0 && d%(24*time.Hour) != 0 {
		days-- // floor: a certificate expired an hour ago has -1 days left
	}
	return days
}

func checkFile(path string, now time.Time, opts *certs.VerifyOptions) certFileReport {
	fr := certFileReport{File: path, OK: true, Certificates: []certOneReport{}}
	b, err := os.ReadFile(path)
	if err != nil {
		fr.OK, fr.Error = false, err.Error()
		return fr
	}
	cs, errs, err := readCertFile(b)
	if err != nil {
		fr.OK, fr.Error = false, err.Error()
		return fr
	}
	for i, c := range cs {
		cr := certOneReport{Index: i, OK: true}
		if c == nil {
			cr.OK = false
			cr.Checks = []certs.Check{{Rule: "parse", OK: false, Detail: errs[i].Error()}}
		} else {
			cr.Subject, cr.Issuer = c.Subject.String(), c.Issuer.String()
			cr.Role = certs.RoleOf(c)
			cr.Serial = fmt.Sprintf("%x", c.SerialNumber)
			nb, na := c.NotBefore.UTC(), c.NotAfter.UTC()
			cr.NotBefore, cr.NotAfter = &nb, &na
			cr.DaysLeft = daysLeft(c.NotAfter, now)
			cr.Checks = certs.CheckProfile(c, cr.Role)
			v := certs.Check{Rule: ruleValidity, OK: true}
			switch {
			case now.Before(c.NotBefore):
				v.OK, v.Detail = false, "not valid before "+nb.Format(time.RFC3339)
			case now.After(c.NotAfter):
				v.OK, v.Detail = false, "expired at "+na.Format(time.RFC3339)
			}
			cr.Checks = append(cr.Checks, v)
			cr.OK = len(certs.Failed(cr.Checks)) == 0
		}
		fr.OK = fr.OK && cr.OK
		fr.Certificates = append(fr.Certificates, cr)
	}
	// Only an end-entity file is an x5u chain; a root or CA file alone is
	// reported by profile only.
	if opts != nil && len(cs) > 0 && cs[0] != nil && certs.RoleOf(cs[0]) == certs.RoleEE {
		ch := &certChainReport{}
		chain := make([]*x509.Certificate, 0, len(cs))
		for _, c := range cs {
			if c != nil {
				chain = append(chain, c)
			}
		}
		cred, err := certs.Verify(chain, *opts)
		if err != nil {
			ch.Error, ch.Detail = errNameOf(err), err.Error()
		} else {
			na := cred.NotAfter.UTC()
			ch.OK, ch.SPC, ch.Policy, ch.NotAfter = true, cred.SPC, cred.PolicyOID, &na
			ch.DaysLeft, ch.PathDepth = daysLeft(cred.NotAfter, now), len(cred.Chain)
		}
		fr.OK = fr.OK && ch.OK
		fr.Chain = ch
	}
	return fr
}

func errNameOf(err error) string {
	if e := stir.As(err); e != nil {
		return e.Name
	}
	return stir.ErrInternal.Name
}

func printCertReport(w io.Writer, rep certCheckReport) {
	for _, fr := range rep.Files {
		fmt.Fprintf(w, "%s: %s\n", fr.File, passFail(fr.OK))
		if fr.Error != "" {
			fmt.Fprintf(w, "  error: %s\n", fr.Error)
		}
		for _, cr := range fr.Certificates {
			if cr.Subject != "" || cr.NotAfter != nil {
				fmt.Fprintf(w, "  [%d] %s (%s), expires %s (%d days)\n", cr.Index, cr.Subject, cr.Role,
					cr.NotAfter.Format(time.RFC3339), cr.DaysLeft)
			} else {
				fmt.Fprintf(w, "  [%d] unparseable certificate\n", cr.Index)
			}
			for _, c := range cr.Checks {
				line := fmt.Sprintf("      %-4s %s", passFail(c.OK), c.Rule)
				if c.Detail != "" {
					line += ": " + c.Detail
				}
				fmt.Fprintln(w, strings.TrimRight(line, " "))
			}
		}
		if ch := fr.Chain; ch != nil {
			if ch.OK {
				fmt.Fprintf(w, "  chain: pass (SPC %s, policy %s, path of %d, valid until %s, %d days)\n",
					ch.SPC, ch.Policy, ch.PathDepth, ch.NotAfter.Format(time.RFC3339), ch.DaysLeft)
			} else {
				fmt.Fprintf(w, "  chain: FAIL %s\n", ch.Detail)
			}
		}
	}
}

func passFail(ok bool) string {
	if ok {
		return "pass"
	}
	return "FAIL"
}
