package main

import (
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/stirgate/stirgate/core/certs"
	"github.com/stirgate/stirgate/core/stir"
)

// TestTenantsThroughCAPI: Kamailio workers each open the configuration
// through the C API; every one signs a customer's calls with its tenant's
// credential, switches to a next credential by the signing time alone,
// and refuses a call that has no tenant to sign it.
func TestTenantsThroughCAPI(t *testing.T) {
	dirs := map[string]string{}
	for _, n := range []struct{ name, spc string }{{"blue", "1002"}, {"green", "1003"}, {"green2", "1003"}} {
		lab, err := certs.NewLab(certs.LabOptions{SPC: n.spc})
		if err != nil {
			t.Fatal(err)
		}
		dirs[n.name] = t.TempDir()
		if err := lab.WriteDir(dirs[n.name]); err != nil {
			t.Fatal(err)
		}
	}
	for name, tc := range map[string]struct {
		activate time.Time
		green    string // x5u green signs with
	}{
		"before green's activation": {time.Now().Add(time.Hour), "https://cr.example.net/green.pem"},
		"after green's activation":  {time.Now().Add(-time.Hour), "https://cr.example.net/green-2.pem"},
	} {
		t.Run(name, func(t *testing.T) {
			text := fmt.Sprintf(`
[log]
level = "error"
[[tenant]]
name = "blue"
key = %q
cert = %q
x5u = "https://cr.example.net/blue.pem"
[[tenant]]
name = "green"
key = %q
cert = %q
x5u = "https://cr.example.net/green.pem"
next_key = %q
next_cert = %q
next_x5u = "https://cr.example.net/green-2.pem"
activate = %s
[policy]
default = "C"
[[policy.customer]]
name = "acme"
tenant = "blue"
numbers = ["12155550121"]
[[policy.customer]]
name = "beta"
tenant = "green"
sources = ["10.0.0.2"]
`, filepath.Join(dirs["blue"], "sp.key"), filepath.Join(dirs["blue"], "sp-chain.pem"),
				filepath.Join(dirs["green"], "sp.key"), filepath.Join(dirs["green"], "sp-chain.pem"),
				filepath.Join(dirs["green2"], "sp.key"), filepath.Join(dirs["green2"], "sp-chain.pem"), tc.activate.UTC().Format(time.RFC3339))
			for worker := 0; worker < 2; worker++ {
				h := mustOpen(t, text)
				res, err := sign(h, signIn{Orig: "12155550121", Dest: "12155550131", Customer: "acme"})
				if err != nil || res.Tenant != "blue" || res.SPC != "1002" || res.Attest != "A" || res.Rule != "customer_number" {
					t.Fatalf("worker %d acme: %v %+v", worker, err, res)
				}
				res, err = sign(h, signIn{Orig: "12155550199", Dest: "12155550131", Source: "10.0.0.2"})
				if err != nil || res.Tenant != "green" || res.X5U != tc.green {
					t.Fatalf("worker %d beta: %v %+v", worker, err, res)
				}
				// Gateway/default traffic has no default tenant here.
				_, err = sign(h, signIn{Orig: "12155550199", Dest: "12155550131", Source: "192.0.2.99"})
				wantCode(t, err, codeSign)
				var ae *apiError
				if !errors.As(err, &ae) || ae.sign == nil || ae.sign.Name != stir.ErrSignCertInvalid.Name {
					t.Fatalf("worker %d, no default tenant: %v", worker, err)
				}
			}
		})
	}
}
