package main

import "github.com/stirgate/stirgate/core/stir"

// Return codes. The values and families are libsecsipid 1.2's (negative,
// -1xx certificate and key, -2xx PASSporT JSON and signature, -3xx Identity
// header, -4xx HTTP and files), so that a Kamailio script written against
// the original branches the same way. Codes the original does not have are
// added inside the matching family and marked "stirgate" in README.md.
// Checks return 0 or one of these, never a positive value: the secsipid
// module hands a check's return value to the script, where a positive
// value would read as success and 0 would stop the route.
const (
	retOK = 0

	retErr      = -1 // generic failure, invalid argument (NULL, negative length)
	retInternal = -2 // stirgate: internal error or recovered panic; the worker survives
	retFork     = -3 // stirgate: called in a process forked after load; returned by shim.c alone (SECSIPID_EFORK)

	retCertInvalid       = -101 // chain does not lead to a trust anchor
	retCertInvalidFormat = -102 // no usable certificate or key in the x5u or key body
	retCertExpired       = -103 // a certificate of the chain is outside its validity
	retCertProcessing    = -105 // trust anchors or options could not be prepared
	retCertNoCAFile      = -106 // x5u mode without any trust anchor (CertCAFile or config)
	retCertReadCAFile    = -107 // CertCAFile unreadable or without a certificate
	retCertNoCAInter     = -108 // CertVerify bit 8 set without CertCAInter
	retCertReadCAInter   = -109 // CertCAInter unreadable
	retCertNoCRLFile     = -110 // CertVerify bit 16 set without CertCRLFile
	retCertReadCRLFile   = -111 // CRL unreadable or unusable
	retCertRevoked       = -112 // a certificate of the chain is revoked
	retCertProfile       = -113 // stirgate: leaf or chain breaks the SHAKEN certificate profile
	retCertInvalidEC     = -114 // key is not an ECDSA P-256 key
	retCertNoTNAuth      = -115 // stirgate: leaf has no usable TNAuthList
	retPrvKeyInvalid     = -151 // private key unparsable
	retPrvKeyFormat      = -152 // private key not PEM, not EC, or not P-256

	retJSONHdrParse        = -201 // JOSE header not JSON, or carries crit
	retJSONHdrAlg          = -202 // alg is not ES256
	retJSONHdrPpt          = -203 // ppt is not shaken
	retJSONHdrTyp          = -204 // typ is not passport
	retJSONHdrX5U          = -205 // x5u differs from the info parameter
	retNoX5U               = -206 // stirgate: signing without an x5u URL (argument or option x5u)
	retJSONPayloadParse    = -231 // claims not JSON, or a claim is missing or malformed
	retJSONPayloadExpired  = -232 // iat older than the expire argument
	retJSONPayloadFuture   = -233 // stirgate: iat in the future beyond the allowed skew
	retSignInput           = -241 // stirgate: orig, dest, attest or origid refused for signing
	retJSONSignatureBad    = -251 // signature does not verify
	retJSONSignatureSize   = -253 // signature not 64 bytes, or r/s out of range
	retJSONSignatureFailed = -254 // signing failed

	retSIPHdrParse = -301 // Identity value malformed (segments, parameters, size)
	retSIPHdrAlg   = -302 // alg parameter is not ES256
	retSIPHdrPpt   = -303 // ppt parameter not shaken, or info parameter missing/malformed
	retSIPHdrEmpty = -304 // no Identity value at all

	retHTTPInvalidURL = -401 // URL refused by the x5u policy (https only, no private hosts, ...)
	retHTTPGet        = -402 // fetch failed: connect, TLS, timeout, non-200, not preloaded offline
	retHTTPReadBody   = -404 // body empty, too large, or not a certificate chain
	retFileRead       = -451 // key or public key file unreadable
	retConfig         = -452 // stirgate: ConfigFile unreadable or invalid
)

// codeOf maps a stirgate error to its return code by the error's stable
// Name, never by its text.
func codeOf(err error) int {
	e := stir.As(err)
	if e == nil {
		return retInternal
	}
	if c, ok := codeByName[e.Name]; ok {
		return c
	}
	return retErr
}

var codeByName = map[string]int{
	stir.ErrNoIdentity.Name:      retSIPHdrEmpty,
	stir.ErrNotShaken.Name:       retSIPHdrPpt,
	stir.ErrTooManyIdentity.Name: retSIPHdrParse,
	stir.ErrIdentityTooLong.Name: retSIPHdrParse,
	stir.ErrHeaderMalformed.Name: retSIPHdrParse,
	stir.ErrCompactForm.Name:     retSIPHdrParse,
	stir.ErrInfoMissing.Name:     retSIPHdrPpt,
	stir.ErrInfoMalformed.Name:   retSIPHdrPpt,

	stir.ErrJSONMalformed.Name:   retJSONHdrParse,
	stir.ErrAlgUnsupported.Name:  retJSONHdrAlg,
	stir.ErrTypInvalid.Name:      retJSONHdrTyp,
	stir.ErrPptInvalid.Name:      retJSONHdrPpt,
	stir.ErrX5UMismatch.Name:     retJSONHdrX5U,
	stir.ErrCritUnsupported.Name: retJSONHdrParse,

	stir.ErrIATInvalid.Name:    retJSONPayloadParse,
	stir.ErrOrigInvalid.Name:   retJSONPayloadParse,
	stir.ErrDestInvalid.Name:   retJSONPayloadParse,
	stir.ErrAttestInvalid.Name: retJSONPayloadParse,
	stir.ErrOrigIDInvalid.Name: retJSONPayloadParse,
	stir.ErrNonCanonical.Name:  retJSONPayloadParse,
	stir.ErrOrigMismatch.Name:  retJSONPayloadParse,
	stir.ErrDestMismatch.Name:  retJSONPayloadParse,
	stir.ErrTNInvalid.Name:     retJSONPayloadParse,
	// Extensions (RFC 8946 div, RFC 9118 claim constraints): libsecsipid
	// knows neither; the nearest family is the payload's.
	stir.ErrDivInvalid.Name:      retJSONPayloadParse,
	stir.ErrDivNoShaken.Name:     retJSONPayloadParse,
	stir.ErrDivChainBroken.Name:  retJSONPayloadParse,
	stir.ErrDivOrigMismatch.Name: retJSONPayloadParse,
	stir.ErrClaimConstraint.Name: retJSONPayloadParse,
	stir.ErrRCDInvalid.Name:      retJSONPayloadParse,
	stir.ErrRCDIMismatch.Name:    retJSONPayloadParse,

	stir.ErrStaleIAT.Name:   retJSONPayloadExpired,
	stir.ErrStaleDate.Name:  retJSONPayloadExpired,
	stir.ErrDateFormat.Name: retJSONPayloadExpired,
	stir.ErrFutureIAT.Name:  retJSONPayloadFuture,

	stir.ErrX5UForbidden.Name:   retHTTPInvalidURL,
	stir.ErrX5UFetchFailed.Name: retHTTPGet,
	stir.ErrX5UOffline.Name:     retHTTPGet,
	stir.ErrX5UBadContent.Name:  retHTTPReadBody,

	stir.ErrCertProfile.Name:   retCertProfile,
	stir.ErrCertUntrusted.Name: retCertInvalid,
	stir.ErrCertExpired.Name:   retCertExpired,
	stir.ErrCertRevoked.Name:   retCertRevoked,
	stir.ErrCertNoTNAuth.Name:  retCertNoTNAuth,
	stir.ErrCertTNScope.Name:   retCertNoTNAuth,
	stir.ErrCRLUnusable.Name:   retCertReadCRLFile,

	stir.ErrSignatureMalformed.Name: retJSONSignatureSize,
	stir.ErrSignatureInvalid.Name:   retJSONSignatureBad,

	stir.ErrSignInput.Name:       retSignInput,
	stir.ErrSignDate.Name:        retSignInput,
	stir.ErrSignNotAllowed.Name:  retSignInput,
	stir.ErrSignCertInvalid.Name: retSignInput,
	stir.ErrSignKey.Name:         retPrvKeyFormat,

	stir.ErrAlreadySigned.Name:    retSignInput,
	stir.ErrNotInitialInvite.Name: retErr,

	stir.ErrInternal.Name: retInternal,
}
