// Package web serves the outcome store to people and scripts: /outcomes
// (JSON, filterable) and /dashboard (one server-rendered page with inline
// CSS and SVG, no external assets, because the machines it runs on are
// often offline). The HTTP service mounts Handler.
package web

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/stirgate/stirgate/outcome"
)

// Reader is what the handler needs from the store.
type Reader interface {
	Query(ctx context.Context, f outcome.Filter) ([]outcome.Outcome, error)
	Report(ctx context.Context, f outcome.Filter) (*outcome.Report, error)
}

// CertInfo is one of our own signing certificates, for the expiry panel.
type CertInfo struct {
	Name     string
	NotAfter time.Time
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
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > outcome.MaxLimit {
			return f, fmt.Errorf("%w: limit %q: want 1..%d", errBadParam, v, outcome.MaxLimit)
		}
		f.Limit = n
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
}

// ToJSON converts an outcome to its wire form.
func ToJSON(o outcome.Outcome) OutcomeJSON {
	j := OutcomeJSON{
		Time: o.Time, System: o.System, UniqueID: o.UniqueID, LinkedID: o.LinkedID, Kind: o.Kind,
		Direction: o.Direction, Orig: o.Orig, Dest: o.Dest, Result: o.Result, Verstat: o.Verstat,
		Attest: o.Attest, OrigID: o.OrigID, SIPCode: o.SIPCode, ErrorName: o.ErrorName, Reason: o.Reason,
		X5U: o.X5U, SPC: o.SPC, HangupCause: o.HangupCause, Source: string(o.Source),
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
	out := make([]OutcomeJSON, 0, len(os))
	for _, o := range os {
		out = append(out, ToJSON(o))
	}
	writeJSON(w, http.StatusOK, map[string]any{"count": len(out), "outcomes": out})
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
	rep, err := h.opts.Store.Report(ctx, f)
	if err != nil {
		h.opts.Logger.Error("outcome store", "err", err)
		http.Error(w, "outcome store unavailable", http.StatusServiceUnavailable)
		return
	}
	var certs []CertInfo
	if h.opts.Certs != nil {
		certs = h.opts.Certs()
	}
	v := buildView(rep, certs, f, now)
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
}

type certRow struct {
	Name     string
	NotAfter string
	Days     int
	Class    string
}

type view struct {
	Since, Until string
	Total        int
	Unsigned     int
	UnsignedPct  string
	Gaps         int
	Results      []bar
	Attest       []bar
	Nodes        []bar
	Errors       []bar
	Hosts        []bar
	Origins      []bar
	Series       []rect
	Ticks        []tick
	SeriesW      float64
	SeriesH      float64
	MaxHour      int
	Certs        []certRow
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
		out = append(out, bar{Key: key, N: c.N, Pct: pct(c.N, total), Width: 220 * float64(c.N) / float64(max), Fill: fill(c.Key)})
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
	v.Results = bars(r.ByResult, r.Total, colour)
	v.Attest = bars(r.ByAttest, r.Total, func(string) string { return "#1565c0" })
	v.Nodes = bars(r.ByNode, r.Total, func(string) string { return "#00695c" })
	v.Errors = bars(r.ByError, r.Total, func(string) string { return "#c62828" })
	v.Hosts = bars(r.TopX5UHosts, r.Total, func(string) string { return "#ad1457" })
	v.Origins = bars(r.TopOrigins, r.Total, func(string) string { return "#6d4c41" })

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
			if i%max(1, (n+7)/8) == 0 {
				v.Ticks = append(v.Ticks, tick{X: float64(i) * slot, Label: h.Start.UTC().Format("02 15h")})
			}
		}
	}
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
		v.Certs = append(v.Certs, certRow{Name: c.Name, NotAfter: c.NotAfter.UTC().Format("2006-01-02 15:04 MST"), Days: days, Class: class})
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
	"rows": func(n int) int { return 20 * n },
	"f": func(v float64) string {
		return strings.TrimSuffix(strings.TrimRight(strconv.FormatFloat(v, 'f', 2, 64), "0"), ".")
	},
}).Parse(dashboardHTML))
