// Package web serves the outcome store to people and scripts: /outcomes
// (JSON, filterable) and /dashboard (one server-rendered page with inline
// CSS and SVG, no external assets, because the machines it runs on are
// often offline). The HTTP service mounts Handler.
package web

import (
	"context"
	_ "embed"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/stirgate/stirgate/outcome"
)

// Reader is what the handler needs from the store.
type Reader interface {
	Query(ctx context.Context, f outcome.Filter) ([]outcome.Outcome, error)
	Report(ctx context.Context, f outcome.Filter) (*outcome.Report, error)
	Groups(ctx context.Context, f outcome.Filter, by outcome.GroupBy) ([]outcome.Group, error)
}

// CertInfo is a certificate or CRL whose expiry the dashboard shows: our
// signing chain, the trust anchors and the CRLs in use.
type CertInfo struct {
	// Kind is "signing" (the zero value), "trust anchor" or "CRL".
	Kind     string
	Name     string
	NotAfter time.Time // a CRL's nextUpdate
}

// Options configures Handler. Store is required.
type Options struct {
	Store Reader
	// Certs lists our signing certificates; called per page view so that a
	// reload shows up. Nil shows none.
	Certs func() []CertInfo
	// Window is the dashboard's default period (24h); ?since= overrides.
	Window time.Duration
	// Timeout bounds the store queries of one request (10s).
	Timeout time.Duration
	Now     func() time.Time
	Logger  *slog.Logger
}

// Handler serves GET /outcomes and GET /dashboard.
func Handler(opts Options) http.Handler {
	if opts.Window <= 0 {
		opts.Window = 24 * time.Hour
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 10 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	h := &handler{opts}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /outcomes", h.outcomes)
	mux.HandleFunc("GET /dashboard", h.dashboard)
	mux.HandleFunc("GET /dashboard/calls", h.calls)
	return mux
}

type handler struct{ opts Options }

// errBadParam marks a query parameter error (400, not 500).
var errBadParam = errors.New("bad parameter")

// parseTime accepts RFC 3339 or a duration meaning "that long ago".
func parseTime(v string, now time.Time) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(v); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, fmt.Errorf("%w: %q is neither RFC 3339 nor a duration", errBadParam, v)
	}
	return t, nil
}

func (h *handler) filter(r *http.Request) (outcome.Filter, error) {
	q := r.URL.Query()
	now := h.opts.Now()
	var f outcome.Filter
	var err error
	if f.Since, err = parseTime(q.Get("since"), now); err != nil {
		return f, err
	}
	if f.Until, err = parseTime(q.Get("until"), now); err != nil {
		return f, err
	}
	f.Result, f.ErrorName, f.Attest = q.Get("result"), q.Get("error"), q.Get("attest")
	f.Kind, f.System = q.Get("kind"), q.Get("system")
	f.SPC, f.Peer, f.Orig, f.X5UHost = q.Get("spc"), q.Get("peer"), q.Get("orig"), q.Get("x5u_host")
	f.Tenant = q.Get("tenant")
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > outcome.MaxLimit {
			return f, fmt.Errorf("%w: limit %q: want 1..%d", errBadParam, v, outcome.MaxLimit)
		}
		f.Limit = n
	}
	if v := q.Get("offset"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return f, fmt.Errorf("%w: offset %q", errBadParam, v)
		}
		f.Offset = n
	}
	if v := q.Get("after"); v != "" {
		if f.After, err = decodeCursor(v); err != nil {
			return f, err
		}
	}
	return f, nil
}

// OutcomeJSON is the wire form of one outcome on /outcomes.
type OutcomeJSON struct {
	Time        time.Time  `json:"time"`
	Until       *time.Time `json:"until,omitempty"`
	System      string     `json:"system,omitempty"`
	UniqueID    string     `json:"uniqueid"`
	LinkedID    string     `json:"linkedid,omitempty"`
	Kind        string     `json:"kind"`
	Direction   string     `json:"direction,omitempty"`
	Orig        string     `json:"orig,omitempty"`
	Dest        string     `json:"dest,omitempty"`
	Result      string     `json:"result,omitempty"`
	Verstat     string     `json:"verstat,omitempty"`
	Attest      string     `json:"attest,omitempty"`
	OrigID      string     `json:"origid,omitempty"`
	SIPCode     int        `json:"sip_code,omitempty"`
	ErrorName   string     `json:"error,omitempty"`
	Reason      string     `json:"reason,omitempty"`
	X5U         string     `json:"x5u,omitempty"`
	SPC         string     `json:"spc,omitempty"`
	HangupCause string     `json:"hangup_cause,omitempty"`
	Source      string     `json:"source,omitempty"`
	// The verified PASSporT extensions: div TNs (comma-separated), rcd.
	Div    string `json:"div,omitempty"`
	RCDNam string `json:"rcd_nam,omitempty"`
	RCDCrn string `json:"rcd_crn,omitempty"`
	// A signature's arrangement (FCC 24-120).
	Tenant   string `json:"tenant,omitempty"`
	Customer string `json:"customer,omitempty"`
	Rule     string `json:"rule,omitempty"`
}

// ToJSON converts an outcome to its wire form.
func ToJSON(o outcome.Outcome) OutcomeJSON {
	j := OutcomeJSON{
		Time: o.Time, System: o.System, UniqueID: o.UniqueID, LinkedID: o.LinkedID, Kind: o.Kind,
		Direction: o.Direction, Orig: o.Orig, Dest: o.Dest, Result: o.Result, Verstat: o.Verstat,
		Attest: o.Attest, OrigID: o.OrigID, SIPCode: o.SIPCode, ErrorName: o.ErrorName, Reason: o.Reason,
		X5U: o.X5U, SPC: o.SPC, HangupCause: o.HangupCause, Source: string(o.Source),
		Div: o.Div, RCDNam: o.RCDNam, RCDCrn: o.RCDCrn,
		Tenant: o.Tenant, Customer: o.Customer, Rule: o.Rule,
	}
	if !o.Until.IsZero() {
		u := o.Until
		j.Until = &u
	}
	return j
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.Encode(v)
}

func (h *handler) fail(w http.ResponseWriter, err error) {
	if errors.Is(err, errBadParam) {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	h.opts.Logger.Error("outcome store", "err", err)
	writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "outcome store unavailable"})
}

func (h *handler) outcomes(w http.ResponseWriter, r *http.Request) {
	f, err := h.filter(r)
	if err != nil {
		h.fail(w, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), h.opts.Timeout)
	defer cancel()
	os, err := h.opts.Store.Query(ctx, f)
	if err != nil {
		h.fail(w, err)
		return
	}
	if r.URL.Query().Get("format") == "csv" {
		writeCSV(w, os)
		return
	}
	out := make([]OutcomeJSON, 0, len(os))
	for _, o := range os {
		out = append(out, ToJSON(o))
	}
	writeJSON(w, http.StatusOK, map[string]any{"count": len(out), "outcomes": out})
}

// csvColumns are the columns of /outcomes?format=csv: one field each.
var csvColumns = []string{"time", "system", "uniqueid", "kind", "direction", "orig", "dest", "result", "verstat", "attest",
	"origid", "sip_code", "error", "reason", "x5u", "spc", "peer", "client", "source", "hangup_cause",
	"div", "rcd_nam", "rcd_crn", "tenant", "customer", "rule"}

func writeCSV(w http.ResponseWriter, os []outcome.Outcome) {
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="outcomes.csv"`)
	w.Header().Set("Cache-Control", "no-store")
	cw := csv.NewWriter(w)
	cw.Write(csvColumns)
	for _, o := range os {
		code := ""
		if o.SIPCode != 0 {
			code = strconv.Itoa(o.SIPCode)
		}
		cw.Write([]string{o.Time.UTC().Format(time.RFC3339Nano), o.System, o.UniqueID, o.Kind, o.Direction, o.Orig, o.Dest,
			o.Result, o.Verstat, o.Attest, o.OrigID, code, o.ErrorName, o.Reason, o.X5U, o.SPC, o.Peer, o.Client,
			string(o.Source), o.HangupCause, o.Div, o.RCDNam, o.RCDCrn, o.Tenant, o.Customer, o.Rule})
	}
	cw.Flush()
}

// callsPage is one page of the calls behind a dashboard figure.
type callsPage struct {
	Filters         []string // "error = x5u_fetch_failed", for the heading
	Rows            []outcome.Outcome
	From, To        int
	Prev, Next, CSV string
	Back            string
}

// pageSize is the rows of one calls page.
const pageSize = 50

// calls lists the calls behind a bar or row of the dashboard: the same
// filters as /outcomes, paged, with the same selection as CSV.
func (h *handler) calls(w http.ResponseWriter, r *http.Request) {
	f, err := h.filter(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if f.Since.IsZero() {
		f.Since = h.opts.Now().Add(-h.opts.Window)
	}
	f.Limit = pageSize + 1 // one more says whether a next page exists
	ctx, cancel := context.WithTimeout(r.Context(), h.opts.Timeout)
	defer cancel()
	os, err := h.opts.Store.Query(ctx, f)
	if err != nil {
		h.opts.Logger.Error("outcome store", "err", err)
		http.Error(w, "outcome store unavailable", http.StatusServiceUnavailable)
		return
	}
	q := r.URL.Query()
	// with is this page's query with kv (pairs) set, an empty value
	// deleting its key.
	with := func(kv ...string) string {
		c := url.Values{}
		for key, vs := range q {
			c[key] = vs
		}
		c.Set("since", f.Since.UTC().Format(time.RFC3339))
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i+1] == "" {
				c.Del(kv[i])
			} else {
				c.Set(kv[i], kv[i+1])
			}
		}
		return c.Encode()
	}
	// Rows before this page: n= on a keyset page, offset= on an old link.
	before := f.Offset
	if f.After != nil {
		before, _ = strconv.Atoi(q.Get("n"))
		before = max(before, 0)
	}
	p := callsPage{From: before + 1, To: before + min(len(os), pageSize), Back: "/dashboard?" + with("offset", "", "after", "", "n", "")}
	if len(os) > pageSize {
		os = os[:pageSize]
		p.Next = "/dashboard/calls?" + with("offset", "", "after", encodeCursor(outcome.CursorOf(os[len(os)-1])), "n", strconv.Itoa(before+pageSize))
	}
	if before > 0 {
		// Back to the newest calls: a keyset list pages forward only.
		p.Prev = "/dashboard/calls?" + with("offset", "", "after", "", "n", "")
	}
	c := url.Values{}
	for key, vs := range q {
		if key != "offset" && key != "limit" && key != "after" && key != "n" {
			c[key] = vs
		}
	}
	c.Set("since", f.Since.UTC().Format(time.RFC3339))
	c.Set("format", "csv")
	c.Set("limit", strconv.Itoa(outcome.MaxLimit))
	p.CSV = "/outcomes?" + c.Encode()
	for _, k := range []string{"kind", "system", "result", "error", "attest", "spc", "x5u_host", "peer", "orig"} {
		if v := q.Get(k); v != "" {
			p.Filters = append(p.Filters, k+" = "+v)
		}
	}
	p.Rows = os
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src data:")
	if err := callsTmpl.Execute(w, p); err != nil {
		h.opts.Logger.Error("calls render", "err", err)
	}
}

func (h *handler) dashboard(w http.ResponseWriter, r *http.Request) {
	f, err := h.filter(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	now := h.opts.Now()
	if f.Since.IsZero() {
		f.Since = now.Add(-h.opts.Window)
	}
	f.Limit = 0
	ctx, cancel := context.WithTimeout(r.Context(), h.opts.Timeout)
	defer cancel()
	// The report and the breakdowns are independent reads: run at once,
	// a PostgreSQL store answers them on as many connections, and the
	// page costs its slowest read rather than their sum (make bench-scale).
	// SQLite's one connection takes them in turn, as before.
	inbound := f
	inbound.Kind = outcome.KindVerify
	reads := []struct {
		name string
		f    outcome.Filter
		by   outcome.GroupBy
	}{{"spc", inbound, outcome.BySPC}, {"x5u_host", inbound, outcome.ByX5UHost}, {"peer", f, outcome.ByPeer}, {"system", f, outcome.BySystem},
		{"tenant", outbound(f), outcome.ByTenant}}
	results := make([][]outcome.Group, len(reads))
	errs := make([]error, len(reads)+1)
	var rep *outcome.Report
	var wg sync.WaitGroup
	wg.Add(len(reads) + 1)
	go func() { defer wg.Done(); rep, errs[len(reads)] = h.opts.Store.Report(ctx, f) }()
	for i, g := range reads {
		go func() { defer wg.Done(); results[i], errs[i] = h.opts.Store.Groups(ctx, g.f, g.by) }()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		h.opts.Logger.Error("outcome store", "err", err)
		http.Error(w, "outcome store unavailable", http.StatusServiceUnavailable)
		return
	}
	groups := map[string][]outcome.Group{}
	for i, g := range reads {
		groups[g.name] = results[i]
	}
	var certs []CertInfo
	if h.opts.Certs != nil {
		certs = h.opts.Certs()
	}
	v := buildView(rep, certs, f, now)
	v.SPC = groupRows(groups["spc"], f, "spc", outcome.KindVerify)
	v.X5UHosts = groupRows(groups["x5u_host"], f, "x5u_host", outcome.KindVerify)
	v.Peers = groupRows(groups["peer"], f, "peer", "")
	v.Systems = groupRows(groups["system"], f, "system", "")
	v.Tenants = groupRows(groups["tenant"], f, "tenant", outcome.KindSign)
	v.SystemList = h.systemChoices(ctx, f, rep)
	v.SinceParam, v.UntilParam = rangeParam(r.URL.Query().Get("since"), h.opts.Window), r.URL.Query().Get("until")
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	// The page has no external anything; say so to the browser too.
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src data:")
	if err := page.Execute(w, v); err != nil {
		h.opts.Logger.Error("dashboard render", "err", err)
	}
}

// Colours of results, fixed so that a glance means the same every day.
var resultColour = map[string]string{
	"pass": "#2e7d32", "signed": "#1565c0", "fail": "#c62828", "error": "#6a1b9a",
	"none": "#9e9e9e", "unsigned": "#ef6c00",
}

func colour(result string) string {
	if c, ok := resultColour[result]; ok {
		return c
	}
	return "#455a64"
}

type rect struct {
	X, Y, W, H float64
	Fill       string
	Title      string
}

type bar struct {
	Key   string
	N     int
	Pct   string
	Width float64
	Fill  string
	Href  string // the calls behind the bar, on /outcomes
}

type certRow struct {
	Kind     string
	Name     string
	NotAfter string
	Days     int
	Class    string
}

type view struct {
	Since, Until string
	System       string
	Ranges       []rangeLink
	Total        int
	Unsigned     int
	UnsignedPct  string
	Gaps         int
	In, Out      sideView
	Results      []bar
	Attest       []bar
	Nodes        []bar
	Errors       []bar
	OutErrors    []bar
	Hosts        []bar
	Origins      []bar
	SPC          []groupRow
	X5UHosts     []groupRow
	Peers        []groupRow
	Systems      []groupRow
	Tenants      []groupRow // signing volume and attestation mix per tenant (FCC 24-120)
	Series       []rect
	PassRate     []rect // inbound pass rate per hour, of SeriesH
	SignedShare  []rect // outbound signed share per hour
	Ticks        []tick
	SeriesW      float64
	SeriesH      float64
	MaxHour      int
	Certs        []certRow
	// Reasons is the failure reasons over time chart.
	Reasons reasonsChart
	// SystemList feeds the system picker; SinceParam and UntilParam
	// write the period back into the custom range form.
	SystemList             []string
	SinceParam, UntilParam string
}

// sideView is one direction's cards: calls, the success share (pass
// rate inbound, signed share outbound), the unsigned share.
type sideView struct {
	Total       int
	SuccessPct  string
	Unsigned    int
	UnsignedPct string
	Failures    int
	Href        string
}

// groupRow is one row of a breakdown: a signer, a trunk, a node.
type groupRow struct {
	Key, Href     string
	Total         int
	PassPct       string // of inbound calls with a verdict
	SignedPct     string
	Attest        string // "A 3 · B 1"
	TopError      string
	TopErrorN     int
	TopErrorHref  string
	HasIn, HasOut bool
}

func groupRows(gs []outcome.Group, f outcome.Filter, param, kind string) []groupRow {
	out := make([]groupRow, 0, len(gs))
	for _, g := range gs {
		kv := []string{param, g.Key}
		if kind != "" {
			kv = append(kv, "kind", kind)
		}
		in, outb := g.Pass+g.Fail+g.None, g.Signed+g.Unsigned
		r := groupRow{Key: g.Key, Href: drill(f, kv...), Total: g.Total, PassPct: pct(g.Pass, in), SignedPct: pct(g.Signed, outb),
			TopError: g.TopError, TopErrorN: g.TopN, HasIn: in > 0, HasOut: outb > 0}
		if g.TopError != "" {
			r.TopErrorHref = drill(f, append(kv, "error", g.TopError)...)
		}
		var parts []string
		for _, a := range []struct {
			k string
			n int
		}{{"A", g.A}, {"B", g.B}, {"C", g.C}} {
			if a.n > 0 {
				parts = append(parts, a.k+" "+strconv.Itoa(a.n))
			}
		}
		r.Attest = strings.Join(parts, " · ")
		out = append(out, r)
	}
	return out
}

// rangeLink is one choice of the time range picker.
type rangeLink struct {
	Label, Href string
	Current     bool
}

type tick struct {
	X     float64
	Label string
}

func pct(n, total int) string {
	if total == 0 {
		return "0.0%"
	}
	return strconv.FormatFloat(100*float64(n)/float64(total), 'f', 1, 64) + "%"
}

// outbound is f narrowed to signatures.
func outbound(f outcome.Filter) outcome.Filter {
	f.Kind = outcome.KindSign
	return f
}

// drill is the /outcomes URL of the calls of the period that match kv
// (pairs of parameter and value).
func drill(f outcome.Filter, kv ...string) string {
	q := url.Values{}
	q.Set("since", f.Since.UTC().Format(time.RFC3339))
	if !f.Until.IsZero() {
		q.Set("until", f.Until.UTC().Format(time.RFC3339))
	}
	if f.System != "" {
		q.Set("system", f.System)
	}
	for i := 0; i+1 < len(kv); i += 2 {
		q.Set(kv[i], kv[i+1])
	}
	return "/dashboard/calls?" + q.Encode()
}

func bars(cs []outcome.Count, total int, fill func(string) string) []bar {
	max := 1
	for _, c := range cs {
		if c.N > max {
			max = c.N
		}
	}
	out := make([]bar, 0, len(cs))
	for _, c := range cs {
		key := c.Key
		if key == "" {
			key = "(empty)"
		}
		out = append(out, bar{Key: key, N: c.N, Pct: pct(c.N, total), Width: 100 * float64(c.N) / float64(max), Fill: fill(c.Key)})
	}
	return out
}

func buildView(r *outcome.Report, certs []CertInfo, f outcome.Filter, now time.Time) view {
	v := view{
		Since: f.Since.UTC().Format(time.RFC3339), Until: "now",
		Total: r.Total, Unsigned: r.Unsigned, UnsignedPct: pct(r.Unsigned, r.Total), Gaps: r.Gaps,
		SeriesW: 720, SeriesH: 200,
	}
	if !f.Until.IsZero() {
		v.Until = f.Until.UTC().Format(time.RFC3339)
	}
	v.System = f.System
	side := func(sd outcome.Side, kind string) sideView {
		return sideView{Total: sd.Total, SuccessPct: pct(sd.Succeeded, sd.Total), Unsigned: sd.Unsigned,
			UnsignedPct: pct(sd.Unsigned, sd.Total), Failures: sd.Failures, Href: drill(f, "kind", kind)}
	}
	v.In, v.Out = side(r.Inbound, outcome.KindVerify), side(r.Outbound, outcome.KindSign)
	// Each direction on its own denominator: results and attestation of
	// inbound calls, failure reasons as shares of failures.
	link := func(bs []bar, param, kind string) []bar {
		for i := range bs {
			bs[i].Href = drill(f, "kind", kind, param, bs[i].Key)
		}
		return bs
	}
	results := append(append([]outcome.Count(nil), r.Inbound.ByResult...), r.Outbound.ByResult...)
	v.Results = bars(results, r.Total, colour)
	for i := range v.Results {
		kind := outcome.KindVerify
		if i >= len(r.Inbound.ByResult) {
			kind = outcome.KindSign
			v.Results[i].Pct = pct(v.Results[i].N, r.Outbound.Total)
		} else {
			v.Results[i].Pct = pct(v.Results[i].N, r.Inbound.Total)
		}
		v.Results[i].Href = drill(f, "kind", kind, "result", v.Results[i].Key)
	}
	v.Attest = link(bars(r.Inbound.ByAttest, r.Inbound.Total, func(string) string { return "#1565c0" }), "attest", outcome.KindVerify)
	v.Errors = link(bars(r.Inbound.ByError, r.Inbound.Failures, func(string) string { return "#c62828" }), "error", outcome.KindVerify)
	v.OutErrors = link(bars(r.Outbound.ByError, r.Outbound.Failures, func(string) string { return "#ef6c00" }), "error", outcome.KindSign)
	v.Hosts = bars(r.TopX5UHosts, r.Inbound.Failures, func(string) string { return "#ad1457" })
	v.Origins = bars(r.TopOrigins, r.Inbound.Failures, func(string) string { return "#6d4c41" })
	for _, rg := range []struct{ label, d string }{{"1 h", "1h"}, {"24 h", "24h"}, {"7 d", "168h"}, {"30 d", "720h"}} {
		q := url.Values{"since": {rg.d}}
		if f.System != "" {
			q.Set("system", f.System)
		}
		d, _ := time.ParseDuration(rg.d)
		v.Ranges = append(v.Ranges, rangeLink{Label: rg.label, Href: "/dashboard?" + q.Encode(),
			Current: f.Until.IsZero() && now.Sub(f.Since).Round(time.Minute) == d})
	}
	// Every node of a cluster (the system column), on all outcomes.
	v.Nodes = bars(r.ByNode, r.Total, func(string) string { return "#00695c" })

	// Stacked bars per hour, results in a fixed order so colours stack the
	// same way in every column. Quiet hours are drawn as empty slots, so
	// the x axis is time, not "hours that had calls".
	r.Hourly = fillHours(r.Hourly, f.Since, f.Until, now)
	for _, h := range r.Hourly {
		v.MaxHour = max(v.MaxHour, h.Total)
	}
	if n := len(r.Hourly); n > 0 && v.MaxHour > 0 {
		slot := v.SeriesW / float64(n)
		for i, h := range r.Hourly {
			keys := make([]string, 0, len(h.ByResult))
			for k := range h.ByResult {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			y := v.SeriesH
			for _, k := range keys {
				hgt := v.SeriesH * float64(h.ByResult[k]) / float64(v.MaxHour)
				y -= hgt
				v.Series = append(v.Series, rect{
					X: float64(i)*slot + 1, Y: y, W: max(slot-2, 1), H: hgt, Fill: colour(k),
					Title: fmt.Sprintf("%s %s: %d", h.Start.UTC().Format("2006-01-02 15:00"), k, h.ByResult[k]),
				})
			}
			// Rates per hour, each on its own denominator: the hour's
			// inbound calls, the hour's outbound calls.
			for _, rt := range []struct {
				dst         *[]rect
				m           map[string]int
				good, label string
				fill        string
			}{{&v.PassRate, h.Inbound, "pass", "pass rate", "#2e7d32"}, {&v.SignedShare, h.Outbound, "signed", "signed share", "#1565c0"}} {
				all := 0
				for _, c := range rt.m {
					all += c
				}
				if all == 0 {
					continue
				}
				hgt := v.SeriesH * float64(rt.m[rt.good]) / float64(all)
				*rt.dst = append(*rt.dst, rect{X: float64(i)*slot + 1, Y: v.SeriesH - hgt, W: max(slot-2, 1), H: max(hgt, 1), Fill: rt.fill,
					Title: fmt.Sprintf("%s %s %s (%d/%d)", h.Start.UTC().Format("2006-01-02 15:00"), rt.label, pct(rt.m[rt.good], all), rt.m[rt.good], all)})
			}
			if i%max(1, (n+7)/8) == 0 {
				v.Ticks = append(v.Ticks, tick{X: float64(i) * slot, Label: h.Start.UTC().Format("02 15h")})
			}
		}
	}
	v.Reasons = buildReasons(r, f, v.SeriesW, v.SeriesH)
	sort.Slice(certs, func(i, j int) bool { return certs[i].NotAfter.Before(certs[j].NotAfter) })
	for _, c := range certs {
		days := int(c.NotAfter.Sub(now).Hours() / 24)
		class := "ok"
		switch {
		case !c.NotAfter.After(now):
			class = "expired"
		case days < 30:
			class = "soon"
		}
		kind := c.Kind
		if kind == "" {
			kind = "signing"
		}
		v.Certs = append(v.Certs, certRow{Kind: kind, Name: c.Name, NotAfter: c.NotAfter.UTC().Format("2006-01-02 15:04 MST"), Days: days, Class: class})
	}
	return v
}

//go:embed dashboard.html
var dashboardHTML string

// maxSlots bounds the columns of the time series; a longer period shows
// only the hours that had calls.
const maxSlots = 24 * 14

func fillHours(hs []outcome.Hour, since, until, now time.Time) []outcome.Hour {
	if until.IsZero() || until.After(now) {
		until = now
	}
	if since.IsZero() && len(hs) > 0 {
		since = hs[0].Start
	}
	start, end := since.UTC().Truncate(time.Hour), until.UTC().Truncate(time.Hour)
	if since.IsZero() || !start.Before(end.Add(time.Hour)) || end.Sub(start)/time.Hour >= maxSlots {
		return hs
	}
	by := map[time.Time]outcome.Hour{}
	for _, h := range hs {
		by[h.Start] = h
	}
	var out []outcome.Hour
	for t := start; !t.After(end); t = t.Add(time.Hour) {
		h, ok := by[t]
		if !ok {
			h = outcome.Hour{Start: t, ByResult: map[string]int{}}
		}
		out = append(out, h)
	}
	return out
}

var page = template.Must(template.New("dashboard").Funcs(template.FuncMap{
	"rows":  func(n int) int { return 20 * n },
	"chart": func(r []rect, w, h float64) map[string]any { return map[string]any{"R": r, "W": w, "H": h} },
	"f": func(v float64) string {
		return strings.TrimSuffix(strings.TrimRight(strconv.FormatFloat(v, 'f', 2, 64), "0"), ".")
	},
}).Parse(dashboardHTML))

//go:embed calls.html
var callsHTML string

var callsTmpl = template.Must(template.New("calls").Funcs(template.FuncMap{
	"ts": func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05") },
}).Parse(callsHTML))
