package main

import (
	"context"
	"crypto/tls"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"time"

	"github.com/stirgate/stirgate/core"
	"github.com/stirgate/stirgate/core/config"
	"github.com/stirgate/stirgate/core/stir"
)

func init() {
	register("serve", "run the services (default: the lab certificate endpoint on the embedded config)", runServe)
}

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "", "config file (default: embedded lab config in ./.stirgate)")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		fmt.Fprintf(stderr, "stirgate serve: %v\n", err)
		return exitUsage
	}
	log := newLogger(stderr, cfg.Log)
	if err := cfg.PrepareLab(time.Now(), log); err != nil {
		fmt.Fprintf(stderr, "stirgate serve: %v\n", err)
		return exitUsage
	}
	signer, err := cfg.NewSigner(nil, log)
	if err != nil {
		fmt.Fprintf(stderr, "stirgate serve: %v\n", err)
		return exitUsage
	}
	verifier, err := cfg.NewVerifier(nil, log)
	if err != nil {
		fmt.Fprintf(stderr, "stirgate serve: %v\n", err)
		return exitUsage
	}
	defer verifier.Close()

	if cfg.Lab.Dir == "" {
		fmt.Fprintln(stderr, "stirgate serve: only the lab certificate endpoint exists yet; set [lab] dir")
		return exitUsage
	}
	lab := cfg.Lab.WithDefaults()
	ln, err := net.Listen("tcp", lab.Listen)
	if err != nil {
		fmt.Fprintf(stderr, "stirgate serve: %v\n", err)
		return exitUsage
	}
	dir := cfg.Resolve(lab.Dir)
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, config.LabTLSCert), filepath.Join(dir, config.LabTLSKey))
	if err != nil {
		fmt.Fprintf(stderr, "stirgate serve: %v\n", err)
		return exitUsage
	}
	srv := &http.Server{
		Handler:           certHandler(signer),
		ReadHeaderTimeout: 5 * time.Second,
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.ServeTLS(ln, "", "") }()
	log.Info("certificate endpoint listening", "url", signer.X5U())

	demo(ctx, signer, verifier, stdout)

	select {
	case <-ctx.Done():
	case err := <-errc:
		if !errors.Is(err, http.ErrServerClosed) {
			fmt.Fprintf(stderr, "stirgate serve: %v\n", err)
			return exitFail
		}
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
	log.Info("stopped")
	return exitOK
}

// certHandler publishes the signer's chain as its x5u target.
func certHandler(s *core.Signer) http.Handler {
	var body []byte
	for _, c := range s.Credential().Chain {
		body = append(body, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /certs/sp.pem", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/pem-certificate-chain")
		w.Header().Set("Cache-Control", "public, max-age=86400")
		_, _ = w.Write(body)
	})
	return mux
}

// demo signs a sample call and verifies it through the live x5u endpoint,
// so a newcomer sees both halves work within seconds of `make run`.
func demo(ctx context.Context, s *core.Signer, v *core.Verifier, w io.Writer) {
	from := `"Lab Caller" <sip:+12155550121@lab.example;user=phone>;tag=1`
	to := `<sip:+12155550131@lab.example;user=phone>`
	res, err := s.Sign(ctx, core.SignRequest{From: from, To: to, Attest: stir.AttestFull, CallID: "lab-demo"})
	if err != nil {
		fmt.Fprintf(w, "sample signing failed: %v\n", err)
		return
	}
	fmt.Fprintf(w, "Signed sample call %s -> %s (attest %s):\nIdentity: %s\nDate: %s\n\n", res.Orig, res.Dest[0], res.Attest, res.Identity, res.Date)
	vctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	r := v.Verify(vctx, core.VerifyRequest{Identity: []string{res.Identity}, From: from, To: to, Date: res.Date})
	fmt.Fprintf(w, "Verified: result=%s verstat=%s attest=%s spc=%s", r.Result, r.Verstat, r.Attest, r.SPC)
	if r.Error != "" {
		fmt.Fprintf(w, " error=%s (%d %s) %s", r.Error, r.SIPCode, r.Reason, r.Detail)
	}
	fmt.Fprintln(w)
}
