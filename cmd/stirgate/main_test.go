package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stirgate/stirgate/core/certs"
)

const labX5U = "https://certs.example.net/sp.pem"

// newLab writes a lab PKI and the leaf's public key into a temp dir.
func newLab(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	lab, err := certs.NewLab(certs.LabOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := lab.WriteDir(dir); err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(lab.Leaf.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "sp.pub"), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func cli(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, &out, &errb)
	return out.String(), errb.String(), code
}

type result struct {
	Result  string   `json:"result"`
	Verstat string   `json:"verstat"`
	SIPCode int      `json:"sip_code"`
	Reason  string   `json:"reason"`
	Error   string   `json:"error"`
	Attest  string   `json:"attest"`
	OrigID  string   `json:"origid"`
	Orig    string   `json:"orig"`
	Dest    []string `json:"dest"`
	X5U     string   `json:"x5u"`
	SPC     string   `json:"spc"`
	IAT     int64    `json:"iat"`
}

func verifyArgs(dir string, extra ...string) []string {
	return append([]string{"verify", "--trust", filepath.Join(dir, "root.pem"),
		"--preload", labX5U + "=" + filepath.Join(dir, "sp-chain.pem"), "--offline"}, extra...)
}

func decodeResult(t *testing.T, out string) result {
	t.Helper()
	var r result
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("verify output is not JSON: %v\n%s", err, out)
	}
	return r
}

func TestSignVerifyRoundTrip(t *testing.T) {
	dir := newLab(t)
	at := strconv.FormatInt(time.Now().Unix(), 10)
	id, stderr, code := cli(t, "sign", "--key", filepath.Join(dir, "sp.key"), "--cert", filepath.Join(dir, "sp-chain.pem"),
		"--x5u", labX5U, "--orig", "+1 215-555-0121", "--dest", "12155550131,2155550132", "--attest", "B",
		"--origid", "123e4567-e89b-12d3-a456-426614174000", "--at", at)
	if code != 0 {
		t.Fatalf("sign exit %d: %s", code, stderr)
	}
	id = strings.TrimSpace(id)
	if !strings.HasSuffix(id, ";info=<"+labX5U+">;alg=ES256;ppt=shaken") {
		t.Fatalf("identity %q", id)
	}
	out, stderr, code := cli(t, verifyArgs(dir, "--at", at, "--identity", id,
		"--from", `"A" <sip:+12155550121@a.example;user=phone>;tag=1`, "--to", "<sip:2155550132@b.example>")...)
	if code != 0 {
		t.Fatalf("verify exit %d: %s %s", code, out, stderr)
	}
	r := decodeResult(t, out)
	if r.Result != "pass" || r.Verstat != "TN-Validation-Passed" || r.Attest != "B" || r.SPC != "1234" ||
		r.OrigID != "123e4567-e89b-12d3-a456-426614174000" || r.X5U != labX5U || len(r.Dest) != 2 || r.SIPCode != 0 {
		t.Fatalf("%+v", r)
	}

	// Failure: exit 1 and the stable name.
	out, _, code = cli(t, verifyArgs(dir, "--at", at, "--identity", id, "--from", "sip:+12155550199@a", "--to", "sip:+12155550131@b")...)
	r = decodeResult(t, out)
	if code != 1 || r.Result != "fail" || r.Error != "orig_mismatch" || r.SIPCode != 438 || r.Reason != "Invalid Identity Header" {
		t.Fatalf("exit %d %+v", code, r)
	}
	// Stale: verify 2 minutes later.
	later := strconv.FormatInt(time.Now().Unix()+120, 10)
	out, _, code = cli(t, verifyArgs(dir, "--at", later, "--identity", id, "--from", "sip:+12155550121@a", "--to", "sip:+12155550131@b")...)
	if r = decodeResult(t, out); code != 1 || r.Error != "stale_iat" || r.SIPCode != 403 {
		t.Fatalf("exit %d %+v", code, r)
	}
	// Nothing to verify: none, exit 1; required: 428.
	out, _, code = cli(t, verifyArgs(dir, "--from", "sip:+12155550121@a", "--to", "sip:+12155550131@b")...)
	if r = decodeResult(t, out); code != 1 || r.Result != "none" || r.Verstat != "No-TN-Validation" || r.SIPCode != 0 {
		t.Fatalf("exit %d %+v", code, r)
	}
	out, _, code = cli(t, verifyArgs(dir, "--require-identity", "--from", "sip:+12155550121@a", "--to", "sip:+12155550131@b")...)
	if r = decodeResult(t, out); code != 1 || r.Result != "none" || r.SIPCode != 428 || r.Error != "no_identity" {
		t.Fatalf("exit %d %+v", code, r)
	}
	// Offline and not preloaded: 436.
	out, _, code = cli(t, "verify", "--trust", filepath.Join(dir, "root.pem"), "--offline", "--at", at, "--identity", id,
		"--from", "sip:+12155550121@a", "--to", "sip:+12155550131@b")
	if r = decodeResult(t, out); code != 1 || r.Error != "x5u_not_preloaded" || r.SIPCode != 436 {
		t.Fatalf("exit %d %+v", code, r)
	}
}

func TestVerifyMessage(t *testing.T) {
	dir := newLab(t)
	at := time.Now().Unix()
	id, _, code := cli(t, "sign", "--key", filepath.Join(dir, "sp.key"), "--x5u", labX5U, "--orig", "12155550121",
		"--dest", "12155550131", "--attest", "A", "--at", strconv.FormatInt(at, 10))
	if code != 0 {
		t.Fatal("sign failed")
	}
	id = strings.TrimSpace(id)
	semi := strings.IndexByte(id, ';')
	// A captured INVITE: compact "y" form, the value folded over two lines,
	// a garbage Identity first, and a Date matching iat.
	msg := "INVITE sip:+12155550131@b.example SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK776asdhds\r\n" +
		"f: \"A\" <sip:+12155550121@a.example;user=phone>;tag=1928301774\r\n" +
		"t: <sip:+12155550131@b.example;user=phone>\r\n" +
		"i: a84b4c76e66710@pc33.atlanta.example.com\r\n" +
		"CSeq: 314159 INVITE\r\n" +
		"Date: " + time.Unix(at, 0).UTC().Format(http.TimeFormat) + "\r\n" +
		"Identity: not-a-token;info=<" + labX5U + ">\r\n" +
		"y: " + id[:semi] + "\r\n\t" + id[semi:] + "\r\n" +
		"Content-Length: 0\r\n\r\n"
	f := filepath.Join(t.TempDir(), "invite.sip")
	if err := os.WriteFile(f, []byte(msg), 0o644); err != nil {
		t.Fatal(err)
	}
	out, stderr, code := cli(t, verifyArgs(dir, "--at", strconv.FormatInt(at, 10), "--message", f)...)
	if r := decodeResult(t, out); code != 0 || r.Result != "pass" {
		t.Fatalf("exit %d %+v %s", code, r, stderr)
	}
	out, _, code = cli(t, "decode", "--message", f)
	if code != 1 || !strings.Contains(out, `"header_malformed"`) || !strings.Contains(out, `"attest": "A"`) {
		t.Fatalf("decode exit %d:\n%s", code, out)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"nope"},
		{"verify"},
		{"verify", "--bogus"},
		{"sign", "--key", "x"},
		{"verify", "--config", "/nonexistent.toml", "--identity", "x", "--from", "a", "--to", "b"},
		{"config", "check"},
	} {
		if _, _, code := cli(t, args...); code != 2 {
			t.Errorf("%q: exit %d, want 2", args, code)
		}
	}
}

func TestConfigCheck(t *testing.T) {
	dir := newLab(t)
	good := filepath.Join(dir, "good.toml")
	os.WriteFile(good, []byte(`
[signer]
key = "sp.key"
cert = "sp-chain.pem"
x5u = "https://certs.example.net/sp.pem"
[verifier]
trust = ["root.pem"]
crl = ["crl.pem"]
max_age = "30s"
[policy]
default = "C"
`), 0o644)
	if out, stderr, code := cli(t, "config", "check", good); code != 0 || !strings.Contains(out, "ok") {
		t.Fatalf("exit %d %s %s", code, out, stderr)
	}
	for name, tc := range map[string]struct{ text, want string }{
		"unknown key":  {"[verifier]\nrequre_identity = true\n", "verifier.requre_identity"},
		"syntax":       {"[verifier]\nmax_age = \"30s\"\nstrict = \n", ":3:"},
		"int duration": {"[verifier]\nmax_age = 30\n", "duration must be a string"},
		"bad attest":   {"[policy]\ndefault = \"D\"\n", "policy.default"},
		"missing file": {"[verifier]\ntrust = [\"nope.pem\"]\n", "nope.pem"},
		"two problems": {"[verifier]\nmode = \"loose\"\n[log]\nlevel = \"loud\"\n", "log.level"},
		"agi exposed":  {"[agi]\nlisten = \"0.0.0.0:4573\"\n", "set agi.allow"},
	} {
		t.Run(name, func(t *testing.T) {
			f := filepath.Join(dir, strings.ReplaceAll(name, " ", "_")+".toml")
			os.WriteFile(f, []byte(tc.text), 0o644)
			_, stderr, code := cli(t, "config", "check", f)
			if code != 2 || !strings.Contains(stderr, tc.want) {
				t.Fatalf("exit %d, stderr %q lacks %q", code, stderr, tc.want)
			}
		})
	}
}

// Interop both ways with Debian's secsipidx, the reference implementation
// behind Kamailio's secsipid module.
func TestInteropSecsipidx(t *testing.T) {
	bin, err := exec.LookPath("secsipidx")
	if err != nil {
		t.Fatal("secsipidx is not installed (make test-deps installs it): ", err)
	}
	dir := newLab(t)
	now := strconv.FormatInt(time.Now().Unix(), 10)

	// stirgate signs, secsipidx checks.
	for _, attest := range []string{"A", "B", "C"} {
		id, _, code := cli(t, "sign", "--key", filepath.Join(dir, "sp.key"), "--cert", filepath.Join(dir, "sp-chain.pem"),
			"--x5u", labX5U, "--orig", "12155550121", "--dest", "12155550131", "--attest", attest)
		if code != 0 {
			t.Fatal("sign failed")
		}
		f := filepath.Join(dir, "id-"+attest+".txt")
		os.WriteFile(f, []byte(strings.TrimSpace(id)), 0o644)
		out, err := exec.Command(bin, "-check", "-fidentity", f, "-fpubkey", filepath.Join(dir, "sp.pub"), "-expire", "60").CombinedOutput()
		if err != nil || !strings.Contains(string(out), "ok") {
			t.Fatalf("secsipidx -check refused stirgate's %s token: %v\n%s", attest, err, out)
		}
	}
	// A token secsipidx must refuse: sanity check that the check above can fail.
	bad := filepath.Join(dir, "bad.txt")
	id, _ := os.ReadFile(filepath.Join(dir, "id-A.txt"))
	os.WriteFile(bad, []byte(strings.Replace(string(id), "eyJhdHRlc3QiOiJB", "eyJhdHRlc3QiOiJC", 1)), 0o644)
	if out, err := exec.Command(bin, "-check", "-fidentity", bad, "-fpubkey", filepath.Join(dir, "sp.pub"), "-expire", "60").CombinedOutput(); err == nil {
		t.Fatalf("secsipidx accepted a tampered token:\n%s", out)
	}

	// secsipidx signs, stirgate verifies (chain preloaded, anchored in the lab root).
	out, err := exec.Command(bin, "-sign-full", "-k", filepath.Join(dir, "sp.key"), "-o", "12155550121", "-d", "12155550131",
		"-a", "A", "-x5u", labX5U).Output()
	if err != nil {
		t.Fatalf("secsipidx -sign-full: %v", err)
	}
	vout, stderr, code := cli(t, verifyArgs(dir, "--at", now, "--identity", strings.TrimSpace(string(out)),
		"--from", "<sip:+12155550121@a.example>", "--to", "<sip:+12155550131@b.example>")...)
	r := decodeResult(t, vout)
	if code != 0 || r.Result != "pass" || r.Attest != "A" {
		t.Fatalf("stirgate refused secsipidx's token: exit %d %+v %s", code, r, stderr)
	}
	// And with -sign over header and payload JSON given to it: a compact
	// JWS to which the Identity parameters are added here.
	hdr := `{"alg":"ES256","ppt":"shaken","typ":"passport","x5u":"` + labX5U + `"}`
	pay := `{"attest":"C","dest":{"tn":["12155550131"]},"iat":` + now + `,"orig":{"tn":"12155550121"},"origid":"123e4567-e89b-12d3-a456-426614174000"}`
	out, err = exec.Command(bin, "-sign", "-k", filepath.Join(dir, "sp.key"), "-header", hdr, "-payload", pay).Output()
	if err != nil {
		t.Fatalf("secsipidx -sign with JSON: %v", err)
	}
	vout, _, code = cli(t, verifyArgs(dir, "--at", now, "--identity", strings.TrimSpace(string(out))+";info=<"+labX5U+">;ppt=\"shaken\"",
		"--from", "<sip:+12155550121@a.example>", "--to", "<sip:+12155550131@b.example>")...)
	if r := decodeResult(t, vout); code != 0 || r.Attest != "C" {
		t.Fatalf("exit %d %+v (%s)", code, r, out)
	}
}
