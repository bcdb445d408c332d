package kamailio_test

// The app_lua integration, proven in Debian's Kamailio with SIPp on
// loopback: SIPp UAC → Kamailio (kamailio-lua.cfg + stirgate.lua + the
// stirgate Lua C module + libstirgate) → SIPp UAS.
//
// Addresses: Kamailio listens on 127.0.0.1. The internal side (PBX) sends
// from 127.0.0.1, which stirgate.internal lists, so its INVITEs are signed;
// the carrier side sends from 127.0.0.2, so its INVITEs are verified. The
// UACs address their INVITEs to the UAS (Request-URI) and send them to
// Kamailio (-rsa), so each test picks its own UAS.

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stirgate/stirgate/core"
	"github.com/stirgate/stirgate/core/certs"
	"github.com/stirgate/stirgate/core/config"
	"github.com/stirgate/stirgate/internal/testlog"
	"github.com/stirgate/stirgate/kamailio/kamtest"
)

const (
	luaCaller  = "+12155550121" // owned by the policy customer "pbx"
	luaOther   = "+12155550199" // not owned: attest B
	luaCallee  = "+12155550131"
	luaCarrier = "127.0.0.2" // the outside
)

// luaBuilt is what the Lua integration runs on.
type luaBuilt struct {
	dir     string // libstirgate.so.1, stirgate.so (Lua), stirgate (CLI)
	lib     string
	cli     string
	labDir  string
	x5uURL  string
	x5uHost string
	x5uCA   string
	fetches *atomic.Int64
	signer  *core.Signer
}

// luaBuild builds libstirgate, the Lua module and the CLI, makes a lab PKI
// and serves its chain over TLS on loopback.
func luaBuild(t *testing.T) *luaBuilt {
	t.Helper()
	b := &luaBuilt{dir: t.TempDir()}
	b.lib = filepath.Join(b.dir, "libstirgate.so.1")
	b.cli = filepath.Join(b.dir, "stirgate")
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	run := func(name string, args ...string) {
		t.Helper()
		cmd := exec.Command(name, args...)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
	}
	run("go", "build", "-buildmode=c-shared",
		"-ldflags", "-extldflags '-Wl,-soname,libstirgate.so.1 -Wl,--version-script="+filepath.Join(root, "cshared/libstirgate.map")+"'",
		"-o", b.lib, "./cshared")
	run("gcc", "-std=c99", "-D_XOPEN_SOURCE=700", "-O2", "-Wall", "-Wextra", "-Werror", "-fPIC", "-shared",
		"-I/usr/include/lua5.1", "-Icshared", "-o", filepath.Join(b.dir, "stirgate.so"), "kamailio/lua/stirgate.c", "-ldl")
	run("go", "build", "-o", b.cli, "./cmd/stirgate")

	lab, err := certs.NewLab(certs.LabOptions{SPC: "1234"})
	if err != nil {
		t.Fatal(err)
	}
	b.labDir = filepath.Join(b.dir, "lab")
	if err := lab.WriteDir(b.labDir); err != nil {
		t.Fatal(err)
	}
	chain := lab.ChainPEM()
	b.fetches = new(atomic.Int64)
	srv := testlog.NewTLSServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.fetches.Add(1)
		w.Header().Set("Content-Type", "application/pem-certificate-chain")
		w.Header().Set("Cache-Control", "max-age=3600")
		_, _ = w.Write(chain)
	}))
	t.Cleanup(srv.Close)
	b.x5uURL = srv.URL + "/sp.pem"
	b.x5uHost = strings.TrimPrefix(srv.URL, "https://")
	b.x5uCA = filepath.Join(b.dir, "x5u-ca.pem")
	if err := os.WriteFile(b.x5uCA, certs.EncodePEM(srv.Certificate()), 0o644); err != nil {
		t.Fatal(err)
	}
	pub, err := x509.MarshalPKIXPublicKey(lab.Leaf.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(b.labDir, "sp-pub.pem"), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse([]byte(b.toml("", "")), "")
	if err != nil {
		t.Fatal(err)
	}
	if b.signer, err = cfg.NewSigner(nil, nil); err != nil {
		t.Fatal(err)
	}
	return b
}

// toml is the stirgate configuration Kamailio loads: it signs as the lab
// and verifies against its root, fetching x5u from the TLS server with an
// on-disk cache shared by the workers.
func (b *luaBuilt) toml(verifier, cacheDir string) string {
	return b.tomlHosts(verifier, cacheDir, []string{b.x5uHost}, b.x5uCA)
}

func (b *luaBuilt) tomlHosts(verifier, cacheDir string, hosts []string, caFile string) string {
	if cacheDir == "" {
		cacheDir = filepath.Join(b.dir, "x5u-cache")
	}
	quoted := make([]string, len(hosts))
	for i, h := range hosts {
		quoted[i] = fmt.Sprintf("%q", h)
	}
	return fmt.Sprintf(`
[log]
level = "warn"

[signer]
key = %q
cert = %q
x5u = %q

[policy]
default = "B"

[[policy.customer]]
name = "pbx"
numbers = ["12155550121"]
sources = ["127.0.0.1"]

[verifier]
trust = [%q]
%s

[x5u]
timeout = "30s"
lab_hosts = [%s]
ca_file = %q
cache_dir = %q
`, filepath.Join(b.labDir, "sp.key"), filepath.Join(b.labDir, "sp-chain.pem"), b.x5uURL,
		filepath.Join(b.labDir, "root.pem"), verifier, strings.Join(quoted, ", "), caFile, cacheDir)
}

// start runs kamailio-lua.cfg with the given stirgate configuration.
func (b *luaBuilt) start(t *testing.T, name, stirgateTOML string, children int) *kamtest.Kamailio {
	t.Helper()
	return b.startDefines(t, name, stirgateTOML, children)
}

// startDefines is start with more cfg defines (e.g. "SIGN_REQUIRED=1").
func (b *luaBuilt) startDefines(t *testing.T, name, stirgateTOML string, children int, defines ...string) *kamtest.Kamailio {
	t.Helper()
	cfgPath := filepath.Join(b.dir, name+".toml")
	if err := os.WriteFile(cfgPath, []byte(stirgateTOML), 0o644); err != nil {
		t.Fatal(err)
	}
	script, err := filepath.Abs("stirgate.lua")
	if err != nil {
		t.Fatal(err)
	}
	return kamtest.Start(t, kamtest.Options{
		Config:   "kamailio-lua.cfg",
		Children: children,
		Defines: append([]string{
			fmt.Sprintf("STIRGATE_CONFIG=%q", cfgPath),
			fmt.Sprintf("STIRGATE_SCRIPT=%q", script),
			`INTERNAL_SOURCES="127.0.0.1"`,
			"LOG_RESULTS=1", // a line per verification, which the tests count
		}, defines...),
		Env: []string{
			"LUA_CPATH=" + filepath.Join(b.dir, "?.so") + ";;",
			"STIRGATE_LIBRARY=" + b.lib,
		},
	})
}

// sign makes an Identity for the ingress tests as a carrier would.
func (b *luaBuilt) sign(t *testing.T, orig string, at time.Time) string {
	t.Helper()
	r, err := b.signer.Sign(context.Background(), core.SignRequest{Orig: orig, Dest: []string{luaCallee}, Attest: "A", At: at, Trusted: true})
	if err != nil {
		t.Fatal(err)
	}
	return r.Identity
}

// cliVerify runs `stirgate verify` on a relayed INVITE's headers.
func (b *luaBuilt) cliVerify(t *testing.T, invite string) (map[string]any, error) {
	t.Helper()
	args := []string{"verify", "--trust", filepath.Join(b.labDir, "root.pem"),
		"--preload", b.x5uURL + "=" + filepath.Join(b.labDir, "sp-chain.pem"),
		"--lab-host", b.x5uHost, "--offline"}
	for _, id := range kamtest.Header(invite, "Identity") {
		args = append(args, "--identity", id)
	}
	for _, h := range []string{"From", "P-Asserted-Identity", "To", "Date"} {
		if v := kamtest.Header(invite, h); len(v) > 0 {
			flag := map[string]string{"From": "--from", "P-Asserted-Identity": "--pai", "To": "--to", "Date": "--date"}[h]
			args = append(args, flag, v[0])
		}
	}
	out, err := exec.Command(b.cli, args...).Output()
	var m map[string]any
	if jerr := json.Unmarshal(out, &m); jerr != nil {
		return nil, fmt.Errorf("stirgate verify printed %q: %v (%v)", out, jerr, err)
	}
	return m, err
}

// secsipidxCheck runs Debian's secsipidx on an Identity value.
func (b *luaBuilt) secsipidxCheck(t *testing.T, identity string) error {
	t.Helper()
	out, err := exec.Command("secsipidx", "-check", "-identity", identity,
		"-fpubkey", filepath.Join(b.labDir, "sp-pub.pem"), "-expire", "120").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "ok") || strings.Contains(string(out), "not-ok") {
		return fmt.Errorf("secsipidx -check: %v: %s", err, out)
	}
	return nil
}

// uas runs a UAS for n calls (0: until stopped).
func luaUAS(t *testing.T, ip string, n int, trace bool, timeout time.Duration) *kamtest.Run {
	return kamtest.SIPp{Scenario: "sipp/uas.xml", LocalIP: ip, Calls: n, TraceMsg: trace, Name: "uas-" + ip, Timeout: timeout}.Start(t)
}

// call runs one UAC call from ip through k to the UAS at target.
func luaCall(t *testing.T, k *kamtest.Kamailio, ip, target, scenario, caller, fromParams, hdr1, hdr2 string) kamtest.Result {
	t.Helper()
	return kamtest.SIPp{
		// 45 s, not 15: once, under the whole CI suite on two cores, the first
		// call to reach a fresh worker waited ~15 s for that worker's first
		// use of the library (dlopen, Go runtime start, config). A slow start
		// is tolerated here; a call that never completes still fails.
		Scenario: scenario, Remote: target, LocalIP: ip, Calls: 1, TraceMsg: true, Timeout: 45 * time.Second,
		Name: "uac", Args: []string{"-rsa", k.Addr},
		Keys: map[string]string{"caller": caller, "callee": luaCallee, "from_params": fromParams, "hdr1": hdr1, "hdr2": hdr2},
	}.Run(t)
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

func one(t *testing.T, msg, name string) string {
	t.Helper()
	v := kamtest.Header(msg, name)
	if len(v) != 1 {
		t.Fatalf("%d %s headers in\n%s", len(v), name, msg)
	}
	return v[0]
}

func TestLuaKamailio(t *testing.T) {
	b := luaBuild(t)
	gatewayCases(t, b, b.start, true)
	t.Run("diverted call and rich call data", func(t *testing.T) {
		luaExtensions(t, b)
	})
	t.Run("sign_required answers a refusal", func(t *testing.T) {
		signRequired(t, func(t *testing.T, name, stirgateTOML string, children int) *kamtest.Kamailio {
			return b.startDefines(t, name, stirgateTOML, children, "SIGN_REQUIRED=1")
		}, b.start, b)
	})
	t.Run("tenants", func(t *testing.T) { luaTenants(t, b) })
}

// signRequired: with stirgate.sign_required = 1 (required starts such a
// gateway) an INVITE the signer refuses (its Date is years old) is answered
// with the refusal's code through the transaction; without it (optional,
// the control) the same INVITE is relayed unsigned.
func signRequired(t *testing.T, required, optional gatewayStart, b *luaBuilt) {
	const old = "Date: Mon, 01 Jan 2001 00:00:00 GMT"
	ks := required(t, "sign-required", b.toml(`mode = "relaxed"`, ""), 2)
	r := luaCall(t, ks, "127.0.0.1", "127.0.0.2:9", "sipp/uac_reject.xml", luaCaller, ";user=phone", old, "X-Case: sign_required")
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
	var finals []string
	for _, m := range r.Received() {
		if sl := kamtest.StartLine(m); strings.HasPrefix(sl, "SIP/2.0 ") && !strings.HasPrefix(sl, "SIP/2.0 1") {
			finals = append(finals, sl)
		}
	}
	if len(finals) == 0 || !strings.HasPrefix(finals[0], "SIP/2.0 403 ") {
		t.Errorf("sign_required: final responses %q, want a 403", finals)
	}

	k := optional(t, "sign-optional", b.toml(`mode = "relaxed"`, ""), 2)
	carrier := luaUAS(t, luaCarrier, 1, true, time.Minute)
	if err := luaCall(t, k, "127.0.0.1", carrier.Addr(), "sipp/uac.xml", luaCaller, ";user=phone", old, "X-Case: sign_optional").Err(); err != nil {
		t.Fatal(err)
	}
	inv := invites(carrier.Wait())
	if len(inv) != 1 || len(kamtest.Header(inv[0], "Identity")) != 0 {
		t.Errorf("control: %d INVITEs relayed, want 1 without Identity", len(inv))
	}
	for _, kk := range []*kamtest.Kamailio{k, ks} {
		if err := kk.Healthy(); err != nil {
			t.Error(err)
		}
	}
}

// gatewayStart starts one Kamailio gateway (app_lua, native module, KEMI)
// with the given stirgate configuration.
type gatewayStart func(t *testing.T, name, stirgateTOML string, children int) *kamtest.Kamailio

// gatewayCases are the cases every Kamailio gateway must answer alike,
// whatever drives libstirgate. heavy adds the slow-x5u and load runs, which
// depend on how the library is driven, not on the routing language.
// Every gateway creates the transaction before it signs or verifies, and
// logs each verification ("stirgate: INVITE <Call-ID> checked: ...", with
// its log-results setting on), which the slow-x5u run counts.
func gatewayCases(t *testing.T, b *luaBuilt, start gatewayStart, heavy bool) {
	k := start(t, "relaxed", b.toml(`mode = "relaxed"`, ""), 4)

	t.Run("egress signs by policy", func(t *testing.T) {
		carrier := luaUAS(t, luaCarrier, 2, true, 60*time.Second)
		pai := "P-Asserted-Identity: <sip:" + luaCaller + "@127.0.0.1;user=phone>"
		for _, c := range []struct{ caller, hdr1 string }{{luaCaller, pai}, {luaOther, "X-Case: other"}} {
			if err := luaCall(t, k, "127.0.0.1", carrier.Addr(), "sipp/uac.xml", c.caller, ";user=phone", c.hdr1, "X-Test: egress").Err(); err != nil {
				t.Fatalf("call from %s: %v", c.caller, err)
			}
		}
		res := carrier.Wait()
		if err := res.Err(); err != nil {
			t.Fatal(err)
		}
		inv := invites(res)
		if len(inv) != 2 {
			t.Fatalf("carrier got %d INVITEs, want 2", len(inv))
		}
		for i, want := range []string{"A", "B"} {
			id := one(t, inv[i], "Identity")
			if len(kamtest.Header(inv[i], "Date")) != 1 {
				t.Errorf("signed INVITE without exactly one Date header")
			}
			m, err := b.cliVerify(t, inv[i])
			if err != nil || m["result"] != "pass" || m["verstat"] != "TN-Validation-Passed" {
				t.Errorf("stirgate verify of relayed INVITE %d: %v %v", i, m, err)
			}
			if m["attest"] != want {
				t.Errorf("INVITE %d attest %v, want %s (policy)", i, m["attest"], want)
			}
			if err := b.secsipidxCheck(t, id); err != nil {
				t.Errorf("INVITE %d: %v", i, err)
			}
		}
	})

	t.Run("ingress relaxed marks verstat", func(t *testing.T) {
		inside := luaUAS(t, "127.0.0.1", 5, true, 60*time.Second)
		good := b.sign(t, luaCaller, time.Now())
		tampered := strings.Replace(good, ".", ".e", 1)
		stale := b.sign(t, luaCaller, time.Now().Add(-5*time.Minute))
		cases := []struct {
			name, identity, verstat, reason string
		}{
			{"valid", good, "TN-Validation-Passed", ""},
			{"tampered", tampered, "TN-Validation-Failed", `SIP;cause=438;text="Invalid Identity Header"`},
			{"stale", stale, "TN-Validation-Failed", `SIP;cause=403;text="Stale Date"`},
			{"missing", "", "No-TN-Validation", ""},
			{"compact form y", good, "TN-Validation-Passed", ""},
		}
		for _, c := range cases {
			hdr2 := "X-Case: " + c.name
			if c.identity != "" {
				hdr2 = "Identity: " + c.identity
			}
			if strings.HasPrefix(c.name, "compact") {
				hdr2 = "y: " + c.identity
			}
			// From and PAI arrive with a forged verstat, the opposite of the
			// right one, which must not survive.
			forged := "TN-Validation-Passed"
			if c.verstat == forged {
				forged = "TN-Validation-Failed"
			}
			pai := "P-Asserted-Identity: <sip:" + luaCaller + ";verstat=" + forged + "@carrier.example.net;user=phone>"
			if err := luaCall(t, k, luaCarrier, inside.Addr(), "sipp/uac.xml", luaCaller,
				";verstat="+forged+";user=phone", pai, hdr2).Err(); err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
		}
		res := inside.Wait()
		if err := res.Err(); err != nil {
			t.Fatal(err)
		}
		inv := invites(res)
		if len(inv) != len(cases) {
			t.Fatalf("inside got %d INVITEs, want %d", len(inv), len(cases))
		}
		for i, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				for _, h := range []string{"From", "P-Asserted-Identity"} {
					v := one(t, inv[i], h)
					if strings.Count(strings.ToLower(v), "verstat") != 1 || !strings.Contains(v, ";verstat="+c.verstat+"@") {
						t.Errorf("%s %q: want exactly ;verstat=%s in the user part", h, v, c.verstat)
					}
				}
				reasons := kamtest.Header(inv[i], "Reason")
				switch {
				case c.reason == "" && len(reasons) != 0:
					t.Errorf("Reason %q on a call that needs none", reasons)
				case c.reason != "" && (len(reasons) != 1 || reasons[0] != c.reason):
					t.Errorf("Reason %q, want %q", reasons, c.reason)
				}
			})
		}
	})

	t.Run("ingress strict rejects", func(t *testing.T) {
		ks := start(t, "strict", b.toml("mode = \"strict\"\nrequire_identity = true", ""), 2)
		inside := luaUAS(t, "127.0.0.1", 1, true, 60*time.Second)
		good := b.sign(t, luaCaller, time.Now())
		cases := []struct {
			name, identity, status string
		}{
			{"valid", good, ""},
			{"tampered", strings.Replace(good, ".", ".e", 1), "SIP/2.0 438 Invalid Identity Header"},
			{"stale", b.sign(t, luaCaller, time.Now().Add(-5*time.Minute)), "SIP/2.0 403 Stale Date"},
			{"missing", "", "SIP/2.0 428 Use Identity Header"},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				hdr2 := "X-Case: " + c.name
				if c.identity != "" {
					hdr2 = "Identity: " + c.identity
				}
				scenario := "sipp/uac_reject.xml"
				if c.status == "" {
					scenario = "sipp/uac.xml"
				}
				res := luaCall(t, ks, luaCarrier, inside.Addr(), scenario, luaCaller, ";user=phone", "X-Case: strict", hdr2)
				if err := res.Err(); err != nil {
					t.Fatal(err)
				}
				var finals []string
				for _, m := range res.Received() {
					if sl := kamtest.StartLine(m); strings.HasPrefix(sl, "SIP/2.0 ") && !strings.HasPrefix(sl, "SIP/2.0 1") {
						finals = append(finals, sl)
					}
				}
				want := c.status
				if want == "" {
					want = "SIP/2.0 200 OK"
				}
				if len(finals) == 0 || finals[0] != want {
					t.Errorf("final responses %q, want %q", finals, want)
				}
			})
		}
		if res := inside.Wait(); res.Err() != nil || len(invites(res)) != 1 {
			t.Errorf("inside UAS: %v, %d INVITEs; want only the valid call", res.Err(), len(invites(res)))
		}
		if err := ks.Healthy(); err != nil {
			t.Error(err)
		}
	})

	if !heavy {
		return
	}
	t.Run("slow x5u host holds only its own worker", func(t *testing.T) {
		luaSlowX5U(t, b, start)
	})

	t.Run("load with 4 workers", func(t *testing.T) {
		luaLoad(t, b, k)
	})
}

// luaLoad: egress signing and ingress verification at once, children=4, a
// few hundred calls per second for 30 s: no failed call, no dead worker,
// libstirgate only in the workers, one x5u fetch for all of them (disk
// cache), worker RSS before and after.
func luaLoad(t *testing.T, b *luaBuilt, k *kamtest.Kamailio) {
	const (
		egressRate  = 200
		ingressRate = 100
		warm        = 5 * time.Second
		steady      = 30 * time.Second
	)
	main, err := k.Main()
	if err != nil {
		t.Fatal(err)
	}
	carrier := luaUAS(t, luaCarrier, 0, false, 2*time.Minute)
	inside := luaUAS(t, "127.0.0.1", 0, false, 2*time.Minute)
	identity := b.sign(t, luaCaller, time.Now())
	uac := func(name, ip, target string, rate int, d time.Duration, hdr2 string) *kamtest.Run {
		return kamtest.SIPp{
			Scenario: "sipp/uac.xml", Remote: target, LocalIP: ip, Rate: float64(rate),
			Calls: rate * int(d/time.Second), Timeout: d + 30*time.Second, Name: name,
			Args: []string{"-rsa", k.Addr},
			Keys: map[string]string{"caller": luaCaller, "callee": luaCallee, "from_params": ";user=phone",
				"hdr1": "X-Case: load", "hdr2": hdr2},
		}.Start(t)
	}
	phase := func(d time.Duration) (kamtest.Result, kamtest.Result) {
		e := uac("egress", "127.0.0.1", carrier.Addr(), egressRate, d, "X-Dir: egress")
		i := uac("ingress", luaCarrier, inside.Addr(), ingressRate, d, "Identity: "+identity)
		return e.Wait(), i.Wait()
	}

	// Prefetch: one verification fetches the x5u and writes it to the disk
	// cache, so that no worker fetches it again (the README's advice).
	if err := luaCall(t, k, luaCarrier, inside.Addr(), "sipp/uac.xml", luaCaller, ";user=phone", "X-Case: prefetch", "Identity: "+identity).Err(); err != nil {
		t.Fatalf("prefetch call: %v", err)
	}
	// Warm up: every worker loads libstirgate.
	we, wi := phase(warm)
	if we.Err() != nil || wi.Err() != nil {
		t.Fatalf("warm-up: egress %v; ingress %v", we.Err(), wi.Err())
	}
	before, err := k.Children()
	if err != nil {
		t.Fatal(err)
	}
	fetchesBefore := b.fetches.Load()

	start := time.Now()
	// The ingress token must stay fresh (60 s) through the whole run.
	identity = b.sign(t, luaCaller, time.Now())
	// RSS of the workers every 5 s, to tell a plateau from a leak.
	samples := make(chan string, 16)
	stopSampling := make(chan struct{})
	go func() {
		defer close(samples)
		tick := time.NewTicker(5 * time.Second)
		defer tick.Stop()
		for {
			select {
			case <-stopSampling:
				return
			case <-tick.C:
				ps, _ := k.Children()
				var rss []string
				for _, p := range ps {
					if p.HasMapping("libstirgate") {
						rss = append(rss, fmt.Sprintf("%d(anon %d)", p.RSSKB, p.AnonKB))
					}
				}
				samples <- fmt.Sprintf("t+%s: worker RSS KiB %s", time.Since(start).Round(time.Second), strings.Join(rss, " "))
			}
		}
	}()
	e, i := phase(steady)
	took := time.Since(start)
	close(stopSampling)
	for s := range samples {
		t.Log(s)
	}
	after, err := k.Children()
	if err != nil {
		t.Fatal(err)
	}

	for _, r := range []struct {
		name string
		res  kamtest.Result
		rate int
	}{{"egress (sign)", e, egressRate}, {"ingress (verify)", i, ingressRate}} {
		s := r.res.Stats
		t.Logf("%s: %d calls at %d cps target, %s; %s", r.name, s.Successful, r.rate, took.Round(time.Millisecond), s)
		if err := r.res.Err(); err != nil {
			t.Errorf("%s: %v", r.name, err)
		}
		if want := r.rate * int(steady/time.Second); s.Successful != want || s.Failed != 0 {
			t.Errorf("%s: %d successful, %d failed; want %d and 0", r.name, s.Successful, s.Failed, want)
		}
	}
	if err := k.Healthy(); err != nil {
		t.Fatal(err)
	}
	if m := regexp.MustCompile(`(?i)stirgate: INVITE .* not (signed|verified)`).FindString(k.Log()); m != "" {
		t.Errorf("log: %s", m)
	}

	// Same processes before and after: Kamailio never restarts a worker.
	pids := func(ps []kamtest.Process) string {
		var s []string
		for _, p := range ps {
			s = append(s, fmt.Sprint(p.PID))
		}
		return strings.Join(s, ",")
	}
	if pids(before) != pids(after) {
		t.Errorf("child processes changed: %s → %s", pids(before), pids(after))
	}

	// Fork model: the Go runtime lives in the workers only.
	mainNow, err := k.Main()
	if err != nil {
		t.Fatal(err)
	}
	if mainNow.HasMapping("libstirgate") || main.HasMapping("libstirgate") {
		t.Errorf("main process %d has libstirgate mapped", k.PID)
	}
	var loaded int
	var rssBefore, rssAfter int64
	for idx, p := range after {
		q := before[idx]
		if !p.HasMapping("libstirgate") {
			t.Logf("child %d: RSS %d KiB (no libstirgate: not a SIP worker)", p.PID, p.RSSKB)
			continue
		}
		loaded++
		rssBefore += q.RSSKB
		rssAfter += p.RSSKB
		t.Logf("worker %d: RSS %d KiB before, %d KiB after (%+d KiB); private (anon) %d → %d KiB (%+d), shm touched %d → %d KiB",
			p.PID, q.RSSKB, p.RSSKB, p.RSSKB-q.RSSKB, q.AnonKB, p.AnonKB, p.AnonKB-q.AnonKB, q.ShmKB, p.ShmKB)
		// The Go heap settles after warm-up; a leak of a few hundred bytes
		// per call would show as tens of MiB over 9000 calls.
		if p.AnonKB > q.AnonKB+16*1024 {
			t.Errorf("worker %d private memory grew %d KiB during the run", p.PID, p.AnonKB-q.AnonKB)
		}
	}
	t.Logf("main process %d: RSS %d KiB, libstirgate not mapped", mainNow.PID, mainNow.RSSKB)
	t.Logf("workers with libstirgate: %d; total RSS %d KiB before, %d KiB after", loaded, rssBefore, rssAfter)
	if loaded != 4 {
		t.Errorf("%d processes loaded libstirgate, want the 4 UDP workers", loaded)
	}
	// The disk cache: one fetch for all workers, none during the run.
	t.Logf("x5u fetches: %d for %d verifications in 4 workers", b.fetches.Load(), wi.Stats.Successful+i.Stats.Successful+1)
	if fetchesBefore != 1 || b.fetches.Load() != 1 {
		t.Errorf("x5u fetched %d times by the end of warm-up and %d in total, want 1 (cache_dir shared by the workers)", fetchesBefore, b.fetches.Load())
	}
	carrier.Stop()
	inside.Stop()
}

// luaSlowX5U: a certificate host that does not answer holds only the
// worker whose INVITE needs it: the other worker signs and relays calls
// meanwhile. Ordered by events, not timed: the egress calls complete while
// the host still holds the fetch (it has seen the request and has neither
// answered nor seen it abandoned); then the host answers 503 and the held
// INVITE goes on with 436. The [x5u] timeout is at its 30 s cap so that
// it cannot end the fetch first on a loaded machine; that the timeout
// ends a fetch is TestFetchDeadline's (cshared, the same library).
//
// The INVITE is sent twice at once, the second a retransmission of the
// first (uac_retrans.xml). It reaches Kamailio while the first is held on
// the slow host, so a script that verified before creating the transaction
// would verify it again in the other worker and hold that worker too (the
// egress calls would then fail). The proof: one request at the slow host,
// one "checked" line for the Call-ID (the gateway must log its
// verifications), one INVITE relayed. The control was run by hand for each
// gateway (stirgate.lua, kamailio-native.cfg, stirgate.py, the t_newtran
// call removed so that t_relay creates the transaction after verifying, as
// they once did): this test fails, the retransmission holding the other
// worker on the slow host until the 30 s fetch timeout, so that the egress
// calls could not complete before it.
func luaSlowX5U(t *testing.T, b *luaBuilt, startGW gatewayStart) {
	release := make(chan struct{})
	fetching := make(chan struct{}, 1)
	var abandoned atomic.Bool
	var asked atomic.Int64
	slow := testlog.NewTLSServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked.Add(1)
		select {
		case fetching <- struct{}{}:
		default:
		}
		select {
		case <-release:
			http.Error(w, "unavailable", http.StatusServiceUnavailable)
		case <-r.Context().Done():
			abandoned.Store(true)
		}
	}))
	defer slow.Close()
	var once sync.Once
	answer := func() { once.Do(func() { close(release) }) }
	defer answer()
	slowHost := strings.TrimPrefix(slow.URL, "https://")
	fast, err := os.ReadFile(b.x5uCA)
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(t.TempDir(), "x5u-cas.pem")
	if err := os.WriteFile(caFile, append(fast, certs.EncodePEM(slow.Certificate())...), 0o644); err != nil {
		t.Fatal(err)
	}
	conf := b.tomlHosts(`mode = "relaxed"`, t.TempDir(), []string{b.x5uHost, slowHost}, caFile)
	if !strings.Contains(conf, `timeout = "30s"`) {
		t.Fatal("the [x5u] timeout is no longer the 30 s cap; this test relies on it")
	}
	k := startGW(t, "slow", conf, 2)

	cred, err := certs.LoadSigner(mustRead(t, filepath.Join(b.labDir, "sp.key")), mustRead(t, filepath.Join(b.labDir, "sp-chain.pem")))
	if err != nil {
		t.Fatal(err)
	}
	slowSigner, err := core.NewSigner(core.SignerOptions{Credential: cred, X5U: slow.URL + "/sp.pem"})
	if err != nil {
		t.Fatal(err)
	}
	sr, err := slowSigner.Sign(context.Background(), core.SignRequest{Orig: luaCaller, Dest: []string{luaCallee}, Attest: "A", Trusted: true})
	if err != nil {
		t.Fatal(err)
	}

	inside := luaUAS(t, "127.0.0.1", 1, true, 120*time.Second)
	carrier := luaUAS(t, luaCarrier, 0, false, 120*time.Second)
	slowRun := kamtest.SIPp{
		Scenario: "sipp/uac_retrans.xml", Remote: inside.Addr(), LocalIP: luaCarrier, Calls: 1, Timeout: 90 * time.Second,
		Name: "uac-slow", Args: []string{"-rsa", k.Addr}, TraceMsg: true,
		Keys: map[string]string{"caller": luaCaller, "callee": luaCallee, "from_params": ";user=phone",
			"hdr1": "X-Case: slow", "hdr2": "Identity: " + sr.Identity},
	}.Start(t)
	// One worker is now held by the slow host.
	select {
	case <-fetching:
	case <-time.After(60 * time.Second):
		t.Fatal("the slow x5u host was never asked")
	}
	for i := 0; i < 3; i++ {
		if err := luaCall(t, k, "127.0.0.1", carrier.Addr(), "sipp/uac.xml", luaCaller, ";user=phone", "X-Case: quick", "X-N: 1").Err(); err != nil {
			t.Fatalf("egress call during the slow fetch: %v", err)
		}
	}
	if abandoned.Load() {
		t.Fatal("the slow fetch ended (timed out) before the egress calls did: their independence is not shown")
	}
	answer()
	res := slowRun.Wait()
	if err := res.Err(); err != nil {
		t.Fatalf("slow-x5u call: %v", err)
	}
	inv := invites(inside.Wait())
	if len(inv) != 1 {
		t.Fatalf("inside got %d INVITEs", len(inv))
	}
	if r := kamtest.Header(inv[0], "Reason"); len(r) != 1 || r[0] != `SIP;cause=436;text="Bad Identity Info"` {
		t.Errorf("Reason %q, want 436 Bad Identity Info", r)
	}
	if f := one(t, inv[0], "From"); !strings.Contains(f, ";verstat=TN-Validation-Failed@") {
		t.Errorf("From %q", f)
	}
	var sent, retrans int
	branch := ""
	for _, m := range res.Sent() {
		if strings.HasPrefix(kamtest.StartLine(m), "INVITE ") {
			sent++
			if v := kamtest.Header(m, "Via"); len(v) == 1 && v[0] == branch {
				retrans++
			} else if len(v) == 1 {
				branch = v[0]
			}
		}
	}
	if sent < 2 || retrans < 1 {
		t.Fatalf("the UAC sent %d INVITEs, %d of them retransmissions: the case did not happen", sent, retrans)
	}
	callID := one(t, inv[0], "Call-ID")
	checkedRE := regexp.MustCompile(`stirgate: INVITE ` + regexp.QuoteMeta(callID) + ` checked: result=(\w+)`)
	// The line is written before the INVITE is relayed; the log is read
	// apart from Kamailio, so it is awaited before it is counted.
	if err := k.WaitLog(checkedRE, 10*time.Second); err != nil {
		t.Errorf("log: %v", err)
	}
	checked := checkedRE.FindAllStringSubmatch(k.Log(), -1)
	if len(checked) != 1 || checked[0][1] != "fail" {
		t.Errorf("%d verifications logged for the call (%v) of %d INVITEs sent, want 1 (fail)", len(checked), checked, sent)
	}
	if n := asked.Load(); n != 1 {
		t.Errorf("the slow x5u host was asked %d times, want 1", n)
	}
	carrier.Stop()
	if err := k.Healthy(); err != nil {
		t.Error(err)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// luaExtensions: the PASSporT extensions through app_lua. A diverted call
// (SHAKEN + div Identity headers, RFC 8946, in either order) addressed to
// the new target passes, with the diverting number exposed; the same call
// retargeted elsewhere fails; a broken chain (the div diverts from a number
// the SHAKEN call never reached) gets 438: a Reason in relaxed mode, the
// reply in strict mode; a call with rich call data (RFC 9795) passes with
// the verified name exposed and a verified Call-Info (RFC 9796) relayed.
func luaExtensions(t *testing.T, b *luaBuilt) {
	k := b.start(t, "ext", b.toml(`mode = "relaxed"`, ""), 2)
	ctx := context.Background()
	const newTarget = "+12155550141"
	shaken := b.sign(t, luaCaller, time.Now())
	div, err := b.signer.SignDiv(ctx, core.DivRequest{Identity: []string{shaken}, Dest: []string{newTarget}})
	if err != nil {
		t.Fatal(err)
	}
	// Diverted from +12155550199, which the SHAKEN call never reached, to
	// the callee, so that only the chain is wrong.
	broken, err := b.signer.SignDiv(ctx, core.DivRequest{Identity: []string{shaken}, Div: "+12155550199", Dest: []string{luaCallee}})
	if err != nil {
		t.Fatal(err)
	}
	rcd, err := b.signer.Sign(ctx, core.SignRequest{Orig: luaCaller, Dest: []string{luaCallee}, Attest: "A", Trusted: true,
		RCD: &core.RCD{Nam: "ACME Corp"}, Crn: "Appointment reminder"})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, scenario, target, hdr1, hdr2 string
		verstat, reason, logged            string
	}{
		{"diverted, SHAKEN first", "sipp/uac_retarget.xml", newTarget, "Identity: " + shaken, "Identity: " + div.Identity,
			"TN-Validation-Passed", "", `result=pass verstat=TN-Validation-Passed sip_code=0 error=nil div=12155550131 rcd_nam=nil`},
		{"diverted, div first", "sipp/uac_retarget.xml", newTarget, "Identity: " + div.Identity, "Identity: " + shaken,
			"TN-Validation-Passed", "", `result=pass verstat=TN-Validation-Passed sip_code=0 error=nil div=12155550131 rcd_nam=nil`},
		{"diverted elsewhere", "sipp/uac_retarget.xml", "+12155550199", "Identity: " + shaken, "Identity: " + div.Identity,
			"TN-Validation-Failed", `SIP;cause=438;text="Invalid Identity Header"`, `result=fail verstat=TN-Validation-Failed sip_code=438 error=dest_mismatch div=nil`},
		{"broken chain", "sipp/uac.xml", luaCallee, "Identity: " + broken.Identity, "Identity: " + shaken,
			"TN-Validation-Failed", `SIP;cause=438;text="Invalid Identity Header"`, `result=fail verstat=TN-Validation-Failed sip_code=438 error=div_chain_broken div=nil`},
		{"rcd", "sipp/uac.xml", luaCallee, "Identity: " + rcd.Identity, "X-Case: rcd",
			"TN-Validation-Passed", "", `result=pass verstat=TN-Validation-Passed sip_code=0 error=nil div=nil rcd_nam=ACME Corp rcd_crn=Appointment reminder`},
	}
	inside := luaUAS(t, "127.0.0.1", len(cases), true, 2*time.Minute)
	var callIDs []string
	for _, c := range cases {
		res := kamtest.SIPp{
			Scenario: c.scenario, Remote: inside.Addr(), LocalIP: luaCarrier, Calls: 1, Timeout: 45 * time.Second,
			Name: "uac", Args: []string{"-rsa", k.Addr}, TraceMsg: true,
			Keys: map[string]string{"caller": luaCaller, "callee": luaCallee, "target": c.target, "from_params": ";user=phone", "hdr1": c.hdr1, "hdr2": c.hdr2},
		}.Run(t)
		if err := res.Err(); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		sent := res.Sent()
		if len(sent) == 0 {
			t.Fatalf("%s: nothing sent", c.name)
		}
		callIDs = append(callIDs, one(t, sent[0], "Call-ID"))
	}
	res := inside.Wait()
	if err := res.Err(); err != nil {
		t.Fatal(err)
	}
	inv := invites(res)
	if len(inv) != len(cases) {
		t.Fatalf("inside got %d INVITEs, want %d", len(inv), len(cases))
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if v := one(t, inv[i], "From"); !strings.Contains(v, ";verstat="+c.verstat+"@") {
				t.Errorf("From %q, want verstat %s", v, c.verstat)
			}
			reasons := kamtest.Header(inv[i], "Reason")
			if (c.reason == "" && len(reasons) != 0) || (c.reason != "" && (len(reasons) != 1 || reasons[0] != c.reason)) {
				t.Errorf("Reason %q, want %q", reasons, c.reason)
			}
			re := regexp.MustCompile(`stirgate: INVITE ` + regexp.QuoteMeta(callIDs[i]) + ` checked: ` + regexp.QuoteMeta(c.logged))
			if err := k.WaitLog(re, 10*time.Second); err != nil {
				t.Errorf("log: %v", err)
			}
			ci := kamtest.Header(inv[i], "Call-Info")
			if c.name != "rcd" {
				if len(ci) != 0 {
					t.Errorf("Call-Info %q on a call without verified rcd", ci)
				}
				return
			}
			if len(ci) != 1 {
				t.Fatalf("Call-Info %q, want one", ci)
			}
			for _, want := range []string{"<data:application/json;base64,", ";purpose=jcard", `;call-reason="Appointment reminder"`, ";verified"} {
				if !strings.Contains(ci[0], want) {
					t.Errorf("Call-Info %q lacks %s", ci[0], want)
				}
			}
		})
	}
	inside.Stop()

	// Strict mode answers the broken chain with 438 itself.
	ks := b.start(t, "ext-strict", b.toml(`mode = "strict"`, ""), 2)
	r := luaCall(t, ks, luaCarrier, "127.0.0.1:9", "sipp/uac_reject.xml", luaCaller, ";user=phone", "Identity: "+shaken, "Identity: "+broken.Identity)
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
	var finals []string
	for _, m := range r.Received() {
		if sl := kamtest.StartLine(m); strings.HasPrefix(sl, "SIP/2.0 ") && !strings.HasPrefix(sl, "SIP/2.0 1") {
			finals = append(finals, sl)
		}
	}
	if len(finals) == 0 || finals[0] != "SIP/2.0 438 Invalid Identity Header" {
		t.Errorf("strict broken chain: final responses %q, want 438 Invalid Identity Header", finals)
	}
	for _, kk := range []*kamtest.Kamailio{k, ks} {
		if err := kk.Healthy(); err != nil {
			t.Error(err)
		}
	}
}
