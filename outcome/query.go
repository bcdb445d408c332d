package outcome

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"
)

// The reads of the reports and the dashboard, all answered from cubes
// (rollup.go): the SQL groups by a few low-cardinality columns, Go adds
// up the rest.

const hourMS = int64(time.Hour / time.Millisecond)

// counts folds a cube into Counts by keyOf (skipping cells it refuses),
// largest first, then by key; limit > 0 keeps the first limit.
func counts(cube map[cell]int, keyOf func(cell) (string, bool), limit int) []Count {
	by := map[string]int{}
	for c, n := range cube {
		if k, ok := keyOf(c); ok {
			by[k] += n
		}
	}
	out := make([]Count, 0, len(by))
	for k, n := range by {
		if n != 0 {
			out = append(out, Count{k, n})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].N != out[j].N {
			return out[i].N > out[j].N
		}
		return out[i].Key < out[j].Key
	})
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out
}

// Unsigned results: a verifier saw no Identity ("none"), or a signer did
// not sign ("unsigned").
var unsignedResults = map[string]bool{"none": true, "unsigned": true}

func (s *sqlStore) Report(ctx context.Context, f Filter) (*Report, error) {
	r := &Report{Since: f.Since, Until: f.Until}
	fails := f
	fails.Result = "fail"
	// The report's five reads are independent: PostgreSQL answers them
	// on connections of their own at once (SQLite's one connection takes
	// them in turn).
	var (
		all, hosts, origins, gaps map[cell]int
		wg                        sync.WaitGroup
		errs                      [5]error
	)
	for i, read := range []func() error{
		func() (err error) {
			all, err = s.cube(ctx, f, "", cols{system: true, kind: true, result: true, attest: true, errorName: true})
			return err
		},
		func() (err error) { hosts, err = s.cube(ctx, fails, "x5u_host", cols{key: true}); return err },
		func() (err error) { origins, err = s.cube(ctx, fails, "fail_orig", cols{key: true}); return err },
		func() (err error) { r.Hourly, err = s.hourly(ctx, f); return err },
		func() (err error) {
			gaps, err = s.cube(ctx, Filter{Since: f.Since, Until: f.Until, System: f.System, Kind: KindGap}, "", cols{})
			return err
		},
	} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = read()
		}()
	}
	wg.Wait()
	if err := errors.Join(errs[:]...); err != nil {
		return nil, err
	}
	r.ByResult = counts(all, func(c cell) (string, bool) { return c.result, true }, 0)
	for _, c := range r.ByResult {
		r.Total += c.N
		if unsignedResults[c.Key] {
			r.Unsigned += c.N
		}
	}
	if r.Total > 0 {
		r.UnsignedShare = float64(r.Unsigned) / float64(r.Total)
	}
	r.ByAttest = counts(all, func(c cell) (string, bool) { return c.attest, c.attest != "" }, 0)
	r.ByNode = counts(all, func(c cell) (string, bool) { return c.system, true }, 0)
	r.ByError = counts(all, func(c cell) (string, bool) { return c.errorName, c.errorName != "" }, 0)
	r.TopX5UHosts = counts(hosts, func(c cell) (string, bool) { return c.key, true }, TopN)
	r.TopOrigins = counts(origins, func(c cell) (string, bool) { return c.key, true }, TopN)
	if f.Kind == "" || f.Kind == KindVerify {
		r.Inbound = side(all, KindVerify)
	}
	if f.Kind == "" || f.Kind == KindSign {
		r.Outbound = side(all, KindSign)
	}
	r.Gaps = gaps[cell{}]
	return r, nil
}

// failureResults are the results that count as failures of a direction:
// inbound, a failed check or an error; outbound, a call not signed.
var failureResults = map[string]map[string]bool{
	KindVerify: {"fail": true, "error": true},
	KindSign:   {"unsigned": true, "error": true},
}

// side is one direction of a report, from the report's cube.
func side(all map[cell]int, kind string) Side {
	success, unsigned := "pass", "none"
	if kind == KindSign {
		success, unsigned = "signed", "unsigned"
	}
	failures := failureResults[kind]
	var sd Side
	sd.ByResult = counts(all, func(c cell) (string, bool) { return c.result, c.kind == kind }, 0)
	for _, c := range sd.ByResult {
		sd.Total += c.N
		switch c.Key {
		case success:
			sd.Succeeded += c.N
		case unsigned:
			sd.Unsigned += c.N
		}
		if failures[c.Key] {
			sd.Failures += c.N
		}
	}
	if sd.Total > 0 {
		sd.SuccessShare = float64(sd.Succeeded) / float64(sd.Total)
		sd.UnsignedShare = float64(sd.Unsigned) / float64(sd.Total)
	}
	sd.ByAttest = counts(all, func(c cell) (string, bool) { return c.attest, c.kind == kind && c.attest != "" }, 0)
	sd.ByError = counts(all, func(c cell) (string, bool) {
		return c.errorName, c.kind == kind && c.errorName != "" && failures[c.result]
	}, 0)
	return sd
}

var likeEscaper = strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)

// groupDims maps a GroupBy to the cube dimension that keys it; BySystem
// reads the total rows by their system column.
var groupDims = map[GroupBy]string{BySPC: "spc", ByX5UHost: "x5u_host", ByPeer: "peer", BySystem: "", ByOrig: "orig", ByTenant: "tenant"}

func (s *sqlStore) Groups(ctx context.Context, f Filter, by GroupBy) ([]Group, error) {
	dim, ok := groupDims[by]
	if !ok {
		return nil, fmt.Errorf("store: no grouping by %q", by)
	}
	c := cols{key: true, result: true, attest: true, errorName: true}
	if by == BySystem {
		c = cols{system: true, result: true, attest: true, errorName: true}
	}
	cube, err := s.cube(ctx, f, dim, c)
	if err != nil {
		return nil, err
	}
	groups := map[string]*Group{}
	errs := map[string]map[string]int{}
	for k, n := range cube {
		key := k.key
		if by == BySystem {
			if k.system == "" {
				continue
			}
			key = k.system
		}
		g := groups[key]
		if g == nil {
			g = &Group{Key: key}
			groups[key] = g
		}
		g.Total += n
		switch k.result {
		case "pass":
			g.Pass += n
		case "fail", "error":
			g.Fail += n
		case "none":
			g.None += n
		case "signed":
			g.Signed += n
		case "unsigned":
			g.Unsigned += n
		}
		switch k.attest {
		case "A":
			g.A += n
		case "B":
			g.B += n
		case "C":
			g.C += n
		}
		// The most frequent failure of each group.
		if k.errorName != "" && (failed(k.result) || k.result == "unsigned") {
			if errs[key] == nil {
				errs[key] = map[string]int{}
			}
			errs[key][k.errorName] += n
		}
	}
	out := make([]Group, 0, len(groups))
	for k, g := range groups {
		if g.Total == 0 {
			continue
		}
		for name, n := range errs[k] {
			if n > g.TopN || n == g.TopN && name < g.TopError {
				g.TopError, g.TopN = name, n
			}
		}
		out = append(out, *g)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Total != out[j].Total {
			return out[i].Total > out[j].Total
		}
		return out[i].Key < out[j].Key
	})
	// Tenants are all listed: each is an arrangement the records account for.
	if len(out) > TopN && by != ByTenant {
		out = out[:TopN]
	}
	return out, nil
}

// hostOf is the host of a certificate URL: one carrier publishes many
// certificate URLs, and the operator asks "whose certificates fail".
func hostOf(u string) string {
	if p, err := url.Parse(u); err == nil && p.Host != "" {
		return p.Hostname()
	}
	return u
}

func (s *sqlStore) hourly(ctx context.Context, f Filter) ([]Hour, error) {
	cube, err := s.cube(ctx, f, "", cols{hour: true, kind: true, result: true, errorName: true})
	if err != nil {
		return nil, err
	}
	by := map[int64]*Hour{}
	for k, n := range cube {
		h := by[k.hour]
		if h == nil {
			h = &Hour{Start: time.UnixMilli(k.hour).UTC(), ByResult: map[string]int{}, Inbound: map[string]int{}, Outbound: map[string]int{}}
			by[k.hour] = h
		}
		h.ByResult[k.result] += n
		h.Total += n
		if k.kind == KindSign {
			h.Outbound[k.result] += n
			continue
		}
		h.Inbound[k.result] += n
		if k.errorName != "" && failureResults[KindVerify][k.result] {
			if h.InboundErrors == nil {
				h.InboundErrors = map[string]int{}
			}
			h.InboundErrors[k.errorName] += n
		}
	}
	out := make([]Hour, 0, len(by))
	for _, h := range by {
		if h.Total != 0 {
			out = append(out, *h)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Start.Before(out[j].Start) })
	return out, nil
}

// Systems lists the systems with outcomes matching f, in order: the
// dashboard's system picker.
func (s *sqlStore) Systems(ctx context.Context, f Filter) ([]string, error) {
	cube, err := s.cube(ctx, f, "", cols{system: true})
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(cube))
	for c := range cube {
		out = append(out, c.system)
	}
	sort.Strings(out)
	return out, nil
}
