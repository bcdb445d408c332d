package main

import (
	"context"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/stirgate/stirgate/core"
	store "github.com/stirgate/stirgate/outcome"
)

// TestSpoolRecords: with [store] spool_dir, every sign and check of the
// library lands in the process's spool file, and the collector stores it
// with what a failure could read.
func TestSpoolRecords(t *testing.T) {
	dir := writeLab(t)
	spoolDir := filepath.Join(t.TempDir(), "spool")
	// The customer's rich call data is signed in: a pass records its nam.
	h := mustOpen(t, labTOML(dir, "\n[policy.customer.rcd]\nnam = \"ACME Corp\"\n")+"\n[store]\nsystem = \"kam1\"\nspool_dir = "+strconvQuote(spoolDir)+"\n")
	good, err := sign(h, signIn{Orig: "12155550121", Dest: "12155550131", Source: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sign(h, signIn{Orig: "12155550121", Dest: "12155550131", Attest: "A", Date: "Mon, 01 Jan 2001 00:00:00 GMT"}); err == nil {
		t.Fatal("stale sign accepted")
	}
	if _, err := verify(h, core.VerifyRequest{Identity: []string{good.Identity}, From: "<sip:+12155550121@a>", To: "<sip:+12155550131@b>"}); err != nil {
		t.Fatal(err)
	}
	if _, err := verify(h, core.VerifyRequest{Identity: []string{good.Identity}, From: "<sip:+12155550199@a>", To: "<sip:+12155550131@b>"}); err != nil {
		t.Fatal(err)
	}
	// Closing the handle (Kamailio's shutdown) seals the file.
	if err := closeHandle(h); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(context.Background(), store.Options{Path: filepath.Join(t.TempDir(), "o.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if n, err := store.Collect(context.Background(), st, store.CollectOptions{Dir: spoolDir}); err != nil || n != 4 {
		t.Fatalf("collected %d, %v", n, err)
	}
	rows, err := st.Query(context.Background(), store.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]store.Outcome{}
	for _, o := range rows {
		got[o.Kind+"/"+o.Result] = o
		if o.System != "kam1" || o.Source != store.SourceKamailio || !strings.HasPrefix(o.UniqueID, "k") {
			t.Errorf("row %+v", o)
		}
	}
	if o := got["sign/signed"]; o.Attest != "A" || o.Peer != "127.0.0.1" || o.Direction != "outbound" {
		t.Errorf("signed %+v", o)
	}
	if o := got["sign/unsigned"]; o.ErrorName != "sign_date_out_of_window" {
		t.Errorf("unsigned %+v", o)
	}
	if o := got["verify/pass"]; o.SPC != "1234" || o.X5U != labURL || o.Attest != "A" || o.RCDNam != "ACME Corp" {
		t.Errorf("pass %+v", o)
	}
	if o := got["verify/fail"]; o.ErrorName != "orig_mismatch" || o.Orig != "12155550121" || o.X5U != labURL || o.SIPCode != 438 || o.RCDNam != "" {
		t.Errorf("fail %+v", o)
	}
}

func strconvQuote(s string) string { return `"` + strings.ReplaceAll(s, `\`, `\\`) + `"` }

// BenchmarkVerifyRecorded and BenchmarkVerifyUnrecorded measure what the
// spool adds to one check of a Kamailio worker (warm x5u cache). The
// budget is 5 % of the check.
func BenchmarkVerifyRecorded(b *testing.B)   { benchVerify(b, true) }
func BenchmarkVerifyUnrecorded(b *testing.B) { benchVerify(b, false) }

// BenchmarkRecordOnly is the recording alone, for the ratio against
// BenchmarkVerifyUnrecorded measured in the same run.
func BenchmarkRecordOnly(b *testing.B) {
	dir := writeLab(b)
	h, err := openTOML(labTOML(dir, "") + "\n[store]\nspool_dir = " + strconvQuote(filepath.Join(b.TempDir(), "spool")) + "\n")
	if err != nil {
		b.Fatal(err)
	}
	defer closeHandle(h)
	good, err := sign(h, signIn{Orig: "12155550121", Dest: "12155550131", Source: "127.0.0.1"})
	if err != nil {
		b.Fatal(err)
	}
	c, err := verify(h, core.VerifyRequest{Identity: []string{good.Identity}, From: "<sip:+12155550121@a>", To: "<sip:+12155550131@b>"})
	if err != nil {
		b.Fatal(err)
	}
	inst, _ := lookup(h)
	st, _ := inst.acquire()
	defer st.refs.Done()
	b.ResetTimer()
	cpu := cpuTime()
	for b.Loop() {
		st.rec.Verified(c.res)
	}
	b.ReportMetric(float64(cpuTime()-cpu)/float64(b.N), "cpu-ns/op")
}

// cpuTime is the process's user and system CPU time in nanoseconds. On a
// loaded machine wall time per operation mostly measures waiting for a
// CPU; CPU time per operation is what the call costs.
func cpuTime() int64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}

func benchVerify(b *testing.B, record bool) {
	dir := writeLab(b)
	text := labTOML(dir, "")
	if record {
		text += "\n[store]\nspool_dir = " + strconvQuote(filepath.Join(b.TempDir(), "spool")) + "\n"
	}
	h, err := openTOML(text)
	if err != nil {
		b.Fatal(err)
	}
	defer closeHandle(h)
	good, err := sign(h, signIn{Orig: "12155550121", Dest: "12155550131", Source: "127.0.0.1"})
	if err != nil {
		b.Fatal(err)
	}
	req := core.VerifyRequest{Identity: []string{good.Identity}, From: "<sip:+12155550121@a>", To: "<sip:+12155550131@b>"}
	b.ResetTimer()
	cpu := cpuTime()
	for b.Loop() {
		c, err := verify(h, req)
		if err != nil || c.res.Result != "pass" {
			b.Fatal(err, c.res.Error)
		}
	}
	b.ReportMetric(float64(cpuTime()-cpu)/float64(b.N), "cpu-ns/op")
}
