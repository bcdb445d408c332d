package main

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stirgate/stirgate/core"
	"github.com/stirgate/stirgate/core/certs"
	"github.com/stirgate/stirgate/outcome"
)

// TestSpoolRecords: with a ConfigFile naming [store] spool_dir, the
// drop-in records every check and signing; the collector stores them.
func TestSpoolRecords(t *testing.T) {
	f := newFixture(t)
	dir := t.TempDir()
	spoolDir := filepath.Join(dir, "spool")
	os.WriteFile(filepath.Join(dir, "chain.pem"), f.lab.ChainPEM(), 0o644)
	root := filepath.Join(dir, "root.pem")
	os.WriteFile(root, certs.EncodePEM(f.lab.Root), 0o644)
	conf := filepath.Join(dir, "stirgate.toml")
	os.WriteFile(conf, []byte("[x5u]\noffline = true\n[x5u.preload]\n\"https://certs.example.net/sp.pem\" = \"chain.pem\"\n"+
		"[store]\nsystem = \"kam2\"\nspool_dir = \"spool\"\n"), 0o644)
	f.lib.setS("CertCAFile", root)
	f.lib.setS("ConfigFile", conf)

	cred, err := f.lab.Signer()
	if err != nil {
		t.Fatal(err)
	}
	s, err := core.NewSigner(core.SignerOptions{Credential: cred, X5U: "https://certs.example.net/sp.pem", Now: func() time.Time { return f.now }})
	if err != nil {
		t.Fatal(err)
	}
	r, err := s.Sign(context.Background(), core.SignRequest{Orig: "12155550121", Dest: []string{"12155550131"}, Attest: "A"})
	if err != nil {
		t.Fatal(err)
	}
	if got := f.lib.check(r.Identity, checkFull, 60, keySource{}, 5); got != retOK {
		t.Fatalf("check: %d", got)
	}
	f.lib.now = func() time.Time { return f.now.Add(90 * time.Second) }
	if got := f.lib.check(r.Identity, checkFull, 60, keySource{}, 5); got != retJSONPayloadExpired {
		t.Fatalf("stale: %d", got)
	}
	if _, rc := f.lib.getIdentity("12155550121", "12155550131", "A", "", "https://certs.example.net/sp.pem", keySource{path: f.key}); rc != retOK {
		t.Fatalf("sign: %d", rc)
	}
	// A new option retires the engine at the next call; its spool file
	// is sealed.
	f.lib.setS("ConfigFile", "")
	f.lib.check(r.Identity, checkFull, 60, keySource{}, 5)
	st, err := outcome.Open(context.Background(), outcome.Options{Path: filepath.Join(t.TempDir(), "o.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if n, err := outcome.Collect(context.Background(), st, outcome.CollectOptions{Dir: spoolDir}); err != nil || n != 3 {
		t.Fatalf("collected %d, %v", n, err)
	}
	rows, _ := st.Query(context.Background(), outcome.Filter{})
	got := map[string]outcome.Outcome{}
	for _, o := range rows {
		got[o.Kind+"/"+o.Result] = o
		if o.System != "kam2" || o.Source != outcome.SourceSecsipid {
			t.Errorf("row %+v", o)
		}
	}
	if o := got["verify/pass"]; o.Attest != "A" || o.X5U == "" {
		t.Errorf("pass %+v", o)
	}
	if o := got["verify/fail"]; o.ErrorName != "stale_iat" || o.Orig != "12155550121" || o.X5U == "" {
		t.Errorf("fail %+v", o)
	}
	if o := got["sign/signed"]; o.Orig != "12155550121" {
		t.Errorf("sign %+v", o)
	}
}
