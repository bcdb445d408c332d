package web

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/stirgate/stirgate/outcome"
)

// The failure reasons over time: per hour, the inbound failures (fail and
// error) split by error name, each as its share of that hour's failures,
// never of all calls, so a quiet hour with one failure and a busy hour
// with a thousand read alike.

// reasonColours are given to the most frequent reasons of the period, in
// order; the rest share "other".
var reasonColours = []string{"#c62828", "#ef6c00", "#6a1b9a", "#1565c0", "#00838f", "#558b2f"}

const otherReasons = "other"

type reasonRect struct {
	rect
	Hour, Error string
	N, Of       int
	Pct         string
}

type reasonKey struct {
	Key, Fill, Href string
	N               int
	Pct             string
}

type reasonsChart struct {
	Rects  []reasonRect
	Legend []reasonKey
}

func buildReasons(r *outcome.Report, f outcome.Filter, w, h float64) reasonsChart {
	var c reasonsChart
	fill := map[string]string{}
	for i, e := range r.Inbound.ByError {
		if i == len(reasonColours) {
			break
		}
		fill[e.Key] = reasonColours[i]
		c.Legend = append(c.Legend, reasonKey{Key: e.Key, Fill: reasonColours[i], N: e.N, Pct: pct(e.N, r.Inbound.Failures),
			Href: drill(f, "kind", outcome.KindVerify, "error", e.Key)})
	}
	other := r.Inbound.Failures
	for _, k := range c.Legend {
		other -= k.N
	}
	if other > 0 {
		c.Legend = append(c.Legend, reasonKey{Key: otherReasons, Fill: "#9e9e9e", N: other, Pct: pct(other, r.Inbound.Failures)})
	}
	n := len(r.Hourly)
	if n == 0 {
		return c
	}
	slot := w / float64(n)
	for i, hr := range r.Hourly {
		of := hr.Inbound["fail"] + hr.Inbound["error"]
		if of == 0 {
			continue
		}
		by := map[string]int{}
		named := 0
		for name, k := range hr.InboundErrors {
			named += k
			if _, ok := fill[name]; ok {
				by[name] += k
			} else {
				by[otherReasons] += k
			}
		}
		// Failures without a name count as other too: the column is
		// always the hour's failures, whole.
		if of > named {
			by[otherReasons] += of - named
		}
		keys := make([]string, 0, len(by))
		for k := range by {
			keys = append(keys, k)
		}
		// Stacked in legend order, so colours stack the same every hour.
		rank := func(k string) int {
			for j, l := range c.Legend {
				if l.Key == k {
					return j
				}
			}
			return len(c.Legend)
		}
		sort.Slice(keys, func(a, b int) bool { return rank(keys[a]) < rank(keys[b]) })
		y := h
		hour := hr.Start.UTC().Format("2006-01-02 15:00")
		for _, k := range keys {
			hgt := h * float64(by[k]) / float64(of)
			y -= hgt
			col, ok := fill[k]
			if !ok {
				col = "#9e9e9e"
			}
			c.Rects = append(c.Rects, reasonRect{
				rect: rect{X: float64(i)*slot + 1, Y: y, W: max(slot-2, 1), H: hgt, Fill: col,
					Title: fmt.Sprintf("%s %s: %d of %d failures (%s)", hour, k, by[k], of, pct(by[k], of))},
				Hour: hour, Error: k, N: by[k], Of: of, Pct: pct(by[k], of),
			})
		}
	}
	return c
}

// systemLister is what the system picker needs of a store; a store
// without it offers the systems of the report.
type systemLister interface {
	Systems(ctx context.Context, f outcome.Filter) ([]string, error)
}

// systemChoices are the systems (nodes) with calls in the period, for the
// picker, whichever system is picked now; the picked one is always there.
func (h *handler) systemChoices(ctx context.Context, f outcome.Filter, r *outcome.Report) []string {
	var list []string
	if sl, ok := h.opts.Store.(systemLister); ok {
		all := f
		all.System = ""
		var err error
		if list, err = sl.Systems(ctx, all); err != nil {
			h.opts.Logger.Warn("outcome store: systems", "err", err)
		}
	} else {
		for _, c := range r.ByNode {
			list = append(list, c.Key)
		}
	}
	found := f.System == ""
	for _, s := range list {
		found = found || s == f.System
	}
	if !found {
		list = append(list, f.System)
	}
	sort.Strings(list)
	return list
}

// rangeParam is how a period is written back into the form: as given
// (24h, an RFC 3339 time), or the default window.
func rangeParam(v string, d time.Duration) string {
	if v != "" {
		return v
	}
	if d%time.Hour == 0 {
		return fmt.Sprintf("%dh", d/time.Hour)
	}
	return d.String()
}
