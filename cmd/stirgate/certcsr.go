package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"

	"github.com/stirgate/stirgate/core/certs"
)

// runCertKey writes a new P-256 private key, PKCS#8 PEM, mode 0600. It
// never overwrites a file: losing a key that a certificate was issued for
// is not something a typo should do.
func runCertKey(args []string, stdout, stderr io.Writer) int {
	fset := flag.NewFlagSet("cert key", flag.ContinueOnError)
	fset.SetOutput(stderr)
	out := fset.String("out", "", "file to write the private key to (required; must not exist)")
	pos, err := parseInterspersed(fset, args)
	if err != nil {
		return flagExit(err)
	}
	if len(pos) > 0 || *out == "" {
		fmt.Fprintln(stderr, "stirgate cert key: want --out FILE and no arguments")
		fset.Usage()
		return exitUsage
	}
	key, err := certs.NewKey()
	if err != nil {
		fmt.Fprintf(stderr, "stirgate cert key: %v\n", err)
		return exitFail
	}
	pemKey, err := certs.KeyPEM(key)
	if err != nil {
		fmt.Fprintf(stderr, "stirgate cert key: %v\n", err)
		return exitFail
	}
	if err := writeNew(*out, pemKey, 0o600); err != nil {
		fmt.Fprintf(stderr, "stirgate cert key: %v\n", err)
		return exitFail
	}
	fmt.Fprintf(stdout, "P-256 private key written to %s (PKCS#8, mode 0600)\n", *out)
	return exitOK
}

// runCertCSR writes the PKCS#10 request for an STI-SP certificate.
func runCertCSR(args []string, stdout, stderr io.Writer) int {
	fset := flag.NewFlagSet("cert csr", flag.ContinueOnError)
	fset.SetOutput(stderr)
	keyFile := fset.String("key", "", "the P-256 private key (from `stirgate cert key`) (required)")
	spc := fset.String("spc", "", "service provider code, as in your SPC token (required)")
	subject := fset.String("subject", "", `subject, "C=US,O=Example Telecom" (C and O required; CN defaults to "SHAKEN <SPC>")`)
	out := fset.String("out", "", "file to write the request to (PEM; required; must not exist)")
	pos, err := parseInterspersed(fset, args)
	if err != nil {
		return flagExit(err)
	}
	if len(pos) > 0 || *keyFile == "" || *spc == "" || *subject == "" || *out == "" {
		fmt.Fprintln(stderr, "stirgate cert csr: want --key FILE --spc CODE --subject \"C=..,O=..\" --out FILE and no arguments")
		fset.Usage()
		return exitUsage
	}
	o, err := parseSubject(*subject)
	if err != nil {
		fmt.Fprintf(stderr, "stirgate cert csr: --subject: %v\n", err)
		return exitUsage
	}
	o.SPC = *spc
	data, err := os.ReadFile(*keyFile)
	if err != nil {
		fmt.Fprintf(stderr, "stirgate cert csr: %v\n", err)
		return exitFail
	}
	key, err := certs.ParsePrivateKey(data)
	if err != nil {
		fmt.Fprintf(stderr, "stirgate cert csr: %s: %v\n", *keyFile, err)
		return exitFail
	}
	der, err := certs.CreateCSR(key, o)
	if err != nil {
		fmt.Fprintf(stderr, "stirgate cert csr: %v\n", err)
		return exitUsage
	}
	if err := writeNew(*out, certs.CSRPEM(der), 0o644); err != nil {
		fmt.Fprintf(stderr, "stirgate cert csr: %v\n", err)
		return exitFail
	}
	cn := o.CommonName
	if cn == "" {
		cn = "SHAKEN " + o.SPC
	}
	fmt.Fprintf(stdout, "certificate request for SPC %s (CN=%s) written to %s: send it to your STI-CA\n", o.SPC, cn, *out)
	return exitOK
}

// parseSubject reads "C=US,O=Example Telecom[,CN=...]"; a comma inside a
// value is written "\,".
func parseSubject(s string) (certs.CSROptions, error) {
	var o certs.CSROptions
	var parts []string
	var cur strings.Builder
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '\\' && i+1 < len(s) && s[i+1] == ',':
			cur.WriteByte(',')
			i++
		case s[i] == ',':
			parts = append(parts, cur.String())
			cur.Reset()
		default:
			cur.WriteByte(s[i])
		}
	}
	parts = append(parts, cur.String())
	for _, p := range parts {
		k, v, ok := strings.Cut(strings.TrimSpace(p), "=")
		if !ok || strings.TrimSpace(v) == "" {
			return o, fmt.Errorf("%q: want KEY=VALUE", p)
		}
		v = strings.TrimSpace(v)
		switch strings.ToUpper(strings.TrimSpace(k)) {
		case "C":
			o.Country = v
		case "O":
			o.Organization = v
		case "CN":
			o.CommonName = v
		default:
			return o, fmt.Errorf("%q: only C, O and CN are set by the requester (the STI-CA adds the rest)", k)
		}
	}
	return o, nil
}

// writeNew creates path with mode perm and data, failing if it exists.
func writeNew(path string, data []byte, perm os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%s exists: not overwritten", path)
	}
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	return f.Close()
}
