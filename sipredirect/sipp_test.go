package sipredirect

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stirgate/stirgate/core"
	"github.com/stirgate/stirgate/core/disposition"
)

// These tests drive the redirect server with SIPp (Debian sip-tester) and
// check what it returns with `stirgate verify` and secsipidx. A missing
// peer fails the test: `make test` installs them.

func requirePeer(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s is not installed (make test-deps installs it): %v", name, err)
	}
	return p
}

// stirgateBin returns the CLI: STIRGATE_BIN (set by make) or a fresh build.
func stirgateBin(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("STIRGATE_BIN"); p != "" {
		return p
	}
	out := filepath.Join(t.TempDir(), "stirgate")
	cmd := exec.Command("go", "build", "-o", out, "../cmd/stirgate")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building stirgate: %v\n%s", err, b)
	}
	return out
}

func freePort(t testing.TB, network string) int {
	t.Helper()
	switch network {
	case "udp":
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.LocalAddr().(*net.UDPAddr).Port
	default:
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		return l.Addr().(*net.TCPAddr).Port
	}
}

// sippRun runs one SIPp client and returns its <log> lines.
type sippRun struct {
	Scenario  string
	Target    string // host:port
	Transport string // "udp" or "tcp"
	Keys      map[string]string
	Args      []string // extra (rate, count)
	Timeout   time.Duration
}

func (r sippRun) run(t testing.TB) (logs string, dir string) {
	t.Helper()
	sipp := requirePeer(t, "sipp")
	dir = t.TempDir()
	tr := "u1"
	if r.Transport == "tcp" {
		tr = "t1"
	}
	if r.Timeout == 0 {
		r.Timeout = 20 * time.Second
	}
	args := []string{
		"-sf", filepath.Join("testdata", "sipp", r.Scenario),
		"-i", "127.0.0.1", "-p", strconv.Itoa(freePort(t, r.Transport)), "-t", tr,
		"-nostdin", "-timeout", strconv.Itoa(int(r.Timeout.Seconds())) + "s", "-timeout_error",
		"-trace_logs", "-log_file", filepath.Join(dir, "logs.log"),
		"-trace_err", "-error_file", filepath.Join(dir, "errors.log"),
		"-trace_stat", "-stf", filepath.Join(dir, "stat.csv"),
	}
	for k, v := range r.Keys {
		args = append(args, "-key", k, v)
	}
	if len(r.Args) == 0 {
		args = append(args, "-m", "1", "-l", "1")
	}
	args = append(args, r.Args...)
	args = append(args, r.Target)
	ctx, cancel := context.WithTimeout(context.Background(), r.Timeout+15*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, sipp, args...)
	cmd.Dir = dir
	cmd.Args[2] = mustAbs(t, cmd.Args[2])
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	b, _ := os.ReadFile(filepath.Join(dir, "logs.log"))
	if err != nil {
		e, _ := os.ReadFile(filepath.Join(dir, "errors.log"))
		t.Fatalf("sipp %s over %s failed: %v\n--- errors:\n%s\n--- logs:\n%s\n--- output (tail):\n%s", r.Scenario, r.Transport, err, e, b, tail(out.String(), 3000))
	}
	return string(b), dir
}

func mustAbs(t testing.TB, p string) string {
	a, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// logValue returns the value of the first "<key> value" log line.
func logValue(t testing.TB, logs, key string) string {
	t.Helper()
	for _, ln := range strings.Split(logs, "\n") {
		ln = strings.TrimSpace(ln)
		if ln == key {
			return ""
		}
		if v, ok := strings.CutPrefix(ln, key+" "); ok {
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("no %s line in SIPp logs:\n%s", key, logs)
	return ""
}

// sippServer runs a redirect server on loopback for SIPp: auto mode on
// UDP and TCP, and a verify-only UDP port.
func sippServer(t *testing.T, l *testLab) (auto, autoTCP, verify string) {
	t.Helper()
	h, err := NewHandler(Options{Signer: l.signer, Verifier: l.verifier, AttestationIndicator: true, OriginationID: true})
	if err != nil {
		t.Fatal(err)
	}
	s, err := Listen(ServerOptions{Handler: h, Listeners: []Listener{
		{"udp", "127.0.0.1:0", Auto}, {"tcp", "127.0.0.1:0", Auto}, {"udp", "127.0.0.1:0", Verify},
	}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = s.Serve(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	a := s.Addrs()
	// Addrs lists UDP sockets first, then TCP, each in listener order.
	return strings.TrimPrefix(a[0], "udp:"), strings.TrimPrefix(a[2], "tcp:"), strings.TrimPrefix(a[1], "udp:")
}

func TestSIPpSign(t *testing.T) {
	requirePeer(t, "secsipidx")
	l := newTestLab(t, time.Now)
	labDir := t.TempDir()
	if err := l.lab.WriteDir(labDir); err != nil {
		t.Fatal(err)
	}
	pub, err := x509.MarshalPKIXPublicKey(l.lab.Leaf.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pubFile := filepath.Join(labDir, "sp-pub.pem")
	if err := os.WriteFile(pubFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := stirgateBin(t)
	udp, tcp, _ := sippServer(t, l)
	tests := []struct {
		scenario, transport, target string
	}{
		{"sign.xml", "udp", udp},
		{"sign.xml", "tcp", tcp},
		{"sign_x.xml", "udp", udp},
		{"sign_x.xml", "tcp", tcp},
	}
	for _, tc := range tests {
		t.Run(tc.scenario+"/"+tc.transport, func(t *testing.T) {
			logs, dir := sippRun{Scenario: tc.scenario, Target: tc.target, Transport: tc.transport}.run(t)
			ident := logValue(t, logs, "IDENTITY")

			// stirgate verify, with the lab chain preloaded for the x5u.
			cmd := exec.Command(bin, "verify", "--trust", filepath.Join(labDir, "root.pem"),
				"--preload", testX5U+"="+filepath.Join(labDir, "sp-chain.pem"), "--offline",
				"--identity", ident,
				"--from", "<sip:+12155550121@127.0.0.1;user=phone>",
				"--to", "<sip:+12155550131@127.0.0.1;user=phone>")
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("stirgate verify: %v\n%s", err, out)
			}
			var res struct{ Result, Attest string }
			if err := json.Unmarshal(out, &res); err != nil || res.Result != "pass" || res.Attest != "C" {
				t.Fatalf("stirgate verify printed %s (%v)", out, err)
			}

			// secsipidx checks the signature with the leaf's public key.
			idFile := filepath.Join(dir, "identity.txt")
			if err := os.WriteFile(idFile, []byte(ident), 0o644); err != nil {
				t.Fatal(err)
			}
			// -expire: secsipidx's default window is so short that a token
			// signed in one second and checked in the next is "expired".
			sx := exec.Command("secsipidx", "-check", "-fidentity", idFile, "-fpubkey", pubFile, "-expire", "60")
			if b, err := sx.CombinedOutput(); err != nil {
				t.Fatalf("secsipidx -check: %v\n%s", err, b)
			}
		})
	}
}

func TestSIPpVerify(t *testing.T) {
	l := newTestLab(t, time.Now)
	udp, tcp, verifyOnly := sippServer(t, l)
	sign := func(dest string) string {
		r, err := l.signer.Sign(context.Background(), core.SignRequest{Orig: "12155550121", Dest: []string{dest}, Attest: "A"})
		if err != nil {
			t.Fatal(err)
		}
		return r.Identity
	}
	tests := []struct {
		name, transport, target, identity, verstat, reason string
	}{
		{"pass", "udp", udp, sign("12155550131"), "TN-Validation-Passed", ""},
		{"pass tcp", "tcp", tcp, sign("12155550131"), "TN-Validation-Passed", ""},
		{"fail", "udp", udp, sign("12155550199"), "TN-Validation-Failed", `SIP;cause=438;text="Invalid Identity Header"`},
		{"none", "udp", verifyOnly, "", "No-TN-Validation", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			logs, _ := sippRun{Scenario: "verify.xml", Target: tc.target, Transport: tc.transport, Keys: map[string]string{"identity": tc.identity}}.run(t)
			want := ";verstat=" + tc.verstat + "@"
			for _, k := range []string{"FROM", "PAI", "CONTACT"} {
				if v := logValue(t, logs, k); !strings.Contains(v, want) {
					t.Errorf("%s %q lacks %q", k, v, want)
				}
			}
			if got := logValue(t, logs, "REASON"); got != tc.reason {
				t.Errorf("Reason %q, want %q", got, tc.reason)
			}
		})
	}
}

// strictServer runs a verify-only UDP listener whose failed calls are
// rejected (strict disposition), for SIPp.
func strictServer(t *testing.T, l *testLab) string {
	t.Helper()
	h, err := NewHandler(Options{Signer: l.signer, Verifier: l.verifier, Disposition: disposition.Options{Mode: disposition.Strict}})
	if err != nil {
		t.Fatal(err)
	}
	s, err := Listen(ServerOptions{Handler: h, Listeners: []Listener{{"udp", "127.0.0.1:0", Verify}}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = s.Serve(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return strings.TrimPrefix(s.Addrs()[0], "udp:")
}

// TestSIPpExtensions sends a diverted call (SHAKEN + div, RFC 8946) and a
// call with rich call data (RFC 9795) through the redirect server with
// SIPp and judges what SIPp received: the 302's verstat and RFC 9796
// Call-Info, and the strict server's 438 for a broken diversion chain.
func TestSIPpExtensions(t *testing.T) {
	l := newTestLab(t, time.Now)
	relaxed, _, _ := sippServer(t, l)
	strict := strictServer(t, l)
	ctx := context.Background()
	sign := func(req core.SignRequest) string {
		t.Helper()
		req.Orig, req.Attest = "12155550121", "A"
		r, err := l.signer.Sign(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		return r.Identity
	}
	divert := func(shaken, div, dest string) string {
		t.Helper()
		r, err := l.signer.SignDiv(ctx, core.DivRequest{Identity: []string{shaken}, Div: div, Dest: []string{dest}})
		if err != nil {
			t.Fatal(err)
		}
		return r.Identity
	}
	shaken := sign(core.SignRequest{Dest: []string{"12155550131"}})
	div := divert(shaken, "", "12155550141")
	rcd := sign(core.SignRequest{Dest: []string{"12155550131"}, RCD: &core.RCD{Nam: "ACME Corp"}, Crn: "Appointment reminder"})

	t.Run("diverted call passes", func(t *testing.T) {
		// Headers in either order: the chain is built from the claims.
		for _, ids := range [][2]string{{shaken, div}, {div, shaken}} {
			logs, _ := sippRun{Scenario: "verify_ext.xml", Target: relaxed, Transport: "udp",
				Keys: map[string]string{"target": "+12155550141", "identity": ids[0], "identity2": ids[1]}}.run(t)
			for _, k := range []string{"PAI", "CONTACT"} {
				if v := logValue(t, logs, k); !strings.Contains(v, ";verstat=TN-Validation-Passed@") {
					t.Errorf("%s %q is not TN-Validation-Passed", k, v)
				}
			}
			if v := logValue(t, logs, "CONTACT"); !strings.Contains(v, "+12155550141") {
				t.Errorf("Contact %q does not send the call to the diverted target", v)
			}
			if v := logValue(t, logs, "REASON"); v != "" {
				t.Errorf("Reason %q on a pass", v)
			}
			if v := logValue(t, logs, "CALLINFO"); v != "" {
				t.Errorf("Call-Info %q on a call without rcd", v)
			}
		}
	})

	t.Run("diverted to another target fails", func(t *testing.T) {
		// The div PASSporT names +12155550141; the Request-URI another.
		logs, _ := sippRun{Scenario: "verify_ext.xml", Target: relaxed, Transport: "udp",
			Keys: map[string]string{"target": "+12155550199", "identity": shaken, "identity2": div}}.run(t)
		if v := logValue(t, logs, "CONTACT"); !strings.Contains(v, ";verstat=TN-Validation-Failed@") {
			t.Errorf("Contact %q is not TN-Validation-Failed", v)
		}
		if v := logValue(t, logs, "REASON"); !strings.Contains(v, "cause=438") {
			t.Errorf("Reason %q, want cause 438", v)
		}
	})

	for _, tc := range []struct {
		name, target, identity, identity2, warning string
	}{
		// The div PASSporT diverts from a number the SHAKEN one never called.
		{"broken chain", "+12155550141", shaken, divert(shaken, "12155550199", "12155550141"), "div_chain_broken"},
		{"wrong target", "+12155550199", shaken, div, "dest_mismatch"},
	} {
		t.Run("strict "+tc.name, func(t *testing.T) {
			logs, _ := sippRun{Scenario: "verify_ext_438.xml", Target: strict, Transport: "udp",
				Keys: map[string]string{"target": tc.target, "identity": tc.identity, "identity2": tc.identity2}}.run(t)
			if v := logValue(t, logs, "WARNING"); !strings.Contains(v, `"`+tc.warning+`"`) {
				t.Errorf("Warning %q, want %s", v, tc.warning)
			}
		})
	}

	t.Run("rcd call carries Call-Info", func(t *testing.T) {
		logs, _ := sippRun{Scenario: "verify_ext.xml", Target: relaxed, Transport: "udp",
			Keys: map[string]string{"target": "+12155550131", "identity": rcd, "identity2": ""}}.run(t)
		if v := logValue(t, logs, "CONTACT"); !strings.Contains(v, ";verstat=TN-Validation-Passed@") {
			t.Errorf("Contact %q is not TN-Validation-Passed", v)
		}
		ci := logValue(t, logs, "CALLINFO")
		for _, want := range []string{`;purpose=jcard`, `;call-reason="Appointment reminder"`, `;verified`} {
			if !strings.Contains(ci, want) {
				t.Errorf("Call-Info %q lacks %s", ci, want)
			}
		}
		// The jCard is a data: URI naming the verified nam.
		uri, _, _ := strings.Cut(strings.TrimPrefix(ci, "<"), ">")
		b64, ok := strings.CutPrefix(uri, "data:application/json;base64,")
		if !ok {
			t.Fatalf("Call-Info %q does not carry a jCard data: URI", ci)
		}
		card, err := base64.StdEncoding.DecodeString(b64)
		if err != nil || !strings.Contains(string(card), `"fn",{},"text","ACME Corp"`) {
			t.Errorf("jCard %s (%v) does not name ACME Corp", card, err)
		}
	})
}
