package web

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strconv"
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
		// Outside the page's window: every value it carries would show as a
		// data-key of its own if the window were ignored.
		v("old", 5000, "fail", "A", "outside_window", "https://old.example/o.pem", "12155550999"),
		{Time: at(60), Until: at(59), System: "pbx1", UniqueID: "gap-1", Kind: outcome.KindGap},
	}
	// Signers and trunks: the good carrier's SPC signed 1-3, the evil one
	// 6 (the others failed before a certificate was obtained); 1-3 came
	// in on one trunk, 4-7 on another.
	for i := range os {
		switch os[i].UniqueID {
		case "1", "2", "3":
			os[i].SPC, os[i].Peer = "1001", "192.0.2.1"
		case "6":
			os[i].SPC, os[i].Peer = "3003", "198.51.100.9"
		case "4", "5", "7":
			os[i].Peer = "198.51.100.9"
		}
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
	{Kind: "trust anchor", Name: "STI-PA Root", NotAfter: now.Add(3000 * 24 * time.Hour)},
	{Kind: "CRL", Name: "CN=STI-PA CRL", NotAfter: now.Add(20 * 24 * time.Hour)},
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
		{"?result=fail", 200, []string{"4", "5", "6", "old"}},
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
func (brokenStore) Groups(context.Context, outcome.Filter, outcome.GroupBy) ([]outcome.Group, error) {
	return nil, errors.New("connection refused")
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
	// Inbound and outbound apart: 7 verifications (3 pass, 3 fail, 1
	// none), 1 signing (unsigned).
	{"inbound calls", `id="in-total">7<`},
	{"pass rate", `id="in-pass">42.9%<`},
	{"inbound unsigned", `id="in-unsigned">14.3%<`},
	{"outbound calls", `id="out-total">1<`},
	{"signed share", `id="out-signed">0.0%<`},
	{"outbound unsigned", `id="out-unsigned">100.0%<`},
	{"result pass", row("pass", "kind=verify[^\"]*result=pass", "3", "42.9%")},
	{"result fail", row("fail", "kind=verify[^\"]*result=fail", "3", "42.9%")},
	{"result unsigned", row("unsigned", "kind=sign[^\"]*result=unsigned", "1", "100.0%")},
	{"attest A", row("A", "attest=A[^\"]*kind=verify", "3", "42.9%")},
	// Failure reasons are shares of the 3 failures; no_identity is not one.
	{"top error", row("x5u_fetch_failed", "error=x5u_fetch_failed[^\"]*kind=verify", "2", "66.7%")},
	{"second error", row("signature_invalid", "error=signature_invalid", "1", "33.3%")},
	{"failing host", `data-key="certs.badcarrier.example"><td>certs.badcarrier.example</td><td class="bar"><span[^>]*></span></td><td class="n">2</td><td class="n">66.7%</td>`},
	{"failing origin", `data-key="12155550666"><td>12155550666</td><td class="bar"><span[^>]*></span></td><td class="n">2</td>`},
	{"signer 1001", group("1001", "spc=1001", "3", "100.0%", "–", "A 2 · B 1", "")},
	{"signer 3003", group("3003", "spc=3003", "1", "0.0%", "–", "", "signature_invalid")},
	{"signer host", group("certs.badcarrier.example", "x5u_host=certs.badcarrier.example", "2", "0.0%", "–", "A 1 · C 1", "x5u_fetch_failed")},
	{"trunk", group("198.51.100.9", "peer=198.51.100.9", "4", "0.0%", "–", "A 1 · C 1", "x5u_fetch_failed")},
	{"system", group("pbx1", "system=pbx1", "8", "42.9%", "0.0%", "A 3 · B 1 · C 1", "x5u_fetch_failed")},
	{"ranges", `(?s)<nav id="ranges">.*>1 h</a>.*class="current">24 h</a>.*>7 d</a>.*>30 d</a>`},
	{"refresh", `<meta http-equiv="refresh" content="60">`},
	{"per node", `(?s)<section id="nodes">.*data-key="pbx1"><td>pbx1</td><td class="bar"><span[^>]*></span></td><td class="n">8</td>`},
	{"cert expired first", `(?s)data-cert="sp-retired".*data-cert="sp-backup".*data-cert="sp-main-2026"`},
	{"cert expired", `class="expired" data-cert="sp-retired"><td>sp-retired<br><small>signing</small></td><td>2026-11-21 12:30 UTC</td><td class="n">-2</td>`},
	{"cert soon", `class="soon" data-cert="sp-backup"><td>sp-backup<br><small>signing</small></td><td>2026-12-05 13:30 UTC</td><td class="n">12</td>`},
	{"trust anchor", `class="ok" data-cert="STI-PA Root"><td>STI-PA Root<br><small>trust anchor</small></td><td>[^<]*</td><td class="n">3000</td>`},
	{"crl", `class="soon" data-cert="CN=STI-PA CRL"><td>CN=STI-PA CRL<br><small>CRL</small></td><td>[^<]*</td><td class="n">20</td>`},
	{"series bars", `(?s)<svg id="series-chart".*(<rect [^>]*fill="#2e7d32"[^>]*>\s*<title>2026-11-23 12:00 pass: 3</title>)`},
	{"series fail", `<title>2026-11-23 11:00 fail: 2</title>`},
	{"pass rate per hour", `(?s)id="pass-rate".*<title>2026-11-23 11:00 pass rate 0.0% \(0/2\)</title>.*<title>2026-11-23 12:00 pass rate 100.0% \(3/3\)</title>`},
	{"signed share per hour", `(?s)id="signed-share".*<title>2026-11-23 10:00 signed share 0.0% \(0/1\)</title>`},
}

// group is the pattern of one row of a breakdown table.
func group(key, hrefRe, calls, pass, signed, attest, topErr string) string {
	re := `data-group="` + regexp.QuoteMeta(key) + `"><td><a href="/dashboard/calls\?[^"]*` + hrefRe + `[^"]*">` + regexp.QuoteMeta(key) +
		`</a></td><td class="n">` + calls + `</td><td class="n">` + pass + `</td><td class="n">` + signed + `</td><td>` + attest + `</td><td>`
	if topErr != "" {
		re += `<a href="[^"]*error=` + topErr + `[^"]*">` + topErr + `</a>`
	}
	return re
}

// row is the pattern of one bar's row: its drill-down link (href
// matching hrefRe), count and share.
func row(key, hrefRe, n, share string) string {
	return `data-key="` + key + `"><td><a href="/dashboard/calls\?[^"]*` + hrefRe + `[^"]*">` + key +
		`</a></td><td class="bar"><span[^>]*></span></td><td class="n">` + n + `</td><td class="n">` + share + `</td>`
}

func checkPage(t *testing.T, html string) {
	t.Helper()
	for _, e := range expectations {
		if !regexp.MustCompile(e.re).MatchString(html) {
			t.Errorf("%s: no match for %s", e.name, e.re)
		}
	}
	for _, key := range []string{"outside_window", "old.example", "12155550999"} {
		if strings.Contains(html, `data-key="`+key+`"`) {
			t.Errorf("outcome outside the window shown: data-key=%q", key)
		}
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
	// Every drill-down link leads to exactly the calls behind its bar.
	links := regexp.MustCompile(`data-key="([^"]+)"><td><a href="([^"]+)"`).FindAllStringSubmatch(string(b), -1)
	if len(links) < 6 {
		t.Fatalf("%d drill-down links", len(links))
	}
	links = append(links, regexp.MustCompile(`data-(?:group)="([^"]+)"><td><a href="([^"]+)"`).FindAllStringSubmatch(string(b), -1)...)
	want := map[string][]string{"x5u_fetch_failed": {"4", "5"}, "signature_invalid": {"6"}, "pass": {"1", "2", "3"},
		"fail": {"4", "5", "6"}, "unsigned": {"8"}, "A": {"1", "2", "5"}, "B": {"3"}, "C": {"4"},
		"1001": {"1", "2", "3"}, "3003": {"6"}, "certs.badcarrier.example": {"4", "5"}, "198.51.100.9": {"4", "5", "6", "7"},
		"192.0.2.1": {"1", "2", "3"}, "pbx1": {"1", "2", "3", "4", "5", "6", "7", "8"}}
	for _, l := range links {
		href := strings.ReplaceAll(l[2], "&amp;", "&")
		code, body := get(t, srv.URL+href)
		if code != 200 {
			t.Fatalf("%s: %d", href, code)
		}
		var ids []string
		for _, m := range regexp.MustCompile(`data-call="([^"]+)"`).FindAllStringSubmatch(body, -1) {
			ids = append(ids, m[1])
		}
		sort.Strings(ids)
		if w, ok := want[l[1]]; ok && strings.Join(ids, ",") != strings.Join(w, ",") {
			t.Errorf("%s drills down to %v, want %v (%s)", l[1], ids, w, href)
		}
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

// frame is a test page (not part of the product, so free of the
// dashboard's CSP) that loads the dashboard in a 420 px and a 1400 px
// frame of the same origin and writes each frame's scroll width and
// viewport width into its own DOM once everything has loaded.
const frame = `<!DOCTYPE html><html><body style="margin:0">
<iframe id="narrow" src="/dashboard" style="width:420px;height:900px;border:0"></iframe>
<iframe id="wide" src="/dashboard" style="width:1400px;height:900px;border:0"></iframe>
<pre id="out">pending</pre>
<script>
window.addEventListener("load", function () {
  var r = [];
  ["narrow", "wide"].forEach(function (id) {
    var f = document.getElementById(id), d = f.contentDocument;
    r.push(id + "=" + d.documentElement.scrollWidth + "/" + f.contentWindow.innerWidth +
      "/" + (d.getElementById("in-pass") || {}).textContent);
  });
  document.getElementById("out").textContent = r.join(" ");
});
</script></body></html>`

// TestDashboardWidths renders the page at 420 px and 1400 px in headless
// Chromium: no horizontal scrolling at either width, and the figures are
// there at both.
func TestDashboardWidths(t *testing.T) {
	bin := chromium(t)
	h := Handler(Options{Store: seeded(t), Certs: func() []CertInfo { return append([]CertInfo(nil), certs...) }, Now: func() time.Time { return now }})
	mux := http.NewServeMux()
	mux.Handle("/", h)
	mux.HandleFunc("GET /frame", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		io.WriteString(w, frame)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	profile := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--headless", "--no-sandbox", "--disable-gpu",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
		"--disable-dev-shm-usage", "--user-data-dir="+profile, "--window-size=1500,1000",
		"--virtual-time-budget=10000", "--dump-dom", srv.URL+"/frame")
	cmd.Env = append(os.Environ(), "HOME="+profile)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium: %v\n%s", err, stderr.String())
	}
	m := regexp.MustCompile(`narrow=(\d+)/(\d+)/([^ <]*) wide=(\d+)/(\d+)/([^ <]*)`).FindStringSubmatch(string(out))
	if m == nil {
		t.Fatalf("no measurements in the DOM:\n%.3000s\nstderr:\n%.2000s", out, stderr.String())
	}
	for i, w := range []string{"420", "1400"} {
		scroll, inner, pass := m[1+3*i], m[2+3*i], m[3+3*i]
		if inner != w {
			t.Errorf("frame %s px wide, want %s", inner, w)
		}
		if sw, iw := atoi(scroll), atoi(inner); sw > iw {
			t.Errorf("at %s px the page is %s px wide: horizontal scrolling", w, scroll)
		}
		if pass != "42.9%" {
			t.Errorf("at %s px the pass rate shows %q", w, pass)
		}
	}
}

func atoi(s string) int { n, _ := strconv.Atoi(s); return n }

// TestCallsPaging: the calls page pages through its selection and offers
// it as CSV, one field per column.
func TestCallsPaging(t *testing.T) {
	st, err := outcome.Open(context.Background(), outcome.Options{Path: filepath.Join(t.TempDir(), "o.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var os []outcome.Outcome
	for i := range 120 {
		os = append(os, outcome.Outcome{Time: now.Add(-time.Duration(i) * time.Second), System: "pbx1", UniqueID: strconv.Itoa(1000 + i),
			Kind: outcome.KindVerify, Result: "fail", ErrorName: "stale_iat", Orig: "12155550100"})
	}
	if err := st.RecordBatch(context.Background(), os); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(Handler(Options{Store: st, Now: func() time.Time { return now }}))
	defer srv.Close()
	seen := map[string]bool{}
	next := "/dashboard/calls?error=stale_iat"
	pages := 0
	for next != "" {
		_, body := get(t, srv.URL+next)
		pages++
		for _, m := range regexp.MustCompile(`data-call="([^"]+)"`).FindAllStringSubmatch(body, -1) {
			if seen[m[1]] {
				t.Errorf("%s on two pages", m[1])
			}
			seen[m[1]] = true
		}
		next = ""
		if m := regexp.MustCompile(`id="next" href="([^"]+)"`).FindStringSubmatch(body); m != nil {
			next = strings.ReplaceAll(m[1], "&amp;", "&")
		}
		if pages == 1 {
			m := regexp.MustCompile(`id="csv" href="([^"]+)"`).FindStringSubmatch(body)
			if m == nil {
				t.Fatal("no CSV link")
			}
			resp, err := http.Get(srv.URL + strings.ReplaceAll(m[1], "&amp;", "&"))
			if err != nil {
				t.Fatal(err)
			}
			rows, err := csv.NewReader(resp.Body).ReadAll()
			resp.Body.Close()
			if err != nil || len(rows) != 121 || rows[0][0] != "time" || rows[1][12] != "stale_iat" {
				t.Fatalf("csv: %d rows, %v; header %v", len(rows), err, rows[0])
			}
		}
	}
	if pages != 3 || len(seen) != 120 {
		t.Errorf("%d pages, %d calls; want 3 pages, 120 calls", pages, len(seen))
	}
}

// TestCallsExtensions: the calls page and its CSV show a verified call's
// diverting numbers and rich call data, escaped.
func TestCallsExtensions(t *testing.T) {
	st, err := outcome.Open(context.Background(), outcome.Options{Path: filepath.Join(t.TempDir(), "o.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.Record(context.Background(), outcome.Outcome{Time: now.Add(-time.Second), System: "sbc1", UniqueID: "c1",
		Kind: outcome.KindVerify, Result: "pass", Orig: "12155550121", Dest: "12155550141",
		Div: "12155550131", RCDNam: "ACME <Corp>", RCDCrn: "Delivery"}); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(Handler(Options{Store: st, Now: func() time.Time { return now }}))
	defer srv.Close()
	_, body := get(t, srv.URL+"/dashboard/calls?result=pass")
	for _, want := range []string{`<small class="div">diverted by 12155550131</small>`, `<small class="rcd">ACME &lt;Corp&gt; · Delivery</small>`} {
		if !strings.Contains(body, want) {
			t.Errorf("calls page lacks %s:\n%s", want, body)
		}
	}
	resp, err := http.Get(srv.URL + "/outcomes?format=csv")
	if err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(resp.Body).ReadAll()
	resp.Body.Close()
	if err != nil || len(rows) != 2 {
		t.Fatalf("csv: %v %v", rows, err)
	}
	got := map[string]string{}
	for i, c := range rows[0] {
		got[c] = rows[1][i]
	}
	if got["div"] != "12155550131" || got["rcd_nam"] != "ACME <Corp>" || got["rcd_crn"] != "Delivery" {
		t.Errorf("csv row %v", got)
	}
}

// pickerFrame loads the dashboard in a 420 px and a 1400 px frame; in each
// it reads the failure-reasons chart and the system picker, then picks
// "pbx2" and submits the form as a person would, and reads the page that
// comes back. Every reading includes the frame's scroll and viewport
// widths. The readings are written as JSON into #out.
const pickerFrame = `<!DOCTYPE html><html><body style="margin:0">
<iframe id="narrow" src="/dashboard?since=6h" style="width:420px;height:900px;border:0"></iframe>
<iframe id="wide" src="/dashboard?since=6h" style="width:1400px;height:900px;border:0"></iframe>
<pre id="out">pending</pre>
<script>
var res = {narrow: [], wide: []};
function read(d, w) {
  var r = {scroll: d.documentElement.scrollWidth, inner: w.innerWidth, url: w.location.search,
    total: (d.getElementById("in-total") || {}).textContent, shares: [], legend: [], options: []};
  d.querySelectorAll("#fail-reasons rect[data-error]").forEach(function (e) {
    r.shares.push(e.getAttribute("data-hour") + " " + e.getAttribute("data-error") + " " + e.getAttribute("data-n") + "/" + e.getAttribute("data-of") + " " + e.getAttribute("data-share"));
  });
  d.querySelectorAll("#fail-reasons [data-reason]").forEach(function (e) { r.legend.push(e.textContent.trim()); });
  d.querySelectorAll("#system-pick option").forEach(function (e) { r.options.push(e.value + (e.selected ? "*" : "")); });
  return r;
}
["narrow", "wide"].forEach(function (id) {
  var f = document.getElementById(id);
  f.addEventListener("load", function () {
    var d = f.contentDocument;
    res[id].push(read(d, f.contentWindow));
    if (res[id].length === 1) {
      d.getElementById("system-pick").value = "pbx2";
      d.getElementById("range-form").submit();
    }
    if (res.narrow.length === 2 && res.wide.length === 2) {
      document.getElementById("out").textContent = JSON.stringify(res);
    }
  });
});
</script></body></html>`

// TestDashboardReasonsAndPicker: in headless Chromium at 420 and 1400 px,
// the failure reasons per hour show each reason's share of the hour's
// failures (not of its calls), the system picker lists the systems of the
// period, and picking one reloads the page with that system's figures;
// no horizontal scrolling before or after.
func TestDashboardReasonsAndPicker(t *testing.T) {
	bin := chromium(t)
	st, err := outcome.Open(context.Background(), outcome.Options{Path: filepath.Join(t.TempDir(), "o.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var os []outcome.Outcome
	add := func(system string, hour, n int, result, errName string) {
		for range n {
			os = append(os, outcome.Outcome{Time: time.Date(2026, 11, 23, hour, 5+len(os), 0, 0, time.UTC), System: system,
				UniqueID: strconv.Itoa(len(os)), Kind: outcome.KindVerify, Result: result, ErrorName: errName})
		}
	}
	// 10:00, pbx1: 4 failures (3 stale_iat), and passes that must not
	// dilute the shares. 11:00: pbx1 1 bad_signature; pbx2 2 stale_iat,
	// 1 internal_error, 5 passes. An outbound failure is not inbound.
	add("pbx1", 10, 3, "fail", "stale_iat")
	add("pbx1", 10, 1, "fail", "x5u_fetch_failed")
	add("pbx1", 10, 4, "pass", "")
	add("pbx1", 11, 1, "fail", "bad_signature")
	add("pbx2", 11, 2, "fail", "stale_iat")
	add("pbx2", 11, 1, "error", "internal_error")
	add("pbx2", 11, 5, "pass", "")
	os = append(os, outcome.Outcome{Time: time.Date(2026, 11, 23, 11, 50, 0, 0, time.UTC), System: "pbx3", UniqueID: "s1",
		Kind: outcome.KindSign, Result: "unsigned", ErrorName: "tn_not_authorized"})
	if err := st.RecordBatch(context.Background(), os); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/", Handler(Options{Store: st, Now: func() time.Time { return now }}))
	mux.HandleFunc("GET /frame", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		io.WriteString(w, pickerFrame)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	profile := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--headless", "--no-sandbox", "--disable-gpu",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
		"--disable-dev-shm-usage", "--user-data-dir="+profile, "--window-size=1500,1000",
		"--virtual-time-budget=20000", "--dump-dom", srv.URL+"/frame")
	cmd.Env = append(osEnviron(), "HOME="+profile)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium: %v\n%s", err, stderr.String())
	}
	m := regexp.MustCompile(`<pre id="out">(\{.*\})</pre>`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("no readings in the DOM:\n%.3000s\nstderr:\n%.2000s", out, stderr.String())
	}
	type reading struct {
		Scroll, Inner           int
		URL, Total              string
		Shares, Legend, Options []string
	}
	var res map[string][]reading
	if err := json.Unmarshal([]byte(strings.ReplaceAll(string(m[1]), "&amp;", "&")), &res); err != nil {
		t.Fatalf("%v: %s", err, m[1])
	}
	all := reading{Total: "17",
		Shares: []string{"2026-11-23 10:00 stale_iat 3/4 75.0%", "2026-11-23 10:00 x5u_fetch_failed 1/4 25.0%",
			"2026-11-23 11:00 stale_iat 2/4 50.0%", "2026-11-23 11:00 bad_signature 1/4 25.0%", "2026-11-23 11:00 internal_error 1/4 25.0%"},
		Legend:  []string{"stale_iat 62.5%", "bad_signature 12.5%", "internal_error 12.5%", "x5u_fetch_failed 12.5%"},
		Options: []string{"*", "pbx1", "pbx2", "pbx3"}}
	pbx2 := reading{Total: "8",
		Shares:  []string{"2026-11-23 11:00 stale_iat 2/3 66.7%", "2026-11-23 11:00 internal_error 1/3 33.3%"},
		Legend:  []string{"stale_iat 66.7%", "internal_error 33.3%"},
		Options: []string{"", "pbx1", "pbx2*", "pbx3"}}
	for id, w := range map[string]int{"narrow": 420, "wide": 1400} {
		rs := res[id]
		if len(rs) != 2 {
			t.Fatalf("%s: %d readings", id, len(rs))
		}
		for i, want := range []reading{all, pbx2} {
			got := rs[i]
			if got.Inner != w || got.Scroll > got.Inner {
				t.Errorf("%s reading %d: page %d px in a %d px frame (want %d, no horizontal scrolling)", id, i, got.Scroll, got.Inner, w)
			}
			if got.Total != want.Total || !reflect.DeepEqual(got.Shares, want.Shares) || !reflect.DeepEqual(got.Legend, want.Legend) ||
				!reflect.DeepEqual(got.Options, want.Options) {
				t.Errorf("%s reading %d (%s):\n got %+v\nwant %+v", id, i, got.URL, got, want)
			}
		}
		if !strings.Contains(rs[1].URL, "system=pbx2") {
			t.Errorf("%s: the picker submitted %q", id, rs[1].URL)
		}
	}
}

// osEnviron is os.Environ for tests whose outcome slice is named os.
func osEnviron() []string { return os.Environ() }
