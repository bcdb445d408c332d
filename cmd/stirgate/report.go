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
	"text/tabwriter"
	"time"

	"github.com/stirgate/stirgate/ami/store"
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
	f := store.Filter{System: *system}
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
	st, err := store.Open(ctx, store.Options{Driver: sc.Driver, Path: cfg.ResolveState(sc.Path), DSN: sc.DSN.Reveal()})
	if err != nil {
		return fail(fmt.Errorf("store: %w", err))
	}
	defer st.Close()
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

func period(r *store.Report) string {
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
	rows  []store.Count
}

func sections(r *store.Report) []reportSection {
	return []reportSection{
		{"result", r.ByResult},
		{"attestation", r.ByAttest},
		{"error", r.ByError},
		{"failing x5u host", r.TopX5UHosts},
		{"failing origin", r.TopOrigins},
	}
}

func reportTable(w io.Writer, r *store.Report) error {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintf(tw, "outcomes from %s\n", period(r))
	fmt.Fprintf(tw, "total\t%d\t\n", r.Total)
	fmt.Fprintf(tw, "unsigned\t%d\t%s\n", r.Unsigned, share(r.Unsigned, r.Total))
	fmt.Fprintf(tw, "listener gaps\t%d\t\n", r.Gaps)
	for _, s := range sections(r) {
		fmt.Fprintf(tw, "\n%s\t\t\n", s.title)
		if len(s.rows) == 0 {
			fmt.Fprintf(tw, "  (none)\t\t\n")
		}
		for _, c := range s.rows {
			fmt.Fprintf(tw, "  %s\t%d\t%s\n", c.Key, c.N, share(c.N, r.Total))
		}
	}
	fmt.Fprintf(tw, "\nhour (UTC)\ttotal\tby result\n")
	for _, h := range r.Hourly {
		fmt.Fprintf(tw, "  %s\t%d\t%s\n", h.Start.UTC().Format("2006-01-02 15:00"), h.Total, byResult(h.ByResult))
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

// reportCSV writes one row per figure: section,key,count,share. Hours are
// section "hour" with key "<start>/<result>".
func reportCSV(w io.Writer, r *store.Report) error {
	cw := csv.NewWriter(w)
	cw.Write([]string{"section", "key", "count", "share"})
	cw.Write([]string{"total", "", strconv.Itoa(r.Total), ""})
	cw.Write([]string{"unsigned", "", strconv.Itoa(r.Unsigned), strconv.FormatFloat(r.UnsignedShare, 'f', 4, 64)})
	cw.Write([]string{"gaps", "", strconv.Itoa(r.Gaps), ""})
	for _, s := range sections(r) {
		for _, c := range s.rows {
			sh := 0.0
			if r.Total > 0 {
				sh = float64(c.N) / float64(r.Total)
			}
			cw.Write([]string{s.title, c.Key, strconv.Itoa(c.N), strconv.FormatFloat(sh, 'f', 4, 64)})
		}
	}
	for _, h := range r.Hourly {
		start := h.Start.UTC().Format(time.RFC3339)
		cw.Write([]string{"hour", start, strconv.Itoa(h.Total), ""})
		for _, k := range resultKeys(h.ByResult) {
			{
				cw.Write([]string{"hour", start + "/" + k, strconv.Itoa(h.ByResult[k]), ""})
			}
		}
	}
	cw.Flush()
	return cw.Error()
}
