package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/stirgate/stirgate/outcome"
)

func init() {
	register("report", "summarise recorded outcomes: results, attestation, errors, failing x5u hosts and origins", runReport)
}

// sinceValue accepts a Go duration meaning that long ago ("24h"; a week
// is "168h") or an RFC 3339 time.
func sinceValue(v string, now time.Time) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(v); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("%q: want a duration such as 24h or an RFC 3339 time", v)
}

// runReport prints a Report of [store] for a period.
func runReport(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("report", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "", "config file (default: embedded lab config)")
	since := fs.String("since", "24h", "start: a duration ago (24h) or an RFC 3339 time; empty for all")
	until := fs.String("until", "", "end (exclusive): a duration ago or an RFC 3339 time; empty for now")
	format := fs.String("format", "table", "table, json or csv")
	system := fs.String("system", "", "only this Asterisk system")
	by := fs.String("by", "", "tenant: signing volume and attestation mix per tenant")
	records := fs.Bool("records", false, "one row per signature with its arrangement (tenant, spc, customer, rule, client): the FCC 24-120 records; --format csv or json")
	tenant := fs.String("tenant", "", "only this tenant's signatures")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	fail := func(err error) int {
		fmt.Fprintf(stderr, "stirgate report: %v\n", err)
		return exitUsage
	}
	switch *format {
	case "table", "json", "csv":
	default:
		return fail(fmt.Errorf("--format %q: want table, json or csv", *format))
	}
	now := time.Now()
	f := outcome.Filter{System: *system}
	var err error
	if f.Since, err = sinceValue(*since, now); err != nil {
		return fail(fmt.Errorf("--since %w", err))
	}
	if f.Until, err = sinceValue(*until, now); err != nil {
		return fail(fmt.Errorf("--until %w", err))
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		return fail(err)
	}
	sc := cfg.Store.WithDefaults()
	st, err := outcome.Open(ctx, outcome.Options{Driver: sc.Driver, Path: cfg.ResolveState(sc.Path), DSN: sc.DSN.Reveal()})
	if err != nil {
		return fail(fmt.Errorf("store: %w", err))
	}
	defer st.Close()
	f.Tenant = *tenant
	switch {
	case *by != "" && *by != "tenant":
		return fail(fmt.Errorf("--by %q: want tenant", *by))
	case *by != "" && *records:
		return fail(fmt.Errorf("--by and --records do not go together"))
	case *by == "tenant":
		err = reportByTenant(ctx, st, f, *format, stdout)
	case *records:
		err = reportRecords(ctx, st, f, *format, stdout)
	default:
		if *tenant != "" {
			return fail(fmt.Errorf("--tenant needs --by tenant or --records"))
		}
	}
	if *by != "" || *records {
		if err != nil {
			fmt.Fprintf(stderr, "stirgate report: %v\n", err)
			return exitFail
		}
		return exitOK
	}
	rep, err := st.Report(ctx, f)
	if err != nil {
		fmt.Fprintf(stderr, "stirgate report: %v\n", err)
		return exitFail
	}
	switch *format {
	case "json":
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		err = enc.Encode(rep)
	case "csv":
		err = reportCSV(stdout, rep)
	default:
		err = reportTable(stdout, rep)
	}
	if err != nil {
		fmt.Fprintf(stderr, "stirgate report: %v\n", err)
		return exitFail
	}
	return exitOK
}

func share(n, total int) string {
	if total == 0 {
		return "0.0%"
	}
	return strconv.FormatFloat(100*float64(n)/float64(total), 'f', 1, 64) + "%"
}

func period(r *outcome.Report) string {
	from, to := "the beginning", "now"
	if !r.Since.IsZero() {
		from = r.Since.UTC().Format(time.RFC3339)
	}
	if !r.Until.IsZero() {
		to = r.Until.UTC().Format(time.RFC3339)
	}
	return from + " to " + to
}

type reportSection struct {
	title string
	rows  []outcome.Count
	of    int // the denominator of the shares
}

// sideSections are one direction's breakdowns: results and attestations
// as shares of the direction's calls, errors as shares of its failures.
func sideSections(sd outcome.Side) []reportSection {
	return []reportSection{
		{"result", sd.ByResult, sd.Total},
		{"attestation", sd.ByAttest, sd.Total},
		{"error (share of failures)", sd.ByError, sd.Failures},
	}
}

func reportTable(w io.Writer, r *outcome.Report) error {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintf(tw, "outcomes from %s\n", period(r))
	for _, d := range []struct {
		name, success string
		sd            outcome.Side
	}{{"inbound (verification)", "passed", r.Inbound}, {"outbound (signing)", "signed", r.Outbound}} {
		fmt.Fprintf(tw, "\n%s\t%d\t\n", strings.ToUpper(d.name[:1])+d.name[1:], d.sd.Total)
		fmt.Fprintf(tw, "  %s\t%d\t%s\n", d.success, d.sd.Succeeded, share(d.sd.Succeeded, d.sd.Total))
		fmt.Fprintf(tw, "  unsigned\t%d\t%s\n", d.sd.Unsigned, share(d.sd.Unsigned, d.sd.Total))
		fmt.Fprintf(tw, "  failures\t%d\t%s\n", d.sd.Failures, share(d.sd.Failures, d.sd.Total))
		for _, s := range sideSections(d.sd) {
			fmt.Fprintf(tw, "  %s\t\t\n", s.title)
			if len(s.rows) == 0 {
				fmt.Fprintf(tw, "    (none)\t\t\n")
			}
			for _, c := range s.rows {
				fmt.Fprintf(tw, "    %s\t%d\t%s\n", c.Key, c.N, share(c.N, s.of))
			}
		}
	}
	fmt.Fprintf(tw, "\nInbound failures\t\t\n")
	for _, s := range []reportSection{{"failing x5u host", r.TopX5UHosts, r.Inbound.Failures}, {"failing origin", r.TopOrigins, r.Inbound.Failures}} {
		fmt.Fprintf(tw, "  %s\t\t\n", s.title)
		if len(s.rows) == 0 {
			fmt.Fprintf(tw, "    (none)\t\t\n")
		}
		for _, c := range s.rows {
			fmt.Fprintf(tw, "    %s\t%d\t%s\n", c.Key, c.N, share(c.N, s.of))
		}
	}
	fmt.Fprintf(tw, "\nlistener gaps\t%d\t\n", r.Gaps)
	fmt.Fprintf(tw, "\nhour (UTC)\tinbound\toutbound\n")
	for _, h := range r.Hourly {
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", h.Start.UTC().Format("2006-01-02 15:00"), byResult(h.Inbound), byResult(h.Outbound))
	}
	return tw.Flush()
}

// resultKeys lists a bucket's results, the usual ones first in a fixed
// order, then any others sorted.
func resultKeys(m map[string]int) []string {
	known := []string{"pass", "fail", "none", "signed", "unsigned", "error"}
	var keys, other []string
	for _, k := range known {
		if m[k] > 0 {
			keys = append(keys, k)
		}
	}
	for k := range m {
		if !slices.Contains(known, k) && m[k] > 0 {
			other = append(other, k)
		}
	}
	sort.Strings(other)
	return append(keys, other...)
}

func byResult(m map[string]int) string {
	s := ""
	for _, k := range resultKeys(m) {
		{
			if s != "" {
				s += " "
			}
			s += k + "=" + strconv.Itoa(m[k])
		}
	}
	return s
}

// csvHeader is the one header of the CSV form: every column holds one
// field, never two packed together.
var csvHeader = []string{"direction", "section", "key", "hour", "count", "share"}

// reportCSV writes one row per figure. Shares are fractions of the
// direction's calls, except errors, which are fractions of its failures;
// hours give one row per hour, direction and result.
func reportCSV(w io.Writer, r *outcome.Report) error {
	cw := csv.NewWriter(w)
	cw.Write(csvHeader)
	frac := func(n, of int) string {
		if of == 0 {
			return "0.0000"
		}
		return strconv.FormatFloat(float64(n)/float64(of), 'f', 4, 64)
	}
	row := func(dir, section, key, hour string, n int, sh string) {
		cw.Write([]string{dir, section, key, hour, strconv.Itoa(n), sh})
	}
	for _, d := range []struct {
		name string
		sd   outcome.Side
	}{{"inbound", r.Inbound}, {"outbound", r.Outbound}} {
		row(d.name, "total", "", "", d.sd.Total, "")
		row(d.name, "succeeded", "", "", d.sd.Succeeded, frac(d.sd.Succeeded, d.sd.Total))
		row(d.name, "unsigned", "", "", d.sd.Unsigned, frac(d.sd.Unsigned, d.sd.Total))
		row(d.name, "failures", "", "", d.sd.Failures, frac(d.sd.Failures, d.sd.Total))
		for _, c := range d.sd.ByResult {
			row(d.name, "result", c.Key, "", c.N, frac(c.N, d.sd.Total))
		}
		for _, c := range d.sd.ByAttest {
			row(d.name, "attestation", c.Key, "", c.N, frac(c.N, d.sd.Total))
		}
		for _, c := range d.sd.ByError {
			row(d.name, "error", c.Key, "", c.N, frac(c.N, d.sd.Failures))
		}
	}
	for _, c := range r.TopX5UHosts {
		row("inbound", "failing x5u host", c.Key, "", c.N, frac(c.N, r.Inbound.Failures))
	}
	for _, c := range r.TopOrigins {
		row("inbound", "failing origin", c.Key, "", c.N, frac(c.N, r.Inbound.Failures))
	}
	row("", "gaps", "", "", r.Gaps, "")
	for _, h := range r.Hourly {
		start := h.Start.UTC().Format(time.RFC3339)
		for _, d := range []struct {
			name string
			m    map[string]int
		}{{"inbound", h.Inbound}, {"outbound", h.Outbound}} {
			for _, k := range resultKeys(d.m) {
				row(d.name, "hour", k, start, d.m[k], "")
			}
		}
	}
	cw.Flush()
	return cw.Error()
}
