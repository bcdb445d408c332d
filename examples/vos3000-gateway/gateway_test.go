// Package vos3000gateway tests the example config: Kamailio in front of a
// softswitch without STIR/SHAKEN, signing its calls to the carrier and
// verifying the carrier's calls to it. SIPp plays VOS3000 (127.0.0.2) and
// the carrier (127.0.0.3); the library is stirgate's libsecsipid.so.1.
package vos3000gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stirgate/stirgate/core"
	"github.com/stirgate/stirgate/core/stir"
	"github.com/stirgate/stirgate/cshared/secsipid/secsipidtest"
	"github.com/stirgate/stirgate/internal/testlog"
	"github.com/stirgate/stirgate/kamailio/kamtest"
)

const (
	vosIP     = "127.0.0.2"
	carrierIP = "127.0.0.3"
	sippDir   = "../../kamailio/sipp/"
)

// TestConfigCheck is `kamailio -c`: the file as shipped, and with the
// listen addresses a deployment sets.
func TestConfigCheck(t *testing.T) {
	for _, defs := range [][]string{
		nil,
		{"-A", "LISTEN_VOS=udp:127.0.0.1:5060", "-A", "LISTEN_CARRIER=udp:127.0.0.1:5062", "-A", `STIR_CONFIG_OPT="ConfigFile=/etc/stirgate/stirgate.toml"`},
	} {
		args := append([]string{"-c", "-f", "kamailio.cfg"}, defs...)
		out, err := exec.Command(kamtest.KamailioBinary(), args...).CombinedOutput()
		if err != nil {
			t.Errorf("kamailio %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	// A broken copy must fail, or the check proves nothing.
	b, err := os.ReadFile("kamailio.cfg")
	if err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(t.TempDir(), "bad.cfg")
	os.WriteFile(bad, []byte(strings.Replace(string(b), "route(SIGN);", "route(SIGN;", 1)), 0o644)
	if err := exec.Command(kamtest.KamailioBinary(), "-c", "-f", bad).Run(); err == nil {
		t.Error("kamailio -c accepted a broken config")
	}
}

// TestNativeConfigCheck is `kamailio -c` on kamailio-native.cfg as shipped
// (with the module built here), and on a broken copy.
func TestNativeConfigCheck(t *testing.T) {
	module, _ := nativeBuild(t)
	def := `STIRGATE_MODULE="` + module + `"`
	if out, err := exec.Command(kamtest.KamailioBinary(), "-c", "-f", "kamailio-native.cfg", "-A", def).CombinedOutput(); err != nil {
		t.Errorf("kamailio -c: %v\n%s", err, out)
	}
	b, err := os.ReadFile("kamailio-native.cfg")
	if err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(t.TempDir(), "bad.cfg")
	os.WriteFile(bad, []byte(strings.Replace(string(b), "stirgate_check();", "stirgate_check(\"x\");", 1)), 0o644)
	if err := exec.Command(kamtest.KamailioBinary(), "-c", "-f", bad, "-A", def).Run(); err == nil {
		t.Error("kamailio -c accepted a broken config")
	}
}

type gateway struct {
	k       *kamtest.Kamailio
	lab     *secsipidtest.Lab
	vos     int
	carrier int
}

// variants are the two configs of this directory: kamailio.cfg (secsipid
// module on the libsecsipid drop-in) and kamailio-native.cfg (stirgate's
// native module).
var variants = []string{"secsipid", "native"}

func start(t *testing.T, variant string) *gateway {
	t.Helper()
	if variant == "native" {
		return startNative(t)
	}
	lib, err := secsipidtest.LibDir()
	if err != nil {
		t.Fatal(err)
	}
	lab, err := secsipidtest.NewLabLog(t.TempDir(), testlog.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(lab.Close)
	g := &gateway{lab: lab}
	if g.vos, err = kamtest.FreeUDPPort("127.0.0.1"); err != nil {
		t.Fatal(err)
	}
	if g.carrier, err = kamtest.FreeUDPPort("127.0.0.1"); err != nil {
		t.Fatal(err)
	}
	g.k = kamtest.Start(t, kamtest.Options{
		Config:   "kamailio.cfg",
		Children: 2,
		Env:      []string{"LD_LIBRARY_PATH=" + lib, "STIRGATE_SECSIPID_CONFIG="},
		Defines: []string{
			"WITH_STDERR_LOG",
			`VOS_IP="` + vosIP + `"`,
			`VOS="sip:127.0.0.1:` + strconv.Itoa(g.vos) + `"`,
			`CARRIER_IP="` + carrierIP + `"`,
			`CARRIER="sip:127.0.0.1:` + strconv.Itoa(g.carrier) + `"`,
			`STIR_KEY="` + lab.Path("sp.key") + `"`,
			`STIR_X5U="` + lab.X5U + `"`,
			`STIR_CA_OPT="CertCAFile=` + lab.Path("root.pem") + `"`,
			`STIR_CONFIG_OPT="ConfigFile=` + lab.Config + `"`,
			`STIR_CACHE_DIR="` + filepath.Join(t.TempDir(), "x5u") + `"`,
		},
	})
	return g
}

// nativeBuild builds the native module and libstirgate (make, cached in
// bin/) and returns their paths.
func nativeBuild(t *testing.T) (module, lib string) {
	t.Helper()
	root, err := secsipidtest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("make", "-s", "kamailio-module", "lib")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make kamailio-module lib: %v\n%s", err, out)
	}
	return filepath.Join(root, "bin/kamailio/stirgate.so"), filepath.Join(root, "bin/libstirgate.so.1")
}

// startNative runs kamailio-native.cfg with stirgate.toml of this
// directory, its paths pointed at the lab.
func startNative(t *testing.T) *gateway {
	t.Helper()
	module, lib := nativeBuild(t)
	lab, err := secsipidtest.NewLab(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(lab.Close)
	shipped, err := os.ReadFile("stirgate.toml")
	if err != nil {
		t.Fatal(err)
	}
	toml := strings.NewReplacer(
		`"/etc/stirgate/sp.key"`, strconv.Quote(lab.Path("sp.key")),
		`"/etc/stirgate/sp-chain.pem"`, strconv.Quote(lab.Path("sp-chain.pem")),
		`"https://certs.example.net/sp.pem"`, strconv.Quote(lab.X5U),
		`"10.0.0.10"`, strconv.Quote(vosIP),
		`"/etc/stirgate/sti-pa-roots.pem"`, strconv.Quote(lab.Path("root.pem")),
		`"/var/cache/kamailio/stir"`, strconv.Quote(filepath.Join(t.TempDir(), "x5u")),
	).Replace(string(shipped))
	// The lab's x5u server is on loopback with its own TLS certificate.
	toml += fmt.Sprintf("lab_hosts = [%q]\nca_file = %q\n", lab.Host, lab.TLSCert)
	cfg := filepath.Join(t.TempDir(), "stirgate.toml")
	if err := os.WriteFile(cfg, []byte(toml), 0o644); err != nil {
		t.Fatal(err)
	}
	g := &gateway{lab: lab}
	if g.vos, err = kamtest.FreeUDPPort("127.0.0.1"); err != nil {
		t.Fatal(err)
	}
	if g.carrier, err = kamtest.FreeUDPPort("127.0.0.1"); err != nil {
		t.Fatal(err)
	}
	g.k = kamtest.Start(t, kamtest.Options{
		Config:   "kamailio-native.cfg",
		Children: 2,
		Env:      []string{"STIRGATE_LIBRARY=" + lib},
		Defines: []string{
			"WITH_STDERR_LOG",
			`VOS_IP="` + vosIP + `"`,
			`VOS="sip:127.0.0.1:` + strconv.Itoa(g.vos) + `"`,
			`CARRIER_IP="` + carrierIP + `"`,
			`CARRIER="sip:127.0.0.1:` + strconv.Itoa(g.carrier) + `"`,
			`STIRGATE_CONFIG="` + cfg + `"`,
			`STIRGATE_MODULE="` + module + `"`,
		},
	})
	return g
}

func (g *gateway) call(t *testing.T, scenario, from, caller, callee, hdr string) kamtest.Result {
	t.Helper()
	return kamtest.SIPp{
		Scenario: sippDir + scenario, Remote: g.k.Addr, LocalIP: from, Calls: 1, Rate: 10,
		TraceMsg: true, Name: "uac", Timeout: 30 * time.Second,
		Keys: map[string]string{"caller": caller, "callee": callee, "from_params": ";user=phone",
			"hdr1": hdr, "hdr2": "X-Test: vos3000-gateway"},
	}.Run(t)
}

func uas(t *testing.T, port int) *kamtest.Run {
	t.Helper()
	return kamtest.SIPp{Scenario: sippDir + "uas.xml", LocalPort: port, Calls: 1, TraceMsg: true,
		Name: "uas", Timeout: 30 * time.Second}.Start(t)
}

func invite(t *testing.T, r kamtest.Result) string {
	t.Helper()
	for _, m := range r.Received() {
		if strings.HasPrefix(kamtest.StartLine(m), "INVITE ") {
			return m
		}
	}
	t.Fatalf("no INVITE received:\n%s", r.Output)
	return ""
}

// TestOutboundSigned: an unsigned INVITE from VOS3000 reaches the carrier
// signed (A for an owned number, B otherwise) and the call completes.
func TestOutboundSigned(t *testing.T) {
	for _, variant := range variants {
		t.Run(variant, func(t *testing.T) {
			g := start(t, variant)
			for _, c := range []struct {
				caller string
				attest stir.Attestation
			}{
				{"+12155550121", stir.AttestFull},
				{"+13125550100", stir.AttestPartial},
			} {
				t.Run(string(c.attest), func(t *testing.T) {
					carrier := uas(t, g.carrier)
					res := g.call(t, "uac.xml", vosIP, c.caller, "+12155550131", "X-Case: outbound")
					if err := res.Err(); err != nil {
						t.Fatalf("VOS side: %v", err)
					}
					got := carrier.Wait()
					if err := got.Err(); err != nil {
						t.Fatalf("carrier side: %v", err)
					}
					m := invite(t, got)
					ids := kamtest.Header(m, "Identity")
					if len(ids) != 1 {
						t.Fatalf("carrier got %d Identity headers", len(ids))
					}
					r := verify(t, g.lab, ids[0], kamtest.Header(m, "From")[0], kamtest.Header(m, "To")[0])
					if r.Result != stir.Pass || r.Attest != c.attest {
						t.Errorf("stirgate verify: %+v, want pass with %s", r, c.attest)
					}
				})
			}
		})
	}
}

// TestStrangerRefused: the gateway is not an open relay.
func TestStrangerRefused(t *testing.T) {
	for _, variant := range variants {
		t.Run(variant, func(t *testing.T) {
			g := start(t, variant)
			res := g.call(t, "uac_reject.xml", "127.0.0.1", "+12155550121", "+12155550131", "X-Case: stranger")
			if err := res.Err(); err != nil {
				t.Fatalf("uac: %v", err)
			}
			if !strings.Contains(res.Trace, "SIP/2.0 403 Forbidden") {
				t.Errorf("no 403 for an INVITE from an unknown source:\n%s", res.Trace)
			}
		})
	}
}

// TestInboundVerified: the carrier's INVITE reaches VOS3000 with verstat:
// Passed for a valid Identity, Failed for one signed for another caller,
// No-TN-Validation without one.
func TestInboundVerified(t *testing.T) {
	for _, variant := range variants {
		t.Run(variant, func(t *testing.T) {
			g := start(t, variant)
			cred, err := g.lab.Signer()
			if err != nil {
				t.Fatal(err)
			}
			s, err := core.NewSigner(core.SignerOptions{Credential: cred, X5U: g.lab.X5U})
			if err != nil {
				t.Fatal(err)
			}
			r, err := s.Sign(context.Background(), core.SignRequest{Orig: "12155550121", Dest: []string{"12155550131"}, Attest: stir.AttestFull, Trusted: true})
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range []struct {
				name, caller, hdr, verstat string
			}{
				{"valid", "+12155550121", "Identity: " + r.Identity, "TN-Validation-Passed"},
				{"replayed", "+12155550199", "Identity: " + r.Identity, "TN-Validation-Failed"},
				{"missing", "+12155550121", "X-Case: missing", "No-TN-Validation"},
			} {
				t.Run(c.name, func(t *testing.T) {
					vos := uas(t, g.vos)
					res := g.call(t, "uac.xml", carrierIP, c.caller, "+12155550131", c.hdr)
					if err := res.Err(); err != nil {
						t.Fatalf("carrier side: %v", err)
					}
					from := kamtest.Header(invite(t, vos.Wait()), "From")[0]
					if strings.Count(from, "verstat=") != 1 || !strings.Contains(from, ";verstat="+c.verstat+"@") {
						t.Errorf("From at VOS3000: %s, want verstat=%s", from, c.verstat)
					}
				})
			}
		})
	}
}

func verify(t *testing.T, lab *secsipidtest.Lab, identity, from, to string) *stir.Result {
	t.Helper()
	bin := os.Getenv("STIRGATE_BIN")
	if bin == "" {
		root, err := secsipidtest.RepoRoot()
		if err != nil {
			t.Fatal(err)
		}
		bin = filepath.Join(t.TempDir(), "stirgate")
		cmd := exec.Command("go", "build", "-o", bin, "./cmd/stirgate")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build ./cmd/stirgate: %v\n%s", err, out)
		}
	}
	cmd := exec.Command(bin, "verify", "--trust", lab.Path("root.pem"), "--x5u-ca", lab.TLSCert,
		"--lab-host", lab.Host, "--identity", identity, "--from", from, "--to", to)
	out, err := cmd.Output()
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		t.Fatal(err)
	}
	var res stir.Result
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("stirgate verify output %q: %v", out, err)
	}
	return &res
}
