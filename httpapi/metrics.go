package httpapi

import (
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/stirgate/stirgate/core"
	"github.com/stirgate/stirgate/core/certs"
	"github.com/stirgate/stirgate/core/crl"
	"github.com/stirgate/stirgate/internal/buildinfo"
)

// Metrics are the Prometheus metrics of `stirgate serve`, on a registry of
// their own (never the global one, so that tests and embedders get exactly
// these series). Safe for concurrent use; a nil *Metrics records nothing.
type Metrics struct {
	reg       *prometheus.Registry
	requests  *prometheus.CounterVec
	signDur   *prometheus.HistogramVec
	verifyDur *prometheus.HistogramVec
	fetchDur  *prometheus.HistogramVec
	dropped   *prometheus.CounterVec
	reloads   *prometheus.CounterVec
	source    atomic.Pointer[Source]
	now       func() time.Time
}

// Source is the current signer and verifier, read at scrape time for the
// x5u cache counters and certificate expiry. A reload replaces it.
type Source struct {
	Signer   *core.Signer
	Verifier *core.Verifier
}

// Latency buckets from 0.1 ms to 2.5 s: signing is tens of microseconds,
// a cold verification waits for an x5u fetch bounded at 2 s.
var latencyBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5}

// NewMetrics builds the metrics on a fresh registry. now is the clock for
// certificate expiry (nil: time.Now).
func NewMetrics(now func() time.Time) *Metrics {
	if now == nil {
		now = time.Now
	}
	m := &Metrics{reg: prometheus.NewRegistry(), now: now}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "stirgate", Name: "requests_total",
		Help: "Signing and verification requests by surface (http, sip, agi), operation, result and stable error name.",
	}, []string{"surface", "op", "result", "error"})
	m.signDur = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "stirgate", Name: "sign_duration_seconds",
		Help: "Time to sign one call.", Buckets: latencyBuckets,
	}, []string{"surface"})
	m.verifyDur = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "stirgate", Name: "verify_duration_seconds",
		Help: "Time to verify one call, x5u fetch included.", Buckets: latencyBuckets,
	}, []string{"surface"})
	m.fetchDur = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "stirgate", Subsystem: "x5u", Name: "fetch_duration_seconds",
		Help: "Time of each x5u network fetch, by result (ok, error).", Buckets: latencyBuckets,
	}, []string{"result"})
	m.dropped = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "stirgate", Name: "dropped_total",
		Help: "Messages refused before any signing or verification (malformed, overload, oversized...).",
	}, []string{"surface", "reason"})
	m.reloads = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "stirgate", Name: "reloads_total",
		Help: "Configuration reloads (SIGHUP) by result (ok, error).",
	}, []string{"result"})
	m.reg.MustRegister(m.requests, m.signDur, m.verifyDur, m.fetchDur, m.dropped, m.reloads, sourceCollector{m}, buildinfo.Collector())
	// The runtime and the process, as every Go service exports them.
	m.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Registry returns the registry, for tests and for embedding more series.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the registry in the Prometheus exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// SetSource makes s the signer and verifier reported at scrape time.
func (m *Metrics) SetSource(s Source) {
	if m != nil {
		m.source.Store(&s)
	}
}

// Observe records one signing or verification. op is "sign" or "verify";
// outcome is signed, unsigned, pass, fail, none, error...; errName is the
// stable error name or "".
func (m *Metrics) Observe(surface, op string, d time.Duration, outcome, errName string) {
	if m == nil {
		return
	}
	m.requests.WithLabelValues(surface, op, outcome, errName).Inc()
	switch op {
	case "sign":
		m.signDur.WithLabelValues(surface).Observe(d.Seconds())
	case "verify":
		m.verifyDur.WithLabelValues(surface).Observe(d.Seconds())
	}
}

// ObserveFetch has the signature of x5u Options.Observe.
func (m *Metrics) ObserveFetch(_ string, d time.Duration, err error) {
	if m == nil {
		return
	}
	r := "ok"
	if err != nil {
		r = "error"
	}
	m.fetchDur.WithLabelValues(r).Observe(d.Seconds())
}

// Dropped counts a message refused before the core saw it.
func (m *Metrics) Dropped(surface, reason string) {
	if m != nil {
		m.dropped.WithLabelValues(surface, reason).Inc()
	}
}

// Reloaded counts a reload attempt.
func (m *Metrics) Reloaded(ok bool) {
	if m == nil {
		return
	}
	r := "ok"
	if !ok {
		r = "error"
	}
	m.reloads.WithLabelValues(r).Inc()
}

// sourceCollector reads the current verifier's cache counters and the
// signing certificate's expiry at scrape time.
type sourceCollector struct{ m *Metrics }

var (
	descCache = prometheus.NewDesc("stirgate_x5u_cache_total",
		"x5u cache events since the verifier was built (it is rebuilt on reload): hit, miss, fetch, fetch_error, negative_hit, stale_served, forbidden, disk_load, eviction, throttled (refused for max_fetches), disk_removed.",
		[]string{"event"}, nil)
	descEntries = prometheus.NewDesc("stirgate_x5u_cache_entries", "Entries in the x5u cache.", nil, nil)
	// Expiry as timestamps, so that an alert is `... - time() < 14 * 86400`
	// and a dashboard shows dates.
	descSignNotAfter = prometheus.NewDesc("stirgate_signing_cert_not_after_timestamp_seconds",
		"Expiry (notAfter, Unix time) of each certificate of each tenant's signing chains (current and next).",
		[]string{"spc", "subject", "x5u", "tenant"}, nil)
	descAnchorNotAfter = prometheus.NewDesc("stirgate_trust_anchor_not_after_timestamp_seconds",
		"Expiry (notAfter, Unix time) of each trust anchor of the verifier.",
		[]string{"subject"}, nil)
	descCRLNotAfter = prometheus.NewDesc("stirgate_crl_not_after_timestamp_seconds",
		"nextUpdate (Unix time) of each CRL the verifier checks: when it stops being current.",
		[]string{"issuer"}, nil)

	descLead = prometheus.NewDesc("stirgate_signing_cert_expiry_lead_seconds",
		"The smallest [signer] expiry_warn lead time each tenant's signing certificate is within (0: none). A scrape also logs a lead time newly crossed.",
		[]string{"spc", "x5u", "tenant"}, nil)

	// The fetched CRL (package crl), one series per configured URL.
	descCRLNext = prometheus.NewDesc("stirgate_crl_next_update_timestamp_seconds",
		"nextUpdate of the CRL held for each URL (absent until one is held).", []string{"url"}, nil)
	descCRLThis = prometheus.NewDesc("stirgate_crl_this_update_timestamp_seconds",
		"thisUpdate of the CRL held for each URL: its age is time() minus this.", []string{"url"}, nil)
	descCRLSuccess = prometheus.NewDesc("stirgate_crl_last_success_timestamp_seconds",
		"Last fetch of each CRL URL that gave a good CRL (absent since start if none).", []string{"url"}, nil)
	descCRLFetch = prometheus.NewDesc("stirgate_crl_fetch_total",
		"CRL fetches since the verifier was built, by result (ok, error: network, signature, times or replay).", []string{"url", "result"}, nil)
	descCRLUsable = prometheus.NewDesc("stirgate_crl_usable",
		"1 when the CRL held for the URL is within nextUpdate plus crl_grace, else 0 (crl_stale decides).", []string{"url"}, nil)
)

func (c sourceCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descCache
	ch <- descEntries
	ch <- descSignNotAfter
	ch <- descAnchorNotAfter
	ch <- descCRLNotAfter
	for _, d := range []*prometheus.Desc{descLead, descCRLNext, descCRLThis, descCRLSuccess, descCRLFetch, descCRLUsable} {
		ch <- d
	}
}

func (c sourceCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.m.source.Load()
	if s == nil {
		return
	}
	if s.Verifier != nil {
		st := s.Verifier.CacheStats()
		for _, e := range []struct {
			name string
			v    uint64
		}{
			{"hit", st.Hits}, {"miss", st.Misses}, {"fetch", st.Fetches}, {"fetch_error", st.FetchErrors},
			{"negative_hit", st.NegativeHits}, {"stale_served", st.StaleServed}, {"forbidden", st.Forbidden},
			{"disk_load", st.DiskLoads}, {"eviction", st.Evictions}, {"throttled", st.Throttled}, {"disk_removed", st.DiskRemoved},
		} {
			ch <- prometheus.MustNewConstMetric(descCache, prometheus.CounterValue, float64(e.v), e.name)
		}
		ch <- prometheus.MustNewConstMetric(descEntries, prometheus.GaugeValue, float64(st.Entries))
		seen := map[string]bool{}
		for _, a := range s.Verifier.Anchors() {
			if subj := a.Subject.String(); !seen[subj] {
				seen[subj] = true
				ch <- prometheus.MustNewConstMetric(descAnchorNotAfter, prometheus.GaugeValue, float64(a.NotAfter.Unix()), subj)
			}
		}
		seen = map[string]bool{}
		for _, c := range s.Verifier.CRL().Info() {
			if !seen[c.Issuer] {
				seen[c.Issuer] = true
				ch <- prometheus.MustNewConstMetric(descCRLNotAfter, prometheus.GaugeValue, float64(c.NextUpdate.Unix()), c.Issuer)
			}
		}
		if src, ok := s.Verifier.Revocation().(*crl.Source); ok {
			collectCRL(ch, src.Status())
		}
	}
	if s.Signer != nil {
		// Every tenant's chains, the next one too during a rotation: an
		// alert must see the certificate that will sign tomorrow.
		for _, t := range s.Signer.Tenants() {
			creds := []*certs.SigningCredential{t.Credential}
			urls := []string{t.X5U}
			if t.Next != nil {
				creds, urls = append(creds, t.Next.Credential), append(urls, t.Next.X5U)
			}
			for i, cred := range creds {
				for _, crt := range cred.Chain {
					ch <- prometheus.MustNewConstMetric(descSignNotAfter, prometheus.GaugeValue, float64(crt.NotAfter.Unix()),
						cred.SPC, crt.Subject.String(), urls[i], t.Name)
				}
			}
		}
		for _, e := range s.Signer.TenantExpiry(c.m.now()) {
			ch <- prometheus.MustNewConstMetric(descLead, prometheus.GaugeValue, e.Lead.Seconds(), e.SPC, e.X5U, e.Tenant)
		}
	}
}

func collectCRL(ch chan<- prometheus.Metric, sts []crl.Status) {
	unix := func(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }
	for _, st := range sts {
		if !st.NextUpdate.IsZero() {
			ch <- prometheus.MustNewConstMetric(descCRLNext, prometheus.GaugeValue, unix(st.NextUpdate), st.URL)
			ch <- prometheus.MustNewConstMetric(descCRLThis, prometheus.GaugeValue, unix(st.ThisUpdate), st.URL)
		}
		if !st.LastSuccess.IsZero() {
			ch <- prometheus.MustNewConstMetric(descCRLSuccess, prometheus.GaugeValue, unix(st.LastSuccess), st.URL)
		}
		ch <- prometheus.MustNewConstMetric(descCRLFetch, prometheus.CounterValue, float64(st.Fetches-st.Failures), st.URL, "ok")
		ch <- prometheus.MustNewConstMetric(descCRLFetch, prometheus.CounterValue, float64(st.Failures), st.URL, "error")
		usable := 0.0
		if st.Usable {
			usable = 1
		}
		ch <- prometheus.MustNewConstMetric(descCRLUsable, prometheus.GaugeValue, usable, st.URL)
	}
}
