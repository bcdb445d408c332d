package config

import (
	"strings"
	"testing"
)

func TestHTTPListeners(t *testing.T) {
	for _, tc := range []struct {
		text           string
		api, pub, akey string
	}{
		{"[lab]\ndir = \"l\"\n", DefaultLabListen, "", "lab.listen"},
		{"[lab]\ndir = \"l\"\n[http]\nlisten = \"127.0.0.1:9\"\n", "127.0.0.1:9", DefaultLabListen, "http.listen"},
		{"[lab]\ndir = \"l\"\n[publish]\nlisten = \"0.0.0.0:443\"\n", DefaultLabListen, "0.0.0.0:443", "lab.listen"},
		{"[http]\nlisten = \"127.0.0.1:9\"\n[publish]\nlisten = \"[::]:443\"\n", "127.0.0.1:9", "[::]:443", "http.listen"},
		{"", "", "", "http.listen"},
	} {
		c, err := Parse([]byte(tc.text), "")
		if err != nil {
			t.Fatalf("%q: %v", tc.text, err)
		}
		l := c.HTTPListeners()
		if l.API != tc.api || l.Publish != tc.pub || l.APIKey != tc.akey {
			t.Errorf("%q: %+v", tc.text, l)
		}
	}
}

func TestExposureRefused(t *testing.T) {
	const tok = "[[http.token]]\nname = \"a\"\nsha256 = \"" + "0000000000000000000000000000000000000000000000000000000000000000" + "\"\nscopes = [\"sign\"]\n"
	for _, tc := range []struct{ text, want string }{
		{"[http]\nlisten = \"0.0.0.0:8443\"\n", `http.listen "0.0.0.0:8443" is not a loopback address`},
		{"[http]\nlisten = \":8443\"\n", `http.listen ":8443"`},
		{"[http]\nlisten = \"192.0.2.1:8443\"\n", `http.listen "192.0.2.1:8443"`},
		{"[http]\nlisten = \"api.example.net:8443\"\n", `http.listen "api.example.net:8443"`},
		{"[lab]\ndir = \"l\"\nlisten = \"0.0.0.0:8443\"\n", `lab.listen "0.0.0.0:8443"`},
		{"[http]\nlisten = \"127.0.0.1:1\"\n[publish]\nlisten = \"127.0.0.1:1\"\n", "are both"},
		{"[http]\nlisten = \"127.0.0.1:1\"\n[[http.token]]\nname = \"a\"\nsha256 = \"abc\"\nscopes = [\"sign\"]\n", "sha256 is not 64 hex digits"},
		{"[http]\nlisten = \"127.0.0.1:1\"\n" + strings.Replace(tok, `"sign"`, `"admin"`, 1), `scope "admin"`},
		{"[http]\nlisten = \"127.0.0.1:1\"\n" + tok + tok, "defined twice"},
		{"[http]\nlisten = \"127.0.0.1:1\"\n" + tok + "customer = \"nobody\"\n", `customer "nobody"`},
		{"[http]\nallow = [\"nope\"]\n", "http.allow"},
	} {
		_, err := Parse([]byte(tc.text), "")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want %q", tc.text, err, tc.want)
		}
	}
	for _, ok := range []string{
		"[http]\nlisten = \"127.0.0.1:8443\"\n",
		"[http]\nlisten = \"[::1]:8443\"\n",
		"[http]\nlisten = \"localhost:8443\"\n",
		"[http]\nlisten = \"0.0.0.0:8443\"\n" + tok,
	} {
		if _, err := Parse([]byte(ok), ""); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
}
