// Package secsipid proves stirgate's libsecsipid.so.1 drop-in inside an
// unmodified Debian Kamailio: the secsipid module (kamailio-secsipid-
// modules) dlopens secsipid_proc.so per worker, which links
// libsecsipid.so.1, found through LD_LIBRARY_PATH. SIPp plays the PBX
// and the carrier on loopback; the config is kamailio-secsipid.cfg.
package secsipid

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stirgate/stirgate/core"
	"github.com/stirgate/stirgate/core/passport"
	"github.com/stirgate/stirgate/core/stir"
	"github.com/stirgate/stirgate/cshared/secsipid/secsipidtest"
	"github.com/stirgate/stirgate/internal/testlog"
	"github.com/stirgate/stirgate/kamailio/kamtest"
)

const (
	pbxIP   = "127.0.0.2" // egress traffic comes from here
	caller  = "+12155550121"
	callee  = "+12155550131"
	cfgFile = "../kamailio-secsipid.cfg"
)

type env struct {
	lib     string
	lab     *secsipidtest.Lab
	carrier int // UAS port behind egress
	pbx     int // UAS port behind ingress
	signer  *core.Signer
}

func newEnv(t *testing.T) *env {
	t.Helper()
	lib, err := secsipidtest.LibDir()
	if err != nil {
		t.Fatal(err)
	}
	lab, err := secsipidtest.NewLabLog(t.TempDir(), testlog.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(lab.Close)
	cred, err := lab.Signer()
	if err != nil {
		t.Fatal(err)
	}
	s, err := core.NewSigner(core.SignerOptions{Credential: cred, X5U: lab.X5U})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{lib: lib, lab: lab, signer: s}
	if e.carrier, err = kamtest.FreeUDPPort("127.0.0.1"); err != nil {
		t.Fatal(err)
	}
	if e.pbx, err = kamtest.FreeUDPPort("127.0.0.1"); err != nil {
		t.Fatal(err)
	}
	return e
}

// kamailio starts the config with the drop-in; strict selects STIR_STRICT.
func (e *env) kamailio(t *testing.T, strict bool, children int) *kamtest.Kamailio {
	t.Helper()
	return e.kamailioConfig(t, strict, children, e.lab.Config)
}

func (e *env) kamailioConfig(t *testing.T, strict bool, children int, stirgateConfig string) *kamtest.Kamailio {
	t.Helper()
	return e.start(t, strict, children, stirgateConfig, filepath.Join(t.TempDir(), "x5u"))
}

// kamailioCache starts 4 strict workers with the given x5u cache_dir.
func (e *env) kamailioCache(t *testing.T, cacheDir string) *kamtest.Kamailio {
	t.Helper()
	return e.start(t, true, 4, e.lab.Config, cacheDir)
}

func (e *env) start(t *testing.T, strict bool, children int, stirgateConfig, cacheDir string) *kamtest.Kamailio {
	t.Helper()
	defs := []string{
		`PBX_IP="` + pbxIP + `"`,
		`GATEWAY_IP="127.0.0.3"`,
		`CARRIER="sip:127.0.0.1:` + strconv.Itoa(e.carrier) + `"`,
		`PBX="sip:127.0.0.1:` + strconv.Itoa(e.pbx) + `"`,
		`STIR_KEY="` + e.lab.Path("sp.key") + `"`,
		`STIR_X5U="` + e.lab.X5U + `"`,
		`STIR_CA_OPT="CertCAFile=` + e.lab.Path("root.pem") + `"`,
		`STIR_CONFIG_OPT="ConfigFile=` + stirgateConfig + `"`,
		`STIR_CACHE_DIR="` + cacheDir + `"`,
		`STIR_TIMEOUT=5`,
	}
	if strict {
		defs = append(defs, "STIR_STRICT")
	}
	return kamtest.Start(t, kamtest.Options{
		Config:   cfgFile,
		Children: children,
		Defines:  defs,
		Env:      []string{"LD_LIBRARY_PATH=" + e.lib, "STIRGATE_SECSIPID_CONFIG="},
	})
}

// uas answers calls on port, keeping the INVITEs it received.
func uas(t *testing.T, port, calls int, name string) *kamtest.Run {
	t.Helper()
	return kamtest.SIPp{Scenario: "../sipp/uas.xml", LocalPort: port, Calls: calls, TraceMsg: true,
		Name: name, Timeout: 60 * time.Second}.Start(t)
}

func uac(scenario, remote, localIP string, calls int, fromParams, hdr1, hdr2 string) kamtest.SIPp {
	return kamtest.SIPp{
		Scenario: "../sipp/" + scenario, Remote: remote, LocalIP: localIP, Calls: calls, Rate: 10,
		TraceMsg: true, Name: strings.TrimSuffix(scenario, ".xml"), Timeout: 30 * time.Second,
		Keys: map[string]string{"caller": caller, "callee": callee, "from_params": fromParams, "hdr1": hdr1, "hdr2": hdr2},
	}
}

func invites(r kamtest.Result) []string {
	var out []string
	for _, m := range r.Received() {
		if strings.HasPrefix(kamtest.StartLine(m), "INVITE ") {
			out = append(out, m)
		}
	}
	return out
}

// TestEgressSigning: PBX → Kamailio (signing) → carrier. The relayed
// INVITE's Identity passes `stirgate verify` and Debian's `secsipidx
// -check`, and the worker that signed had OUR libsecsipid.so.1 mapped.
func TestEgressSigning(t *testing.T) {
	e := newEnv(t)
	const calls = 3
	carrier := uas(t, e.carrier, calls, "carrier")
	k := e.kamailio(t, true, 4)
	res := uac("uac.xml", k.Addr, pbxIP, calls, ";user=phone", "X-Case: egress",
		"P-Asserted-Identity: <sip:"+caller+"@"+pbxIP+";user=phone>").Run(t)
	if err := res.Err(); err != nil {
		t.Fatalf("uac: %v\n%s", err, res.Output)
	}
	got := carrier.Wait()
	if err := got.Err(); err != nil {
		t.Fatalf("carrier: %v", err)
	}
	inv := invites(got)
	if len(inv) != calls {
		t.Fatalf("carrier received %d INVITEs, want %d", len(inv), calls)
	}
	for i, m := range inv {
		ids := kamtest.Header(m, "Identity")
		if len(ids) != 1 {
			t.Fatalf("INVITE %d carries %d Identity headers, want 1:\n%s", i, len(ids), m)
		}
		id := ids[0]
		if !strings.HasSuffix(id, ";info=<"+e.lab.X5U+">;alg=ES256;ppt=shaken") {
			t.Errorf("Identity parameters: %s", id)
		}
		if len(kamtest.Header(m, "Date")) != 1 {
			t.Errorf("INVITE %d has no Date header", i)
		}
		r := stirgateVerify(t, e, id, kamtest.Header(m, "From")[0], kamtest.Header(m, "To")[0])
		if r.Result != stir.Pass || r.Attest != stir.AttestFull || r.Orig != "12155550121" {
			t.Errorf("stirgate verify: %+v", r)
		}
		out, err := exec.Command("secsipidx", "-check", "-identity", id, "-fpubkey", e.lab.Path("sp.pem"), "-expire", "3600").CombinedOutput() // see stirgateVerify
		if err != nil || strings.TrimSpace(string(out)) != "ok" {
			t.Errorf("secsipidx -check: %v: %s", err, out)
		}
	}
	assertOurLibrary(t, e, k)
	if err := k.Healthy(); err != nil {
		t.Error(err)
	}
}

// stirgateVerify runs the CLI on one Identity header.
func stirgateVerify(t *testing.T, e *env, identity, from, to string) *stir.Result {
	t.Helper()
	// Judged at the token's own iat: on a loaded machine the calls can end
	// more than the 60 s freshness window after signing, and freshness is
	// not what these tests are about (the core's conformance rows are).
	args := []string{"verify", "--trust", e.lab.Path("root.pem"),
		"--x5u-ca", e.lab.TLSCert, "--lab-host", e.lab.Host,
		"--identity", identity, "--from", from, "--to", to}
	tok, _, _ := strings.Cut(identity, ";")
	if p, err := passport.Parse(tok); err == nil {
		args = append(args, "--at", strconv.FormatInt(p.Claims.IAT, 10))
	}
	cmd := exec.Command(stirgateBin(t), args...)
	cmd.Dir = t.TempDir()
	out, err := cmd.Output()
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		t.Fatalf("stirgate verify: %v", err)
	}
	var r stir.Result
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("stirgate verify output %q: %v", out, err)
	}
	return &r
}

// assertOurLibrary reads /proc/PID/maps of every Kamailio process: the
// workers map the drop-in from the test's directory and never Debian's
// library, and the main process maps neither (the Go runtime is started
// only after the fork). ldd agrees on how secsipid_proc.so resolves.
func assertOurLibrary(t *testing.T, e *env, k *kamtest.Kamailio) {
	t.Helper()
	ours := filepath.Join(e.lib, secsipidtest.SOName)
	kids, err := k.Children()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, p := range kids {
		if p.HasMapping(ours) {
			n++
		}
		if p.HasMapping("/usr/lib/x86_64-linux-gnu/libsecsipid.so") || p.HasMapping("/lib/x86_64-linux-gnu/libsecsipid.so") {
			t.Errorf("process %d maps Debian's libsecsipid", p.PID)
		}
	}
	if n < 4 {
		t.Errorf("%d of %d child processes map %s, want at least the 4 workers", n, len(kids), ours)
	}
	main, err := k.Main()
	if err != nil {
		t.Fatal(err)
	}
	if main.HasMapping("libsecsipid") {
		t.Error("the main process loaded libsecsipid: the Go runtime would be forked")
	}
	cmd := exec.Command("ldd", "/usr/lib/x86_64-linux-gnu/kamailio/modules/secsipid_proc.so")
	cmd.Env = append(os.Environ(), "LD_LIBRARY_PATH="+e.lib)
	out, err := cmd.Output()
	if err != nil || !strings.Contains(string(out), "libsecsipid.so.1 => "+ours) {
		t.Errorf("ldd secsipid_proc.so does not resolve to the drop-in: %v\n%s", err, out)
	}
	t.Logf("%d Kamailio processes map %s", n, ours)
}

// identity signs an Identity header value for the test call.
func (e *env) identity(t *testing.T, at time.Time) string {
	t.Helper()
	r, err := e.signer.Sign(context.Background(), core.SignRequest{
		Orig: caller, Dest: []string{callee}, Attest: stir.AttestFull, At: at,
	})
	if err != nil {
		t.Fatal(err)
	}
	return r.Identity
}

// tamper swaps the claims segment for another call's under the same
// signature.
func (e *env) tamper(t *testing.T, id string) string {
	t.Helper()
	r, err := e.signer.Sign(context.Background(), core.SignRequest{
		Orig: "12155550199", Dest: []string{callee}, Attest: stir.AttestFull,
	})
	if err != nil {
		t.Fatal(err)
	}
	a, b := strings.Split(id, "."), strings.Split(r.Identity, ".")
	return a[0] + "." + b[1] + "." + strings.Join(a[2:], ".")
}

// TestIngressStrict: the carrier's INVITEs with a valid, tampered, stale,
// missing or misbound Identity get 200 with verstat, 438, 403, 428, 438.
func TestIngressStrict(t *testing.T) {
	e := newEnv(t)
	k := e.kamailio(t, true, 2)
	now := time.Now()
	valid := e.identity(t, now)
	cases := []struct {
		name       string
		fromParams string
		hdr        string
		caller     string
		want       int // 0: relayed to the PBX
		verstat    string
	}{
		{"valid", ";user=phone", "Identity: " + valid, caller, 0, "TN-Validation-Passed"},
		{"valid-spoofed-verstat", ";user=phone;verstat=TN-Validation-Failed", "Identity: " + valid, caller, 0, "TN-Validation-Passed"},
		{"tampered", ";user=phone", "Identity: " + e.tamper(t, valid), caller, 438, ""},
		{"stale", ";user=phone", "Identity: " + e.identity(t, now.Add(-5*time.Minute)), caller, 403, ""},
		{"missing", ";user=phone", "X-Case: missing", caller, 428, ""},
		{"other-caller", ";user=phone", "Identity: " + valid, "+12155550100", 438, ""},
		{"garbage", ";user=phone", "Identity: a.b.c;info=<" + e.lab.X5U + ">", caller, 438, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			run := uac("uac_reject.xml", k.Addr, "127.0.0.1", 1, c.fromParams, c.hdr, "X-Case: "+c.name)
			run.Keys["caller"] = c.caller
			if c.want == 0 {
				pbx := uas(t, e.pbx, 1, "pbx")
				run.Scenario = "../sipp/uac.xml"
				res := run.Run(t)
				if err := res.Err(); err != nil {
					t.Fatalf("uac: %v", err)
				}
				got := pbx.Wait()
				inv := invites(got)
				if len(inv) != 1 {
					t.Fatalf("PBX received %d INVITEs", len(inv))
				}
				from := kamtest.Header(inv[0], "From")[0]
				if strings.Count(from, "verstat=") != 1 || !strings.Contains(from, ";verstat="+c.verstat+"@") {
					t.Errorf("From %q, want exactly verstat=%s", from, c.verstat)
				}
				return
			}
			res := run.Run(t)
			if err := res.Err(); err != nil {
				t.Fatalf("uac: %v\n%s", err, res.Output)
			}
			if code := finalCode(res); code != c.want {
				t.Errorf("response %d, want %d", code, c.want)
			}
		})
	}
	if err := k.Healthy(); err != nil {
		t.Error(err)
	}
}

// TestIngressCannotJudge: when the library cannot judge (here: its
// ConfigFile is missing, code -452) a strict gateway answers 500, not a
// STIR rejection that would blame the caller.
func TestIngressCannotJudge(t *testing.T) {
	e := newEnv(t)
	k := e.kamailioConfig(t, true, 2, filepath.Join(t.TempDir(), "missing.toml"))
	res := uac("uac_reject.xml", k.Addr, "127.0.0.1", 1, ";user=phone", "Identity: "+e.identity(t, time.Now()), "X-Case: cannot-judge").Run(t)
	if code := finalCode(res); code != 500 {
		t.Errorf("response %d, want 500", code)
	}
	if !strings.Contains(k.Log(), "(secsipid -452)") {
		t.Errorf("log does not carry the library's code -452")
	}
}

// TestIngressRelaxed: failures continue to the PBX with verstat and a
// Reason header; a missing Identity gets No-TN-Validation.
func TestIngressRelaxed(t *testing.T) {
	e := newEnv(t)
	k := e.kamailio(t, false, 2)
	valid := e.identity(t, time.Now())
	cases := []struct {
		name, hdr, verstat, reason string
	}{
		{"valid", "Identity: " + valid, "TN-Validation-Passed", ""},
		{"tampered", "Identity: " + e.tamper(t, valid), "TN-Validation-Failed", `SIP;cause=438;text="Invalid Identity Header"`},
		{"stale", "Identity: " + e.identity(t, time.Now().Add(-5*time.Minute)), "TN-Validation-Failed", `SIP;cause=403;text="Stale Date"`},
		{"missing", "X-Case: missing", "No-TN-Validation", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			pbx := uas(t, e.pbx, 1, "pbx")
			res := uac("uac.xml", k.Addr, "127.0.0.1", 1, ";user=phone;verstat=TN-Validation-Passed", c.hdr,
				"P-Asserted-Identity: <sip:"+caller+"@127.0.0.1;user=phone;verstat=TN-Validation-Passed>").Run(t)
			if err := res.Err(); err != nil {
				t.Fatalf("uac: %v", err)
			}
			inv := invites(pbx.Wait())
			if len(inv) != 1 {
				t.Fatalf("PBX received %d INVITEs", len(inv))
			}
			for _, h := range []string{"From", "P-Asserted-Identity"} {
				v := kamtest.Header(inv[0], h)[0]
				if strings.Count(v, "verstat=") != 1 || !strings.Contains(v, ";verstat="+c.verstat) {
					t.Errorf("%s %q, want exactly verstat=%s", h, v, c.verstat)
				}
			}
			reason := kamtest.Header(inv[0], "Reason")
			if c.reason == "" && len(reason) != 0 || c.reason != "" && (len(reason) != 1 || reason[0] != c.reason) {
				t.Errorf("Reason %q, want %q", reason, c.reason)
			}
		})
	}
	if err := k.Healthy(); err != nil {
		t.Error(err)
	}
}

// TestEgressUnderLoad: children=4, SIPp signing calls at 200 cps: a
// 10 s warm-up (the Go heap settles), then 15 s measured. No failed call, no dead worker, and no
// worker's memory grows by more than maxGrowthKB over the measured run.
func TestEgressUnderLoad(t *testing.T) {
	e := newEnv(t)
	const rate, secs = 200, 15
	const maxGrowthKB = 4 << 10
	// No call limit on the carrier: under load a retransmitted INVITE may
	// count as a call of its own, and it must keep answering to the end.
	carrier := kamtest.SIPp{Scenario: "testdata/uas_load.xml", LocalPort: e.carrier,
		Name: "carrier", Timeout: 300 * time.Second}.Start(t)
	k := e.kamailio(t, true, 4)
	load := func(name string, calls int) {
		t.Helper()
		res := kamtest.SIPp{
			Scenario: "../sipp/uac.xml", Remote: k.Addr, LocalIP: pbxIP, Calls: calls, Rate: rate, Limit: 400,
			Name: name, Timeout: 120 * time.Second,
			Keys: map[string]string{"caller": caller, "callee": callee, "from_params": ";user=phone",
				"hdr1": "X-Case: load", "hdr2": "X-Load: 1"},
		}.Run(t)
		if err := res.Err(); err != nil {
			t.Fatalf("%s: %v (%s)", name, err, res.Stats)
		}
		if res.Stats.Successful != calls || res.Stats.Failed != 0 {
			t.Errorf("%s: %s, want %d successful", name, res.Stats, calls)
		}
		t.Logf("%s: %d calls at %d cps: %s", name, calls, rate, res.Stats)
	}
	cold := rss(t, k)
	load("warmup", rate*10)
	before := rss(t, k)
	load("load", rate*secs)
	after := rss(t, k)
	select {
	case <-carrier.Done():
		t.Errorf("carrier exited during the run: %s", carrier.Wait().Output)
	default:
	}
	t.Logf("worker RssAnon KiB (pid: cold, after warm-up, after load): %s", rssTable(cold, before, after))
	for pid, kb := range after {
		if b, ok := before[pid]; !ok {
			t.Errorf("worker %d appeared during the run (a restart?)", pid)
		} else if kb-b > maxGrowthKB {
			t.Errorf("worker %d grew %d KiB over the measured run", pid, kb-b)
		}
	}
	if len(after) != len(before) {
		t.Errorf("%d workers with the library before, %d after", len(before), len(after))
	}
	if err := k.Healthy(); err != nil {
		t.Error(err)
	}
	assertOurLibrary(t, e, k)
}

func rssTable(cold, before, after map[int]int64) string {
	var b strings.Builder
	for pid, kb := range after {
		fmt.Fprintf(&b, "%d: %d, %d, %d; ", pid, cold[pid], before[pid], kb)
	}
	return b.String()
}

// rss returns RssAnon (KiB) of each process that maps the library:
// private memory only, since Kamailio's shared memory segment counts in
// VmRSS of every process that touches it and grows with use.
func rss(t *testing.T, k *kamtest.Kamailio) map[int]int64 {
	t.Helper()
	kids, err := k.Children()
	if err != nil {
		t.Fatal(err)
	}
	m := map[int]int64{}
	for _, p := range kids {
		if !p.HasMapping("libsecsipid") {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.PID))
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "RssAnon:" {
				m[p.PID], _ = strconv.ParseInt(f[1], 10, 64)
			}
		}
	}
	return m
}

// finalCode is the status of the last final response the UAC received.
func finalCode(r kamtest.Result) int {
	code := 0
	for _, m := range r.Received() {
		f := strings.Fields(kamtest.StartLine(m))
		if len(f) >= 2 && f[0] == "SIP/2.0" {
			if c, err := strconv.Atoi(f[1]); err == nil && c >= 200 {
				code = c
			}
		}
	}
	return code
}

// stirgateBin is $STIRGATE_BIN (set by make) or a fresh build.
func stirgateBin(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("STIRGATE_BIN"); p != "" {
		return p
	}
	p := filepath.Join(t.TempDir(), "stirgate")
	root, err := secsipidtest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", "build", "-o", p, "./cmd/stirgate")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/stirgate: %v\n%s", err, out)
	}
	return p
}

// TestLibOptWithoutEquals: `modparam("secsipid", "libopt", "CertVerify")`
// (no '=') makes Debian's libsecsipid 1.2 index past its split and panic
// inside the worker, which takes Kamailio down; the drop-in refuses the
// option and signs the call.
func TestLibOptWithoutEquals(t *testing.T) {
	for _, c := range []struct {
		name, env string
		survives  bool
	}{
		{"stirgate", "", true},
		{"debian", "LD_LIBRARY_PATH=", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			lib := "LD_LIBRARY_PATH=" + e.lib
			if c.env != "" {
				lib = c.env
			}
			carrier := uas(t, e.carrier, 1, "carrier")
			k := kamtest.Start(t, kamtest.Options{
				Config:   cfgFile,
				Children: 2,
				Env:      []string{lib, "STIRGATE_SECSIPID_CONFIG="},
				Defines: []string{
					`PBX_IP="` + pbxIP + `"`,
					`CARRIER="sip:127.0.0.1:` + strconv.Itoa(e.carrier) + `"`,
					`STIR_KEY="` + e.lab.Path("sp.key") + `"`,
					`STIR_X5U="` + e.lab.X5U + `"`,
					`STIR_CA_OPT="CertCAFile=` + e.lab.Path("root.pem") + `"`,
					`STIR_CONFIG_OPT="CertVerify"`,
					`STIR_CACHE_DIR="` + filepath.Join(t.TempDir(), "x5u") + `"`,
				},
			})
			run := uac("uac.xml", k.Addr, pbxIP, 1, ";user=phone", "X-Case: libopt", "X-Case2: libopt")
			if !c.survives {
				run.Timeout = 5 * time.Second
			}
			res := run.Run(t)
			if !c.survives {
				// The worker that took the call died with the panic.
				deadline := time.Now().Add(10 * time.Second)
				for k.Healthy() == nil && time.Now().Before(deadline) {
					time.Sleep(100 * time.Millisecond)
				}
				if k.Healthy() == nil {
					t.Fatalf("Debian's library survived a libopt without '=': the contrast proves nothing (call: %v)", res.Err())
				}
				if !strings.Contains(k.Log(), "index out of range") {
					t.Errorf("Kamailio died, but not of the libopt panic:\n%s", k.Log())
				}
				return
			}
			if err := res.Err(); err != nil {
				t.Fatalf("uac: %v", err)
			}
			if inv := invites(carrier.Wait()); len(inv) != 1 || len(kamtest.Header(inv[0], "Identity")) != 1 {
				t.Fatalf("the call was not signed")
			}
			if err := k.Healthy(); err != nil {
				t.Error(err)
			}
		})
	}
}

// TestGetURLFailureClearsOutput: Kamailio 5.6 frees the secsipid_get_url
// buffer before each call without clearing it, so a library that leaves
// *outPtr as it was after a failed fetch (Debian's 1.2) gets a double free
// on the second failure in a row and the worker aborts. The drop-in clears
// *outPtr and *outLen first: fetch, fail, fail, fetch all answer.
func TestGetURLFailureClearsOutput(t *testing.T) {
	e := newEnv(t)
	chain := e.lab.ChainPEM()
	plain := testlog.NewServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/sp.pem" {
			w.Write(chain)
			return
		}
		http.NotFound(w, r)
	}))
	defer plain.Close()
	for _, c := range []struct {
		name     string
		env      []string
		ok, fail string
		survives bool
	}{
		// The module applies no libopt on this path: the drop-in takes its
		// lab settings from STIRGATE_SECSIPID_CONFIG.
		{"stirgate", []string{"LD_LIBRARY_PATH=" + e.lib, "STIRGATE_SECSIPID_CONFIG=" + e.lab.Config}, e.lab.X5U, e.lab.Missing, true},
		// Debian's library fetches plain http and fails on a 404.
		{"debian", []string{"LD_LIBRARY_PATH="}, plain.URL + "/sp.pem", plain.URL + "/missing.pem", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			k := kamtest.Start(t, kamtest.Options{Config: "testdata/get_url.cfg", Children: 1, Env: c.env})
			want := []struct {
				url  string
				code int
			}{{c.ok, 200}, {c.fail, 404}, {c.fail, 404}, {c.ok, 200}}
			for i, w := range want {
				code, err := optionsWithURL(k.Addr, w.url)
				if !c.survives && i == 2 {
					// The double free: no answer, and the worker is gone.
					deadline := time.Now().Add(10 * time.Second)
					for k.Healthy() == nil && time.Now().Before(deadline) {
						time.Sleep(100 * time.Millisecond)
					}
					if k.Healthy() == nil || !strings.Contains(k.Log(), "double free") {
						t.Fatalf("Debian's library survived fail-after-fail (code %d, %v): the contrast proves nothing", code, err)
					}
					return
				}
				if err != nil || code != w.code {
					t.Fatalf("call %d (%s): %d %v, want %d", i+1, w.url, code, err, w.code)
				}
			}
			if err := k.Healthy(); err != nil {
				t.Error(err)
			}
		})
	}
}

// optionsWithURL sends an OPTIONS carrying X-URL and returns the status of
// the response.
func optionsWithURL(addr, url string) (int, error) {
	c, err := net.Dial("udp", addr)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	local := c.LocalAddr().String()
	msg := "OPTIONS sip:" + addr + " SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP " + local + ";branch=z9hG4bK" + strconv.FormatInt(time.Now().UnixNano(), 36) + "\r\n" +
		"From: <sip:test@" + local + ">;tag=1\r\nTo: <sip:" + addr + ">\r\n" +
		"Call-ID: " + strconv.FormatInt(time.Now().UnixNano(), 36) + "@test\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n" +
		"X-URL: " + url + "\r\nContent-Length: 0\r\n\r\n"
	if _, err := c.Write([]byte(msg)); err != nil {
		return 0, err
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 4096)
	n, err := c.Read(buf)
	if err != nil {
		return 0, err
	}
	f := strings.Fields(kamtest.StartLine(string(buf[:n])))
	if len(f) < 2 {
		return 0, fmt.Errorf("no status line in %q", buf[:n])
	}
	return strconv.Atoi(f[1])
}

// TestIngressSharedCache: four workers verify 200 calls signed with one
// certificate. With the module's cache_dir (the core's disk cache) only the
// first verification fetches x5u; without it each worker fetches once,
// which shows that the calls did spread over the workers.
func TestIngressSharedCache(t *testing.T) {
	for _, c := range []struct {
		name   string
		shared bool
	}{{"cache_dir", true}, {"no-cache_dir", false}} {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			const calls = 200
			pbx := kamtest.SIPp{Scenario: "testdata/uas_load.xml", LocalPort: e.pbx, Name: "pbx",
				Timeout: 120 * time.Second}.Start(t)
			dir := filepath.Join(t.TempDir(), "x5u")
			if !c.shared {
				dir = ""
			}
			k := e.kamailioCache(t, dir)
			id := "Identity: " + e.identity(t, time.Now())
			first := uac("uac.xml", k.Addr, "127.0.0.1", 1, ";user=phone", id, "X-Case: first").Run(t)
			if err := first.Err(); err != nil {
				t.Fatalf("first call: %v", err)
			}
			if n := e.lab.Fetches(); n != 1 {
				t.Fatalf("%d x5u fetches for the first call, want 1", n)
			}
			run := uac("uac.xml", k.Addr, "127.0.0.1", calls, ";user=phone", id, "X-Case: burst")
			run.Rate, run.TraceMsg = 100, false
			res := run.Run(t)
			if err := res.Err(); err != nil || res.Stats.Successful != calls {
				t.Fatalf("burst: %v (%s)", err, res.Stats)
			}
			select {
			case <-pbx.Done():
				t.Fatal("PBX side exited")
			default:
			}
			n := e.lab.Fetches()
			t.Logf("%d verifications in 4 workers, %d x5u fetches", calls+1, n)
			switch {
			case c.shared && n != 1:
				t.Errorf("%d x5u fetches with a shared disk cache, want 1", n)
			case !c.shared && n < 2:
				t.Errorf("%d x5u fetch without a disk cache: the calls did not reach several workers", n)
			}
			if err := k.Healthy(); err != nil {
				t.Error(err)
			}
		})
	}
}
