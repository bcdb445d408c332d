package main

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/stirgate/stirgate/core"
	"github.com/stirgate/stirgate/core/certs"
	"github.com/stirgate/stirgate/core/config"
)

func init() {
	register("config", "config check FILE: validate a configuration (non-zero when serve would not be ready)", runConfig)
}

// runConfig is `stirgate config check FILE`. It exits 0 only for a config
// under which `serve` would start and be ready: every key valid, no API
// exposed without authentication, a signing certificate that matches its
// key and is valid now, trust anchors that are usable CA certificates now,
// CRLs that are current.
func runConfig(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	usage := func(w io.Writer) {
		fmt.Fprintln(w, "usage: stirgate config check FILE\n\nValidates FILE and exits 0 when `stirgate serve --config FILE` would start\nand be ready; otherwise prints every problem and exits 2.")
	}
	if len(args) == 0 || args[0] != "check" {
		if len(args) == 1 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
			usage(stdout)
			return exitOK
		}
		usage(stderr)
		return exitUsage
	}
	fs := flag.NewFlagSet("config check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { usage(stderr) }
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if fs.NArg() != 1 {
		usage(stderr)
		return exitUsage
	}
	path := fs.Arg(0)
	cfg, err := config.Load(path)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitUsage
	}
	log := newLogger(stderr, cfg.Log)
	if err := cfg.PrepareLab(time.Now(), log); err != nil {
		fmt.Fprintln(stderr, err)
		return exitUsage
	}
	if problems := readiness(cfg, time.Now()); len(problems) > 0 {
		fmt.Fprintf(stderr, "%s: %s\n", path, strings.Join(problems, "; "))
		return exitUsage
	}
	fmt.Fprintf(stdout, "%s: ok (hash %s)\n", path, cfg.Hash)
	return exitOK
}

// readiness lists what would keep `serve` from being ready at now.
func readiness(cfg *config.Config, now time.Time) []string {
	var problems []string
	if cfg.Signing() {
		s, err := cfg.NewSigner(func() time.Time { return now }, nil)
		if err != nil {
			problems = append(problems, err.Error())
		} else {
			// Every tenant's credential that signs now must be able to; a
			// next one must be valid at its activation instant.
			for _, t := range s.Tenants() {
				where := fmt.Sprintf("tenant %q cert", t.Name)
				if t.Name == core.DefaultTenant && cfg.Signer.Enabled() {
					where = "signer.cert"
				}
				c := t.Credential
				if t.Next != nil && !now.Before(t.Next.Activate) {
					c, where = t.Next.Credential, where+" (next, active since "+t.Next.Activate.UTC().Format(time.RFC3339)+")"
				}
				switch {
				case revoked(cfg, c.Chain) != nil:
					problems = append(problems, fmt.Sprintf("%s: %v", where, revoked(cfg, c.Chain)))
				case now.After(c.NotAfter):
					problems = append(problems, fmt.Sprintf("%s: certificate expired at %s", where, c.NotAfter.UTC().Format(time.RFC3339)))
				case now.Before(c.NotBefore):
					problems = append(problems, fmt.Sprintf("%s: certificate not valid before %s", where, c.NotBefore.UTC().Format(time.RFC3339)))
				}
				if n := t.Next; n != nil && now.Before(n.Activate) {
					if a := n.Activate; a.Before(n.Credential.NotBefore) || a.After(n.Credential.NotAfter) {
						problems = append(problems, fmt.Sprintf("%s: the next certificate (valid %s..%s) cannot sign at its activation %s", where,
							n.Credential.NotBefore.UTC().Format(time.RFC3339), n.Credential.NotAfter.UTC().Format(time.RFC3339), a.UTC().Format(time.RFC3339)))
					}
				}
			}
		}
	}
	if len(cfg.Verifier.Trust) > 0 {
		for _, f := range cfg.Verifier.Trust {
			if p := anchorProblem(cfg.Resolve(f), now); p != "" {
				problems = append(problems, "verifier.trust "+f+": "+p)
			}
		}
		o, err := cfg.VerifierOptions(func() time.Time { return now }, nil)
		if err != nil {
			problems = append(problems, err.Error())
		} else if o.CRL != nil {
			if nu := o.CRL.NextUpdate(); nu.IsZero() || now.After(nu) {
				problems = append(problems, fmt.Sprintf("verifier.crl: a CRL is past its nextUpdate (%s); every verification would fail closed", nu.UTC().Format(time.RFC3339)))
			}
		}
	}
	return problems
}

// revoked reports a certificate of chain listed in the [verifier] crl
// files (the fetched CRLs are looked at by the running service).
func revoked(cfg *config.Config, chain []*x509.Certificate) error {
	var files []string
	for _, f := range cfg.Verifier.CRL {
		files = append(files, cfg.Resolve(f))
	}
	if len(files) == 0 {
		return nil
	}
	set, err := certs.LoadCRLSet(files...)
	if err != nil {
		return nil // reported with the verifier's problems
	}
	return set.Revoked(chain)
}

// anchorProblem says why a trust anchor file is unusable: no certificate
// in it is a CA valid at now.
func anchorProblem(file string, now time.Time) string {
	data, err := os.ReadFile(file)
	if err != nil {
		return err.Error()
	}
	var why []string
	for len(data) > 0 {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		switch {
		case err != nil:
			why = append(why, err.Error())
		case !c.IsCA:
			why = append(why, fmt.Sprintf("%q is not a CA", c.Subject.CommonName))
		case now.After(c.NotAfter):
			why = append(why, fmt.Sprintf("%q expired at %s", c.Subject.CommonName, c.NotAfter.UTC().Format(time.RFC3339)))
		case now.Before(c.NotBefore):
			why = append(why, fmt.Sprintf("%q not valid before %s", c.Subject.CommonName, c.NotBefore.UTC().Format(time.RFC3339)))
		default:
			return ""
		}
	}
	if len(why) == 0 {
		return "no PEM certificate"
	}
	return "no usable trust anchor: " + strings.Join(why, ", ")
}
