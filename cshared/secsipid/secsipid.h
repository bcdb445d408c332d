/*
 * secsipid.h - libsecsipid 1.2 C API, as implemented by stirgate's drop-in
 * libsecsipid.so.1 (SONAME libsecsipid.so.1).
 *
 * The signatures are exactly those of libsecsipid 1.2, so that programs
 * built against the original (Kamailio's secsipid_proc.so) load this
 * library unchanged. SecSIPIDSignJSONHPPrvKey and SecSIPIDOptGetN are the
 * two functions newer libsecsipid releases added.
 *
 * Conventions
 *   - Strings are NUL-terminated unless a length argument is given; a
 *     length of 0 means "NUL-terminated". Identity values from Kamailio
 *     are NOT NUL-terminated: pass their length.
 *   - Outputs (*outPtr) are malloc()ed; the caller free()s them. On any
 *     failure *outPtr is set to NULL (and *outLen to 0), so freeing it
 *     unconditionally is safe.
 *   - Signing functions return strlen(*outPtr) (> 0) on success, a
 *     negative code on failure.
 *   - Check functions return 0 when the identity is valid and a negative
 *     code otherwise, never a positive value.
 *   - Option functions return 0 when set, -1 otherwise.
 *   - Every function is thread-safe, recovers from internal panics (code
 *     -2) and refuses NULL or over-long (> 64 KiB) arguments (code -1).
 *   - The library starts the Go runtime when loaded: load it only after
 *     fork(), in each process that uses it (Kamailio's secsipid module
 *     does, by dlopen()ing secsipid_proc.so in child_init). The library
 *     records the pid that loaded it; in a process forked after that
 *     (even one whose parent never called it) every function fails at
 *     once without entering Go, instead of hanging: SECSIPID_EFORK (-3)
 *     from signing, check and fetch functions, -1 from the option
 *     functions and SecSIPIDSetFileCacheOptions, outputs cleared, and one
 *     line on stderr per process. The parent is not affected.
 *
 * Return codes (see README.md for the mapping from stirgate error names):
 *     0  valid / success
 *    -1  generic failure, invalid argument, unknown option
 *    -2  internal error or recovered panic                       (stirgate)
 *    -3  called in a process forked after the library was loaded
 *        (SECSIPID_EFORK; load the library after fork())         (stirgate)
 *  -101  certificate chain does not lead to a trust anchor
 *  -102  no usable certificate or public key in the key/x5u body
 *  -103  certificate outside its validity period
 *  -105  trust anchors or CRL could not be prepared
 *  -106  no trust anchor configured (CertCAFile or ConfigFile) for x5u mode
 *  -107  CertCAFile unreadable or without a PEM certificate
 *  -108  CertVerify bit 8 set but CertCAInter not set
 *  -109  CertCAInter unreadable
 *  -110  CertVerify bit 16 set but no CRL configured
 *  -111  CRL unreadable, unusable or stale
 *  -112  certificate revoked
 *  -113  certificate breaks the SHAKEN profile                   (stirgate)
 *  -114  key is not an ECDSA P-256 key
 *  -115  leaf certificate has no usable TNAuthList              (stirgate)
 *  -151  private key unparsable
 *  -152  private key not PEM, not EC or not P-256
 *  -201  JOSE header not JSON (or has crit)
 *  -202  alg is not ES256
 *  -203  ppt is not shaken
 *  -204  typ is not passport
 *  -205  x5u differs from the info parameter
 *  -206  signing without an x5u URL (argument or option x5u)     (stirgate)
 *  -231  claims not JSON, or a claim missing or malformed
 *  -232  iat older than the expire argument
 *  -233  iat in the future (more than 60 s)                      (stirgate)
 *  -241  orig, dest, attest or origid refused for signing        (stirgate)
 *  -251  signature does not verify
 *  -253  signature not 64 bytes, or r/s out of range
 *  -254  signing failed
 *  -301  Identity value malformed (segments, parameters, size)
 *  -302  alg parameter is not ES256
 *  -303  ppt parameter not shaken, or info parameter missing/malformed
 *  -304  no Identity value
 *  -401  URL refused by the x5u policy (https only, public hosts, ...)
 *  -402  fetch failed (connect, TLS, timeout, non-200, offline)
 *  -404  fetched body empty, too large or not a certificate chain
 *  -451  key file unreadable
 *  -452  ConfigFile unreadable or invalid                        (stirgate)
 */

#ifndef STIRGATE_SECSIPID_H
#define STIRGATE_SECSIPID_H

#define SECSIPID_VERSION 0x1020000

/* Returned in a process forked after the library was loaded (stirgate). */
#define SECSIPID_EFORK (-3)

#ifdef __cplusplus
extern "C" {
#endif

/* Sign headerJSON and payloadJSON (JSON objects, used as given) with the
 * P-256 private key in the PEM file prvkeyPath. *outPtr receives the
 * compact JWS "header.payload.signature". */
extern int SecSIPIDSignJSONHP(char* headerJSON, char* payloadJSON,
		char* prvkeyPath, char** outPtr);

/* SecSIPIDSignJSONHP with the PEM private key itself in prvkeyData. */
extern int SecSIPIDSignJSONHPPrvKey(char* headerJSON, char* payloadJSON,
		char* prvkeyData, char** outPtr);

/* Build a full SHAKEN Identity header value
 * "h.p.s;info=<x5u>;alg=ES256;ppt=shaken" for a call from origTN to
 * destTN with attestation attestVal (A, B or C). origID NULL or "" gets a
 * fresh UUID; x5uVal NULL or "" uses the option x5u. prvkeyPath is the
 * PEM private key file (parsed once, re-read when the file changes). */
extern int SecSIPIDGetIdentity(char* origTN, char* destTN, char* attestVal,
		char* origID, char* x5uVal, char* prvkeyPath, char** outPtr);

/* SecSIPIDGetIdentity with the PEM private key itself in prvkeyData. */
extern int SecSIPIDGetIdentityPrvKey(char* origTN, char* destTN,
		char* attestVal, char* origID, char* x5uVal, char* prvkeyData,
		char** outPtr);

/* Check an Identity token (parameters optional). expireVal: seconds an
 * iat may be old. pubkeyPath NULL or "": the credential is fetched from
 * the token's x5u and validated to the trust anchors (x5u mode);
 * otherwise a file, file:// or https:// URL holding a PEM public key or
 * certificate the operator trusts (key mode). timeoutVal: seconds the
 * call may wait for a fetch (0: 5 s). */
extern int SecSIPIDCheck(char* identityVal, int identityLen, int expireVal,
		char* pubkeyPath, int timeoutVal);

/* SecSIPIDCheck on a full Identity header value (with info, alg, ppt). */
extern int SecSIPIDCheckFull(char* identityVal, int identityLen,
		int expireVal, char* pubkeyPath, int timeoutVal);

/* SecSIPIDCheckFull in key mode, the PEM key or certificate in pubkeyVal
 * (pubkeyLen bytes, or NUL-terminated when 0). */
extern int SecSIPIDCheckFullPubKey(char* identityVal, int identityLen,
		int expireVal, char* pubkeyVal, int pubkeyLen);

/* Set CacheDirPath and CacheExpires at once; dirPath "" disables the disk
 * cache. Returns 0 (-1 after fork, see above). Setting the same values
 * again keeps warm caches. */
extern int SecSIPIDSetFileCacheOptions(char* dirPath, int expireVal);

/* Fetch urlVal under the x5u URL policy (https only unless a ConfigFile
 * allows otherwise; bounded in time and size; cached). On success *outPtr
 * is a malloc()ed NUL-terminated copy of the body and *outLen its length;
 * on failure *outPtr is NULL and *outLen 0. */
extern int SecSIPIDGetURLContent(char* urlVal, int timeoutVal, char** outPtr,
		int* outLen);

/* Options: string ones are CacheDirPath, CertCAFile, CertCAInter,
 * CertCRLFile, x5u and ConfigFile (stirgate TOML); integer ones are
 * CacheExpires, CertVerify and AttrsVerify. */
extern int SecSIPIDOptSetS(char* optName, char* optVal);
extern int SecSIPIDOptSetN(char* optName, int optVal);
/* "name=value"; a value without '=' is refused with -1. */
extern int SecSIPIDOptSetV(char* optNameVal);
/* Value of an integer option, or -1 for an unknown name. */
extern int SecSIPIDOptGetN(char* optName);

#ifdef __cplusplus
}
#endif

#endif /* STIRGATE_SECSIPID_H */
