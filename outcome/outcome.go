// Package outcome keeps every verification and signing outcome durably: the
// system of record that the FastAGI server writes and the AMI listener
// enriches. SQLite is the embedded default; PostgreSQL serves several nodes.
package outcome

import (
	"context"
	"time"
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
