package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stirgate/stirgate/core"
	"github.com/stirgate/stirgate/core/certs"
	"github.com/stirgate/stirgate/core/tn"
	"github.com/stirgate/stirgate/core/x5u"
	"github.com/stirgate/stirgate/internal/testdeps"
)

// scrape returns /metrics of an API whose verifier names its trust
// anchor and checks a CRL, after one signing and one verification.
func scrape(t *testing.T) string {
	t.Helper()
	f := newFixture(t, nil)
	crl, err := f.lab.CRLSet()
	if err != nil {
		t.Fatal(err)
	}
	rootFile := filepath.Join(t.TempDir(), "root.pem")
	if err := os.WriteFile(rootFile, certs.EncodePEM(f.lab.Root), 0o644); err != nil {
		t.Fatal(err)
	}
	anchors, err := certs.LoadAnchors(certs.AnchorOptions{Files: []string{rootFile}})
	if err != nil {
		t.Fatal(err)
	}
	v, err := core.NewVerifier(core.VerifierOptions{
		Anchors: anchors, CRL: crl,
		Fetch:   x5u.Options[*certs.Credential]{Offline: true, PreloadBytes: map[string][]byte{testX5U: f.lab.ChainPEM()}, Observe: f.metrics.ObserveFetch},
		Numbers: tn.NANP(), Now: clock,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Close() })
	f.metrics.SetSource(Source{Signer: f.signer, Verifier: v})
	f.do(t, "POST", "/stir/v1/signing", "application/json", signOK)
	s, _ := f.signer.Sign(context.Background(), core.SignRequest{Orig: "12155550121", Dest: []string{"12155550131"}, Attest: "A"})
	vb, _ := json.Marshal(map[string]any{"verificationRequest": map[string]any{
		"from": map[string]any{"tn": "12155550121"}, "to": map[string]any{"tn": "12155550131"}, "identity": s.Identity}})
	f.do(t, "POST", "/stir/v1/verification", "application/json", string(vb))
	// Families with labels appear once a label set is seen.
	f.metrics.ObserveFetch(testX5U, time.Millisecond, nil)
	f.metrics.Dropped("sip", "overload")
	f.metrics.Reloaded(true)
	r := f.do(t, "GET", "/metrics", "", "")
	if r.status != 200 {
		t.Fatalf("metrics %d", r.status)
	}
	return r.body
}

// TestMetricsPromtool: the exposition passes `promtool check metrics`
// (Debian's prometheus package) and carries the runtime, the process and
// every expiry as a timestamp.
func TestMetricsPromtool(t *testing.T) {
	body := scrape(t)
	promtool, err := testdeps.Find("prometheus", "promtool")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(body)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out.String())
	}
	for _, want := range []string{
		"go_goroutines ", "process_resident_memory_bytes ",
		`stirgate_signing_cert_not_after_timestamp_seconds{spc="1234"`,
		`stirgate_trust_anchor_not_after_timestamp_seconds{subject=`,
		`stirgate_crl_not_after_timestamp_seconds{issuer=`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// TestGrafanaDashboard: every query of examples/grafana/stirgate.json
// names series that /metrics exports, so the shipped dashboard never
// shows "no data" for a misspelt or removed metric.
func TestGrafanaDashboard(t *testing.T) {
	body := scrape(t)
	raw, err := os.ReadFile("../examples/grafana/stirgate.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatal(err)
	}
	types := map[string]string{} // family → type, from "# TYPE name type"
	for _, line := range strings.Split(body, "\n") {
		if f := strings.Fields(line); len(f) == 4 && f[0] == "#" && f[1] == "TYPE" {
			types[f[2]] = f[3]
		}
	}
	name := regexp.MustCompile(`\b(?:stirgate|go|process)_[a-z0-9_]+\b`)
	queries := 0
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			queries++
			found := name.FindAllString(tg.Expr, -1)
			if len(found) == 0 {
				t.Errorf("%s: query names no stirgate series: %s", p.Title, tg.Expr)
			}
			for _, n := range found {
				fam := n
				for _, suf := range []string{"_bucket", "_count", "_sum"} {
					if b, ok := strings.CutSuffix(n, suf); ok && (types[b] == "histogram" || types[b] == "summary") {
						fam = b
					}
				}
				if types[fam] == "" {
					t.Errorf("%s: %s is not exported", p.Title, n)
				}
			}
		}
	}
	if queries < 10 {
		t.Errorf("only %d queries in the dashboard", queries)
	}
}
