// Package core is stirgate's one public face: a Signer (STI-AS) and a
// Verifier (STI-VS), built from Options, safe for concurrent use. Every
// surface (C library, FastAGI, AMI, HTTP, SIP redirect) is a thin adapter
// over these two types.
package core

import (
	"time"

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
}

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
	Customer string           // policy customer the call was attributed to, if any
	Client   string           // authenticated caller (SignRequest.Client)
	Why      string           // how the attestation was chosen, for logs and records
}

// VerifyRequest is one received request, as the headers arrived.
type VerifyRequest struct {
	Identity []string // every Identity (and compact "y") header value, in order
	From     string   // From header value
	PAI      string   // P-Asserted-Identity header value, if any
	To       string   // To header value
	Date     string   // Date header value, if any

	// RequireIdentity makes a request with no SHAKEN Identity a failure
	// (428) rather than "none". Zero means Options.RequireIdentity.
	RequireIdentity bool
}
