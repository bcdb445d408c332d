package core

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stirgate/stirgate/core/certs"
	"github.com/stirgate/stirgate/core/tn"
)

// TestExpiryLeads: a running Signer logs each lead time once, when it is
// crossed, and Expiry reports the state readiness and metrics read.
func TestExpiryLeads(t *testing.T) {
	lab, err := certs.NewLab(certs.LabOptions{Now: testNow})
	if err != nil {
		t.Fatal(err)
	}
	cred, err := lab.Signer()
	if err != nil {
		t.Fatal(err)
	}
	end := cred.NotAfter
	var clk atomic.Int64
	set := func(t time.Time) { clk.Store(t.UnixNano()) }
	now := func() time.Time { return time.Unix(0, clk.Load()).UTC() }
	set(end.Add(-40 * 24 * time.Hour))
	var logs bytes.Buffer // one goroutine: no lock needed
	s, err := NewSigner(SignerOptions{Credential: cred, X5U: "https://cr.example.net/sp.pem", Numbers: tn.NANP(), Now: now,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	sign := func() error {
		_, err := s.Sign(context.Background(), SignRequest{Orig: origTN, Dest: []string{destTN}, Attest: "A", OrigID: uuidOK})
		return err
	}
	crossings := func() int { return strings.Count(logs.String(), "lead time crossed") }

	if err := sign(); err != nil || crossings() != 0 {
		t.Fatalf("40 days before: err %v, %d warnings", err, crossings())
	}
	if e := s.Expiry(now()); e.Lead != 0 || !e.CanSign || e.Last {
		t.Fatalf("40 days before: %+v", e)
	}
	for i, step := range []struct {
		before time.Duration
		lead   time.Duration
	}{{29 * 24 * time.Hour, 720 * time.Hour}, {6 * 24 * time.Hour, 168 * time.Hour}, {12 * time.Hour, 24 * time.Hour}} {
		set(end.Add(-step.before))
		for range 3 {
			if err := sign(); err != nil {
				t.Fatal(err)
			}
		}
		if crossings() != i+1 {
			t.Fatalf("%s before: %d warnings, want %d:\n%s", step.before, crossings(), i+1, logs.String())
		}
		if !strings.Contains(logs.String(), "lead="+step.lead.String()) {
			t.Fatalf("no warning for %s:\n%s", step.lead, logs.String())
		}
		e := s.Expiry(now())
		if e.Lead != step.lead || !e.CanSign || e.Last != (step.lead == 24*time.Hour) {
			t.Fatalf("%s before: %+v", step.before, e)
		}
	}
	set(end.Add(time.Second))
	if e := s.Expiry(now()); e.CanSign || e.Left >= 0 {
		t.Fatalf("after notAfter: %+v", e)
	}
	if err := sign(); err == nil {
		t.Fatal("signed with an expired certificate")
	}

	// A Signer built within a lead time does not warn again for it.
	logs.Reset()
	set(end.Add(-5 * 24 * time.Hour))
	s, err = NewSigner(SignerOptions{Credential: cred, X5U: "https://cr.example.net/sp.pem", Numbers: tn.NANP(), Now: now,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := sign(); err != nil || crossings() != 0 || !strings.Contains(logs.String(), "expires soon") {
		t.Fatalf("built 5 days before: err %v\n%s", err, logs.String())
	}
}
