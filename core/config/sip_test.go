package config

import (
	"strings"
	"testing"
	"time"
)

func TestSIPHTTPSections(t *testing.T) {
	const doc = `
[sip]
allow = ["192.0.2.0/24", "198.51.100.7", "::1"]
contact = "sip:gw.example.net:5080"
unsigned = 503
timeout = "800ms"

[[sip.listen]]
address = "0.0.0.0:5070"
mode = "sign"

[[sip.listen]]
address = "0.0.0.0:5080"
transport = "udp"
mode = "verify"

[[sip.profile]]
name = "sippy"
sources = ["192.0.2.20"]
identity_header = "X-Identity"
date_header = "X-Date"

[http]
listen = "127.0.0.1:8443"
tls_cert = "c.pem"
tls_key = "k.pem"
cert_max_age = "48h"
`
	c, err := Parse([]byte(doc), "")
	if err != nil {
		t.Fatal(err)
	}
	s := c.SIP.WithDefaults()
	if !s.Enabled() || len(s.Listen) != 2 || s.Listen[0].Transport != "both" || s.Listen[1].Transport != "udp" || s.Listen[0].Mode != "sign" {
		t.Errorf("sip listen = %+v", s.Listen)
	}
	if s.Unsigned != 503 || s.Timeout.Duration != 800*time.Millisecond || s.MaxInflight != DefaultSIPMaxInflight || len(s.Profiles) != 1 {
		t.Errorf("sip = %+v", s)
	}
	if p, err := ParsePrefixes(s.Allow); err != nil || len(p) != 3 || p[1].Bits() != 32 || p[2].Bits() != 128 {
		t.Errorf("allow = %v %v", p, err)
	}
	h := c.HTTP.WithDefaults()
	if h.CertMaxAge.Duration != 48*time.Hour || h.MaxBody != DefaultHTTPMaxBody || h.Timeout.Duration != DefaultHTTPTimeout {
		t.Errorf("http = %+v", h)
	}
	if s.TCPMaxPerSource != DefaultSIPTCPMaxPerSource || s.TCPFirstMessageTimeout.Duration != DefaultSIPTCPFirstMessageTimeout {
		t.Errorf("sip tcp defaults = %d %s", s.TCPMaxPerSource, s.TCPFirstMessageTimeout)
	}
	if (SIP{}).Enabled() {
		t.Error("empty [sip] must not run the redirect server")
	}
}

func TestSIPHTTPValidate(t *testing.T) {
	tests := []struct {
		name, doc, want string
	}{
		{"listen address", "[[sip.listen]]\naddress = \"5060\"", "sip.listen[0].address"},
		{"transport", "[[sip.listen]]\naddress = \":5060\"\ntransport = \"sctp\"", "sip.listen[0].transport"},
		{"mode", "[[sip.listen]]\naddress = \":5060\"\nmode = \"both\"", "sip.listen[0].mode"},
		{"allow", "[sip]\nallow = [\"10.0.0.0/33\"]", "sip.allow"},
		{"contact", "[sip]\ncontact = \"tel:+1215\"", "sip.contact"},
		{"unsigned", "[sip]\nunsigned = 486", "sip.unsigned"},
		{"tcp per source", "[sip]\ntcp_max_per_source = -1", "sip.tcp_max_per_source"},
		{"tcp first message", "[sip]\ntcp_first_message_timeout = \"10m\"", "sip.tcp_first_message_timeout"},
		{"timeout", "[sip]\ntimeout = \"1m\"", "sip.timeout"},
		{"profile without sources", "[[sip.profile]]\nname = \"x\"", "sip.profile[0]: no sources"},
		{"profile source", "[[sip.profile]]\nname = \"x\"\nsources = [\"host.example\"]", "sip.profile[0].sources"},
		{"unknown sip key", "[sip]\nalow = []", "unknown key(s): sip.alow"},
		{"http listen", "[http]\nlisten = \"8443\"", "http.listen"},
		{"tls pair", "[http]\ntls_cert = \"c.pem\"", "tls_cert and tls_key go together"},
		{"cert name", "[http]\ncert_name = \"../x\"", "http.cert_name"},
		{"http timeout", "[http]\ntimeout = \"1m\"", "http.timeout"},
		{"duration as number", "[http]\ncert_max_age = 86400", "duration must be a string"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.doc), "")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to mention %q", err, tc.want)
			}
		})
	}
}
