package core

import (
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"syscall"
	"testing"
	"time"

	"github.com/stirgate/stirgate/core/certs"
	"github.com/stirgate/stirgate/core/stir"
	"github.com/stirgate/stirgate/core/tn"
	"github.com/stirgate/stirgate/core/x5u"
)

// Benchmarks of the public API beside raw crypto/ecdsa on the same digest,
// so that a ratio can be read off one run (make bench prints it through
// `stirgate bench` as well).

type benchEnv struct {
	s   *Signer
	v   *Verifier
	req VerifyRequest
	key *ecdsa.PrivateKey
}

func newBenchEnv(b *testing.B) *benchEnv {
	lab, err := certs.NewLab(certs.LabOptions{})
	if err != nil {
		b.Fatal(err)
	}
	cred, err := lab.Signer()
	if err != nil {
		b.Fatal(err)
	}
	const u = "https://certs.example.net/sp.pem"
	s, err := NewSigner(SignerOptions{Credential: cred, X5U: u, Numbers: tn.NANP()})
	if err != nil {
		b.Fatal(err)
	}
	v, err := NewVerifier(VerifierOptions{Roots: lab.Roots(), Numbers: tn.NANP(),
		Fetch: x5u.Options[*certs.Credential]{Offline: true, PreloadBytes: map[string][]byte{u: lab.ChainPEM()}}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { v.Close() })
	r, err := s.Sign(context.Background(), benchSignReq)
	if err != nil {
		b.Fatal(err)
	}
	req := VerifyRequest{Identity: []string{r.Identity}, From: "<sip:+12155550121@a.example>", To: "<sip:+12155550131@b.example>"}
	if res := v.Verify(context.Background(), req); res.Result != stir.Pass {
		b.Fatal(res.Error, res.Detail)
	}
	return &benchEnv{s: s, v: v, req: req, key: cred.Key}
}

// cpuTime is the process's user+system CPU time so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPU reports the CPU time per operation since start: a chain whose
// links are verified in parallel costs more CPU than wall time, and the
// CPU is what a busy server pays.
func reportCPU(b *testing.B, start time.Duration) {
	b.ReportMetric(float64(cpuTime(b)-start)/float64(b.N), "cpu-ns/op")
}

var benchSignReq = SignRequest{Orig: "12155550121", Dest: []string{"12155550131"}, Attest: "A", OrigID: "123e4567-e89b-12d3-a456-426614174000"}

func BenchmarkSign(b *testing.B) {
	e := newBenchEnv(b)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.s.Sign(ctx, benchSignReq); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRawECDSASign(b *testing.B) {
	e := newBenchEnv(b)
	b.ReportAllocs()
	for b.Loop() {
		d := sha256.Sum256([]byte(e.req.Identity[0]))
		if _, err := ecdsa.SignASN1(rand.Reader, e.key, d[:]); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyWarm(b *testing.B) {
	e := newBenchEnv(b)
	ctx := context.Background()
	b.ReportAllocs()
	start := cpuTime(b)
	for b.Loop() {
		if r := e.v.Verify(ctx, e.req); r.Result != stir.Pass {
			b.Fatal(r.Error)
		}
	}
	reportCPU(b, start)
}

func BenchmarkRawECDSAVerify(b *testing.B) {
	e := newBenchEnv(b)
	d := sha256.Sum256([]byte(e.req.Identity[0]))
	sig, _ := ecdsa.SignASN1(rand.Reader, e.key, d[:])
	b.ReportAllocs()
	start := cpuTime(b)
	for b.Loop() {
		d := sha256.Sum256([]byte(e.req.Identity[0]))
		if !ecdsa.VerifyASN1(&e.key.PublicKey, d[:], sig) {
			b.Fatal("verify")
		}
	}
	reportCPU(b, start)
}

// BenchmarkVerifyDiv2Warm verifies a SHAKEN PASSporT diverted twice
// (RFC 8946), with every certificate cached: three signatures where
// BenchmarkVerifyWarm checks one. Compare the two for the chain's cost:
// ns/op is the latency (the links are checked beside the SHAKEN
// PASSporT), cpu-ns/op what the server pays. Three ECDSA verifications
// are ~96% of the CPU (instructions counted under cachegrind: 2.67 M per
// op, 3 x 0.85 M of them in crypto/ecdsa), so the CPU ratio cannot go
// much below ~2.9x; the rest is parsing three tokens.
func BenchmarkVerifyDiv2Warm(b *testing.B) {
	e := newBenchEnv(b)
	ctx := context.Background()
	hdrs := e.req.Identity
	for _, to := range []string{"12155550141", "12155550151"} {
		r, err := e.s.SignDiv(ctx, DivRequest{Identity: hdrs, Dest: []string{to}})
		if err != nil {
			b.Fatal(err)
		}
		hdrs = append(hdrs, r.Identity)
	}
	req := e.req
	req.Identity, req.Target = hdrs, "sip:+12155550151@c.example"
	if r := e.v.Verify(ctx, req); r.Result != stir.Pass || len(r.Div) != 2 {
		b.Fatal(r.Error, r.Detail)
	}
	b.ReportAllocs()
	start := cpuTime(b)
	for b.Loop() {
		if r := e.v.Verify(ctx, req); r.Result != stir.Pass {
			b.Fatal(r.Error)
		}
	}
	reportCPU(b, start)
}

// BenchmarkVerifyRCDWarm verifies a SHAKEN PASSporT carrying rich call
// data (RFC 9795) with rcdi digests over an inline jCard and a logo URL,
// the logo's digest cached: compare with BenchmarkVerifyWarm.
func BenchmarkVerifyRCDWarm(b *testing.B) {
	lab, err := certs.NewLab(certs.LabOptions{})
	if err != nil {
		b.Fatal(err)
	}
	cred, err := lab.Signer()
	if err != nil {
		b.Fatal(err)
	}
	const u, logo = "https://certs.example.net/sp.pem", "https://logo.example.net/acme.png"
	fetch := x5u.Options[*certs.Credential]{Offline: true, PreloadBytes: map[string][]byte{u: lab.ChainPEM(), logo: make([]byte, 4096)}}
	s, err := NewSigner(SignerOptions{Credential: cred, X5U: u, Numbers: tn.NANP(), RCDFetch: fetch})
	if err != nil {
		b.Fatal(err)
	}
	v, err := NewVerifier(VerifierOptions{Roots: lab.Roots(), Numbers: tn.NANP(), Fetch: fetch})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { v.Close() })
	sr := benchSignReq
	sr.RCD = &RCD{Nam: "ACME Corp", Icn: logo, Jcd: `["vcard",[["version",{},"text","4.0"],["fn",{},"text","ACME Corp"]]]`}
	sr.Crn = "Your appointment"
	r, err := s.Sign(context.Background(), sr)
	if err != nil {
		b.Fatal(err)
	}
	req := VerifyRequest{Identity: []string{r.Identity}, From: "<sip:+12155550121@a.example>", To: "<sip:+12155550131@b.example>"}
	ctx := context.Background()
	if res := v.Verify(ctx, req); res.Result != stir.Pass || res.RCD == nil || !res.RCD.Integrity {
		b.Fatal(res.Error, res.Detail)
	}
	b.ReportAllocs()
	for b.Loop() {
		if r := v.Verify(ctx, req); r.Result != stir.Pass {
			b.Fatal(r.Error)
		}
	}
}
