/*
 * stirgate.h - STIR/SHAKEN signing (STI-AS) and verification (STI-VS) for
 * SIP servers, as a C library: libstirgate.so.1.
 *
 * The library wraps the stirgate core: the same TOML configuration, the same
 * checks and the same result fields as `stirgate sign` and `stirgate verify`.
 *
 * HANDLES. stirgate_init_file() or stirgate_init_toml() builds a signer
 * and/or verifier from a configuration and returns a handle (an int >= 1).
 * Every other call names its handle. Handles are never reused: a closed
 * handle stays invalid (STIRGATE_EHANDLE).
 *
 * THREADS. Every function may be called from any thread at the same time,
 * on the same handle or on different ones. The library keeps no pointer of
 * the caller after a call returns and gives the caller no pointer into its
 * own memory, except stirgate_version().
 *
 * OWNERSHIP. Input strings are NUL-terminated, read during the call only,
 * and never modified. A NULL input string means "absent" where the
 * documentation says so and is STIRGATE_EINVAL elsewhere. Every output
 * string is allocated with malloc(); the caller owns it and releases it with
 * stirgate_free() (or free(): it is the same allocator). Result structures
 * are released with stirgate_result_free() / stirgate_signature_free(),
 * which free every string in them and zero the structure. On failure every
 * output string is NULL (a refused signature's error fields aside), so
 * freeing is always safe and never needed for a NULL.
 *
 * ERRORS. Every function returns an int: 0 (or a result code >= 0) on
 * success, one of the negative STIRGATE_E* codes below on failure. After a
 * failure stirgate_errmsg() gives the human-readable reason. No input can
 * crash the host: internal failures (including a Go panic) are caught and
 * reported as STIRGATE_EINTERNAL, and the handle stays usable.
 *
 * FORK. The library starts a Go runtime in the process that loads it, and
 * a Go runtime does not survive fork(). Load it (dlopen) only in the
 * processes that will call it, after any fork: in Kamailio, in the worker
 * processes (child_init or on first use), never in the main process before
 * the workers are forked. The library records the pid that loaded it; in
 * a process forked after that (whether or not the parent ever called it:
 * a program linked with -lstirgate loads it, and starts Go, at start-up)
 * every function that would enter Go returns STIRGATE_EFORK at once,
 * without entering Go, instead of hanging; stirgate_errmsg() says so.
 * stirgate_version(), stirgate_errmsg() and the free functions need no Go
 * and work in any process. The parent is not affected.
 *
 * NETWORK. Verification may fetch a certificate (x5u) over HTTPS. A call
 * never waits longer than the configured [x5u] timeout (default 2 s) for
 * the network. Certificates are cached in memory per process; set [x5u]
 * cache_dir so that the processes of one host share fetched certificates,
 * or preload them.
 */
#ifndef STIRGATE_H
#define STIRGATE_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The ABI version: the SONAME is libstirgate.so.<STIRGATE_ABI>. */
#define STIRGATE_ABI 1

/* Verification outcomes, returned by stirgate_verify() and stirgate_check()
 * and stored in stirgate_result.result. */
#define STIRGATE_PASS 0 /* a SHAKEN Identity verified: TN-Validation-Passed */
#define STIRGATE_NONE 1 /* no SHAKEN Identity to judge: No-TN-Validation
                           (sip_code 428 when [verifier] require_identity) */
#define STIRGATE_FAIL 2 /* verification failed: TN-Validation-Failed; see
                           sip_code, reason, error */
/* The three match the "result" field of the JSON form ("pass", "none",
 * "fail") one to one. Whether to reject the call is the disposition's
 * decision (stirgate_check), never the outcome's alone. */

/* Error codes. Every one is negative; the values are ABI. */
#define STIRGATE_OK 0
#define STIRGATE_EINVAL -1     /* invalid argument: a required pointer is NULL,
                                  a count is negative, attest is not A/B/C */
#define STIRGATE_EHANDLE -2    /* unknown or closed handle */
#define STIRGATE_ECONFIG -3    /* configuration unreadable or invalid, or a
                                  file it names (key, chain, trust anchor,
                                  CRL) failed to load */
#define STIRGATE_ENOSIGNER -4  /* signing asked of a configuration without
                                  [signer] */
#define STIRGATE_ENOVERIFIER -5 /* verification asked of a configuration
                                   without [verifier] trust anchors */
#define STIRGATE_ESIGN -6      /* signing refused: bad numbers, Date out of
                                  window, no attestation by policy, ...;
                                  the error fields of stirgate_signature
                                  say which (error names as in stir) */
#define STIRGATE_ETOOLARGE -7  /* an input exceeds its limit
                                  (STIRGATE_MAX_INPUT, STIRGATE_MAX_TOML,
                                  STIRGATE_MAX_IDENTITY) */
#define STIRGATE_EINTERNAL -8  /* internal error, caught; the handle stays
                                  usable */
#define STIRGATE_ELIMIT -9     /* too many open handles
                                  (STIRGATE_MAX_HANDLES) */
#define STIRGATE_EFORK -10     /* called in a process forked after the
                                  library was loaded (see FORK above);
                                  nothing was done, every output is NULL
                                  or zeroed. Load the library after fork() */

/* Input limits. */
#define STIRGATE_MAX_INPUT 65536      /* bytes of any one input string */
#define STIRGATE_MAX_TOML 1048576     /* bytes of configuration text */
#define STIRGATE_MAX_IDENTITY 256     /* Identity values in one call (the
                                         verifier's own limit, [verifier]
                                         max_headers, applies first) */
#define STIRGATE_MAX_HANDLES 1024     /* open handles per process */

/* Library version, e.g. "stirgate 0.1.0 (libstirgate ABI 1)". Static
 * storage: do not free. Never fails. */
const char *stirgate_version(void);

/* ------------------------------------------------------------------------
 * Lifecycle
 */

/* Loads the TOML configuration file at path and builds its signer
 * ([signer]) and verifier ([verifier] with trust anchors); at least one of
 * the two must be configured. Relative file names in the configuration are
 * resolved against the file's directory.
 * Returns a handle >= 1, or STIRGATE_EINVAL (path NULL), STIRGATE_ETOOLARGE,
 * STIRGATE_ECONFIG, STIRGATE_ELIMIT, STIRGATE_EINTERNAL. */
int stirgate_init_file(const char *path);

/* As stirgate_init_file(), from configuration text. Relative file names
 * are resolved against the current directory. */
int stirgate_init_toml(const char *toml);

/* Rebuilds handle h from path (NULL or "": from the same file or text as
 * before) and swaps it in atomically. Calls in flight finish on the old
 * configuration. On failure the old configuration stays in force.
 * Returns 0 or STIRGATE_EHANDLE, STIRGATE_ECONFIG, STIRGATE_ETOOLARGE,
 * STIRGATE_EINTERNAL. */
int stirgate_reload(int h, const char *path);

/* Closes handle h. Calls in flight on h (other threads) finish first.
 * Returns 0 or STIRGATE_EHANDLE. */
int stirgate_close(int h);

/* Copies into buf (at most len bytes, always NUL-terminated when len > 0)
 * the message of the most recent failure of a call made BY THE CALLING
 * THREAD on handle h; h = -1 means the most recent failure of this thread
 * whatever the handle (use it after a failed stirgate_init_*). The text is
 * "" when there is none. Returns the full length of the message (without
 * the NUL; larger than len - 1 means it was truncated), or STIRGATE_EINVAL
 * when buf is NULL and len > 0. */
int stirgate_errmsg(int h, char *buf, size_t len);

/* Frees a string returned by the library. NULL is ignored. */
void stirgate_free(void *p);

/* ------------------------------------------------------------------------
 * Signing (STI-AS)
 */

/* Signs a call from its numbers: orig is the calling TN, dest_csv the called
 * TN(s), comma-separated, in any form the [numbers] rules accept ("+1 215
 * 555 0121", "2155550121", ...). attest is "A", "B" or "C", or NULL/"" to
 * let [policy] decide (its default); origid is NULL/"" for a new UUID.
 * An explicit attest is used as given: it is the calling script's own
 * decision, in its own process. Never pass a value taken from a received
 * header here: leave attest NULL and let [policy] decide, which no header
 * can raise (network surfaces may only lower the policy's level).
 * On success *identity receives the Identity header value and *date the
 * matching Date header value (either pointer may be NULL if not wanted).
 * Returns 0 or STIRGATE_EINVAL, STIRGATE_EHANDLE, STIRGATE_ENOSIGNER,
 * STIRGATE_ESIGN, STIRGATE_ETOOLARGE, STIRGATE_EINTERNAL. */
int stirgate_sign(int h, const char *orig, const char *dest_csv,
                  const char *attest, const char *origid,
                  char **identity, char **date);

/* A call to sign as a SIP proxy sees it. Every field may be NULL. */
typedef struct stirgate_sign_request {
    const char *orig;     /* calling TN; NULL: from pai, else from */
    const char *dest;     /* called TN(s), comma-separated; NULL: from to */
    const char *from;     /* From header value */
    const char *pai;      /* P-Asserted-Identity header value */
    const char *to;       /* To header value */
    const char *date;     /* Date header value; NULL: now, and a Date is
                             returned to add */
    const char *attest;   /* "A", "B", "C", used as given (the caller's own
                             decision: never copy it from a header);
                             NULL: [policy] */
    const char *origid;   /* NULL: [policy] customer origid, else a UUID
                             derived from call_id (stable across retries) */
    const char *call_id;  /* Call-ID header value */
    const char *customer; /* [policy] customer or trunk name */
    const char *source;   /* source address ("192.0.2.10" or
                             "192.0.2.10:5060") or tag, a [policy] key */
} stirgate_sign_request;

/* What a signature produced, or why it was refused. Every string is
 * malloc'ed or NULL; release with stirgate_signature_free(). */
typedef struct stirgate_signature {
    char *identity;  /* Identity header value */
    char *date;      /* Date header value matching iat */
    char *attest;    /* attestation used */
    char *origid;    /* origid used */
    char *orig;      /* canonical orig.tn */
    char *dest;      /* canonical dest.tn, comma-separated */
    char *x5u;       /* certificate URL */
    long long iat;   /* iat used (Unix seconds) */
    char *json;      /* all of the above as `stirgate sign --json` prints it */

    /* Set when the call returned STIRGATE_ESIGN (NULL/0 otherwise): */
    char *error;     /* stable error name, e.g. "sign_not_allowed" */
    int sip_code;    /* what a SIP surface would answer, e.g. 403 */
    char *reason;    /* its reason phrase */
    char *detail;    /* human detail, for logs */
} stirgate_signature;

/* Signs req into *sig (zeroed first). On STIRGATE_ESIGN the error fields
 * of *sig are set. Always release *sig with stirgate_signature_free().
 * Returns 0 or STIRGATE_EINVAL (req or sig NULL, bad attest),
 * STIRGATE_EHANDLE, STIRGATE_ENOSIGNER, STIRGATE_ESIGN, STIRGATE_ETOOLARGE,
 * STIRGATE_EINTERNAL. */
int stirgate_sign_call(int h, const stirgate_sign_request *req,
                       stirgate_signature *sig);

/* Frees every string of *sig and zeroes it. NULL is ignored. */
void stirgate_signature_free(stirgate_signature *sig);

/* ------------------------------------------------------------------------
 * Verification (STI-VS)
 *
 * identity is an array of n_identity Identity header values (the
 * "Identity" and compact "y" headers of the request, in order), each
 * NUL-terminated; n_identity may be 0 (identity may then be NULL). from,
 * pai, to and date are the header values of the request; NULL means
 * absent. Only initial INVITEs should be verified.
 */

/* Verifies and returns STIRGATE_PASS, STIRGATE_NONE or STIRGATE_FAIL, or a
 * negative error. *result_json (if result_json is not NULL) receives the
 * result with exactly the fields `stirgate verify` prints: result,
 * verstat, sip_code, reason, error, detail, attest, origid, orig, dest,
 * x5u, spc, iat (absent ones omitted).
 * Errors: STIRGATE_EINVAL (identity NULL with n_identity > 0, a NULL
 * element, n_identity < 0), STIRGATE_EHANDLE, STIRGATE_ENOVERIFIER,
 * STIRGATE_ETOOLARGE, STIRGATE_EINTERNAL. */
int stirgate_verify(int h, const char *const *identity, int n_identity,
                    const char *from, const char *pai, const char *to,
                    const char *date, char **result_json);

/* A verification result and what to do with the call ([verifier] mode:
 * strict or relaxed). Every string is malloc'ed or NULL; release with
 * stirgate_result_free(). */
typedef struct stirgate_result {
    int result;          /* STIRGATE_PASS, STIRGATE_NONE, STIRGATE_FAIL */
    int sip_code;        /* 0 on pass, else 403, 428, 436, 437, 438, 500 */
    long long iat;       /* token iat, 0 when unknown */
    char *verstat;       /* TN-Validation-Passed, TN-Validation-Failed,
                            No-TN-Validation */
    char *reason;        /* reason phrase of sip_code, e.g. "Stale Date" */
    char *error;         /* stable error name, e.g. "stale_iat" */
    char *detail;        /* human detail, for logs */
    char *attest;        /* A, B or C (when known) */
    char *origid;
    char *orig;          /* orig.tn */
    char *dest;          /* dest.tn, comma-separated */
    char *x5u;
    char *spc;           /* service provider code of the certificate */
    char *json;          /* the result as stirgate_verify() gives it */

    /* Disposition (core/disposition): */
    int reject;          /* 1: answer reject_code reject_reason and stop
                            (strict mode); 0: forward the call */
    int reject_code;     /* the SIP code to answer when reject is 1 */
    char *reject_reason; /* its reason phrase */
    char *reason_header; /* value of a Reason header to add when the call
                            continues with a failure, e.g.
                            SIP;cause=438;text="Invalid Identity Header";
                            NULL when none */
    char *mark;          /* the verstat value to put on From and
                            P-Asserted-Identity (verstat, or with the
                            -A/-B/-C suffix when configured) */
    char *from;          /* the From value given, with every verstat that
                            arrived removed and ;verstat=<mark> added */
    char *pai;           /* the same for P-Asserted-Identity; NULL when
                            pai was NULL or empty */
} stirgate_result;

/* Verifies like stirgate_verify() and decides the disposition, filling
 * *res (zeroed first). Returns what stirgate_verify() returns. Always
 * release *res with stirgate_result_free(). */
int stirgate_check(int h, const char *const *identity, int n_identity,
                   const char *from, const char *pai, const char *to,
                   const char *date, stirgate_result *res);

/* Frees every string of *res and zeroes it. NULL is ignored. */
void stirgate_result_free(stirgate_result *res);

/* A call to verify as a SIP proxy sees it, with its Request-URI: after a
 * diversion (RFC 8946) the last div PASSporT must name the call's target,
 * which the To header no longer does. Every string may be NULL (absent). */
typedef struct stirgate_verify_request {
    const char *const *identity; /* Identity header values, as for
                                    stirgate_verify() */
    int n_identity;
    const char *from;            /* From header value */
    const char *pai;             /* P-Asserted-Identity header value */
    const char *to;              /* To header value */
    const char *date;            /* Date header value */
    const char *target;          /* Request-URI (or a bare number); NULL:
                                    To */
} stirgate_verify_request;

/* Verifies *req like stirgate_check() and fills *res (zeroed first). On a
 * pass with rich call data (RFC 9795), *call_info (if call_info is not
 * NULL) receives the value of the Call-Info header (RFC 9796: the jCard
 * with purpose=jcard and the call reason, the logo with purpose=icon, each
 * marked verified, comma-separated) to add when the call continues; NULL
 * otherwise. Release it with stirgate_free(). The verified div TNs and rcd
 * claims are in res->json ("div", "rcd", on pass only). Returns what
 * stirgate_check() returns; STIRGATE_EINVAL also when req is NULL. */
int stirgate_check_call(int h, const stirgate_verify_request *req,
                        stirgate_result *res, char **call_info);

/* ------------------------------------------------------------------------
 * Status
 */

/* *json receives what handle h runs on, as one JSON object: config (the
 * file, "" for text), config_hash (of the bytes loaded; changes with a
 * reload of another file content), signer and verifier (booleans), and,
 * with a signer, x5u, spc and cert_not_after (Unix seconds, the earliest
 * notAfter of the signing chain), with a verifier, x5u_cache (entries,
 * hits, misses, fetches, fetch_errors, stale_served, disk_loads,
 * evictions: this process's certificate cache). Release with
 * stirgate_free(). Returns 0 or STIRGATE_EINVAL (json NULL),
 * STIRGATE_EHANDLE, STIRGATE_EINTERNAL. */
int stirgate_status(int h, char **json);

#ifdef __cplusplus
}
#endif

#endif /* STIRGATE_H */
