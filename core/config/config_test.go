package config

import (
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/stirgate/stirgate/core/policy"
	"github.com/stirgate/stirgate/core/x5u"
)

func TestSampleHasEveryCoreKey(t *testing.T) {
	data, err := os.ReadFile("../../examples/stirgate.toml")
	if err != nil {
		t.Fatal(err)
	}
	c, err := Parse(data, "stirgate.toml")
	if err != nil {
		t.Fatal(err)
	}
	// The sample's values are the defaults: spot-check a few.
	if c.X5U.Timeout.Duration != 2*time.Second || c.Verifier.MaxHeaders != 6 || c.Signer.DateWindow.Duration != time.Minute {
		t.Fatalf("sample values are not the documented defaults: %+v %+v", c.X5U, c.Verifier)
	}
	if x := c.X5U; x.MaxFetches != x5u.DefaultMaxFetches || x.MaxFetchesPerHost != x5u.DefaultMaxFetchesPerHost ||
		x.DiskMaxEntries != x5u.DefaultDiskMaxEntries || x.DiskMaxBytes != x5u.DefaultDiskMaxBytes {
		t.Fatalf("sample [x5u] bounds are not the x5u defaults: %+v", x)
	}
	var raw map[string]any
	if _, err := toml.Decode(string(data), &raw); err != nil {
		t.Fatal(err)
	}
	for _, sec := range []struct {
		name string
		v    any
	}{{"log", Log{}}, {"lab", Lab{}}, {"signer", Signer{}}, {"numbers", Numbers{}}, {"policy", Policy{}}, {"verifier", Verifier{}}, {"x5u", X5U{}},
		{"agi", AGI{}}, {"ami", AMI{}}, {"store", Store{}}, {"http", HTTP{}}, {"publish", Publish{}}, {"sip", SIP{}}, {"http.token", APIToken{}}, {"node", Node{}},
		{"sip.listen", SIPListen{}}, {"sip.profile", SIPProfile{}}, {"tenant", Tenant{}}, {"signer", Next{}}} {
		m, _ := raw[sec.name].(map[string]any)
		if strings.HasPrefix(sec.name, "sip.") || strings.HasPrefix(sec.name, "http.") {
			m = nil // tables of tables are documented as commented examples
		}
		typ := reflect.TypeOf(sec.v)
		for i := 0; i < typ.NumField(); i++ {
			key := strings.Split(typ.Field(i).Tag.Get("toml"), ",")[0]
			if key == "" || key == "-" {
				continue
			}
			if _, ok := m[key]; !ok && !commented(string(data), key) {
				t.Errorf("examples/stirgate.toml does not document [%s] %s", sec.name, key)
			}
		}
	}
}

// commented reports whether key appears in a commented-out example line.
func commented(text, key string) bool {
	for _, l := range strings.Split(text, "\n") {
		l = strings.TrimSpace(l)
		if strings.HasPrefix(l, "#") && (strings.HasPrefix(strings.TrimSpace(l[1:]), key+" =") || strings.Contains(l, "[["+"policy."+key+"]]") || strings.Contains(l, "[[numbers."+key+"]]") || strings.Contains(l, "[[sip."+key+"]]") || strings.Contains(l, "[[http."+key+"]]")) {
			return true
		}
	}
	return false
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name, text, want string
	}{
		{"unknown key names it", "[verifier]\nrequre_identity = true\n", "unknown key(s): verifier.requre_identity"},
		{"unknown section", "[verfier]\nstrict = true\n", "verfier.strict"},
		{"syntax line and column", "[verifier]\nstrict = tru\n", "cfg.toml:2:"},
		{"bare integer duration", "[x5u]\ntimeout = 2\n", "duration must be a string"},
		{"bad duration", "[x5u]\ntimeout = \"2 s\"\n", "duration"},
		{"negative duration", "[x5u]\ntimeout = \"-2s\"\n", "negative"},
		{"mode", "[verifier]\nmode = \"loose\"\n", "verifier.mode"},
		{"all problems at once", "[verifier]\nmode = \"loose\"\n[log]\nformat = \"xml\"\n", "log.format"},
		{"signer half", "[signer]\nkey = \"k.pem\"\n", "key, cert and x5u go together"},
		{"x5u relative", "[signer]\nkey = \"k\"\ncert = \"c\"\nx5u = \"/sp.pem\"\n", "not an absolute URL"},
		{"lab host", "[x5u]\nlab_hosts = [\"localhost\"]\n", "want host:port"},
		{"long timeout", "[x5u]\ntimeout = \"1m\"\n", "would stall"},
		{"replay window", "[verifier]\nmax_age = \"2h\"\n", "replay"},
		{"numbers plan", "[numbers]\nplan = \"uk\"\n", "numbers.plan"},
		{"customer origid", "[[policy.customer]]\nname = \"acme\"\norigid = \"ref\"\n", "not a UUID"},
		{"number rule", "[[numbers.national]]\nlength = 0\nadd = \"x\"\n", "numbers.national[0]"},
		{"crl stale policy", "[verifier]\ncrl_stale = \"maybe\"\n", "verifier.crl_stale"},
		{"crl without signers", "[verifier]\ncrl_urls = [\"https://crl.example.net/c\"]\n", "crl_signers is required"},
		{"crl max body", "[verifier]\ncrl_max_body = -1\n", "crl_max_body"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.text), "cfg.toml")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestLabBootstrap(t *testing.T) {
	// A relative config path with a relative lab dir: paths must be
	// resolved once, against the config's directory.
	top := t.TempDir()
	if err := os.MkdirAll(top+"/conf", 0o755); err != nil {
		t.Fatal(err)
	}
	t.Chdir(top)
	dir := top + "/conf"
	c, err := Parse([]byte("[lab]\ndir = \"lab\"\n[policy]\ndefault = \"C\"\n"), "conf/stirgate.toml")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.PrepareLab(time.Now(), nil); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"root.pem", "sp.key", "sp-chain.pem", LabTLSCert, LabTLSKey} {
		if _, err := os.Stat(dir + "/lab/" + f); err != nil {
			t.Fatal(err)
		}
	}
	s, err := c.NewSigner(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if s.X5U() != "https://127.0.0.1:8443/certs/sp.pem" {
		t.Fatal(s.X5U())
	}
	v, err := c.NewVerifier(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	v.Close()
	// A second PrepareLab keeps the same keys.
	key1, _ := os.ReadFile(dir + "/lab/sp.key")
	c2, _ := Parse([]byte("[lab]\ndir = \"lab\"\n"), "conf/stirgate.toml")
	if err := c2.PrepareLab(time.Now(), nil); err != nil {
		t.Fatal(err)
	}
	key2, _ := os.ReadFile(dir + "/lab/sp.key")
	if string(key1) != string(key2) {
		t.Fatal("lab regenerated on second use")
	}
}

func TestBuild(t *testing.T) {
	if _, err := (&Config{}).Build(BuildOptions{}); err == nil || !strings.Contains(err.Error(), "nothing to run") {
		t.Fatalf("empty config built: %v", err)
	}
	dir := t.TempDir()
	c, err := Parse([]byte("[lab]\ndir = \"lab\"\n"), dir+"/stirgate.toml")
	if err != nil {
		t.Fatal(err)
	}
	fetched := 0
	s, err := c.Build(BuildOptions{ObserveFetch: func(string, time.Duration, error) { fetched++ }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Signer == nil || s.Verifier == nil {
		t.Fatalf("lab config built %+v", s)
	}
	// Only a verifier: trust anchors without [signer].
	c2, err := Parse([]byte("[verifier]\ntrust = [\"lab/root.pem\"]\n"), dir+"/v.toml")
	if err != nil {
		t.Fatal(err)
	}
	s2, err := c2.Build(BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if s2.Signer != nil || s2.Verifier == nil {
		t.Fatalf("verifier-only config built %+v", s2)
	}
	var nilServices *Services
	nilServices.Close()
}

// [[policy.customer.rcd_number]] decodes (the rcd keys sit beside numbers)
// and reaches the policy: the most specific entry wins, else the
// customer's [policy.customer.rcd].
func TestPolicyRCDPerNumber(t *testing.T) {
	c, err := Parse([]byte(`
[policy]
[[policy.customer]]
name = "acme"
numbers = ["1202555*"]
[policy.customer.rcd]
nam = "ACME Corp"
crn = "Your order"
[[policy.customer.rcd_number]]
numbers = ["12025550100-12025550199"]
nam = "ACME Sales"
icn = "https://cdn.example.com/sales.png"
[[policy.customer.rcd_number]]
numbers = ["12025550150"]
nam = "ACME Front Desk"
crn = "Appointment"
`), "cfg.toml")
	if err != nil {
		t.Fatal(err)
	}
	p, err := c.NewPolicy()
	if err != nil {
		t.Fatal(err)
	}
	for orig, want := range map[string]policy.RCD{
		"12025550150": {Nam: "ACME Front Desk", Crn: "Appointment"},
		"12025550120": {Nam: "ACME Sales", Icn: "https://cdn.example.com/sales.png"},
		"12025559999": {Nam: "ACME Corp", Crn: "Your order"},
	} {
		if got := p.RCDFor(policy.Input{Customer: "acme", Orig: orig}); got == nil || *got != want {
			t.Errorf("%s: got %+v, want %+v", orig, got, want)
		}
	}
	if _, err := Parse([]byte("[policy]\n[[policy.customer]]\nname = \"acme\"\n[[policy.customer.rcd_number]]\nnumbers = [\"1\"]\nname = \"x\"\n"), "cfg.toml"); err == nil || !strings.Contains(err.Error(), "unknown key") {
		t.Fatalf("a misspelt rcd_number key: %v", err)
	}
}
