package main

import (
	"bytes"
	"context"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stirgate/stirgate/outcome"
)

// TestTenantRotationUnderLoad: SIPp signs calls of blue's customer
// through the SIP redirect without pause while (1) a SIGHUP reload adds
// blue's next credential, activating a second later, and (2) the
// activation instant passes. No call fails; every call before the instant
// is signed with the current credential and every call from it on with
// the next, and both chains are published during the overlap.
func TestTenantRotationUnderLoad(t *testing.T) {
	// The reload is a SIGHUP to this process: hold it here too, so that a
	// signal arriving before serve listens cannot end the test binary.
	guard := make(chan os.Signal, 1)
	signal.Notify(guard, syscall.SIGHUP)
	defer signal.Stop(guard)

	e := newTenantEnv(t, "")
	_, logs := e.serve(t)
	st, err := outcome.Open(context.Background(), outcome.Options{Path: filepath.Join(e.dir, "outcomes.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	// signedWith counts blue's recorded signatures by x5u.
	signedWith := func(x5u string) int {
		os, err := st.Query(context.Background(), outcome.Filter{Kind: outcome.KindSign, Tenant: "blue", Limit: outcome.MaxLimit})
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, o := range os {
			if o.X5U == x5u {
				n++
			}
		}
		return n
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for !cond() {
			if t.Failed() || time.Now().After(deadline) {
				t.Fatalf("waiting for %s:\n%s", what, tail(logs.String(), 3000))
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	quit := make(chan struct{})
	type sippOut struct {
		idents     []string
		ok, failed int
	}
	done := make(chan sippOut, 1)
	go func() {
		ids, ok, failed := sippCall(t, e.sip, "otg-acme", "+12155550121", 100000, 50, quit)
		done <- sippOut{ids, ok, failed}
	}()

	cur, next := x5uOf("blue"), x5uOf("blue-next")
	waitFor("calls signed with the current credential", func() bool { return signedWith(cur) >= 20 })

	// Rotate: the next credential (another PKI, same SPC) activates on a
	// whole second (iat has whole seconds) after the reload.
	activate := time.Now().Add(2500 * time.Millisecond).Truncate(time.Second)
	rot := "next_key = \"blue2/sp.key\"\nnext_cert = \"blue2/sp-chain.pem\"\nnext_x5u = \"" + next + "\"\nactivate = " + activate.UTC().Format(time.RFC3339) + "\n"
	b, err := os.ReadFile(e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	b = bytes.Replace(b, []byte("x5u = \""+cur+"\"\n"), []byte("x5u = \""+cur+"\"\n"+rot), 1)
	if err := os.WriteFile(e.cfg, b, 0o600); err != nil {
		t.Fatal(err)
	}
	// A SIGHUP lost before serve listened for it is sent again: a second
	// reload of the same file changes nothing.
	waitFor("the reload", func() bool {
		if strings.Contains(logs.String(), "msg=reloaded") {
			return true
		}
		_ = syscall.Kill(os.Getpid(), syscall.SIGHUP)
		return false
	})
	// A reload that ends after the instant (a slow, loaded host) leaves a
	// window in which the old configuration still signs: nothing can sign
	// with a credential it has not loaded. Calls in that window may carry
	// either credential; every other call must be exact. The core test
	// (an injected clock) pins the switch itself to the instant.
	loaded := time.Now()
	strictFrom := activate
	if loaded.After(activate) {
		strictFrom = loaded.Truncate(time.Second).Add(time.Second)
		t.Logf("the reload ended %s after the activation instant; calls until %s may carry either credential",
			loaded.Sub(activate).Round(time.Millisecond), strictFrom.UTC().Format(time.RFC3339))
	}
	// During the overlap both chains are published, each at its x5u.
	if !bytes.Equal(e.published(t, "blue.pem"), e.labs["blue"].ChainPEM()) {
		t.Error("/certs/blue.pem is not the current chain")
	}
	if !bytes.Equal(e.published(t, "blue-next.pem"), e.labs["blue2"].ChainPEM()) {
		t.Error("/certs/blue-next.pem is not the next chain")
	}
	waitFor("calls signed with the next credential", func() bool { return signedWith(next) >= 20 })
	close(quit)
	r := <-done
	if r.failed != 0 || r.ok == 0 {
		t.Fatalf("%d calls ok, %d failed", r.ok, r.failed)
	}
	// After it, the chain that signed until the instant is still served
	// at its x5u: tokens signed just before it stay verifiable.
	if !bytes.Equal(e.published(t, "blue.pem"), e.labs["blue"].ChainPEM()) {
		t.Error("the current chain is no longer published at its x5u after the activation")
	}

	// Every call: the credential its signing second calls for.
	var before, after string
	for _, id := range r.idents {
		x5u, _, iat := claimsOf(t, id)
		switch {
		case x5u == cur && iat < activate.Unix():
			before = id
		case x5u == next && iat >= activate.Unix():
			after = id
		case x5u == cur && iat < strictFrom.Unix():
			// The late-reload window above.
		default:
			t.Fatalf("signed at %s with %s; activation %s", time.Unix(iat, 0).UTC(), x5u, activate.UTC())
		}
	}
	if before == "" || after == "" || len(r.idents) != r.ok {
		t.Fatalf("%d identities of %d calls; one before the instant: %v, one after: %v", len(r.idents), r.ok, before != "", after != "")
	}
	// And each verifies with its own chain, not with the other.
	chain := func(lab string) string {
		f := filepath.Join(e.dir, lab+"-chain.pem")
		if err := os.WriteFile(f, e.labs[lab].ChainPEM(), 0o644); err != nil {
			t.Fatal(err)
		}
		return f
	}
	if !e.verifyWith(t, before, "blue", chain("blue"), "12155550121") || e.verifyWith(t, before, "blue2", chain("blue2"), "12155550121") {
		t.Error("a call before the instant does not verify with the current chain only")
	}
	if !e.verifyWith(t, after, "blue2", chain("blue2"), "12155550121") || e.verifyWith(t, after, "blue", chain("blue"), "12155550121") {
		t.Error("a call after the instant does not verify with the next chain only")
	}
	t.Logf("rotation under load: %d calls, 0 failed; activation %s", r.ok, activate.UTC().Format(time.RFC3339))
}
