package outcome

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/stirgate/stirgate/core"
)

// testTenants: signatures carry their arrangement (tenant, SPC, customer,
// rule, client) through SetSigned into the store; the tenant filter and
// the per-tenant breakdown (volume, attestation mix) read it back.
func testTenants(t *testing.T, st Store, _ Options) {
	ctx := context.Background()
	sign := func(i int, res *core.SignResult) Outcome {
		o := Outcome{Time: t0.Add(time.Duration(i) * time.Second), System: "n1", UniqueID: "s" + strconv.Itoa(i), Kind: KindSign,
			Direction: "outbound", Source: SourceHTTP, Result: "signed", Attest: string(res.Attest)}
		o.SetSigned(res)
		return o
	}
	var batch []Outcome
	for i, r := range []core.SignResult{
		{Attest: "A", Tenant: "blue", SPC: "1002", Customer: "acme", Rule: "customer_number", Client: "acme-api", X5U: "https://cr.example.net/blue.pem"},
		{Attest: "A", Tenant: "blue", SPC: "1002", Customer: "acme", Rule: "customer_number"},
		{Attest: "B", Tenant: "blue", SPC: "1002", Customer: "acme", Rule: "customer"},
		{Attest: "C", Tenant: "default", SPC: "1001", Rule: "gateway"},
		{Attest: "B", Tenant: "green", SPC: "1003", Customer: "beta", Rule: "requested_lower"},
	} {
		batch = append(batch, sign(i, &r))
	}
	// A refused call of green: counted in its volume, no attestation.
	refused := Outcome{Time: t0.Add(time.Minute), System: "n1", UniqueID: "u1", Kind: KindSign, Result: "unsigned",
		ErrorName: "sign_cert_invalid", Tenant: "green"}
	batch = append(batch, refused)
	if err := st.RecordBatch(ctx, batch); err != nil {
		t.Fatal(err)
	}
	got, err := st.Query(ctx, Filter{Tenant: "blue"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Fatalf("tenant filter: %d rows, want 3", len(got))
	}
	first := got[len(got)-1] // newest first
	if first.Tenant != "blue" || first.SPC != "1002" || first.Customer != "acme" || first.Rule != "customer_number" ||
		first.Client != "acme-api" || first.X5U != "https://cr.example.net/blue.pem" {
		t.Errorf("round trip: %+v", first)
	}
	gs, err := st.Groups(ctx, Filter{Kind: KindSign}, ByTenant)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]Group{
		"blue":    {Key: "blue", Total: 3, Signed: 3, A: 2, B: 1},
		"green":   {Key: "green", Total: 2, Signed: 1, Unsigned: 1, B: 1, TopError: "sign_cert_invalid", TopN: 1},
		"default": {Key: "default", Total: 1, Signed: 1, C: 1},
	}
	if len(gs) != len(want) {
		t.Fatalf("groups %+v", gs)
	}
	for _, g := range gs {
		if g != want[g.Key] {
			t.Errorf("group %+v, want %+v", g, want[g.Key])
		}
	}
}
