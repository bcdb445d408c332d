package crl_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stirgate/stirgate/core/certs"
	"github.com/stirgate/stirgate/core/crl"
)

// BenchmarkCheck is what a fetched CRL adds to each verification: a map
// look-up per chain certificate under a read lock.
func BenchmarkCheck(b *testing.B) {
	w := newWorld(b)
	w.crl.serve(signCRL(b, w.lab, 1, t0.Add(-time.Hour), t0.Add(24*time.Hour)))
	src := w.source(crl.Reject)
	if err := src.Refresh(context.Background()); err != nil {
		b.Fatal(err)
	}
	chain := w.lab.Chain()
	now := w.clk.now()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := src.Check(chain, nil, now); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkAnchorsCheck is the trust-file look of each verification with
// trust_check_interval = 0 (a stat per file), and with the default 1s.
func BenchmarkAnchorsCheck(b *testing.B) {
	lab, err := certs.NewLab(certs.LabOptions{Now: t0})
	if err != nil {
		b.Fatal(err)
	}
	f := filepath.Join(b.TempDir(), "anchors.pem")
	if err := os.WriteFile(f, certs.EncodePEM(lab.Root), 0o644); err != nil {
		b.Fatal(err)
	}
	for _, iv := range []time.Duration{0, time.Second} {
		b.Run(iv.String(), func(b *testing.B) {
			a, err := certs.LoadAnchors(certs.AnchorOptions{Files: []string{f}, CheckInterval: iv})
			if err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				if a.Check() {
					b.Fatal("changed")
				}
			}
		})
	}
}
