package kamailio_test

// The native module (kamailio/module/), proven in Debian's Kamailio with
// SIPp on loopback, with the same cases and the same assertions as the
// app_lua path (gatewayCases): kamailio-native.cfg drives the module from
// the native cfg language, kamailio-python.cfg + stirgate.py from KEMI.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stirgate/stirgate/core"
	"github.com/stirgate/stirgate/kamailio/kamtest"
)

// nativeModule builds stirgate.so with `make kamailio-module` (the
// Kamailio source is fetched and configured once, then cached in bin/).
func nativeModule(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("make", "-s", "kamailio-module")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make kamailio-module: %v\n%s", err, out)
	}
	return filepath.Join(root, "bin", "kamailio", "stirgate.so")
}

// startNative runs cfg (kamailio-native.cfg or a KEMI one) with the module.
func (b *luaBuilt) startNative(module, cfg string, defines ...string) gatewayStart {
	return func(t *testing.T, name, stirgateTOML string, children int) *kamtest.Kamailio {
		t.Helper()
		cfgPath := filepath.Join(b.dir, name+".toml")
		if err := os.WriteFile(cfgPath, []byte(stirgateTOML), 0o644); err != nil {
			t.Fatal(err)
		}
		return kamtest.Start(t, kamtest.Options{
			Config:   cfg,
			Children: children,
			Defines: append([]string{
				fmt.Sprintf("STIRGATE_CONFIG=%q", cfgPath),
				fmt.Sprintf("STIRGATE_MODULE=%q", module),
				`INTERNAL_SOURCES="127.0.0.1"`,
			}, defines...),
			Env: []string{"STIRGATE_LIBRARY=" + b.lib},
		})
	}
}

func TestNativeKamailio(t *testing.T) {
	b := luaBuild(t)
	mod := nativeModule(t)
	// LOG_RESULTS: the slow-x5u run counts the verifications in the log.
	start := b.startNative(mod, "kamailio-native.cfg", "LOG_RESULTS")
	gatewayCases(t, b, start, true)

	t.Run("library missing: calls go on, no inbound verstat survives", func(t *testing.T) {
		nativeNoLibrary(t, b, mod)
	})

	t.Run("pseudo-variables, RPC and reload", func(t *testing.T) {
		nativeRPC(t, b, b.startNative(mod, "kamailio-native.cfg", "LOG_RESULTS"))
	})

	t.Run("diverted call and rich call data", func(t *testing.T) {
		nativeExtensions(t, b, b.startNative(mod, "kamailio-native.cfg", "LOG_RESULTS"))
	})

	t.Run("sign_required answers a refusal", func(t *testing.T) {
		signRequired(t, b.startNative(mod, "kamailio-native.cfg", "SIGN_REQUIRED=1"), start, b)
	})
}

// nativeExtensions: a diverted call (SHAKEN + div, RFC 8946) whose
// Request-URI is the new target passes, which only the Request-URI can
// prove (To still names the first callee); a call retargeted elsewhere
// fails; a call with rich call data (RFC 9795) passes with RFC 9796
// Call-Info added. $stirgate(div), $stirgate(rcd_nam) and
// $stirgate(rcd_crn) reach the log.
func nativeExtensions(t *testing.T, b *luaBuilt, start gatewayStart) {
	k := start(t, "ext", b.toml(`mode = "relaxed"`, ""), 2)
	ctx := context.Background()
	const newTarget = "+12155550141"
	shaken := b.sign(t, luaCaller, time.Now())
	d, err := b.signer.SignDiv(ctx, core.DivRequest{Identity: []string{shaken}, Dest: []string{newTarget}})
	if err != nil {
		t.Fatal(err)
	}
	r, err := b.signer.Sign(ctx, core.SignRequest{Orig: luaCaller, Dest: []string{luaCallee}, Attest: "A", Trusted: true,
		RCD: &core.RCD{Nam: "ACME Corp"}, Crn: "Appointment reminder"})
	if err != nil {
		t.Fatal(err)
	}
	inside := luaUAS(t, "127.0.0.1", 3, true, 2*time.Minute)
	call := func(scenario, target, hdr1, hdr2 string) {
		t.Helper()
		res := kamtest.SIPp{
			Scenario: scenario, Remote: inside.Addr(), LocalIP: luaCarrier, Calls: 1, Timeout: 45 * time.Second,
			Name: "uac", Args: []string{"-rsa", k.Addr},
			Keys: map[string]string{"caller": luaCaller, "callee": luaCallee, "target": target, "from_params": ";user=phone", "hdr1": hdr1, "hdr2": hdr2},
		}.Run(t)
		if err := res.Err(); err != nil {
			t.Fatal(err)
		}
	}
	call("sipp/uac_retarget.xml", newTarget, "Identity: "+d.Identity, "Identity: "+shaken)
	if err := k.WaitLog(regexp.MustCompile(`stirgate: INVITE \S+ checked: result=pass verstat=TN-Validation-Passed .* div=12155550131 rcd_nam=<null>`), 10*time.Second); err != nil {
		t.Errorf("diverted call: %v", err)
	}
	call("sipp/uac_retarget.xml", "+12155550199", "Identity: "+shaken, "Identity: "+d.Identity)
	if err := k.WaitLog(regexp.MustCompile(`stirgate: INVITE \S+ checked: result=fail verstat=TN-Validation-Failed sip_code=438 .* div=<null>`), 10*time.Second); err != nil {
		t.Errorf("call retargeted elsewhere: %v", err)
	}
	call("sipp/uac.xml", luaCallee, "Identity: "+r.Identity, "X-Case: rcd")
	if err := k.WaitLog(regexp.MustCompile(`stirgate: INVITE \S+ checked: result=pass .* div=<null> rcd_nam=ACME Corp rcd_crn=Appointment reminder`), 10*time.Second); err != nil {
		t.Errorf("rcd call: %v", err)
	}

	res := inside.Wait()
	if err := res.Err(); err != nil {
		t.Fatal(err)
	}
	inv := invites(res)
	if len(inv) != 3 {
		t.Fatalf("inside got %d INVITEs, want 3", len(inv))
	}
	for i, want := range []string{"TN-Validation-Passed", "TN-Validation-Failed", "TN-Validation-Passed"} {
		if v := one(t, inv[i], "From"); !strings.Contains(v, ";verstat="+want+"@") {
			t.Errorf("INVITE %d From %q, want verstat %s", i, v, want)
		}
	}
	if ci := kamtest.Header(inv[0], "Call-Info"); len(ci) != 0 {
		t.Errorf("Call-Info %q on a call without rcd", ci)
	}
	ci := one(t, inv[2], "Call-Info")
	for _, want := range []string{"<data:application/json;base64,", `;purpose=jcard`, `;call-reason="Appointment reminder"`, `;verified`} {
		if !strings.Contains(ci, want) {
			t.Errorf("Call-Info %q lacks %s", ci, want)
		}
	}
	inside.Stop()
	if err := k.Healthy(); err != nil {
		t.Error(err)
	}
}

func TestKEMIPythonKamailio(t *testing.T) {
	b := luaBuild(t)
	mod := nativeModule(t)
	script, err := filepath.Abs("stirgate.py")
	if err != nil {
		t.Fatal(err)
	}
	start := b.startNative(mod, "kamailio-python.cfg", fmt.Sprintf("STIRGATE_SCRIPT=%q", script), "LOG_RESULTS=1")
	gatewayCases(t, b, start, false)
	// Not the load run of heavy (the same module as TestNativeKamailio),
	// but the slow-x5u run: whether a retransmission is verified again
	// depends on where the script creates the transaction.
	t.Run("slow x5u host holds only its own worker", func(t *testing.T) {
		luaSlowX5U(t, b, start)
	})
	t.Run("sign_required answers a refusal", func(t *testing.T) {
		signRequired(t, b.startNative(mod, "kamailio-python.cfg", fmt.Sprintf("STIRGATE_SCRIPT=%q", script), "SIGN_REQUIRED=1"), start, b)
	})
}

// configHash is how the library names a configuration (core/config).
func configHash(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

// kamcmd runs an RPC command over the instance's ctl socket.
func kamcmd(t *testing.T, k *kamtest.Kamailio, args ...string) string {
	t.Helper()
	out, err := exec.Command("kamcmd", append([]string{"-s", "unix:" + filepath.Join(k.Dir, "kamailio_ctl")}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("kamcmd %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// nativeRPC: $stirgate(...) reaches the log after a signature and a check;
// stirgate.status lists the workers that loaded the library and their
// counters; stirgate.reload makes every worker reload at its next call,
// and a broken file keeps the old configuration in force.
func nativeRPC(t *testing.T, b *luaBuilt, start gatewayStart) {
	k := start(t, "rpc", b.toml(`mode = "relaxed"`, ""), 2)
	cfgPath := filepath.Join(b.dir, "rpc.toml")
	carrier := luaUAS(t, luaCarrier, 0, false, 2*time.Minute)
	inside := luaUAS(t, "127.0.0.1", 0, false, 2*time.Minute)

	if err := luaCall(t, k, "127.0.0.1", carrier.Addr(), "sipp/uac.xml", luaCaller, ";user=phone", "X-Case: pv", "X-N: 1").Err(); err != nil {
		t.Fatal(err)
	}
	if err := luaCall(t, k, luaCarrier, inside.Addr(), "sipp/uac.xml", luaCaller, ";user=phone", "X-Case: pv",
		"Identity: "+b.sign(t, luaCaller, time.Now())).Err(); err != nil {
		t.Fatal(err)
	}
	for _, re := range []string{
		`stirgate signed: result=signed attest=A origid=[0-9a-f-]{36} x5u=` + regexp.QuoteMeta(b.x5uURL) + ` identity=eyJ`,
		`stirgate: INVITE \S+ checked: result=pass verstat=TN-Validation-Passed sip_code=0 attest=A spc=1234`,
	} {
		if err := k.WaitLog(regexp.MustCompile(re), 10*time.Second); err != nil {
			t.Errorf("log line %s: %v", re, err)
		}
	}

	good, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	status := kamcmd(t, k, "stirgate.status")
	t.Logf("stirgate.status:\n%s", status)
	for _, want := range []string{"config: " + cfgPath, "generation: 0", "signed: 1", "verified: 1",
		`"config_hash":"` + configHash(good) + `"`, `"cert_not_after":`, `"x5u_cache":{`, `"spc":"1234"`} {
		if !strings.Contains(status, want) {
			t.Errorf("stirgate.status lacks %q", want)
		}
	}
	if n := strings.Count(status, "pid: "); n != 2 {
		t.Errorf("stirgate.status lists %d workers with the library, want the 2 SIP workers", n)
	}

	// call places egress calls until both workers have taken generation
	// gen (each worker reloads at its next call), at most 20 calls.
	call := func(gen int) string {
		t.Helper()
		for i := 0; i < 20; i++ {
			if err := luaCall(t, k, "127.0.0.1", carrier.Addr(), "sipp/uac.xml", luaCaller, ";user=phone", "X-Case: reload", "X-N: 1").Err(); err != nil {
				t.Fatal(err)
			}
			st := kamcmd(t, k, "stirgate.status")
			if strings.Count(st, fmt.Sprintf("generation: %d", gen)) == 3 { // the total and 2 workers
				return st
			}
		}
		t.Fatalf("the workers did not all reach generation %d:\n%s", gen, kamcmd(t, k, "stirgate.status"))
		return ""
	}

	// A broken file: reload fails in every worker, the old configuration
	// stays in force (calls are still signed), and status says why.
	if err := os.WriteFile(cfgPath, []byte("[signer]\nkey = 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	kamcmd(t, k, "stirgate.reload")
	status = call(1)
	if strings.Count(status, "last_error: "+cfgPath) != 2 || strings.Count(status, `"config_hash":"`+configHash(good)+`"`) != 2 {
		t.Errorf("after a broken reload: want the error and the old configuration in both workers:\n%s", status)
	}
	if m := regexp.MustCompile(`not signed`).FindString(k.Log()); m != "" {
		t.Errorf("a call went unsigned after a failed reload: %s", m)
	}
	// A good new file: both workers take it.
	changed := append(good, []byte("\n# changed\n")...)
	if err := os.WriteFile(cfgPath, changed, 0o644); err != nil {
		t.Fatal(err)
	}
	kamcmd(t, k, "stirgate.reload")
	status = call(2)
	if strings.Count(status, `"config_hash":"`+configHash(changed)+`"`) != 2 {
		t.Errorf("after a good reload: want the new configuration in both workers:\n%s", status)
	}
	carrier.Stop()
	inside.Stop()
	if err := k.Healthy(); err != nil {
		t.Error(err)
	}
}

// nativeNoLibrary: a worker whose libstirgate cannot be loaded still
// routes. Signing answers -2 (the call goes out unsigned, sign_required
// being 0), checking answers -2 after removing the verstat that arrived on
// From and P-Asserted-Identity; the error is in $stirgate(error) and the
// log, and nothing crashes.
func nativeNoLibrary(t *testing.T, b *luaBuilt, mod string) {
	cfgPath := filepath.Join(b.dir, "nolib.toml")
	if err := os.WriteFile(cfgPath, []byte(b.toml(`mode = "relaxed"`, "")), 0o644); err != nil {
		t.Fatal(err)
	}
	k := kamtest.Start(t, kamtest.Options{
		Config:   "kamailio-native.cfg",
		Children: 2,
		Defines: []string{fmt.Sprintf("STIRGATE_CONFIG=%q", cfgPath), fmt.Sprintf("STIRGATE_MODULE=%q", mod),
			`INTERNAL_SOURCES="127.0.0.1"`},
		Env: []string{"STIRGATE_LIBRARY=" + filepath.Join(b.dir, "no-such-libstirgate.so.1")},
	})
	carrier := luaUAS(t, luaCarrier, 1, true, time.Minute)
	if err := luaCall(t, k, "127.0.0.1", carrier.Addr(), "sipp/uac.xml", luaCaller, ";user=phone", "X-Case: nolib", "X-N: 1").Err(); err != nil {
		t.Fatal(err)
	}
	out := carrier.Wait()
	if inv := invites(out); len(inv) != 1 || len(kamtest.Header(inv[0], "Identity")) != 0 {
		t.Errorf("egress without the library: want one unsigned INVITE, got %d", len(inv))
	}
	inside := luaUAS(t, "127.0.0.1", 1, true, time.Minute)
	pai := "P-Asserted-Identity: <sip:" + luaCaller + ";verstat=TN-Validation-Passed@carrier.example.net;user=phone>"
	if err := luaCall(t, k, luaCarrier, inside.Addr(), "sipp/uac.xml", luaCaller, ";VerStat=TN-Validation-Passed;user=phone", pai,
		"Identity: "+b.sign(t, luaCaller, time.Now())).Err(); err != nil {
		t.Fatal(err)
	}
	inv := invites(inside.Wait())
	if len(inv) != 1 {
		t.Fatalf("inside got %d INVITEs", len(inv))
	}
	for _, h := range []string{"From", "P-Asserted-Identity"} {
		if v := one(t, inv[0], h); strings.Contains(strings.ToLower(v), "verstat") {
			t.Errorf("%s %q: an inbound verstat went on while verification could not run", h, v)
		}
	}
	for _, re := range []string{`not signed: ELOAD: dlopen .*no-such-libstirgate`, `not verified: ELOAD: dlopen`} {
		if err := k.WaitLog(regexp.MustCompile(re), 10*time.Second); err != nil {
			t.Errorf("log %s: %v", re, err)
		}
	}
	if err := k.Healthy(); err != nil {
		t.Error(err)
	}
}
