/*
 * stirgate_test: drives every function of stirgate.h from C, including bad
 * input and concurrent use, and is run under valgrind by `make test`
 * (cshared/cshared.mk): every output is freed exactly once here, so any
 * leak valgrind reports is the library's.
 *
 * It also forks twice: once before any call (the library is linked, so
 * loaded, and its Go runtime started, at program start) and once after
 * handles are open. In each child every function that would enter Go must
 * return STIRGATE_EFORK at once instead of hanging, and the parent must go
 * on working.
 *
 * usage: stirgate_test LABDIR          run the tests
 *        stirgate_test LABDIR DEFECT   the same, then plant one memory
 *                                      error on purpose (leak, double-free
 *                                      or use-after-free) in plant_defect;
 *                                      the .mk checks valgrind reports it
 *
 * LABDIR holds a lab PKI: sp.key, sp-chain.pem, root.pem.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "stirgate.h"

#define X5U "https://127.0.0.1:8443/certs/sp.pem"
#define FROM "\"Alice\" <sip:+12155550121;verstat=TN-Validation-Passed@pbx.example.net;user=phone>;tag=a1"
#define PAI "<sip:+12155550121@pbx.example.net;user=phone>"
#define TO "<sip:+12155550131@carrier.example.net;user=phone>"

static int failures;
static int checks;
static const char *labdir;

#define CHECK(cond, ...)                                              \
	do {                                                              \
		checks++;                                                     \
		if(!(cond)) {                                                 \
			failures++;                                               \
			fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); \
			fprintf(stderr, __VA_ARGS__);                             \
			fputc('\n', stderr);                                      \
		}                                                             \
	} while(0)

#define CHECK_RC(got, want)                                           \
	do {                                                              \
		int g_ = (got);                                               \
		char m_[512];                                                 \
		stirgate_errmsg(-1, m_, sizeof(m_));                          \
		CHECK(g_ == (want), "rc %d, want %d (errmsg: %s)", g_, (want), m_); \
	} while(0)

static char *xasprintf(const char *fmt, ...)
{
	va_list ap;
	char *s = NULL;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	s = malloc((size_t)n + 1);
	if(s == NULL)
		abort();
	va_start(ap, fmt);
	vsnprintf(s, (size_t)n + 1, fmt, ap);
	va_end(ap);
	return s;
}

/* config returns lab configuration text; extra goes into [verifier]. */
static char *config(const char *verifier_extra)
{
	return xasprintf("[log]\nlevel = \"error\"\n"
			"[signer]\nkey = \"%s/sp.key\"\ncert = \"%s/sp-chain.pem\"\nx5u = \"" X5U "\"\n"
			"[policy]\ndefault = \"B\"\n"
			"[[policy.customer]]\nname = \"pbx\"\nnumbers = [\"12155550121\"]\nsources = [\"127.0.0.1\"]\n"
			"[verifier]\ntrust = [\"%s/root.pem\"]\n%s\n"
			"[x5u]\noffline = true\nlab_hosts = [\"127.0.0.1:8443\"]\n"
			"preload = { \"" X5U "\" = \"%s/sp-chain.pem\" }\n",
			labdir, labdir, labdir, verifier_extra, labdir);
}

static int open_config(const char *verifier_extra)
{
	char *c = config(verifier_extra);
	int h = stirgate_init_toml(c);
	free(c);
	return h;
}

static char *sign_good(int h)
{
	char *identity = NULL;
	CHECK_RC(stirgate_sign(h, "+1 215 555 0121", "2155550131", "A", NULL, &identity, NULL), 0);
	return identity;
}

/* tamper flips one character of the claims segment. */
static void tamper(char *identity)
{
	char *dot = strchr(identity, '.');
	if(dot != NULL && dot[1] != '\0')
		dot[1] = dot[1] == 'A' ? 'B' : 'A';
}

static void test_version_errmsg(void)
{
	char buf[64];
	const char *v = stirgate_version();

	CHECK(v != NULL && strstr(v, "stirgate") != NULL, "version %s", v ? v : "(null)");
	CHECK(strstr(v, "ABI 1") != NULL, "version %s lacks the ABI", v);
	CHECK_RC(stirgate_errmsg(-1, NULL, 5), STIRGATE_EINVAL);
	CHECK(stirgate_errmsg(-1, NULL, 0) >= 0, "length query");
	CHECK(stirgate_errmsg(12345, buf, sizeof(buf)) == 0 && buf[0] == '\0',
			"no error for a handle never used: %s", buf);
}

static void test_init(void)
{
	char buf[256], *big, *cfgpath, *c;
	int h, n;
	FILE *f;

	CHECK_RC(stirgate_init_file(NULL), STIRGATE_EINVAL);
	n = stirgate_errmsg(-1, buf, sizeof(buf));
	CHECK(n > 0 && strstr(buf, "NULL") != NULL, "errmsg after NULL path: %d %s", n, buf);
	CHECK_RC(stirgate_init_file(""), STIRGATE_EINVAL);
	CHECK_RC(stirgate_init_file("/nonexistent/stirgate.toml"), STIRGATE_ECONFIG);
	n = stirgate_errmsg(-1, buf, sizeof(buf));
	CHECK(n > 0 && strstr(buf, "nonexistent") != NULL, "errmsg: %s", buf);
	/* Truncation: the full length comes back, the copy is cut and NUL-terminated. */
	n = stirgate_errmsg(-1, buf, 5);
	CHECK(n > 4 && strlen(buf) == 4, "truncated errmsg: %d '%s'", n, buf);

	CHECK_RC(stirgate_init_toml(NULL), STIRGATE_EINVAL);
	CHECK_RC(stirgate_init_toml(""), STIRGATE_ECONFIG);
	CHECK_RC(stirgate_init_toml("[[[ not toml \x01\xff"), STIRGATE_ECONFIG);
	CHECK_RC(stirgate_init_toml("[verifier]\nrequre_identity = true\n"), STIRGATE_ECONFIG);

	big = malloc(STIRGATE_MAX_TOML + 2);
	memset(big, '#', STIRGATE_MAX_TOML + 1);
	big[STIRGATE_MAX_TOML + 1] = '\0';
	CHECK_RC(stirgate_init_toml(big), STIRGATE_ETOOLARGE);
	memset(big, 'a', STIRGATE_MAX_INPUT + 1);
	big[STIRGATE_MAX_INPUT + 1] = '\0';
	CHECK_RC(stirgate_init_file(big), STIRGATE_ETOOLARGE);
	free(big);

	/* From a file, and from text. */
	cfgpath = xasprintf("%s/ctest-%d.toml", labdir, (int)getpid());
	f = fopen(cfgpath, "w");
	CHECK(f != NULL, "fopen %s: %s", cfgpath, strerror(errno));
	if(f != NULL) {
		c = config("");
		fputs(c, f);
		free(c);
		fclose(f);
		h = stirgate_init_file(cfgpath);
		CHECK(h >= 1, "init_file: %d", h);
		CHECK_RC(stirgate_reload(h, NULL), 0);
		CHECK_RC(stirgate_reload(h, cfgpath), 0);
		CHECK_RC(stirgate_reload(h, "/nonexistent.toml"), STIRGATE_ECONFIG);
		n = stirgate_errmsg(h, buf, sizeof(buf));
		CHECK(n > 0, "errmsg of a failed reload on h");
		/* The failed reload kept the configuration. */
		c = sign_good(h);
		stirgate_free(c);
		CHECK_RC(stirgate_close(h), 0);
		CHECK_RC(stirgate_close(h), STIRGATE_EHANDLE);
		CHECK_RC(stirgate_reload(h, NULL), STIRGATE_EHANDLE);
		unlink(cfgpath);
	}
	free(cfgpath);
	CHECK_RC(stirgate_close(0), STIRGATE_EHANDLE);
	CHECK_RC(stirgate_close(-1), STIRGATE_EHANDLE);
	CHECK_RC(stirgate_close(1 << 30), STIRGATE_EHANDLE);
}

static void test_sign(int h)
{
	char *identity = (char *)1, *date = (char *)1, *big;
	stirgate_sign_request req;
	stirgate_signature sig;
	char stale[64];
	time_t old;

	/* Outputs are NULL after any failure. */
	CHECK_RC(stirgate_sign(h, NULL, "2155550131", "A", NULL, &identity, &date), STIRGATE_EINVAL);
	CHECK(identity == NULL && date == NULL, "outputs not cleared on failure");
	CHECK_RC(stirgate_sign(h, "2155550121", NULL, "A", NULL, &identity, &date), STIRGATE_EINVAL);
	CHECK_RC(stirgate_sign(9999, "2155550121", "2155550131", "A", NULL, &identity, &date), STIRGATE_EHANDLE);
	CHECK_RC(stirgate_sign(h, "2155550121", "2155550131", "D", NULL, &identity, &date), STIRGATE_EINVAL);
	CHECK_RC(stirgate_sign(h, "not-a-number", "2155550131", "A", NULL, &identity, &date), STIRGATE_ESIGN);
	CHECK_RC(stirgate_sign(h, "2155550121", "", "A", NULL, &identity, &date), STIRGATE_ESIGN);
	CHECK_RC(stirgate_sign(h, "\xff\xfe\x01", "\x80", "A", NULL, &identity, &date), STIRGATE_ESIGN);
	big = malloc(STIRGATE_MAX_INPUT + 2);
	memset(big, '1', STIRGATE_MAX_INPUT + 1);
	big[STIRGATE_MAX_INPUT + 1] = '\0';
	CHECK_RC(stirgate_sign(h, big, "2155550131", "A", NULL, &identity, &date), STIRGATE_ETOOLARGE);
	CHECK(identity == NULL && date == NULL, "outputs not cleared on failure");
	free(big);

	/* origid must be a UUID (RFC 8588). */
	CHECK_RC(stirgate_sign(h, "2155550121", "2155550131", "A", "my-origid", &identity, &date), STIRGATE_ESIGN);
	CHECK(identity == NULL && date == NULL, "outputs not cleared on failure");

	/* Success; outputs are optional. */
	CHECK_RC(stirgate_sign(h, "2155550121", "2155550131,2155550132", NULL, "123e4567-e89b-12d3-a456-426614174000", &identity, &date), 0);
	CHECK(identity != NULL && strstr(identity, ";info=<" X5U ">") != NULL, "identity %s", identity);
	CHECK(date != NULL && strstr(date, "GMT") != NULL, "date %s", date);
	stirgate_free(identity);
	stirgate_free(date);
	CHECK_RC(stirgate_sign(h, "2155550121", "2155550131", "C", NULL, NULL, NULL), 0);
	stirgate_free(NULL);

	/* sign_call: policy attestation from the source. */
	CHECK_RC(stirgate_sign_call(h, NULL, &sig), STIRGATE_EINVAL);
	memset(&req, 0, sizeof(req));
	CHECK_RC(stirgate_sign_call(h, &req, NULL), STIRGATE_EINVAL);
	req.from = FROM;
	req.to = TO;
	req.source = "127.0.0.1";
	req.call_id = "call-1@pbx";
	CHECK_RC(stirgate_sign_call(h, &req, &sig), 0);
	CHECK(sig.attest != NULL && strcmp(sig.attest, "A") == 0, "attest %s", sig.attest);
	CHECK(sig.orig != NULL && strcmp(sig.orig, "12155550121") == 0, "orig %s", sig.orig);
	CHECK(sig.dest != NULL && strcmp(sig.dest, "12155550131") == 0, "dest %s", sig.dest);
	CHECK(sig.identity != NULL && sig.date != NULL && sig.x5u != NULL && sig.origid != NULL, "fields");
	CHECK(sig.iat > 1700000000, "iat %lld", sig.iat);
	CHECK(sig.json != NULL && strstr(sig.json, "\"identity\":") != NULL, "json %s", sig.json);
	CHECK(sig.error == NULL && sig.sip_code == 0, "error fields set on success");
	stirgate_signature_free(&sig);
	CHECK(sig.identity == NULL && sig.json == NULL, "signature_free does not zero");
	stirgate_signature_free(&sig);
	stirgate_signature_free(NULL);

	req.source = "192.0.2.77";
	CHECK_RC(stirgate_sign_call(h, &req, &sig), 0);
	CHECK(sig.attest != NULL && strcmp(sig.attest, "B") == 0, "unknown source attest %s", sig.attest);
	stirgate_signature_free(&sig);

	/* A refused signature carries its error. */
	old = time(NULL) - 600;
	strftime(stale, sizeof(stale), "%a, %d %b %Y %H:%M:%S GMT", gmtime(&old));
	req.date = stale;
	CHECK_RC(stirgate_sign_call(h, &req, &sig), STIRGATE_ESIGN);
	CHECK(sig.error != NULL && strcmp(sig.error, "sign_date_out_of_window") == 0, "error %s", sig.error);
	CHECK(sig.sip_code == 403 && sig.reason != NULL && sig.detail != NULL, "code %d", sig.sip_code);
	CHECK(sig.identity == NULL, "identity on failure");
	stirgate_signature_free(&sig);
}

static void test_verify(int h, int strict)
{
	char *good = sign_good(h), *bad = sign_good(h), *json = (char *)1, *big;
	const char *ids[3];
	const char *nullids[2] = {NULL, NULL};
	const char *many[STIRGATE_MAX_IDENTITY + 1];
	char garbage[300];
	stirgate_result res;
	int i, rc;

	tamper(bad);
	ids[0] = good;
	CHECK_RC(stirgate_verify(h, ids, 1, FROM, PAI, TO, NULL, &json), STIRGATE_PASS);
	CHECK(json != NULL && strstr(json, "\"verstat\":\"TN-Validation-Passed\"") != NULL, "json %s", json);
	stirgate_free(json);
	CHECK_RC(stirgate_verify(h, ids, 1, FROM, NULL, TO, NULL, NULL), STIRGATE_PASS);
	ids[0] = bad;
	CHECK_RC(stirgate_verify(h, ids, 1, FROM, PAI, TO, NULL, &json), STIRGATE_FAIL);
	CHECK(json != NULL && strstr(json, "\"sip_code\":438") != NULL, "json %s", json);
	stirgate_free(json);
	CHECK_RC(stirgate_verify(h, NULL, 0, FROM, PAI, TO, NULL, NULL), STIRGATE_NONE);
	/* Two headers, one good: passes (conformance row 13). */
	ids[0] = bad;
	ids[1] = good;
	CHECK_RC(stirgate_verify(h, ids, 2, FROM, PAI, TO, NULL, NULL), STIRGATE_PASS);
	/* Request numbers that are not the token's. */
	ids[0] = good;
	CHECK_RC(stirgate_verify(h, ids, 1, "<sip:+12155559999@x>", NULL, TO, NULL, NULL), STIRGATE_FAIL);
	/* NULL from/to are absent, not errors. */
	CHECK_RC(stirgate_verify(h, ids, 1, NULL, NULL, NULL, NULL, NULL), STIRGATE_FAIL);

	/* Bad arguments. */
	json = (char *)1;
	CHECK_RC(stirgate_verify(h, NULL, 1, FROM, PAI, TO, NULL, &json), STIRGATE_EINVAL);
	CHECK(json == NULL, "json not cleared");
	CHECK_RC(stirgate_verify(h, ids, -1, FROM, PAI, TO, NULL, NULL), STIRGATE_EINVAL);
	CHECK_RC(stirgate_verify(h, nullids, 2, FROM, PAI, TO, NULL, NULL), STIRGATE_EINVAL);
	for(i = 0; i <= STIRGATE_MAX_IDENTITY; i++)
		many[i] = good;
	CHECK_RC(stirgate_verify(h, many, STIRGATE_MAX_IDENTITY + 1, FROM, PAI, TO, NULL, NULL), STIRGATE_ETOOLARGE);
	/* Within the API limit but above [verifier] max_headers: a result. */
	CHECK_RC(stirgate_verify(h, many, 20, FROM, PAI, TO, NULL, &json), STIRGATE_FAIL);
	CHECK(json != NULL && strstr(json, "too_many_identity") != NULL, "json %s", json);
	stirgate_free(json);
	CHECK_RC(stirgate_verify(-3, ids, 1, FROM, PAI, TO, NULL, NULL), STIRGATE_EHANDLE);

	/* Garbage and huge values are results, not crashes. */
	for(i = 0; i < (int)sizeof(garbage) - 1; i++)
		garbage[i] = (char)(1 + (i * 37) % 255);
	garbage[sizeof(garbage) - 1] = '\0';
	ids[0] = garbage;
	rc = stirgate_verify(h, ids, 1, garbage, garbage, garbage, garbage, &json);
	CHECK(rc == STIRGATE_FAIL || rc == STIRGATE_NONE, "garbage rc %d", rc);
	stirgate_free(json);
	big = malloc(STIRGATE_MAX_INPUT + 1);
	memset(big, 'A', STIRGATE_MAX_INPUT);
	big[STIRGATE_MAX_INPUT] = '\0';
	ids[0] = big;
	CHECK_RC(stirgate_verify(h, ids, 1, FROM, PAI, TO, NULL, &json), STIRGATE_FAIL);
	CHECK(json != NULL && strstr(json, "identity_too_large") != NULL, "json %s", json);
	stirgate_free(json);
	big = realloc(big, STIRGATE_MAX_INPUT + 2);
	big[STIRGATE_MAX_INPUT] = 'A';
	big[STIRGATE_MAX_INPUT + 1] = '\0';
	ids[0] = big;
	CHECK_RC(stirgate_verify(h, ids, 1, FROM, PAI, TO, NULL, NULL), STIRGATE_ETOOLARGE);
	free(big);

	/* check: verify plus disposition. */
	CHECK_RC(stirgate_check(h, ids, 1, FROM, PAI, TO, NULL, NULL), STIRGATE_EINVAL);
	ids[0] = good;
	CHECK_RC(stirgate_check(h, ids, 1, FROM, PAI, TO, NULL, &res), STIRGATE_PASS);
	CHECK(res.result == STIRGATE_PASS && res.reject == 0 && res.sip_code == 0, "pass fields");
	CHECK(res.verstat && strcmp(res.verstat, "TN-Validation-Passed") == 0, "verstat %s", res.verstat);
	CHECK(res.mark && strcmp(res.mark, "TN-Validation-Passed") == 0, "mark %s", res.mark);
	CHECK(res.attest && strcmp(res.attest, "A") == 0, "attest %s", res.attest);
	CHECK(res.spc && strcmp(res.spc, "1234") == 0, "spc %s", res.spc);
	CHECK(res.orig && strcmp(res.orig, "12155550121") == 0, "orig %s", res.orig);
	CHECK(res.dest && strcmp(res.dest, "12155550131") == 0, "dest %s", res.dest);
	CHECK(res.x5u && strcmp(res.x5u, X5U) == 0, "x5u %s", res.x5u);
	CHECK(res.iat > 0 && res.origid != NULL && res.json != NULL, "iat/origid/json");
	CHECK(res.from && strstr(res.from, "sip:+12155550121;verstat=TN-Validation-Passed@pbx.example.net") != NULL,
			"from %s", res.from);
	CHECK(res.pai && strstr(res.pai, ";verstat=TN-Validation-Passed@") != NULL, "pai %s", res.pai);
	CHECK(res.reason_header == NULL && res.error == NULL, "reason header on pass");
	stirgate_result_free(&res);
	CHECK(res.json == NULL && res.from == NULL, "result_free does not zero");
	stirgate_result_free(&res);
	stirgate_result_free(NULL);

	ids[0] = bad;
	CHECK_RC(stirgate_check(h, ids, 1, FROM, NULL, TO, NULL, &res), STIRGATE_FAIL);
	CHECK(res.sip_code == 438 && res.error != NULL, "tampered code %d", res.sip_code);
	CHECK(res.pai == NULL, "pai %s for no PAI", res.pai);
	CHECK(res.from && strstr(res.from, ";verstat=TN-Validation-Failed@") != NULL
			&& strstr(res.from, "Passed") == NULL, "from %s keeps the outside verstat", res.from);
	if(strict) {
		CHECK(res.reject == 1 && res.reject_code == 438, "strict reject %d %d", res.reject, res.reject_code);
		CHECK(res.reject_reason && strcmp(res.reject_reason, "Invalid Identity Header") == 0, "reason %s", res.reject_reason);
		CHECK(res.reason_header == NULL, "Reason header in strict mode");
	} else {
		CHECK(res.reject == 0 && res.reject_code == 0 && res.reject_reason == NULL, "relaxed rejects");
		CHECK(res.reason_header && strcmp(res.reason_header, "SIP;cause=438;text=\"Invalid Identity Header\"") == 0,
				"reason header %s", res.reason_header);
	}
	stirgate_result_free(&res);

	CHECK_RC(stirgate_check(h, NULL, 0, FROM, PAI, TO, NULL, &res), STIRGATE_NONE);
	CHECK(res.verstat && strcmp(res.verstat, "No-TN-Validation") == 0, "verstat %s", res.verstat);
	if(strict) /* strict is configured with require_identity */
		CHECK(res.reject == 1 && res.reject_code == 428, "strict none: %d %d", res.reject, res.reject_code);
	else
		CHECK(res.reject == 0 && res.reason_header == NULL, "relaxed none");
	stirgate_result_free(&res);

	stirgate_free(good);
	stirgate_free(bad);
}

/* Threads: each signs and checks on the shared handle; one thread also
 * reloads it. Errors are per thread: a thread's errmsg never shows
 * another's failure. */
struct worker {
	int h;
	int id;
	int iterations;
	int passes;
	int errmsg_leaks;
};

/* test_check_call: stirgate_check_call with a Request-URI target, and a
 * call signed with the customer's rich call data ([policy.customer.rcd],
 * RFC 9795) whose verification returns the RFC 9796 Call-Info value. */
static void test_check_call(void)
{
	int h = open_config("\n[policy.customer.rcd]\nnam = \"ACME Corp\"");
	stirgate_sign_request sreq;
	stirgate_signature sig;
	stirgate_verify_request req;
	stirgate_result res;
	const char *ids[1];
	char *ci = (char *)1, *plain = sign_good(h);

	CHECK(h >= 1, "rcd handle %d", h);
	memset(&req, 0, sizeof(req));
	CHECK_RC(stirgate_check_call(h, NULL, &res, &ci), STIRGATE_EINVAL);
	CHECK(ci == NULL, "call_info not cleared");
	CHECK_RC(stirgate_check_call(h, &req, NULL, NULL), STIRGATE_EINVAL);
	req.n_identity = 1;
	CHECK_RC(stirgate_check_call(h, &req, &res, NULL), STIRGATE_EINVAL);
	stirgate_result_free(&res);

	/* A call without div PASSporTs is judged against To: the target does
	 * not matter, and no rcd means no Call-Info. */
	ids[0] = plain;
	req.identity = ids;
	req.from = FROM;
	req.to = TO;
	req.target = "sip:+12155550199@carrier.example.net;user=phone";
	ci = (char *)1;
	CHECK_RC(stirgate_check_call(h, &req, &res, &ci), STIRGATE_PASS);
	CHECK(ci == NULL, "Call-Info %s without rcd", ci);
	CHECK(res.json != NULL && strstr(res.json, "\"rcd\"") == NULL && strstr(res.json, "\"div\"") == NULL, "json %s", res.json);
	stirgate_result_free(&res);

	/* The customer's rcd is signed in; verified, it is in the JSON and
	 * becomes Call-Info. */
	memset(&sreq, 0, sizeof(sreq));
	sreq.from = FROM;
	sreq.to = TO;
	sreq.customer = "pbx";
	CHECK_RC(stirgate_sign_call(h, &sreq, &sig), 0);
	ids[0] = sig.identity;
	req.target = "sip:+12155550131@carrier.example.net;user=phone";
	CHECK_RC(stirgate_check_call(h, &req, &res, &ci), STIRGATE_PASS);
	CHECK(res.json != NULL && strstr(res.json, "\"rcd\":{\"nam\":\"ACME Corp\"") != NULL, "json %s", res.json);
	CHECK(ci != NULL && strstr(ci, ">;purpose=jcard;verified") != NULL && strncmp(ci, "<data:application/json;base64,", 30) == 0,
			"Call-Info %s", ci);
	stirgate_free(ci);
	stirgate_result_free(&res);
	/* Without call_info the result alone. */
	CHECK_RC(stirgate_check_call(h, &req, &res, NULL), STIRGATE_PASS);
	stirgate_result_free(&res);
	/* A failure has no Call-Info. */
	req.from = "<sip:+12155559999@x>";
	ci = (char *)1;
	CHECK_RC(stirgate_check_call(h, &req, &res, &ci), STIRGATE_FAIL);
	CHECK(ci == NULL && res.json != NULL && strstr(res.json, "\"rcd\"") == NULL, "failure: Call-Info %s, json %s", ci, res.json);
	stirgate_result_free(&res);

	stirgate_signature_free(&sig);
	stirgate_free(plain);
	CHECK_RC(stirgate_close(h), 0);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	char buf[256];
	stirgate_result res;
	const char *ids[1];
	char *id;
	int i;

	for(i = 0; i < w->iterations; i++) {
		if(w->id != 1 && stirgate_errmsg(w->h, buf, sizeof(buf)) != 0)
			w->errmsg_leaks++;
		id = NULL;
		if(stirgate_sign(w->h, "2155550121", "2155550131", "A", NULL, &id, NULL) != 0)
			continue;
		ids[0] = id;
		if(stirgate_check(w->h, ids, 1, FROM, PAI, TO, NULL, &res) == STIRGATE_PASS)
			w->passes++;
		stirgate_result_free(&res);
		stirgate_free(id);
		if(w->id == 0 && i % 10 == 0) {
			if(stirgate_reload(w->h, NULL) != 0)
				w->errmsg_leaks += 1000;
		}
		if(w->id == 1) {
			/* This thread fails on purpose; the others must not see it. */
			stirgate_sign(w->h, NULL, NULL, NULL, NULL, NULL, NULL);
			if(stirgate_errmsg(w->h, buf, sizeof(buf)) == 0)
				w->errmsg_leaks++;
		}
	}
	return NULL;
}

static void test_threads(int h)
{
	enum { N = 8 };
	pthread_t t[N];
	struct worker w[N];
	int i, iterations = getenv("STIRGATE_TEST_ITERATIONS") ? atoi(getenv("STIRGATE_TEST_ITERATIONS")) : 50;

	for(i = 0; i < N; i++) {
		w[i].h = h;
		w[i].id = i;
		w[i].iterations = iterations;
		w[i].passes = 0;
		w[i].errmsg_leaks = 0;
		CHECK(pthread_create(&t[i], NULL, worker_main, &w[i]) == 0, "pthread_create");
	}
	for(i = 0; i < N; i++) {
		pthread_join(t[i], NULL);
		CHECK(w[i].passes == iterations, "thread %d: %d of %d passed", i, w[i].passes, iterations);
		if(i != 1)
			CHECK(w[i].errmsg_leaks == 0, "thread %d saw errors %d", i, w[i].errmsg_leaks);
		else
			CHECK(w[i].errmsg_leaks == 0, "failing thread lost its own errmsg %d times", w[i].errmsg_leaks);
	}
}

/* Concurrent close: threads verifying on a handle that another thread
 * closes get either a result or STIRGATE_EHANDLE, nothing else. */
struct closer {
	int h;
	int bad;
};

static void *close_victim(void *arg)
{
	struct closer *c = arg;
	int i, rc;
	for(i = 0; i < 200; i++) {
		rc = stirgate_verify(c->h, NULL, 0, FROM, PAI, TO, NULL, NULL);
		if(rc != STIRGATE_NONE && rc != STIRGATE_EHANDLE)
			c->bad++;
	}
	return NULL;
}

static void test_close_race(void)
{
	pthread_t t[4];
	struct closer c[4];
	int i, h = open_config("");

	CHECK(h >= 1, "open %d", h);
	for(i = 0; i < 4; i++) {
		c[i].h = h;
		c[i].bad = 0;
		pthread_create(&t[i], NULL, close_victim, &c[i]);
	}
	nanosleep(&(struct timespec){0, 2000000}, NULL);
	CHECK_RC(stirgate_close(h), 0);
	for(i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		CHECK(c[i].bad == 0, "thread %d: %d unexpected codes", i, c[i].bad);
	}
}

/* Control runs (make cshared-test): one memory error planted on purpose
 * in an output of the library, which valgrind must report here, by this
 * function's name. Never called in a normal run. */
static int plant_defect(const char *kind)
{
	int h = open_config("");
	char *id = sign_good(h);
	volatile size_t n = 0;

	if(strcmp(kind, "leak") == 0) {
		id = NULL; /* the only pointer to the output is gone */
	} else if(strcmp(kind, "double-free") == 0) {
		stirgate_free(id);
		stirgate_free(id);
	} else if(strcmp(kind, "use-after-free") == 0) {
		stirgate_free(id);
		n = strlen(id);
	} else {
		fprintf(stderr, "unknown defect %s\n", kind);
		stirgate_close(h);
		return -1;
	}
	(void)n;
	(void)id;
	stirgate_close(h);
	return 0;
}

/* fork_child calls every function of the API in a forked child, with
 * arguments that would succeed (or fail otherwise) in the parent: each
 * that needs Go returns STIRGATE_EFORK and leaves its outputs NULL or
 * zeroed; the C-only ones still work. */
static void fork_child(int h)
{
	char buf[512], *identity = (char *)buf, *date = (char *)buf, *json = (char *)buf, *c;
	const char *ids[1] = {"x.y.z;info=<" X5U ">"};
	stirgate_sign_request req;
	stirgate_signature sig;
	stirgate_result res;

	c = config("");
	CHECK_RC(stirgate_init_toml(c), STIRGATE_EFORK);
	free(c);
	CHECK(stirgate_errmsg(-1, buf, sizeof(buf)) > 0 && strstr(buf, "fork") != NULL,
			"errmsg after EFORK: %s", buf);
	CHECK_RC(stirgate_init_file("/nonexistent/stirgate.toml"), STIRGATE_EFORK);
	CHECK_RC(stirgate_init_file(NULL), STIRGATE_EFORK);
	CHECK_RC(stirgate_status(h, &json), STIRGATE_EFORK);
	CHECK(json == NULL, "status output not cleared after EFORK");
	json = (char *)buf;
	CHECK_RC(stirgate_reload(h, NULL), STIRGATE_EFORK);
	CHECK(stirgate_errmsg(h, buf, sizeof(buf)) > 0 && strstr(buf, "fork") != NULL,
			"errmsg of h after EFORK: %s", buf);
	CHECK_RC(stirgate_sign(h, "2155550121", "2155550131", "A", NULL, &identity, &date), STIRGATE_EFORK);
	CHECK(identity == NULL && date == NULL, "sign outputs not cleared");
	memset(&req, 0, sizeof(req));
	req.orig = "2155550121";
	req.dest = "2155550131";
	memset(&sig, 0xff, sizeof(sig));
	CHECK_RC(stirgate_sign_call(h, &req, &sig), STIRGATE_EFORK);
	CHECK(sig.identity == NULL && sig.error == NULL && sig.iat == 0, "signature not zeroed");
	CHECK_RC(stirgate_verify(h, ids, 1, FROM, PAI, TO, NULL, &json), STIRGATE_EFORK);
	CHECK(json == NULL, "verify output not cleared");
	memset(&res, 0xff, sizeof(res));
	CHECK_RC(stirgate_check(h, ids, 1, FROM, PAI, TO, NULL, &res), STIRGATE_EFORK);
	CHECK(res.verstat == NULL && res.json == NULL && res.result == 0, "result not zeroed");
	stirgate_result_free(&res);
	{
		stirgate_verify_request vr;
		char *ci = (char *)buf;

		memset(&vr, 0, sizeof(vr));
		vr.identity = ids;
		vr.n_identity = 1;
		vr.target = "sip:+12155550131@carrier.example.net;user=phone";
		memset(&res, 0xff, sizeof(res));
		CHECK_RC(stirgate_check_call(h, &vr, &res, &ci), STIRGATE_EFORK);
		CHECK(res.verstat == NULL && res.json == NULL && ci == NULL, "check_call outputs not cleared");
		stirgate_result_free(&res);
	}
	stirgate_signature_free(&sig);
	CHECK_RC(stirgate_close(h), STIRGATE_EFORK);
	CHECK(strstr(stirgate_version(), "stirgate") != NULL, "version in the child");
	stirgate_free(NULL);
}

/* test_fork forks, runs fork_child in the child and checks that it exits
 * cleanly. Before the guard existed the child deadlocked in its first call
 * into Go; the alarm turns such a hang into a failure of this test instead
 * of a hung build (a safety net far beyond what the child needs, not a
 * timing assumption). */
static void test_fork(int h, const char *when)
{
	int status = 0;
	pid_t pid;

	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if(pid == 0) {
		/* Go handles SIGALRM in the parent; its handler cannot run here. */
		signal(SIGALRM, SIG_DFL);
		alarm(120);
		failures = 0;
		fork_child(h);
		_exit(failures == 0 ? 0 : 1);
	}
	CHECK(pid > 0, "fork: %s", strerror(errno));
	if(pid <= 0)
		return;
	CHECK(waitpid(pid, &status, 0) == pid, "waitpid: %s", strerror(errno));
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0,
			"%s: child exit %d, signal %d (14 = hung in the library)", when,
			WIFEXITED(status) ? WEXITSTATUS(status) : -1,
			WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

/* json_str copies the string value of "key" from flat JSON into buf. */
static int json_str(const char *js, const char *key, char *buf, size_t len)
{
	char pat[64];
	const char *p, *e;

	snprintf(pat, sizeof(pat), "\"%s\":\"", key);
	if((p = strstr(js, pat)) == NULL)
		return -1;
	p += strlen(pat);
	if((e = strchr(p, '"')) == NULL || (size_t)(e - p) >= len)
		return -1;
	memcpy(buf, p, (size_t)(e - p));
	buf[e - p] = '\0';
	return 0;
}

/* test_status: what a handle runs on, for a host's status command. */
static void test_status(int relaxed, int strict)
{
	char *js = (char *)1, *js2 = NULL, hash[64], hash2[64], x5u[256];
	const char *p;
	long long not_after;

	CHECK_RC(stirgate_status(relaxed, NULL), STIRGATE_EINVAL);
	CHECK_RC(stirgate_status(9999, &js), STIRGATE_EHANDLE);
	CHECK(js == NULL, "output not cleared on failure");
	CHECK_RC(stirgate_status(relaxed, &js), 0);
	CHECK_RC(stirgate_status(strict, &js2), 0);
	if(js == NULL || js2 == NULL) {
		CHECK(0, "no status JSON");
		return;
	}
	CHECK(json_str(js, "config_hash", hash, sizeof(hash)) == 0 && strlen(hash) == 16,
			"config_hash in %s", js);
	CHECK(json_str(js2, "config_hash", hash2, sizeof(hash2)) == 0 && strcmp(hash, hash2) != 0,
			"two configurations, one hash: %s / %s", js, js2);
	CHECK(json_str(js, "x5u", x5u, sizeof(x5u)) == 0 && strcmp(x5u, X5U) == 0, "x5u in %s", js);
	CHECK(strstr(js, "\"signer\":true") != NULL && strstr(js, "\"verifier\":true") != NULL,
			"signer/verifier in %s", js);
	p = strstr(js, "\"cert_not_after\":");
	not_after = p != NULL ? atoll(p + strlen("\"cert_not_after\":")) : 0;
	CHECK(not_after > (long long)time(NULL), "cert_not_after %lld in %s", not_after, js);
	CHECK(strstr(js, "\"x5u_cache\":{") != NULL && strstr(js, "\"entries\":") != NULL,
			"x5u_cache in %s", js);
	stirgate_free(js);
	stirgate_free(js2);
}

int main(int argc, char **argv)
{
	int relaxed, strict;

	if(argc < 2) {
		fprintf(stderr, "usage: %s LABDIR [leak|double-free|use-after-free]\n", argv[0]);
		return 2;
	}
	/* Absolute, because a configuration file resolves relative names
	 * against its own directory. */
	labdir = realpath(argv[1], NULL);
	if(labdir == NULL) {
		fprintf(stderr, "%s: %s\n", argv[1], strerror(errno));
		return 2;
	}

	/* Nothing called yet: the library is only linked. */
	test_fork(1, "fork before any call");

	test_version_errmsg();
	test_init();

	relaxed = open_config("");
	strict = open_config("mode = \"strict\"\nrequire_identity = true");
	CHECK(relaxed >= 1 && strict > relaxed, "handles %d %d", relaxed, strict);

	test_sign(relaxed);
	test_status(relaxed, strict);
	test_verify(relaxed, 0);
	test_verify(strict, 1);
	test_check_call();
	test_threads(relaxed);
	test_close_race();

	/* Handles open, Go busy: the child is refused, the parent goes on. */
	test_fork(relaxed, "fork after use");
	{
		char *again = sign_good(relaxed);
		CHECK(again != NULL, "parent cannot sign after fork");
		stirgate_free(again);
	}

	CHECK_RC(stirgate_close(relaxed), 0);
	CHECK_RC(stirgate_close(strict), 0);
	CHECK_RC(stirgate_sign(strict, "2155550121", "2155550131", "A", NULL, NULL, NULL), STIRGATE_EHANDLE);

	if(argc > 2 && plant_defect(argv[2]) != 0)
		return 2;

	printf("stirgate_test: %d checks, %d failures\n", checks, failures);
	free((char *)labdir);
	return failures == 0 ? 0 : 1;
}
