package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestFloorAnswer: the floor's 302 repeats the transaction's fields and
// carries what the SIPp scenarios check, per kind of request.
func TestFloorAnswer(t *testing.T) {
	inv := "INVITE sip:+12155550131@127.0.0.1:5060;user=phone SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP 127.0.0.1:6000;rport;branch=z9hG4bK-1\r\n" +
		"From: <sip:+12155550121@127.0.0.1;user=phone>;tag=1\r\n" +
		"To: <sip:+12155550131@127.0.0.1;user=phone>\r\n" +
		"Call-ID: 1-floor@127.0.0.1\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\n%s\r\nContent-Length: 0\r\n\r\n"
	var out bytes.Buffer
	for _, c := range []struct{ identity, contact string }{
		{"Identity:", "Contact: <sip:+12155550131@"},
		{"Identity: eyJhbGciOiJFUzI1NiJ9.e30.c2ln;info=<https://x.example/a.pem>", "Contact: <sip:+12155550131;verstat=TN-Validation-Passed@"},
	} {
		if !floorAnswer(&out, []byte(strings.Replace(inv, "%s", c.identity, 1))) {
			t.Fatal("no answer to an INVITE")
		}
		got := out.String()
		for _, want := range []string{"SIP/2.0 302 Moved Temporarily\r\n", "\r\nVia: SIP/2.0/UDP 127.0.0.1:6000;rport;branch=z9hG4bK-1\r\n",
			"\r\nFrom: <sip:+12155550121@127.0.0.1;user=phone>;tag=1\r\n", "\r\nTo: <sip:+12155550131@127.0.0.1;user=phone>;tag=floor\r\n",
			"\r\nCall-ID: 1-floor@127.0.0.1\r\n", "\r\nCSeq: 1 INVITE\r\n", "\r\n" + c.contact, " GMT\r\n", "\r\nContent-Length: 0\r\n\r\n"} {
			if !strings.Contains(got, want) {
				t.Errorf("answer lacks %q:\n%s", want, got)
			}
		}
	}
	if floorAnswer(&out, []byte("ACK sip:x@127.0.0.1 SIP/2.0\r\n\r\n")) {
		t.Error("answered an ACK")
	}
}
