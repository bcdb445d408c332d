// Package outcome keeps every verification and signing outcome durably: the
// system of record that the FastAGI server writes and the AMI listener
// enriches. SQLite is the embedded default; PostgreSQL serves several nodes.
package outcome

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/stirgate/stirgate/core"
	"github.com/stirgate/stirgate/core/stir"
)

// Source says which surface recorded an outcome.
type Source string

// Sources.
const (
	SourceAGI    Source = "agi"
	SourceAMI    Source = "ami"
	SourceNative Source = "native" // Asterisk's own res_stir_shaken, reported over AMI
	SourceHTTP   Source = "http"
	SourceSIP    Source = "sip"
	// The Kamailio libraries, through the spool: libstirgate (app_lua,
	// LuaJIT) and the libsecsipid drop-in.
	SourceKamailio Source = "kamailio"
	SourceSecsipid Source = "secsipid"
)

// Outcome is one record. (System, UniqueID, Kind) is its identity: writing
// the same key twice merges into one row, never two.
type Outcome struct {
	Time        time.Time
	System      string // Asterisk system name or node name
	UniqueID    string // Asterisk Uniqueid, or a request id
	LinkedID    string
	Kind        string // "verify" or "sign"
	Direction   string // "inbound" or "outbound"
	Orig        string
	Dest        string
	Result      string // pass, fail, none, signed, unsigned, error
	Verstat     string
	Attest      string
	OrigID      string
	SIPCode     int
	ErrorName   string
	Reason      string
	X5U         string
	SPC         string
	HangupCause string
	Source      Source

	// Peer is where the request came from: the source address of a SIP
	// request, the otg of its From when present, or a Kamailio worker's
	// source IP; the dashboard groups trunks by it.
	Peer string
	// Profile and Mode name the SIP redirect server's answer profile and
	// listener mode (auto, sign, verify).
	Profile string
	Mode    string
	// Client is the HTTP API's authenticated client.
	Client string

	// Tenant, Customer and Rule record a signature's arrangement (FCC
	// 24-120): whose credential signed (SPC beside it), the policy
	// customer the call was attributed to, and the stable name of the
	// rule that decided the attestation (customer_number, customer,
	// gateway, default, override, trusted_caller, requested_lower).
	Tenant   string
	Customer string
	Rule     string

	// Div are the diverting numbers of a verified div chain (RFC 8946),
	// first diversion first, comma-separated; RCDNam and RCDCrn the
	// verified rich call data's display name and call reason (RFC 9795).
	// Set on a pass only, as the verification result shows them.
	Div    string
	RCDNam string
	RCDCrn string

	// Until ends the interval that Time starts, for records that span one:
	// a "gap" record says the listener saw nothing from Time to Until.
	Until time.Time
}

// Kinds of record.
const (
	KindVerify = "verify"
	KindSign   = "sign"
	KindGap    = "gap" // the AMI listener was disconnected from Time to Until
)

// Recorder is the one method a surface needs to write outcomes.
type Recorder interface {
	Record(ctx context.Context, o Outcome) error
}

// SetExtensions copies the verified PASSporT extensions of r into o: the
// div chain's diverting numbers and the rcd display name and call reason.
// A result that did not pass leaves them empty, as its JSON does.
func (o *Outcome) SetExtensions(r *stir.Result) {
	if r == nil || r.Result != stir.Pass {
		return
	}
	tns := make([]string, len(r.Div))
	for i, d := range r.Div {
		tns[i] = d.TN
	}
	o.Div = strings.Join(tns, ",")
	if r.RCD != nil {
		o.RCDNam, o.RCDCrn = r.RCD.Nam, r.RCD.Crn
	}
}

// SetRefused copies whom a refused signature was for into o: tenant,
// SPC, customer and rule, when the signer had attributed the call before
// refusing it (a *core.SignError); otherwise it leaves o as it is. Every
// surface that records a sign failure calls it, so the arrangement
// records count a tenant's refusals beside its signatures.
func (o *Outcome) SetRefused(err error) {
	var se *core.SignError
	if !errors.As(err, &se) {
		return
	}
	o.Tenant, o.Customer, o.Rule, o.SPC = se.Tenant, se.Customer, se.Rule, se.SPC
}

// SetSigned copies what a signature decided into o: tenant, SPC,
// customer, rule, the certificate URL and the authenticated client. Every
// surface that records a signature calls it, so the arrangement records
// read the same whichever surface signed.
func (o *Outcome) SetSigned(r *core.SignResult) {
	if r == nil {
		return
	}
	o.Tenant, o.Customer, o.Rule, o.SPC, o.X5U = r.Tenant, r.Customer, r.Rule, r.SPC, r.X5U
	if r.Client != "" {
		o.Client = r.Client
	}
}
