package web

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stirgate/stirgate/internal/testdeps"
	"github.com/stirgate/stirgate/internal/testlog"
	"github.com/stirgate/stirgate/outcome"
)

var now = time.Date(2026, 11, 23, 12, 30, 0, 0, time.UTC)

func seeded(t *testing.T) outcome.Store {
	t.Helper()
	st, err := outcome.Open(context.Background(), outcome.Options{Path: filepath.Join(t.TempDir(), "o.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	at := func(m int) time.Time { return now.Add(time.Duration(-m) * time.Minute) }
	v := func(id string, m int, result, attest, errName, x5u, orig string) outcome.Outcome {
		return outcome.Outcome{Time: at(m), System: "pbx1", UniqueID: id, Kind: outcome.KindVerify, Result: result,
			Attest: attest, ErrorName: errName, X5U: x5u, Orig: orig, Source: outcome.SourceAMI}
	}
	os := []outcome.Outcome{
		v("1", 10, "pass", "A", "", "https://good.example/a.pem", "12155550001"),
		v("2", 20, "pass", "A", "", "https://good.example/a.pem", "12155550002"),
		v("3", 30, "pass", "B", "", "https://good.example/b.pem", "12155550003"),
		v("4", 70, "fail", "C", "x5u_fetch_failed", "https://certs.badcarrier.example/x.pem", "12155550666"),
		v("5", 80, "fail", "A", "x5u_fetch_failed", "https://certs.badcarrier.example/y.pem", "12155550666"),
		v("6", 130, "fail", "", "signature_invalid", "https://evil.example/z.pem", "12155550777"),
		v("7", 140, "none", "", "no_identity", "", "12155550888"),
		{Time: at(150), System: "pbx1", UniqueID: "8", Kind: outcome.KindSign, Result: "unsigned", Source: outcome.SourceAGI},
		{Time: at(5000), System: "pbx1", UniqueID: "old", Kind: outcome.KindVerify, Result: "pass"},
		{Time: at(60), Until: at(59), System: "pbx1", UniqueID: "gap-1", Kind: outcome.KindGap},
	}
	if err := st.RecordBatch(context.Background(), os); err != nil {
		t.Fatal(err)
	}
	return st
}

var certs = []CertInfo{
	{Name: "sp-main-2026", NotAfter: now.Add(200 * 24 * time.Hour)},
	{Name: "sp-backup", NotAfter: now.Add(12*24*time.Hour + time.Hour)},
	{Name: "sp-retired", NotAfter: now.Add(-48 * time.Hour)},
}

func server(t *testing.T) *httptest.Server {
	t.Helper()
	srv := testlog.NewServer(t, Handler(Options{Store: seeded(t), Certs: func() []CertInfo { return append([]CertInfo(nil), certs...) }, Now: func() time.Time { return now }}))
	t.Cleanup(srv.Close)
	return srv
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestOutcomes(t *testing.T) {
	srv := server(t)
	for _, tc := range []struct {
		query string
		code  int
		ids   []string
	}{
		{"", 200, []string{"1", "2", "3", "4", "5", "6", "7", "8", "old"}},
		{"?since=1h", 200, []string{"1", "2", "3"}},
		{"?since=3h&until=1h", 200, []string{"4", "5", "6", "7", "8"}},
		{"?since=2026-11-23T10:00:00Z&until=2026-11-23T12:00:00Z", 200, []string{"4", "5", "6", "7", "8"}},
		{"?result=fail", 200, []string{"4", "5", "6"}},
		{"?error=x5u_fetch_failed", 200, []string{"4", "5"}},
		{"?attest=A&result=pass", 200, []string{"1", "2"}},
		{"?kind=gap", 200, []string{"gap-1"}},
		{"?limit=2", 200, []string{"1", "2"}},
		{"?limit=0", 400, nil},
		{"?limit=x", 400, nil},
		{"?since=yesterday", 400, nil},
	} {
		t.Run(tc.query, func(t *testing.T) {
			code, body := get(t, srv.URL+"/outcomes"+tc.query)
			if code != tc.code {
				t.Fatalf("status %d, want %d: %s", code, tc.code, body)
			}
			var resp struct {
				Count    int
				Outcomes []OutcomeJSON
				Error    string
			}
			if err := json.Unmarshal([]byte(body), &resp); err != nil {
				t.Fatal(err)
			}
			if tc.code != 200 {
				if resp.Error == "" {
					t.Error("no error message")
				}
				return
			}
			var ids []string
			for _, o := range resp.Outcomes {
				ids = append(ids, o.UniqueID)
			}
			if strings.Join(ids, ",") != strings.Join(tc.ids, ",") || resp.Count != len(tc.ids) {
				t.Errorf("ids %v (count %d), want %v", ids, resp.Count, tc.ids)
			}
		})
	}
	_, body := get(t, srv.URL+"/outcomes?error=x5u_fetch_failed&limit=1")
	if !strings.Contains(body, `"x5u":"https://certs.badcarrier.example/x.pem"`) || !strings.Contains(body, `"error":"x5u_fetch_failed"`) {
		t.Errorf("wire form: %s", body)
	}
}

type brokenStore struct{}

func (brokenStore) Query(context.Context, outcome.Filter) ([]outcome.Outcome, error) {
	return nil, errors.New("disk on fire")
}
func (brokenStore) Report(context.Context, outcome.Filter) (*outcome.Report, error) {
	return nil, errors.New("disk on fire")
}

func TestStoreDown(t *testing.T) {
	srv := testlog.NewServer(t, Handler(Options{Store: brokenStore{}}))
	defer srv.Close()
	for _, p := range []string{"/outcomes", "/dashboard"} {
		code, body := get(t, srv.URL+p)
		if code != http.StatusServiceUnavailable || strings.Contains(body, "fire") {
			t.Errorf("%s: %d %q (internal detail must not leak)", p, code, body)
		}
	}
}

// expectations is what both the HTML and the browser's DOM must show for
// the seeded data over the default 24 h window.
var expectations = []struct {
	name string
	re   string
}{
	{"total", `id="total">8<`},
	{"unsigned share", `id="unsigned-share">25.0%<`},
	{"gaps", `id="gaps">1<`},
	{"result pass", `data-key="pass"><td>pass</td><td class="n">3</td><td class="n">37.5%</td>`},
	{"result fail", `data-key="fail"><td>fail</td><td class="n">3</td>`},
	{"attest A", `data-key="A"><td>A</td><td class="n">3</td>`},
	{"per node", `(?s)<section id="nodes">.*data-key="pbx1"><td>pbx1</td><td class="n">8</td>`},
	{"top error", `data-key="x5u_fetch_failed"><td>x5u_fetch_failed</td><td class="n">2</td>`},
	{"failing host", `data-key="certs.badcarrier.example"><td>certs.badcarrier.example</td><td class="n">2</td>`},
	{"failing origin", `data-key="12155550666"><td>12155550666</td><td class="n">2</td>`},
	{"cert expired first", `(?s)data-cert="sp-retired".*data-cert="sp-backup".*data-cert="sp-main-2026"`},
	{"cert expired", `class="expired" data-cert="sp-retired"><td>sp-retired</td><td>2026-11-21 12:30 UTC</td><td class="n">-2</td>`},
	{"cert soon", `class="soon" data-cert="sp-backup"><td>sp-backup</td><td>2026-12-05 13:30 UTC</td><td class="n">12</td>`},
	{"series bars", `(?s)<svg id="series-chart".*(<rect [^>]*fill="#2e7d32"[^>]*>\s*<title>2026-11-23 12:00 pass: 3</title>)`},
	{"series fail", `<title>2026-11-23 11:00 fail: 2</title>`},
}

func checkPage(t *testing.T, html string) {
	t.Helper()
	for _, e := range expectations {
		if !regexp.MustCompile(e.re).MatchString(html) {
			t.Errorf("%s: no match for %s", e.name, e.re)
		}
	}
	if strings.Contains(html, "old") && strings.Contains(html, `data-key="old"`) {
		t.Error("outcome outside the window shown")
	}
	for _, ext := range []string{"http://", "https://", "src=", "<link", "@import"} {
		if strings.Contains(html, ext) {
			t.Errorf("page references something external: %q", ext)
		}
	}
}

func TestDashboardHTML(t *testing.T) {
	srv := server(t)
	resp, err := http.Get(srv.URL + "/dashboard")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("%d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	checkPage(t, string(b))
	if code, _ := get(t, srv.URL+"/dashboard?since=nonsense"); code != 400 {
		t.Errorf("bad since: %d", code)
	}
	_, empty := get(t, srv.URL+"/dashboard?since=2026-01-01T00:00:00Z&until=2026-01-02T00:00:00Z")
	if !strings.Contains(empty, "no calls in this period") || !strings.Contains(empty, `id="total">0<`) {
		t.Error("empty period not shown as such")
	}
}

// chromium finds Debian's headless browser, installing it when missing.
// Still missing is a failure: the dashboard test is part of the proof.
func chromium(t *testing.T) string {
	t.Helper()
	p, err := testdeps.Find("chromium", "chromium", "chromium-browser")
	if err != nil {
		t.Fatalf("the dashboard test needs Chromium: %v", err)
	}
	return p
}

// TestDashboardInChromium loads the page in headless Chromium and checks
// the DOM it built, so the page is proven to parse and render offline.
func TestDashboardInChromium(t *testing.T) {
	bin := chromium(t)
	srv := server(t)
	profile := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--headless", "--no-sandbox", "--disable-gpu",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
		"--disable-dev-shm-usage", "--user-data-dir="+profile, "--dump-dom", srv.URL+"/dashboard")
	cmd.Env = append(os.Environ(), "HOME="+profile)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium: %v\n%s", err, stderr.String())
	}
	dom := string(out)
	if !strings.Contains(dom, "<svg") || !strings.Contains(dom, "STIR/SHAKEN outcomes") {
		t.Fatalf("chromium rendered no dashboard:\n%.2000s\nstderr:\n%.2000s", dom, stderr.String())
	}
	checkPage(t, dom)
}
