package main

import (
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// A diverted call end to end through the CLI: `stirgate sign` makes the
// SHAKEN PASSporT, then the forwarding network's div PASSporT beside it;
// `stirgate verify` judges the captured INVITE and prints the contract's
// "div" field on pass only; and the SHAKEN part still satisfies secsipidx.
func TestSignVerifyDiv(t *testing.T) {
	bin, err := exec.LookPath("secsipidx")
	if err != nil {
		t.Fatal("secsipidx is not installed (make test-deps installs it): ", err)
	}
	dir := newLab(t)
	at := time.Now().Unix()
	ats := strconv.FormatInt(at, 10)
	key, chain := filepath.Join(dir, "sp.key"), filepath.Join(dir, "sp-chain.pem")
	shaken, stderr, code := cli(t, "sign", "--key", key, "--cert", chain, "--x5u", labX5U, "--orig", "12155550121",
		"--dest", "12155550131", "--attest", "A", "--at", ats)
	if code != 0 {
		t.Fatalf("sign exit %d: %s", code, stderr)
	}
	shaken = strings.TrimSpace(shaken)
	// The diverting number defaults to the received dest; the new target is
	// the Request-URI of the retargeted INVITE.
	div, stderr, code := cli(t, "sign", "--key", key, "--cert", chain, "--x5u", labX5U, "--identity", shaken,
		"--target", "sip:+12155550141@c.example", "--hi", "1.2", "--at", ats, "--json")
	if code != 0 {
		t.Fatalf("sign --div exit %d: %s", code, stderr)
	}
	var signed struct {
		Identity, Div, HI, Orig string
		Dest                    []string
	}
	if err := json.Unmarshal([]byte(div), &signed); err != nil || signed.Div != "12155550131" || signed.HI != "1.2" ||
		signed.Orig != "12155550121" || len(signed.Dest) != 1 || signed.Dest[0] != "12155550141" ||
		!strings.HasSuffix(signed.Identity, ";ppt=div") {
		t.Fatalf("sign --json: %v %s", err, div)
	}

	// The retargeted INVITE: To unchanged, Request-URI the new target, the
	// div header first.
	invite := func(ruri string) string {
		msg := "INVITE " + ruri + " SIP/2.0\r\n" +
			"Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK776asdhds\r\n" +
			"From: <sip:+12155550121@a.example;user=phone>;tag=1928301774\r\n" +
			"To: <sip:+12155550131@b.example;user=phone>\r\n" +
			"Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n" +
			"CSeq: 314159 INVITE\r\n" +
			"Date: " + time.Unix(at, 0).UTC().Format(http.TimeFormat) + "\r\n" +
			"History-Info: <sip:+12155550131@b.example>;index=1.1,<sip:+12155550141@c.example>;index=1.2\r\n" +
			"Identity: " + signed.Identity + "\r\n" +
			"Identity: " + shaken + "\r\n" +
			"Content-Length: 0\r\n\r\n"
		f := filepath.Join(t.TempDir(), "invite.sip")
		if err := os.WriteFile(f, []byte(msg), 0o644); err != nil {
			t.Fatal(err)
		}
		return f
	}
	out, stderr, code := cli(t, verifyArgs(dir, "--at", ats, "--message", invite("sip:+12155550141@c.example;user=phone"))...)
	if r := decodeResult(t, out); code != 0 || r.Result != "pass" || !strings.Contains(out, `"div":[{"tn":"12155550131"}]`) {
		t.Fatalf("exit %d %s %s", code, out, stderr)
	}
	// The same call reaching a target nobody diverted to: 438, no "div".
	out, _, code = cli(t, verifyArgs(dir, "--at", ats, "--message", invite("sip:+12155550199@c.example"))...)
	if r := decodeResult(t, out); code != 1 || r.Error != "dest_mismatch" || r.SIPCode != 438 || strings.Contains(out, `"div"`) {
		t.Fatalf("exit %d %s", code, out)
	}
	// A stale diversion: 403.
	stale, _, _ := cli(t, "sign", "--key", key, "--cert", chain, "--x5u", labX5U, "--identity", shaken,
		"--div", "<sip:+12155550131@b.example>;reason=unconditional", "--dest", "12155550141", "--at", strconv.FormatInt(at-120, 10))
	out, _, code = cli(t, verifyArgs(dir, "--at", ats, "--identity", shaken, "--identity", strings.TrimSpace(stale),
		"--from", "<sip:+12155550121@a.example>", "--to", "<sip:+12155550131@b.example>", "--target", "sip:+12155550141@c.example")...)
	if r := decodeResult(t, out); code != 1 || r.Error != "stale_iat" || r.SIPCode != 403 || strings.Contains(out, `"div"`) {
		t.Fatalf("exit %d %s", code, out)
	}

	// Interop: the SHAKEN Identity of the diverted call is the received one,
	// byte for byte, and secsipidx still accepts it.
	f := filepath.Join(dir, "shaken.txt")
	if err := os.WriteFile(f, []byte(shaken), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "-check", "-fidentity", f, "-fpubkey", filepath.Join(dir, "sp.pub"), "-expire", "60").CombinedOutput(); err != nil || !strings.Contains(string(out), "ok") {
		t.Fatalf("secsipidx -check refused the SHAKEN part of a diverted call: %v\n%s", err, out)
	}
}

// Rich call data through the CLI: sign with --rcd-nam/--rcd-jcd/--crn,
// verify prints the contract's "rcd" object on pass only.
func TestSignVerifyRCD(t *testing.T) {
	dir := newLab(t)
	ats := strconv.FormatInt(time.Now().Unix(), 10)
	id, stderr, code := cli(t, "sign", "--key", filepath.Join(dir, "sp.key"), "--cert", filepath.Join(dir, "sp-chain.pem"),
		"--x5u", labX5U, "--orig", "12155550121", "--dest", "12155550131", "--attest", "A", "--at", ats,
		"--rcd-nam", "ACME Corp", "--rcd-jcd", `["vcard",[["fn",{},"text","ACME Corp"]]]`, "--crn", "Your order")
	if code != 0 {
		t.Fatalf("sign exit %d: %s", code, stderr)
	}
	id = strings.TrimSpace(id)
	out, stderr, code := cli(t, verifyArgs(dir, "--at", ats, "--strict", "--identity", id,
		"--from", "<sip:+12155550121@a.example>", "--to", "<sip:+12155550131@b.example>")...)
	if code != 0 || !strings.Contains(out, `"rcd":{"nam":"ACME Corp","jcd":["vcard",[["fn",{},"text","ACME Corp"]]],"crn":"Your order","rcdi":true}`) {
		t.Fatalf("exit %d %s %s", code, out, stderr)
	}
	out, _, code = cli(t, verifyArgs(dir, "--at", ats, "--identity", id,
		"--from", "<sip:+12155550199@a.example>", "--to", "<sip:+12155550131@b.example>")...)
	if code != 1 || strings.Contains(out, `"rcd"`) {
		t.Fatalf("failure carries rcd: exit %d %s", code, out)
	}
	if _, _, code := cli(t, "sign", "--key", filepath.Join(dir, "sp.key"), "--x5u", labX5U, "--orig", "12155550121",
		"--dest", "12155550131", "--attest", "A", "--rcd-icn", "https://logo.example/x.png"); code != 1 {
		t.Fatalf("rcd without nam: exit %d", code)
	}
}
