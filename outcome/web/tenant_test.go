package web

import (
	"context"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stirgate/stirgate/internal/testlog"
	"github.com/stirgate/stirgate/outcome"
)

// TestDashboardTenants: the per-tenant panel shows each signing tenant's
// volume and attestation mix, drills down to its calls, and counts no
// verification; /outcomes CSV carries tenant, customer and rule.
func TestDashboardTenants(t *testing.T) {
	st, err := outcome.Open(context.Background(), outcome.Options{Path: filepath.Join(t.TempDir(), "o.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	s := func(id, tenant, attest, result string) outcome.Outcome {
		return outcome.Outcome{Time: now.Add(-10 * time.Minute), System: "n1", UniqueID: id, Kind: outcome.KindSign, Result: result,
			Attest: attest, Tenant: tenant, Customer: "c-" + tenant, Rule: "customer", Source: outcome.SourceSIP}
	}
	batch := []outcome.Outcome{
		s("1", "blue", "A", "signed"), s("2", "blue", "A", "signed"), s("3", "blue", "B", "signed"),
		s("4", "green", "C", "signed"), s("5", "green", "", "unsigned"),
		// A verification that happens to carry a tenant-like value must
		// not count (the panel is of signatures).
		{Time: now.Add(-10 * time.Minute), System: "n1", UniqueID: "v1", Kind: outcome.KindVerify, Result: "pass", Attest: "A", Tenant: "blue"},
	}
	if err := st.RecordBatch(context.Background(), batch); err != nil {
		t.Fatal(err)
	}
	srv := testlog.NewServer(t, Handler(Options{Store: st, Now: func() time.Time { return now }}))
	t.Cleanup(srv.Close)
	code, html := get(t, srv.URL+"/dashboard")
	if code != 200 {
		t.Fatalf("dashboard %d", code)
	}
	i := strings.Index(html, `<section id="tenants">`)
	if i < 0 {
		t.Fatal("no tenants panel")
	}
	panel := html[i:]
	panel = panel[:strings.Index(panel, "</section>")]
	for _, re := range []string{
		group("blue", "tenant=blue", "3", "–", `100.0%`, "A 2 · B 1", ""),
		group("green", "tenant=green", "2", "–", `50.0%`, "C 1", ""),
	} {
		if !regexp.MustCompile(re).MatchString(panel) {
			t.Errorf("tenants panel lacks %s:\n%s", re, panel)
		}
	}
	_, body := get(t, srv.URL+"/outcomes?format=csv&tenant=blue&kind=sign")
	lines := strings.Split(strings.TrimSpace(body), "\n")
	if len(lines) != 4 || !strings.HasSuffix(lines[0], ",tenant,customer,rule") || !strings.HasSuffix(lines[1], ",blue,c-blue,customer") {
		t.Errorf("csv:\n%s", body)
	}
}
