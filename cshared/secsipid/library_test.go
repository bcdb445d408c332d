package main

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stirgate/stirgate/core"
	"github.com/stirgate/stirgate/core/certs"
	"github.com/stirgate/stirgate/core/stir"
	"github.com/stirgate/stirgate/internal/testlog"
	"github.com/stirgate/stirgate/internal/testpki"
)

// Every stirgate error name has a libsecsipid code, and every code a
// check can return is negative: a new sentinel without a mapping fails
// here rather than reaching Kamailio as -1.
func TestEveryErrorHasACode(t *testing.T) {
	for _, e := range stir.All() {
		c, ok := codeByName[e.Name]
		if !ok {
			t.Errorf("%s has no libsecsipid code", e.Name)
		}
		if c >= 0 {
			t.Errorf("%s maps to %d, want negative", e.Name, c)
		}
	}
	if codeOf(nil) >= 0 || codeOf(os.ErrNotExist) != retInternal {
		t.Error("a non-stir error must be an internal error")
	}
}

// TestForkCodeMatchesHeader: the code shim.c returns in a forked child is
// the one secsipid.h and this package document, and no other failure
// uses it, so a script can tell "load after fork" from anything else.
func TestForkCodeMatchesHeader(t *testing.T) {
	h, err := os.ReadFile("secsipid.h")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^#define SECSIPID_EFORK \((-?\d+)\)`).FindSubmatch(h)
	if m == nil {
		t.Fatal("secsipid.h does not define SECSIPID_EFORK")
	}
	if n, _ := strconv.Atoi(string(m[1])); n != retFork {
		t.Fatalf("SECSIPID_EFORK is %d in secsipid.h, %d in codes.go", n, retFork)
	}
	if !regexp.MustCompile(`(?m)^ \*\s+` + strconv.Itoa(retFork) + `\s+\S`).Match(h) {
		t.Errorf("secsipid.h's code list does not document %d", retFork)
	}
	for name, c := range codeByName {
		if c == retFork {
			t.Errorf("%s maps to the fork code %d", name, c)
		}
	}
}

func TestOptions(t *testing.T) {
	var s settings
	s.opts = defaultOptions()
	tests := []struct {
		name string
		set  func() int
		want int
	}{
		{"libopt without =", func() int { return s.setV("CertVerify") }, retErr},
		{"empty libopt", func() int { return s.setV("") }, retErr},
		{"unknown", func() int { return s.setV("Nope=1") }, retErr},
		{"bad number", func() int { return s.setV("CacheExpires=x") }, retErr},
		{"CertVerify out of range", func() int { return s.setN("CertVerify", 64) }, retErr},
		{"negative expires", func() int { return s.setN("CacheExpires", -1) }, retErr},
		{"CertVerify", func() int { return s.setV(" CertVerify = 5 ") }, retOK},
		{"x5u keeps '='", func() int { return s.setV("x5u=https://a.example/x.pem?a=b") }, retOK},
		{"CertCAFile", func() int { return s.setS("CertCAFile", "/etc/ca.pem") }, retOK},
		{"AttrsVerify", func() int { return s.setN("AttrsVerify", 0) }, retOK},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.set(); got != tc.want {
				t.Errorf("got %d, want %d", got, tc.want)
			}
		})
	}
	if s.getN("CertVerify") != 5 || s.getN("AttrsVerify") != 0 || s.getN("CacheExpires") != 3600 || s.getN("x5u") != retErr {
		t.Errorf("read back: %+v", s.opts)
	}
	if s.opts.x5u != "https://a.example/x.pem?a=b" {
		t.Errorf("x5u %q", s.opts.x5u)
	}
	// Setting the same value again keeps the generation (and the warm
	// verifier built for it).
	_, gen := s.get()
	s.setFileCache("", 3600)
	s.setN("CertVerify", 5)
	if _, g := s.get(); g != gen {
		t.Errorf("generation moved from %d to %d without a change", gen, g)
	}
	s.setFileCache("/var/cache/stir", 3600)
	if _, g := s.get(); g == gen {
		t.Error("generation did not move on a change")
	}
}

type fixture struct {
	lib *library
	lab *certs.Lab
	key string
	now time.Time
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	lab := testpki.New(t, certs.LabOptions{})
	dir := t.TempDir()
	if err := lab.WriteDir(dir); err != nil {
		t.Fatal(err)
	}
	l := newLibrary()
	l.now = func() time.Time { return lab.Now }
	return &fixture{lib: l, lab: lab, key: filepath.Join(dir, "sp.key"), now: lab.Now}
}

func TestSignAndCheckWithKey(t *testing.T) {
	f := newFixture(t)
	id, rc := f.lib.getIdentity("+1 215 555 0121", "12155550131", "A", "", "https://certs.example.net/sp.pem", keySource{path: f.key})
	if rc != retOK {
		t.Fatalf("getIdentity: %d", rc)
	}
	if !strings.HasSuffix(id, ";info=<https://certs.example.net/sp.pem>;alg=ES256;ppt=shaken") {
		t.Errorf("identity %s", id)
	}
	chain := string(f.lab.ChainPEM())
	tok := id[:strings.IndexByte(id, ';')]
	other, _ := f.lib.getIdentity("12155550199", "12155550131", "A", "", "https://certs.example.net/sp.pem", keySource{path: f.key})
	p := strings.Split(tok, ".")
	q := strings.Split(other, ".")
	tampered := p[0] + "." + q[1] + "." + p[2]

	tests := []struct {
		name   string
		value  string
		mode   checkMode
		expire int
		key    keySource
		clock  time.Duration
		want   int
	}{
		{"full, chain as key", id, checkFull, 60, keySource{data: []byte(chain)}, 0, retOK},
		{"token, chain as key", tok, checkToken, 60, keySource{data: []byte(chain)}, 0, retOK},
		{"stale", id, checkFull, 60, keySource{data: []byte(chain)}, 2 * time.Minute, retJSONPayloadExpired},
		{"stale within expire", id, checkFull, 300, keySource{data: []byte(chain)}, 2 * time.Minute, retOK},
		{"future", id, checkFull, 60, keySource{data: []byte(chain)}, -2 * time.Minute, retJSONPayloadFuture},
		{"tampered", tampered + ";info=<https://certs.example.net/sp.pem>", checkFull, 60, keySource{data: []byte(chain)}, 0, retJSONSignatureBad},
		{"not a key", id, checkFull, 60, keySource{data: []byte("hello")}, 0, retCertInvalidFormat},
		{"missing file", id, checkFull, 60, keySource{path: "/nonexistent.pem"}, 0, retFileRead},
		{"empty", "  ", checkFull, 60, keySource{data: []byte(chain)}, 0, retSIPHdrEmpty},
		{"ppt other", tok + ";info=<https://certs.example.net/sp.pem>;ppt=div", checkFull, 60, keySource{data: []byte(chain)}, 0, retSIPHdrPpt},
		{"info differs from x5u", tok + ";info=<https://other.example.net/sp.pem>", checkFull, 60, keySource{data: []byte(chain)}, 0, retJSONHdrX5U},
		{"no trust anchor for x5u mode", id, checkFull, 60, keySource{}, 0, retCertNoCAFile},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f.lib.now = func() time.Time { return f.now.Add(tc.clock) }
			if got := f.lib.check(tc.value, tc.mode, tc.expire, tc.key, 5); got != tc.want {
				t.Errorf("check = %d, want %d", got, tc.want)
			}
		})
	}
}

func TestSignRefusals(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		name                   string
		orig, dest, attest, x5 string
		key                    keySource
		want                   int
	}{
		{"attest D", "12155550121", "12155550131", "D", "https://a.example/x.pem", keySource{path: f.key}, retSignInput},
		{"letters", "abc", "12155550131", "A", "https://a.example/x.pem", keySource{path: f.key}, retSignInput},
		{"no x5u", "12155550121", "12155550131", "A", "", keySource{path: f.key}, retNoX5U},
		{"no key file", "12155550121", "12155550131", "A", "https://a.example/x.pem", keySource{path: "/nonexistent"}, retFileRead},
		{"certificate as key", "12155550121", "12155550131", "A", "https://a.example/x.pem", keySource{data: f.lab.ChainPEM()}, retPrvKeyFormat},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, got := f.lib.getIdentity(tc.orig, tc.dest, tc.attest, "", tc.x5, tc.key); got != tc.want {
				t.Errorf("got %d, want %d", got, tc.want)
			}
		})
	}
}

// The x5u mode is the core Verifier's: a token from the core Signer
// verifies through a preloaded chain with the lab root as anchor.
func TestCheckX5UThroughVerifier(t *testing.T) {
	f := newFixture(t)
	dir := t.TempDir()
	chain := filepath.Join(dir, "chain.pem")
	root := filepath.Join(dir, "root.pem")
	os.WriteFile(chain, f.lab.ChainPEM(), 0o644)
	os.WriteFile(root, certs.EncodePEM(f.lab.Root), 0o644)
	conf := filepath.Join(dir, "stirgate.toml")
	os.WriteFile(conf, []byte("[x5u]\noffline = true\n[x5u.preload]\n\"https://certs.example.net/sp.pem\" = \"chain.pem\"\n"), 0o644)
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
		t.Errorf("x5u mode: %d", got)
	}
	tok := r.Identity[:strings.IndexByte(r.Identity, ';')]
	if got := f.lib.check(tok, checkToken, 60, keySource{}, 5); got != retOK {
		t.Errorf("bare token, x5u mode: %d", got)
	}
	f.lib.now = func() time.Time { return f.now.Add(90 * time.Second) }
	if got := f.lib.check(r.Identity, checkFull, 60, keySource{}, 5); got != retJSONPayloadExpired {
		t.Errorf("stale in x5u mode: %d", got)
	}
	f.lib.setS("ConfigFile", filepath.Join(dir, "missing.toml"))
	if got := f.lib.check(r.Identity, checkFull, 60, keySource{}, 5); got != retConfig {
		t.Errorf("bad config: %d", got)
	}
}

// FuzzCheck feeds arbitrary Identity values and keys to the check path:
// it must never panic and never return a positive value.
func FuzzCheck(f *testing.F) {
	lab := testpki.New(f, certs.LabOptions{})
	chain := lab.ChainPEM()
	l := newLibrary()
	l.now = func() time.Time { return lab.Now }
	f.Add("eyJhbGciOiJFUzI1NiJ9.e30.AAAA;info=<https://a.example/x.pem>", false)
	f.Add("a.b.c", true)
	f.Add(";;;info=<>", false)
	f.Fuzz(func(t *testing.T, value string, token bool) {
		mode := checkFull
		if token {
			mode = checkToken
		}
		if rc := l.check(value, mode, 60, keySource{data: chain}, 1); rc > 0 {
			t.Fatalf("check returned %d", rc)
		}
		if rc := l.setV(value); rc != retOK && rc != retErr {
			t.Fatalf("setV returned %d", rc)
		}
	})
}

// Signing, checking and option changes from many goroutines (run with
// -race): every result stays right while engines are rebuilt under them.
func TestConcurrent(t *testing.T) {
	f := newFixture(t)
	chain := f.lab.ChainPEM()
	done := make(chan error, 8)
	for g := 0; g < 8; g++ {
		go func(g int) {
			for i := 0; i < 50; i++ {
				id, rc := f.lib.getIdentity("12155550121", "12155550131", "A", "", "https://certs.example.net/sp.pem", keySource{path: f.key})
				if rc != retOK {
					done <- fmtErr("sign", rc)
					return
				}
				if rc := f.lib.check(id, checkFull, 60, keySource{data: chain}, 5); rc != retOK {
					done <- fmtErr("check", rc)
					return
				}
				// Flip an option now and then: engines are retired under
				// concurrent users.
				f.lib.setN("CacheExpires", 3600+(g*50+i)%3)
			}
			done <- nil
		}(g)
	}
	for g := 0; g < 8; g++ {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}

func fmtErr(what string, rc int) error { return &codeErr{what, rc} }

type codeErr struct {
	what string
	rc   int
}

func (e *codeErr) Error() string { return e.what + ": code " + strconv.Itoa(e.rc) }

// Distinct expire values each get a verifier, up to a bound.
func TestVerifierBound(t *testing.T) {
	f := newFixture(t)
	dir := t.TempDir()
	root := filepath.Join(dir, "root.pem")
	os.WriteFile(root, certs.EncodePEM(f.lab.Root), 0o644)
	f.lib.setS("CertCAFile", root)
	e := f.lib.acquire()
	defer e.release()
	for i := 1; i <= maxVerifiers; i++ {
		if _, rc := e.verifier(i); rc != retOK {
			t.Fatalf("verifier %d: %d", i, rc)
		}
	}
	if _, rc := e.verifier(1); rc != retOK {
		t.Error("an existing expire value must still be served")
	}
	if _, rc := e.verifier(maxVerifiers + 1); rc != retErr {
		t.Errorf("verifier beyond the bound: %d, want %d", rc, retErr)
	}
}

// A configured but unreadable CA fails key mode for a certificate instead
// of silently skipping the chain check; a bare public key is unaffected.
func TestKeyModeBrokenCA(t *testing.T) {
	f := newFixture(t)
	id, rc := f.lib.getIdentity("12155550121", "12155550131", "A", "", "https://certs.example.net/sp.pem", keySource{path: f.key})
	if rc != retOK {
		t.Fatal(rc)
	}
	f.lib.setS("CertCAFile", filepath.Join(t.TempDir(), "missing.pem"))
	if got := f.lib.check(id, checkFull, 60, keySource{data: f.lab.ChainPEM()}, 5); got != retCertReadCAFile {
		t.Errorf("certificate as key with a broken CA: %d, want %d", got, retCertReadCAFile)
	}
	pub, err := x509.MarshalPKIXPublicKey(f.lab.Leaf.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pemKey := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub})
	if got := f.lib.check(id, checkFull, 60, keySource{data: pemKey}, 5); got != retOK {
		t.Errorf("bare public key: %d", got)
	}
}

// A hanging x5u server costs a check no more than its timeout argument.
func TestCheckDeadline(t *testing.T) {
	f := newFixture(t)
	release := make(chan struct{})
	srv := testlog.NewTLSServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release
	}))
	defer srv.Close()
	defer close(release)
	dir := t.TempDir()
	tlsPEM := filepath.Join(dir, "tls.pem")
	os.WriteFile(tlsPEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o644)
	root := filepath.Join(dir, "root.pem")
	os.WriteFile(root, certs.EncodePEM(f.lab.Root), 0o644)
	conf := filepath.Join(dir, "stirgate.toml")
	host := srv.Listener.Addr().String()
	os.WriteFile(conf, []byte("[x5u]\nlab_hosts = [\""+host+"\"]\nca_file = \"tls.pem\"\ntimeout = \"30s\"\n"), 0o644)
	f.lib.setS("CertCAFile", root)
	f.lib.setS("ConfigFile", conf)
	f.lib.now = time.Now
	x5u := "https://" + host + "/sp.pem"
	id, rc := f.lib.getIdentity("12155550121", "12155550131", "A", "", x5u, keySource{path: f.key})
	if rc != retOK {
		t.Fatal(rc)
	}
	start := time.Now()
	got := f.lib.check(id, checkFull, 60, keySource{}, 1)
	// The server never answers, so only a deadline ends the check: the
	// call's 1 s or the configured 30 s. Which one is told apart with a
	// margin no load reaches; the exact time is not judged.
	took := time.Since(start)
	t.Logf("check returned after %s", took.Round(time.Millisecond))
	if took >= 20*time.Second {
		t.Errorf("check took %s: the call's 1 s timeout was not used", took)
	}
	if got != retHTTPGet {
		t.Errorf("hanging x5u: %d, want %d", got, retHTTPGet)
	}
}
