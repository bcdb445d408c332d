package kamailio_test

// Multi-tenant signing through a real Kamailio (app_lua, libstirgate in
// every worker): each customer's calls are signed with its own tenant's
// credential, whichever worker takes them, the spool records carry the
// arrangement (tenant, customer, rule; a refusal too), and a tenant's next
// credential takes over at its activation instant in every worker.
//
// Addresses: the internal sources are 127.0.0.1 (customer acme, tenant
// blue), 127.0.0.3 (beta, tenant green) and 127.0.0.4 (delta, tenant old,
// whose certificate has expired); the carrier UAS is 127.0.0.2.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stirgate/stirgate/core"
	"github.com/stirgate/stirgate/core/certs"
	"github.com/stirgate/stirgate/core/identity"
	"github.com/stirgate/stirgate/core/passport"
	"github.com/stirgate/stirgate/core/stir"
	"github.com/stirgate/stirgate/core/tn"
	"github.com/stirgate/stirgate/core/x5u"
	"github.com/stirgate/stirgate/kamailio/kamtest"
	"github.com/stirgate/stirgate/outcome"
)

const (
	acmeIP, betaIP, deltaIP             = "127.0.0.1", "127.0.0.3", "127.0.0.4"
	acmeTN, betaTN, deltaTN             = "+12155550121", "+12155550122", "+12155550124"
	tenantInternal                      = acmeIP + "," + betaIP + "," + deltaIP
	blueURL, greenURL, blue2URL, oldURL = "https://certs.example.net/blue.pem", "https://certs.example.net/green.pem", "https://certs.example.net/blue-2.pem", "https://certs.example.net/old.pem"
)

// kamLab is one tenant PKI written to disk.
type kamLab struct {
	lab *certs.Lab
	dir string
	// verifier trusts only this lab's root and gets this lab's chain for
	// every x5u URL of the test: a token verifies with it only when this
	// lab's key signed it.
	verifier *core.Verifier
}

func newKamLab(t *testing.T, dir, name, spc string, o certs.LabOptions) kamLab {
	t.Helper()
	o.SPC = spc
	lab, err := certs.NewLab(o)
	if err != nil {
		t.Fatal(err)
	}
	l := kamLab{lab: lab, dir: filepath.Join(dir, name)}
	if err := lab.WriteDir(l.dir); err != nil {
		t.Fatal(err)
	}
	pre := map[string][]byte{}
	for _, u := range []string{blueURL, greenURL, blue2URL, oldURL} {
		pre[u] = lab.ChainPEM()
	}
	if l.verifier, err = core.NewVerifier(core.VerifierOptions{Roots: lab.Roots(), Numbers: tn.NANP(),
		Fetch: x5u.Options[*certs.Credential]{Offline: true, PreloadBytes: pre}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.verifier.Close() })
	return l
}

func (l kamLab) key() string   { return filepath.Join(l.dir, "sp.key") }
func (l kamLab) chain() string { return filepath.Join(l.dir, "sp-chain.pem") }

// verifies reports whether the relayed INVITE's Identity passes with l's
// chain as the only trust.
func (l kamLab) verifies(t *testing.T, invite string) bool {
	t.Helper()
	r := l.verifier.Verify(context.Background(), core.VerifyRequest{Identity: kamtest.Header(invite, "Identity"),
		From: one(t, invite, "From"), To: one(t, invite, "To"), Date: one(t, invite, "Date")})
	return r.Result == stir.Pass
}

// signedCall is what one relayed INVITE's PASSporT says.
type signedCall struct {
	x5u, origid string
	iat         int64
	invite      string
}

func decodeCall(t *testing.T, invite string) signedCall {
	t.Helper()
	h, err := identity.Parse(one(t, invite, "Identity"))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := passport.Parse(h.Token)
	if err != nil {
		t.Fatal(err)
	}
	return signedCall{x5u: h.Info, origid: tok.Claims.OrigID, iat: tok.Claims.IAT, invite: invite}
}

// tenantTOML: tenants blue (with next, when activate is set), green and
// old (expired); customers by source; no default tenant and no default
// attestation; records to spool.
func tenantTOML(blue, blue2, green, expired kamLab, activate time.Time, spool string) string {
	next := ""
	if !activate.IsZero() {
		next = fmt.Sprintf("next_key = %q\nnext_cert = %q\nnext_x5u = %q\nactivate = %s\n",
			blue2.key(), blue2.chain(), blue2URL, activate.UTC().Format(time.RFC3339))
	}
	return fmt.Sprintf(`
[log]
level = "warn"

[[tenant]]
name = "blue"
key = %q
cert = %q
x5u = %q
%s
[[tenant]]
name = "green"
key = %q
cert = %q
x5u = %q

[[tenant]]
name = "old"
key = %q
cert = %q
x5u = %q

[policy]

[[policy.customer]]
name = "acme"
tenant = "blue"
numbers = ["12155550121"]
sources = [%q]

[[policy.customer]]
name = "beta"
tenant = "green"
sources = [%q]

[[policy.customer]]
name = "delta"
tenant = "old"
sources = [%q]

[store]
system = "kam-tenants"
spool_dir = %q
`, blue.key(), blue.chain(), blueURL, next, green.key(), green.chain(), greenURL,
		expired.key(), expired.chain(), oldURL, acmeIP, betaIP, deltaIP, spool)
}

// startTenants runs kamailio-lua.cfg with the given stirgate configuration
// and the three internal sources.
func (b *luaBuilt) startTenants(t *testing.T, name, text string, children int) *kamtest.Kamailio {
	t.Helper()
	cfgPath := filepath.Join(b.dir, name+".toml")
	if err := os.WriteFile(cfgPath, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	script, err := filepath.Abs("stirgate.lua")
	if err != nil {
		t.Fatal(err)
	}
	return kamtest.Start(t, kamtest.Options{
		Config:   "kamailio-lua.cfg",
		Children: children,
		Defines: []string{
			fmt.Sprintf("STIRGATE_CONFIG=%q", cfgPath),
			fmt.Sprintf("STIRGATE_SCRIPT=%q", script),
			fmt.Sprintf("INTERNAL_SOURCES=%q", tenantInternal),
		},
		Env: []string{"LUA_CPATH=" + filepath.Join(b.dir, "?.so") + ";;", "STIRGATE_LIBRARY=" + b.lib},
	})
}

// tenantCalls runs n calls from ip (the caller's number caller) through k
// to the UAS at target, at most n at once so that several workers take
// them.
func tenantCalls(t *testing.T, k *kamtest.Kamailio, ip, target, caller string, n int) kamtest.Result {
	t.Helper()
	return kamtest.SIPp{
		Scenario: "sipp/uac.xml", Remote: target, LocalIP: ip, Calls: n, Rate: 50, Limit: n,
		// See luaCall: a worker's first use of the library may be slow.
		Timeout: 60 * time.Second, Name: "uac-" + ip, Args: []string{"-rsa", k.Addr},
		Keys: map[string]string{"caller": caller, "callee": luaCallee, "from_params": ";user=phone", "hdr1": "X-Case: tenants", "hdr2": "X-N: 1"},
	}.Run(t)
}

// spoolRecords stops k (its workers release their spool files) and
// collects the sign records.
func spoolRecords(t *testing.T, k *kamtest.Kamailio, spool string) []outcome.Outcome {
	t.Helper()
	if err := k.Stop(); err != nil {
		t.Fatal(err)
	}
	st, err := outcome.Open(context.Background(), outcome.Options{Path: filepath.Join(t.TempDir(), "o.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := outcome.Collect(context.Background(), st, outcome.CollectOptions{Dir: spool}); err != nil {
		t.Fatal(err)
	}
	rows, err := st.Query(context.Background(), outcome.Filter{Kind: outcome.KindSign, Limit: 10000})
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

// worker is the process that wrote a spool record (its UniqueID is
// "k<pid>-...").
func worker(o outcome.Outcome) string { pid, _, _ := strings.Cut(o.UniqueID, "-"); return pid }

func luaTenants(t *testing.T, b *luaBuilt) {
	dir := t.TempDir()
	blue := newKamLab(t, dir, "blue", "1002", certs.LabOptions{})
	blue2 := newKamLab(t, dir, "blue2", "1002", certs.LabOptions{})
	green := newKamLab(t, dir, "green", "1003", certs.LabOptions{})
	expired := newKamLab(t, dir, "old", "1004", certs.LabOptions{Now: time.Now().Add(-10 * 24 * time.Hour), Days: 1})
	labs := map[string]kamLab{"blue": blue, "blue2": blue2, "green": green}

	t.Run("each customer signs with its tenant whichever worker takes the call", func(t *testing.T) {
		spool := filepath.Join(dir, "spool-tenants")
		k := b.startTenants(t, "tenants", tenantTOML(blue, blue2, green, expired, time.Time{}, spool), 4)
		const n = 8
		carrier := luaUAS(t, luaCarrier, 2*n+1, true, 120*time.Second)
		for _, c := range []struct{ ip, caller string }{{acmeIP, acmeTN}, {betaIP, betaTN}} {
			if err := tenantCalls(t, k, c.ip, carrier.Addr(), c.caller, n).Err(); err != nil {
				t.Fatalf("calls from %s: %v", c.ip, err)
			}
		}
		// delta's tenant cannot sign: relayed unsigned (sign_required = 0),
		// never signed with another tenant's certificate.
		if err := tenantCalls(t, k, deltaIP, carrier.Addr(), deltaTN, 1).Err(); err != nil {
			t.Fatalf("call from delta: %v", err)
		}
		res := carrier.Wait()
		if err := res.Err(); err != nil {
			t.Fatal(err)
		}
		inv := invites(res)
		if len(inv) != 2*n+1 {
			t.Fatalf("carrier got %d INVITEs, want %d", len(inv), 2*n+1)
		}
		byOrigID := map[string]string{} // origid -> tenant lab that must verify it
		for _, m := range inv {
			from := one(t, m, "From")
			var want string
			switch {
			case strings.Contains(from, deltaTN):
				if ids := kamtest.Header(m, "Identity"); len(ids) != 0 {
					t.Errorf("delta's call carries Identity %q", ids)
				}
				continue
			case strings.Contains(from, acmeTN):
				want = "blue"
			case strings.Contains(from, betaTN):
				want = "green"
			default:
				t.Fatalf("INVITE from %s", from)
			}
			c := decodeCall(t, m)
			byOrigID[c.origid] = want
			for name, l := range labs {
				if got := l.verifies(t, m); got != (name == want) {
					t.Errorf("%s's call verifies with %s's chain: %v", want, name, got)
				}
			}
		}
		if err := k.Healthy(); err != nil {
			t.Error(err)
		}

		rows := spoolRecords(t, k, spool)
		if len(rows) != 2*n+1 {
			t.Fatalf("%d sign records in the spool, want %d", len(rows), 2*n+1)
		}
		workers := map[string]map[string]int{} // tenant -> worker -> records
		for _, o := range rows {
			got := o.Result + "/" + o.ErrorName + "/" + o.Tenant + "/" + o.SPC + "/" + o.Customer + "/" + o.Rule + "/" + o.Peer
			var want string
			switch o.Peer {
			case acmeIP:
				want = "signed//blue/1002/acme/customer_number/" + acmeIP
			case betaIP:
				want = "signed//green/1003/beta/customer/" + betaIP
			case deltaIP:
				want = "unsigned/sign_cert_invalid/old/1004/delta/customer/" + deltaIP
			}
			if got != want {
				t.Errorf("record %s, want %s", got, want)
			}
			if o.Result == "signed" {
				if byOrigID[o.OrigID] != o.Tenant {
					t.Errorf("record of origid %s says tenant %s; the relayed call verified as %s's", o.OrigID, o.Tenant, byOrigID[o.OrigID])
				}
				if workers[o.Tenant] == nil {
					workers[o.Tenant] = map[string]int{}
				}
				workers[o.Tenant][worker(o)]++
			}
		}
		t.Logf("records per tenant and worker: %v", workers)
		if len(workers["blue"])+len(workers["green"]) < 3 {
			t.Errorf("the calls were signed by too few workers to show them apart: %v", workers)
		}
	})

	t.Run("rotation across the workers", func(t *testing.T) {
		luaTenantRotation(t, b, blue, blue2, green, expired, filepath.Join(dir, "spool-rotation"))
	})
}

// luaTenantRotation: blue's next credential activates a few seconds after
// Kamailio starts; calls before and after it are classified by their iat:
// each one verifies with the credential of its side of the instant and not
// with the other, whichever worker signed it. Kamailio's workers read the
// configuration when they start, so the instant is chosen before; when
// Kamailio comes up (its workers signing) only after it, the run is
// repeated with a later instant rather than failed.
func luaTenantRotation(t *testing.T, b *luaBuilt, blue, blue2, green, expired kamLab, spool string) {
	const warm = 8
	var (
		k        *kamtest.Kamailio
		carrier  *kamtest.Run
		activate time.Time
	)
	for attempt, lead := 1, 10*time.Second; ; attempt, lead = attempt+1, 2*lead {
		// Whole seconds: activate is written as RFC 3339 seconds, so a
		// signing time is at or after it exactly when its iat is.
		activate = time.Now().Add(lead).Truncate(time.Second)
		_ = os.RemoveAll(spool)
		k = b.startTenants(t, "rotation", tenantTOML(blue, blue2, green, expired, activate, spool), 4)
		carrier = luaUAS(t, luaCarrier, 0, true, 5*time.Minute)
		// Warm-up: concurrent calls load the library in the workers; all
		// are signed before the instant if they are done before it.
		if err := tenantCalls(t, k, acmeIP, carrier.Addr(), acmeTN, warm).Err(); err != nil {
			t.Fatalf("warm-up calls: %v", err)
		}
		if time.Now().Before(activate) {
			break
		}
		t.Logf("attempt %d: Kamailio signed its first calls only after the activation instant (lead %s); again with a later one", attempt, lead)
		carrier.Stop()
		if err := k.Stop(); err != nil {
			t.Fatal(err)
		}
		if attempt == 4 {
			t.Fatal("Kamailio never signed a call before the activation instant")
		}
	}
	// Calls until one batch starts after the instant: that batch and any
	// before it straddle the switch.
	batches := 0
	for {
		started := time.Now()
		if err := tenantCalls(t, k, acmeIP, carrier.Addr(), acmeTN, 10).Err(); err != nil {
			t.Fatalf("calls: %v", err)
		}
		batches++
		if !started.Before(activate) {
			break
		}
	}
	res := carrier.Stop()
	inv := invites(res)
	total := warm + 10*batches
	if len(inv) != total {
		t.Fatalf("carrier got %d INVITEs, want %d", len(inv), total)
	}
	at := activate.Unix()
	side := map[string]string{} // origid -> "before" or "after"
	count := map[string]int{}
	for _, m := range inv {
		c := decodeCall(t, m)
		want, other, wantURL, s := blue, blue2, blueURL, "before"
		if c.iat >= at {
			want, other, wantURL, s = blue2, blue, blue2URL, "after"
		}
		side[c.origid] = s
		count[s]++
		if c.x5u != wantURL || !want.verifies(t, m) || other.verifies(t, m) || green.verifies(t, m) {
			t.Errorf("call with iat %d (activation %d): x5u %s, want %s; verifies with the current %v, the next %v",
				c.iat, at, c.x5u, wantURL, blue.verifies(t, m), blue2.verifies(t, m))
		}
	}
	if count["before"] < warm || count["after"] < 10 {
		t.Errorf("calls before the instant %d, after %d; want at least %d and 10", count["before"], count["after"], warm)
	}
	if err := k.Healthy(); err != nil {
		t.Error(err)
	}

	// The spool ties each call to the worker that signed it.
	rows := spoolRecords(t, k, spool)
	if len(rows) != total {
		t.Fatalf("%d sign records, want %d", len(rows), total)
	}
	perWorker := map[string]map[string]int{} // side -> worker -> calls
	for _, o := range rows {
		s := side[o.OrigID]
		wantURL := map[string]string{"before": blueURL, "after": blue2URL}[s]
		if s == "" || o.Result != "signed" || o.Tenant != "blue" || o.Customer != "acme" || o.X5U != wantURL {
			t.Errorf("record %+v (side %q)", o, s)
			continue
		}
		if perWorker[s] == nil {
			perWorker[s] = map[string]int{}
		}
		perWorker[s][worker(o)]++
	}
	var ws []string
	for _, s := range []string{"before", "after"} {
		ws = append(ws, fmt.Sprintf("%s %v", s, perWorker[s]))
	}
	sort.Strings(ws)
	t.Logf("activation %s; calls per worker: %s", activate.Format(time.RFC3339), strings.Join(ws, "; "))
	if len(perWorker["before"]) < 2 || len(perWorker["after"]) < 2 {
		t.Errorf("calls on each side came from too few workers to show the switch in several: %v", perWorker)
	}
}
