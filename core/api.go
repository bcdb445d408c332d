// Package core is stirgate's one public face: a Signer (STI-AS) and a
// Verifier (STI-VS), built from Options, safe for concurrent use. Every
// surface (C library, FastAGI, AMI, HTTP, SIP redirect) is a thin adapter
// over these two types.
package core

import (
	"time"

	"github.com/stirgate/stirgate/core/passport"
	"github.com/stirgate/stirgate/core/stir"
)

// SignRequest describes one call to sign. Either give the numbers directly
// (Orig, Dest) or the SIP headers (From, PAI, To) and let the Signer
// extract and canonicalise them. Attest, when empty, is chosen by policy.
type SignRequest struct {
	Orig string   // calling TN, any format tn.Canonical accepts
	Dest []string // called TNs

	From string // SIP From header value (used when Orig is empty and PAI is empty)
	PAI  string // P-Asserted-Identity header value (preferred over From)
	To   string // SIP To header value (used when Dest is empty)
	Date string // SIP Date header value; iat comes from it when fresh

	// Attest is the attestation the caller asks for; empty = policy. From a
	// network surface it may only lower what Policy grants (a customer with
	// AttestOverride may choose freely); see Trusted.
	Attest stir.Attestation
	// Trusted marks Attest as the operator's own decision, taken in the
	// operator's process (the C API called from a Kamailio script, the
	// CLI): it is used as given. Network surfaces (HTTP, FastAGI, SIP)
	// never set it, so no header or request field can raise attestation.
	Trusted bool
	// Client is the authenticated caller (an API token's name), recorded
	// with the signature; empty when the surface has no authentication.
	Client   string
	OrigID   string // empty = policy (per customer) or a stable UUID from CallID
	CallID   string // makes a generated origid stable across retries
	Customer string // policy key (customer or trunk name)
	Source   string // source address or trunk tag, a policy key for gateway traffic

	At time.Time // signing time; zero = Options.Now()

	// RCD is rich call data (RFC 9795) for this call; nil means the
	// customer's from policy, if any. Crn is the call reason.
	RCD *RCD
	Crn string
}

// RCD is rich call data to sign (RFC 9795): display name, logo URL, and a
// jCard inline (JSON text) or by URL. The Signer adds rcdi digests for the
// jCard and every URL.
type RCD = passport.RCD

// SignResult is what a signature produces.
type SignResult struct {
	Identity string           // full Identity header value
	Date     string           // Date header value matching iat (RFC 7231 IMF-fixdate)
	Attest   stir.Attestation // attestation used
	OrigID   string           // origid used
	Orig     string           // canonical orig.tn
	Dest     []string         // canonical dest.tn
	IAT      int64            // iat used
	X5U      string           // certificate URL
	Div      string           // div.tn of a diversion PASSporT (SignDiv only)
	HI       string           // div.hi of a diversion PASSporT (SignDiv only)
	Customer string           // policy customer the call was attributed to, if any
	Client   string           // authenticated caller (SignRequest.Client)
	Why      string           // how the attestation was chosen, for logs and records
	// Rule is the stable name of what decided the attestation
	// (policy.Rule*: customer_number, customer, gateway, default,
	// override, trusted_caller, requested_lower); empty for a diversion.
	Rule string
	// Tenant names the credential that signed, and SPC is its
	// certificate's service provider code (FCC 24-120 records).
	Tenant string
	SPC    string
}

// VerifyRequest is one received request, as the headers arrived.
type VerifyRequest struct {
	Identity []string // every Identity (and compact "y") header value, in order
	From     string   // From header value
	PAI      string   // P-Asserted-Identity header value, if any
	To       string   // To header value
	Date     string   // Date header value, if any
	// Target is the Request-URI (or a bare number): after a diversion
	// (RFC 8946) the call's target, which the last div PASSporT's dest
	// must name. Empty means To. A request without div PASSporTs is
	// judged against To alone.
	Target string

	// RequireIdentity makes a request with no SHAKEN Identity a failure
	// (428) rather than "none". Zero means Options.RequireIdentity.
	RequireIdentity bool
}

// DivRequest describes a retargeted call to sign with a diversion PASSporT
// (RFC 8946, ATIS-1000085). The received SHAKEN Identity is kept as it is:
// the Signer adds a div PASSporT beside it and never re-signs or drops it.
type DivRequest struct {
	// Identity holds the Identity header values received with the call.
	// One must be a decodable SHAKEN PASSporT: its orig.tn is the orig of
	// the div PASSporT (orig travels unchanged through diversions).
	Identity []string

	// Div is the diverting number: a TN in any form tn.Canonical accepts,
	// or a Diversion / History-Info entry's name-addr. Empty means the
	// dest of the received chain's last PASSporT, when it has exactly one.
	Div string
	// HI is the History-Info index of the diverting entry ("1.1"); set it
	// when History-Info rather than Diversion records the retargeting.
	HI string
	// Dest is the new target; Target (a Request-URI or To value) is used
	// when Dest is empty.
	Dest   []string
	Target string

	// Customer names the policy customer whose tenant signs the diversion;
	// empty: the default tenant.
	Customer string

	At time.Time // signing time; zero = Options.Now()
}
