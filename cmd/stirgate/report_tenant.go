package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/stirgate/stirgate/outcome"
)

// tenantCSVHeader is the header of `stirgate report --by tenant --format csv`.
var tenantCSVHeader = []string{"tenant", "total", "signed", "unsigned", "attest_a", "attest_b", "attest_c", "top_error", "top_error_n"}

// reportByTenant prints signing volume and attestation mix per tenant.
func reportByTenant(ctx context.Context, st outcome.Store, f outcome.Filter, format string, w io.Writer) error {
	f.Kind = outcome.KindSign
	gs, err := st.Groups(ctx, f, outcome.ByTenant)
	if err != nil {
		return err
	}
	switch format {
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(map[string]any{"by_tenant": gs})
	case "csv":
		cw := csv.NewWriter(w)
		cw.Write(tenantCSVHeader)
		for _, g := range gs {
			cw.Write([]string{g.Key, strconv.Itoa(g.Total), strconv.Itoa(g.Signed), strconv.Itoa(g.Unsigned),
				strconv.Itoa(g.A), strconv.Itoa(g.B), strconv.Itoa(g.C), g.TopError, strconv.Itoa(g.TopN)})
		}
		cw.Flush()
		return cw.Error()
	}
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintf(tw, "signatures per tenant\n\ntenant\tcalls\tsigned\tunsigned\tA\tB\tC\ttop error\n")
	if len(gs) == 0 {
		fmt.Fprintf(tw, "(none)\t\t\t\t\t\t\t\n")
	}
	for _, g := range gs {
		top := ""
		if g.TopError != "" {
			top = g.TopError + " (" + strconv.Itoa(g.TopN) + ")"
		}
		fmt.Fprintf(tw, "%s\t%d\t%d (%s)\t%d\t%d (%s)\t%d (%s)\t%d (%s)\t%s\n", g.Key, g.Total, g.Signed, share(g.Signed, g.Total),
			g.Unsigned, g.A, share(g.A, g.Signed), g.B, share(g.B, g.Signed), g.C, share(g.C, g.Signed), top)
	}
	return tw.Flush()
}

// recordsCSVHeader is the header of `stirgate report --records`: one row
// per signature, with the arrangement FCC 24-120 asks providers to keep
// (whose certificate signed, for which customer, by which rule, at whose
// request).
var recordsCSVHeader = []string{"time", "system", "uniqueid", "tenant", "spc", "customer", "rule", "client", "attest", "result",
	"error", "orig", "dest", "origid", "x5u", "peer", "source"}

// reportRecords writes every signing record of f, oldest pages first as
// the store pages them (newest first within the period).
func reportRecords(ctx context.Context, st outcome.Store, f outcome.Filter, format string, w io.Writer) error {
	f.Kind = outcome.KindSign
	f.Limit = outcome.MaxLimit
	if f.Until.IsZero() {
		// A fixed end keeps the pages still while signatures are written.
		f.Until = time.Now()
	}
	var cw *csv.Writer
	var enc *json.Encoder
	switch format {
	case "json":
		enc = json.NewEncoder(w)
	default: // csv (table makes no sense for records)
		cw = csv.NewWriter(w)
		cw.Write(recordsCSVHeader)
	}
	for {
		os, err := st.Query(ctx, f)
		if err != nil {
			return err
		}
		for _, o := range os {
			if enc != nil {
				// JSON lines: one object per record.
				if err := enc.Encode(map[string]any{"time": o.Time.UTC().Format(time.RFC3339Nano), "system": o.System, "uniqueid": o.UniqueID,
					"tenant": o.Tenant, "spc": o.SPC, "customer": o.Customer, "rule": o.Rule, "client": o.Client, "attest": o.Attest,
					"result": o.Result, "error": o.ErrorName, "orig": o.Orig, "dest": o.Dest, "origid": o.OrigID, "x5u": o.X5U,
					"peer": o.Peer, "source": string(o.Source)}); err != nil {
					return err
				}
				continue
			}
			cw.Write([]string{o.Time.UTC().Format(time.RFC3339Nano), o.System, o.UniqueID, o.Tenant, o.SPC, o.Customer, o.Rule, o.Client,
				o.Attest, o.Result, o.ErrorName, o.Orig, o.Dest, o.OrigID, o.X5U, o.Peer, string(o.Source)})
		}
		if len(os) < f.Limit {
			break
		}
		f.Offset += len(os)
	}
	if cw != nil {
		cw.Flush()
		return cw.Error()
	}
	return nil
}
