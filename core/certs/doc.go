// Package certs holds everything stirgate knows about SHAKEN certificates:
// the TNAuthList extension of RFC 8226, the ATIS-1000080 certificate
// profile, the checks a verifier runs on a credential fetched from x5u
// (profile, path to the configured trust anchors, validity, CRL), the
// signer's credential, and a small lab PKI for tests and demonstrations.
//
// Verification follows crypto/x509's shape: a VerifyOptions struct whose
// zero fields mean defaults, except that nil Roots is an error: a SHAKEN
// verifier must never fall back to the system's web PKI roots.
package certs
