/*
 * stirgate - a Kamailio module: STIR/SHAKEN signing (STI-AS) and
 * verification (STI-VS) over libstirgate, for the native cfg language and
 * every KEMI language.
 *
 * FORK SAFETY. The module does not link libstirgate: the library starts a
 * Go runtime, which does not survive fork(). It is dlopen()ed in the SIP
 * worker processes only, in child_init (modparam load_at_start, default 1)
 * or on the first call that needs it, never in the main process before the
 * workers are forked. The process that loaded it is remembered, so a process
 * that inherited a loaded library through fork() gets an error, not a hang.
 *
 * RELOAD. stirgate_reload() reloads the configuration in the calling worker
 * and raises a generation counter in shared memory; the RPC command
 * stirgate.reload only raises the counter. Every worker compares the
 * counter with its own before its next call and reloads when it is behind,
 * so the RPC process never has to load the library.
 *
 * See README.md beside this file for the functions, return codes and
 * pseudo-variables.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "../../core/sr_module.h"
#include "../../core/dprint.h"
#include "../../core/mod_fix.h"
#include "../../core/data_lump.h"
#include "../../core/ip_addr.h"
#include "../../core/pt.h"
#include "../../core/pvar.h"
#include "../../core/kemi.h"
#include "../../core/rpc.h"
#include "../../core/rpc_lookup.h"
#include "../../core/atomic_ops.h"
#include "../../core/mem/shm_mem.h"
#include "../../core/parser/msg_parser.h"
#include "../../core/parser/parse_from.h"
#include "../../core/parser/parse_uri.h"
#include "../../modules/sl/sl.h"

#include "stirgate.h"
#include "verstat.h"
#include "resultjson.h"

MODULE_VERSION

#define DEFAULT_LIBRARY "libstirgate.so.1"

/* Return codes of the cfg functions (README.md). Never 0: 0 would end the
 * route. */
#define SG_SIGNED 1
#define SG_ALREADY_SIGNED 2
#define SG_PASS 1
#define SG_NONE 2
#define SG_FAIL_CONTINUE 3
#define SG_REFUSED -1 /* sign: policy/numbers refused; verify: failed */
#define SG_REJECTED -1 /* check: reply sent */
#define SG_ERROR -2    /* library unavailable, configuration, internal */
#define SG_BADMSG -3   /* not a request, or unparsable headers */

static char *sg_config = "/etc/stirgate/stirgate.toml";
static char *sg_library = NULL;
static int sg_load_at_start = 1;

/* The functions of libstirgate, resolved by dlsym in the process using
 * them. */
static struct {
	void *dl;
	pid_t pid;
	const char *(*version)(void);
	int (*init_file)(const char *);
	int (*reload)(int, const char *);
	int (*errmsg)(int, char *, size_t);
	int (*sign_call)(int, const stirgate_sign_request *, stirgate_signature *);
	void (*signature_free)(stirgate_signature *);
	int (*check)(int, const char *const *, int, const char *, const char *,
			const char *, const char *, stirgate_result *);
	void (*result_free)(stirgate_result *);
	/* optional: NULL in older libraries (the To header is then the
	 * target of a diverted call) */
	int (*check_call)(int, const stirgate_verify_request *, stirgate_result *,
			char **);
	int (*status)(int, char **); /* optional: NULL in older libraries */
	void (*free)(void *);
} api;

static int sg_handle = 0;	  /* this process's handle, 0 until opened */
static int sg_generation = 0; /* the reload generation h was built at */
static char sg_load_error[1024];

/* Shared: the reload generation and one status slot per process. */
typedef struct {
	int pid;
	int loaded;
	int generation;
	unsigned long signed_ok, sign_refused, verified, errors, reloads;
	char last_error[256];
	time_t status_at;  /* when library was last written */
	char library[1024]; /* stirgate_status() JSON of this worker's handle */
} sg_slot_t;

static atomic_t *sg_shm_generation = NULL;
static sg_slot_t *sg_slots = NULL;
static int sg_nslots = 0;

static sl_api_t slb;

/* The result of the last call in this process, for $stirgate(...). */
enum {
	F_RESULT,
	F_VERSTAT,
	F_SIP_CODE,
	F_REASON,
	F_ERROR,
	F_DETAIL,
	F_ATTEST,
	F_ORIGID,
	F_ORIG,
	F_DEST,
	F_SPC,
	F_X5U,
	F_IDENTITY,
	F_DATE,
	F_DIV,
	F_RCD_NAM,
	F_RCD_CRN,
	F_COUNT
};
static const char *field_names[F_COUNT] = {"result", "verstat", "sip_code",
		"reason", "error", "detail", "attest", "origid", "orig", "dest", "spc",
		"x5u", "identity", "date", "div", "rcd_nam", "rcd_crn"};
static struct {
	unsigned int msg_id;
	int pid;
	int sip_code;
	char *v[F_COUNT];
} last;

static void last_reset(sip_msg_t *msg)
{
	int i;
	for(i = 0; i < F_COUNT; i++) {
		if(last.v[i] != NULL)
			free(last.v[i]);
		last.v[i] = NULL;
	}
	last.sip_code = 0;
	last.msg_id = msg != NULL ? msg->id : 0;
	last.pid = msg != NULL ? msg->pid : 0;
}

static void last_set(int f, const char *v)
{
	if(last.v[f] != NULL)
		free(last.v[f]);
	last.v[f] = (v != NULL && v[0] != '\0') ? strdup(v) : NULL;
}

/* Logging of failures is rate-limited: under load one broken peer or
 * configuration must not flood the log. One line per second per process,
 * with the count of the lines left out. */
static void log_limited(int level_err, const char *what, const char *detail)
{
	static time_t last_at;
	static unsigned long skipped;
	time_t now = time(NULL);

	if(now == last_at) {
		skipped++;
		return;
	}
	last_at = now;
	if(level_err)
		LM_ERR("stirgate: %s: %s (%lu similar lines suppressed)\n", what,
				detail, skipped);
	else
		LM_WARN("stirgate: %s: %s (%lu similar lines suppressed)\n", what,
				detail, skipped);
	skipped = 0;
}

static sg_slot_t *my_slot(void)
{
	if(sg_slots == NULL || process_no < 0 || process_no >= sg_nslots)
		return NULL;
	return &sg_slots[process_no];
}

static void slot_error(const char *msg)
{
	sg_slot_t *s = my_slot();
	if(s == NULL)
		return;
	s->pid = getpid();
	s->errors++;
	snprintf(s->last_error, sizeof(s->last_error), "%s", msg);
}

static const char *code_name(int code)
{
	switch(code) {
		case STIRGATE_EINVAL: return "EINVAL";
		case STIRGATE_EHANDLE: return "EHANDLE";
		case STIRGATE_ECONFIG: return "ECONFIG";
		case STIRGATE_ENOSIGNER: return "ENOSIGNER";
		case STIRGATE_ENOVERIFIER: return "ENOVERIFIER";
		case STIRGATE_ESIGN: return "ESIGN";
		case STIRGATE_ETOOLARGE: return "ETOOLARGE";
		case STIRGATE_EINTERNAL: return "EINTERNAL";
		case STIRGATE_ELIMIT: return "ELIMIT";
	}
	return "EUNKNOWN";
}

/* load_api dlopens libstirgate once per process; NULL on success, else a
 * message. */
static const char *load_api(void)
{
	const char *path;
	void *dl;

	if(api.dl != NULL) {
		if(api.pid != getpid()) {
			snprintf(sg_load_error, sizeof(sg_load_error),
					"libstirgate was loaded in process %d before this process "
					"(%d) was forked from it; the Go runtime does not survive "
					"fork()",
					(int)api.pid, (int)getpid());
			return sg_load_error;
		}
		return NULL;
	}
	path = sg_library;
	if(path == NULL || path[0] == '\0')
		path = getenv("STIRGATE_LIBRARY");
	if(path == NULL || path[0] == '\0')
		path = DEFAULT_LIBRARY;
	dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if(dl == NULL) {
		snprintf(sg_load_error, sizeof(sg_load_error), "dlopen %s: %s", path,
				dlerror());
		return sg_load_error;
	}
#define SYM(field, name)                                                   \
	do {                                                                   \
		*(void **)(&api.field) = dlsym(dl, name);                          \
		if(api.field == NULL) {                                            \
			snprintf(sg_load_error, sizeof(sg_load_error),                 \
					"%s: no symbol %s", path, name);                       \
			memset(&api, 0, sizeof(api));                                  \
			return sg_load_error;                                          \
		}                                                                  \
	} while(0)
	SYM(version, "stirgate_version");
	SYM(init_file, "stirgate_init_file");
	SYM(reload, "stirgate_reload");
	SYM(errmsg, "stirgate_errmsg");
	SYM(sign_call, "stirgate_sign_call");
	SYM(signature_free, "stirgate_signature_free");
	SYM(check, "stirgate_check");
	SYM(result_free, "stirgate_result_free");
	SYM(free, "stirgate_free");
#undef SYM
	*(void **)(&api.status) = dlsym(dl, "stirgate_status");
	*(void **)(&api.check_call) = dlsym(dl, "stirgate_check_call");
	/* Never dlclose: a Go runtime cannot be unloaded. */
	api.dl = dl;
	api.pid = getpid();
	return NULL;
}

/* publish_status copies this worker's stirgate_status() into its shared
 * slot, at most every few seconds (and after an open or reload), so that
 * the RPC process can report it without loading the library. */
static void publish_status(int force)
{
	sg_slot_t *s = my_slot();
	time_t now = time(NULL);
	char *js = NULL;

	if(s == NULL || api.status == NULL || sg_handle <= 0)
		return;
	if(!force && now - s->status_at < 5)
		return;
	s->status_at = now;
	if(api.status(sg_handle, &js) == 0 && js != NULL)
		snprintf(s->library, sizeof(s->library), "%s", js);
	api.free(js);
}

/* handle opens the configuration in this process on first use and follows
 * reloads asked by other processes. 0 and *err set on failure. */
static int handle(const char **err)
{
	static char buf[1024];
	static time_t init_failed_at;
	sg_slot_t *s = my_slot();
	int gen = sg_shm_generation != NULL ? atomic_get(sg_shm_generation) : 0;
	int h, rc;

	if((*err = load_api()) != NULL)
		return 0;
	if(sg_handle > 0) {
		if(gen != sg_generation) {
			/* Another process asked for a reload. On failure the old
			 * configuration stays in force; the generation is taken
			 * anyway, so a broken file is reported once, not per call. */
			sg_generation = gen;
			rc = api.reload(sg_handle, NULL);
			if(rc < 0) {
				api.errmsg(sg_handle, buf, sizeof(buf));
				LM_ERR("stirgate: reload of %s failed, the previous "
					   "configuration stays in force: %s\n",
						sg_config, buf);
				slot_error(buf);
			} else if(s != NULL) {
				s->reloads++;
			}
			if(s != NULL)
				s->generation = gen;
			publish_status(1);
		}
		publish_status(0);
		return sg_handle;
	}
	/* A configuration that failed to load is retried at most once a
	 * second, not rebuilt for every request in between. */
	if(init_failed_at != 0 && time(NULL) == init_failed_at) {
		*err = buf;
		return 0;
	}
	if(s != NULL)
		s->pid = getpid();
	h = api.init_file(sg_config);
	if(h < 0) {
		api.errmsg(-1, buf, sizeof(buf));
		init_failed_at = time(NULL);
		*err = buf;
		return 0;
	}
	init_failed_at = 0;
	sg_handle = h;
	sg_generation = gen;
	if(s != NULL) {
		s->pid = getpid();
		s->loaded = 1;
		s->generation = gen;
	}
	publish_status(1);
	return h;
}

/* ------------------------------------------------------------------------
 * Request access
 */

/* hdr_dup returns a malloc'ed NUL-terminated copy of a header body, or
 * NULL. */
static char *hdr_dup(hdr_field_t *hf)
{
	char *s;
	if(hf == NULL)
		return NULL;
	s = malloc(hf->body.len + 1);
	if(s == NULL)
		return NULL;
	memcpy(s, hf->body.s, hf->body.len);
	s[hf->body.len] = '\0';
	return s;
}

static hdr_field_t *first_hdr(sip_msg_t *msg, int type)
{
	hdr_field_t *hf;
	for(hf = msg->headers; hf != NULL; hf = hf->next)
		if(hf->type == type)
			return hf;
	return NULL;
}

typedef struct {
	char *from, *pai, *to, *date, *call_id;
	char *ruri; /* the Request-URI as routed so far: a diverted call's target */
	char **ids;
	int n;
} req_t;

static void req_free(req_t *q)
{
	int i;
	free(q->from);
	free(q->pai);
	free(q->to);
	free(q->date);
	free(q->call_id);
	free(q->ruri);
	for(i = 0; i < q->n; i++)
		free(q->ids[i]);
	free(q->ids);
	memset(q, 0, sizeof(*q));
}

/* req_read copies what the library reads from a request. Kamailio parses
 * the compact form "y" as the Identity header type, so both forms are
 * collected, in order. */
static int req_read(sip_msg_t *msg, req_t *q)
{
	hdr_field_t *hf;
	str *ruri;
	int n = 0;

	memset(q, 0, sizeof(*q));
	if(msg->first_line.type != SIP_REQUEST) {
		last_set(F_ERROR, "not_a_request");
		return -1;
	}
	if(parse_headers(msg, HDR_EOH_F, 0) < 0) {
		last_set(F_ERROR, "bad_message");
		return -1;
	}
	q->from = hdr_dup(msg->from);
	q->pai = hdr_dup(first_hdr(msg, HDR_PAI_T));
	q->to = hdr_dup(msg->to);
	q->date = hdr_dup(first_hdr(msg, HDR_DATE_T));
	q->call_id = hdr_dup(msg->callid);
	if((ruri = GET_RURI(msg)) != NULL && ruri->len > 0
			&& (q->ruri = malloc(ruri->len + 1)) != NULL) {
		memcpy(q->ruri, ruri->s, ruri->len);
		q->ruri[ruri->len] = '\0';
	}
	for(hf = msg->headers; hf != NULL; hf = hf->next)
		if(hf->type == HDR_IDENTITY_T)
			n++;
	if(n > STIRGATE_MAX_IDENTITY)
		n = STIRGATE_MAX_IDENTITY + 1; /* the library reports ETOOLARGE */
	if(n > 0) {
		q->ids = calloc(n, sizeof(char *));
		if(q->ids == NULL)
			return -1;
		for(hf = msg->headers; hf != NULL && q->n < n; hf = hf->next) {
			if(hf->type != HDR_IDENTITY_T)
				continue;
			if((q->ids[q->n] = hdr_dup(hf)) == NULL)
				return -1;
			q->n++;
		}
	}
	return 0;
}

/* append_hf adds "name: value\r\n" at the end of the header. */
static int append_hf(sip_msg_t *msg, const char *name, const char *value)
{
	struct lump *anchor;
	size_t len = strlen(name) + 2 + strlen(value) + 2;
	char *s;

	anchor = anchor_lump(msg, msg->unparsed - msg->buf, 0, 0);
	if(anchor == NULL)
		return -1;
	s = pkg_malloc(len + 1);
	if(s == NULL)
		return -1;
	snprintf(s, len + 1, "%s: %s\r\n", name, value);
	if(insert_new_lump_before(anchor, s, (int)len, 0) == NULL) {
		pkg_free(s);
		return -1;
	}
	return 0;
}

/* replace_body replaces the value of one header. */
static int replace_body(sip_msg_t *msg, hdr_field_t *hf, const char *value)
{
	struct lump *l;
	size_t len = strlen(value);
	char *s;

	if(hf->body.len == (int)len && memcmp(hf->body.s, value, len) == 0)
		return 0;
	l = del_lump(msg, hf->body.s - msg->buf, hf->body.len, 0);
	if(l == NULL)
		return -1;
	s = pkg_malloc(len + 1);
	if(s == NULL)
		return -1;
	memcpy(s, value, len);
	if(insert_new_lump_after(l, s, (int)len, 0) == NULL) {
		pkg_free(s);
		return -1;
	}
	return 0;
}

static void strip_hdr_verstat(sip_msg_t *msg, hdr_field_t *hf)
{
	char *in, *out;
	if(hf == NULL)
		return;
	in = hdr_dup(hf);
	out = in != NULL ? malloc(strlen(in) + 1) : NULL;
	if(out != NULL && strip_verstat(in, out))
		replace_body(msg, hf, out);
	free(in);
	free(out);
}

/* source_of is the [policy] source of a request: the otg parameter of the
 * From URI when there is one (a trunk tag), else the source address. */
static void source_of(sip_msg_t *msg, char *buf, size_t len)
{
	struct to_body *fb;

	if(parse_from_header(msg) == 0 && (fb = get_from(msg)) != NULL) {
		sip_uri_t u;
		if(parse_uri(fb->uri.s, fb->uri.len, &u) == 0) {
			const char *s = u.params.s, *e = u.params.s + u.params.len;
			while(s != NULL && s < e) {
				const char *n = memchr(s, ';', e - s);
				const char *end = n != NULL ? n : e;
				if(end - s > 4 && strncasecmp(s, "otg=", 4) == 0
						&& (size_t)(end - s - 4) < len) {
					memcpy(buf, s + 4, end - s - 4);
					buf[end - s - 4] = '\0';
					return;
				}
				s = n != NULL ? n + 1 : NULL;
			}
		}
	}
	snprintf(buf, len, "%s", ip_addr2a(&msg->rcv.src_ip));
}

/* ------------------------------------------------------------------------
 * Functions
 */

static void set_failure(int code, const char *name, const char *detail)
{
	char b[16];
	last.sip_code = code;
	snprintf(b, sizeof(b), "%d", code);
	last_set(F_SIP_CODE, b);
	last_set(F_ERROR, name);
	last_set(F_DETAIL, detail);
	if(code == 500)
		last_set(F_REASON, "Server Internal Error");
}

static int ki_stirgate_sign_attest(sip_msg_t *msg, str *attest)
{
	stirgate_sign_request r;
	stirgate_signature sig;
	char attest_z[8], source[128], errbuf[512];
	const char *err;
	req_t q;
	int h, rc, ret;

	last_reset(msg);
	if(req_read(msg, &q) < 0) {
		req_free(&q);
		return SG_BADMSG;
	}
	if(first_hdr(msg, HDR_IDENTITY_T) != NULL) {
		/* Never add a second SHAKEN Identity (conformance 1.11). */
		req_free(&q);
		last_set(F_RESULT, "already_signed");
		return SG_ALREADY_SIGNED;
	}
	memset(&r, 0, sizeof(r));
	r.from = q.from;
	r.pai = q.pai;
	r.to = q.to;
	r.date = q.date;
	r.call_id = q.call_id;
	source_of(msg, source, sizeof(source));
	r.source = source;
	if(attest != NULL && attest->len > 0) {
		if(attest->len >= (int)sizeof(attest_z)) {
			req_free(&q);
			set_failure(500, "EINVAL", "attest must be A, B or C");
			return SG_ERROR;
		}
		memcpy(attest_z, attest->s, attest->len);
		attest_z[attest->len] = '\0';
		r.attest = attest_z;
	}
	h = handle(&err);
	if(h == 0) {
		req_free(&q);
		set_failure(500, "ELOAD", err);
		log_limited(1, "library unavailable", err);
		slot_error(err);
		return SG_ERROR;
	}
	rc = api.sign_call(h, &r, &sig);
	if(rc == STIRGATE_ESIGN) {
		char b[16];
		last.sip_code = sig.sip_code;
		snprintf(b, sizeof(b), "%d", sig.sip_code);
		last_set(F_SIP_CODE, b);
		last_set(F_ERROR, sig.error);
		last_set(F_REASON, sig.reason);
		last_set(F_DETAIL, sig.detail);
		last_set(F_RESULT, "refused");
		log_limited(0, "INVITE not signed", sig.detail ? sig.detail : "?");
		if(my_slot() != NULL)
			my_slot()->sign_refused++;
		ret = SG_REFUSED;
	} else if(rc < 0) {
		api.errmsg(h, errbuf, sizeof(errbuf));
		set_failure(500, code_name(rc), errbuf);
		last_set(F_RESULT, "error");
		log_limited(1, "INVITE not signed", errbuf);
		slot_error(errbuf);
		ret = SG_ERROR;
	} else {
		ret = SG_SIGNED;
		if(q.date == NULL && append_hf(msg, "Date", sig.date) < 0)
			ret = SG_ERROR;
		if(ret > 0 && append_hf(msg, "Identity", sig.identity) < 0)
			ret = SG_ERROR;
		if(ret < 0) {
			set_failure(500, "ELUMP", "cannot add headers");
		} else {
			last_set(F_RESULT, "signed");
			last_set(F_IDENTITY, sig.identity);
			last_set(F_DATE, sig.date);
			last_set(F_ATTEST, sig.attest);
			last_set(F_ORIGID, sig.origid);
			last_set(F_ORIG, sig.orig);
			last_set(F_DEST, sig.dest);
			last_set(F_X5U, sig.x5u);
			if(my_slot() != NULL)
				my_slot()->signed_ok++;
		}
	}
	api.signature_free(&sig);
	req_free(&q);
	return ret;
}

static int ki_stirgate_sign(sip_msg_t *msg)
{
	return ki_stirgate_sign_attest(msg, NULL);
}

static const char *outcome_name(int rc)
{
	switch(rc) {
		case STIRGATE_PASS: return "pass";
		case STIRGATE_NONE: return "none";
	}
	return "fail";
}

/* do_check verifies and, when dispose is set, applies the disposition. */
static int do_check(sip_msg_t *msg, int dispose)
{
	stirgate_result r;
	stirgate_verify_request vr;
	char errbuf[512], b[16], ext[1024], *call_info = NULL;
	const char *err;
	req_t q;
	int h, rc, ret;

	last_reset(msg);
	if(req_read(msg, &q) < 0) {
		req_free(&q);
		return SG_BADMSG;
	}
	h = handle(&err);
	if(h == 0) {
		set_failure(500, "ELOAD", err);
		last_set(F_RESULT, "error");
		log_limited(1, "library unavailable", err);
		slot_error(err);
		rc = STIRGATE_EINTERNAL;
	} else {
		if(api.check_call != NULL) {
			memset(&vr, 0, sizeof(vr));
			vr.identity = (const char *const *)q.ids;
			vr.n_identity = q.n;
			vr.from = q.from;
			vr.pai = q.pai;
			vr.to = q.to;
			vr.date = q.date;
			vr.target = q.ruri;
			rc = api.check_call(h, &vr, &r, &call_info);
		} else {
			rc = api.check(h, (const char *const *)q.ids, q.n, q.from, q.pai,
					q.to, q.date, &r);
		}
		if(rc < 0) {
			api.errmsg(h, errbuf, sizeof(errbuf));
			set_failure(500, code_name(rc), errbuf);
			last_set(F_RESULT, "error");
			log_limited(1, "INVITE not verified", errbuf);
			slot_error(errbuf);
		}
	}
	if(rc < 0) {
		/* Verification could not run: nothing that arrived may pass for
		 * our verstat. The script decides between 500 and relaying. */
		if(dispose) {
			strip_hdr_verstat(msg, msg->from);
			strip_hdr_verstat(msg, first_hdr(msg, HDR_PAI_T));
		}
		req_free(&q);
		return SG_ERROR;
	}
	if(my_slot() != NULL)
		my_slot()->verified++;
	last_set(F_RESULT, outcome_name(rc));
	last_set(F_VERSTAT, r.verstat);
	last.sip_code = r.sip_code;
	snprintf(b, sizeof(b), "%d", r.sip_code);
	last_set(F_SIP_CODE, b);
	last_set(F_REASON, r.reason);
	last_set(F_ERROR, r.error);
	last_set(F_DETAIL, r.detail);
	last_set(F_ATTEST, r.attest);
	last_set(F_ORIGID, r.origid);
	last_set(F_ORIG, r.orig);
	last_set(F_DEST, r.dest);
	last_set(F_X5U, r.x5u);
	last_set(F_SPC, r.spc);
	/* The verified extensions (on pass only) are in the result JSON. */
	if(result_div(r.json, ext, sizeof(ext)) > 0)
		last_set(F_DIV, ext);
	if(result_rcd(r.json, "nam", ext, sizeof(ext)) > 0)
		last_set(F_RCD_NAM, ext);
	if(result_rcd(r.json, "crn", ext, sizeof(ext)) > 0)
		last_set(F_RCD_CRN, ext);
	switch(rc) {
		case STIRGATE_PASS: ret = SG_PASS; break;
		case STIRGATE_NONE: ret = SG_NONE; break;
		default: ret = dispose ? SG_FAIL_CONTINUE : SG_REFUSED;
	}
	if(dispose) {
		if(r.reject) {
			str reason;
			reason.s = r.reject_reason != NULL ? r.reject_reason : "Forbidden";
			reason.len = strlen(reason.s);
			LM_INFO("stirgate: INVITE rejected %d %s\n", r.reject_code,
					r.error != NULL ? r.error : "");
			if(slb.freply(msg, r.reject_code, &reason) < 0)
				LM_ERR("stirgate: cannot send the %d reply\n", r.reject_code);
			ret = SG_REJECTED;
		} else {
			if(r.from != NULL && msg->from != NULL)
				replace_body(msg, msg->from, r.from);
			if(r.pai != NULL && first_hdr(msg, HDR_PAI_T) != NULL)
				replace_body(msg, first_hdr(msg, HDR_PAI_T), r.pai);
			if(r.reason_header != NULL)
				append_hf(msg, "Reason", r.reason_header);
			/* Verified rich call data for the next hop (RFC 9796). */
			if(call_info != NULL)
				append_hf(msg, "Call-Info", call_info);
		}
	}
	api.free(call_info);
	api.result_free(&r);
	req_free(&q);
	return ret;
}

static int ki_stirgate_verify(sip_msg_t *msg)
{
	return do_check(msg, 0);
}

static int ki_stirgate_check(sip_msg_t *msg)
{
	return do_check(msg, 1);
}

static int ki_stirgate_reload(sip_msg_t *msg)
{
	char buf[512];
	const char *err;
	int gen, rc;

	gen = sg_shm_generation != NULL ? atomic_add(sg_shm_generation, 1) : 0;
	if(sg_handle <= 0 || api.pid != getpid()) {
		/* Not open in this process yet: opening reads the file anew. */
		if(handle(&err) == 0) {
			LM_ERR("stirgate: reload: %s\n", err);
			return SG_ERROR;
		}
		return 1;
	}
	sg_generation = gen;
	if(my_slot() != NULL)
		my_slot()->generation = gen;
	rc = api.reload(sg_handle, NULL);
	if(rc < 0) {
		api.errmsg(sg_handle, buf, sizeof(buf));
		LM_ERR("stirgate: reload of %s failed, the previous configuration "
			   "stays in force: %s\n",
				sg_config, buf);
		slot_error(buf);
		return SG_ERROR;
	}
	if(my_slot() != NULL)
		my_slot()->reloads++;
	publish_status(1);
	LM_INFO("stirgate: %s reloaded (generation %d)\n", sg_config, gen);
	return 1;
}

static int w_stirgate_sign(sip_msg_t *msg, char *p1, char *p2)
{
	return ki_stirgate_sign(msg);
}

static int w_stirgate_sign_attest(sip_msg_t *msg, char *p1, char *p2)
{
	str attest;
	if(fixup_get_svalue(msg, (gparam_t *)p1, &attest) < 0) {
		LM_ERR("stirgate_sign_attest: cannot get the attestation\n");
		return SG_ERROR;
	}
	return ki_stirgate_sign_attest(msg, &attest);
}

static int w_stirgate_verify(sip_msg_t *msg, char *p1, char *p2)
{
	return ki_stirgate_verify(msg);
}

static int w_stirgate_check(sip_msg_t *msg, char *p1, char *p2)
{
	return ki_stirgate_check(msg);
}

static int w_stirgate_reload(sip_msg_t *msg, char *p1, char *p2)
{
	return ki_stirgate_reload(msg);
}

/* ------------------------------------------------------------------------
 * $stirgate(name)
 */

static int pv_parse_stirgate(pv_spec_t *sp, str *in)
{
	int i;
	if(sp == NULL || in == NULL || in->len <= 0)
		return -1;
	for(i = 0; i < F_COUNT; i++) {
		if((int)strlen(field_names[i]) == in->len
				&& strncmp(field_names[i], in->s, in->len) == 0) {
			sp->pvp.pvn.type = PV_NAME_INTSTR;
			sp->pvp.pvn.u.isname.type = 0;
			sp->pvp.pvn.u.isname.name.n = i;
			return 0;
		}
	}
	LM_ERR("unknown $stirgate(%.*s)\n", in->len, in->s);
	return -1;
}

static int pv_get_stirgate(sip_msg_t *msg, pv_param_t *param, pv_value_t *res)
{
	int f = param->pvn.u.isname.name.n;

	if(f < 0 || f >= F_COUNT || msg == NULL || last.msg_id != msg->id
			|| last.pid != msg->pid)
		return pv_get_null(msg, param, res);
	if(f == F_SIP_CODE && last.v[F_SIP_CODE] != NULL)
		return pv_get_sintval(msg, param, res, last.sip_code);
	if(last.v[f] == NULL)
		return pv_get_null(msg, param, res);
	return pv_get_strzval(msg, param, res, last.v[f]);
}

/* ------------------------------------------------------------------------
 * RPC
 */

static const char *rpc_reload_doc[] = {
		"Reload the stirgate configuration in every worker (each one at its "
		"next call; see stirgate.status)",
		0};

static void rpc_reload(rpc_t *rpc, void *ctx)
{
	int gen;
	if(sg_shm_generation == NULL) {
		rpc->fault(ctx, 500, "not initialized");
		return;
	}
	gen = atomic_add(sg_shm_generation, 1);
	rpc->add(ctx, "d", gen);
}

static const char *rpc_status_doc[] = {
		"The stirgate configuration, reload generation and per-worker state",
		0};

static void rpc_status(rpc_t *rpc, void *ctx)
{
	void *th, *wh;
	int i;

	if(rpc->add(ctx, "{", &th) < 0)
		return;
	rpc->struct_add(th, "sd", "config", sg_config, "generation",
			sg_shm_generation != NULL ? atomic_get(sg_shm_generation) : 0);
	for(i = 0; i < sg_nslots; i++) {
		sg_slot_t *s = &sg_slots[i];
		if(s->pid == 0)
			continue; /* never tried: not a SIP worker */
		if(rpc->add(ctx, "{", &wh) < 0)
			return;
		rpc->struct_add(wh, "ddddjjjjjss", "pid", s->pid, "process", i,
				"loaded", s->loaded,
				"generation", s->generation, "signed", s->signed_ok,
				"sign_refused", s->sign_refused, "verified", s->verified,
				"errors", s->errors, "reloads", s->reloads, "last_error",
				s->last_error, "library", s->library);
	}
}

static rpc_export_t rpc_cmds[] = {
		{"stirgate.reload", rpc_reload, rpc_reload_doc, 0},
		{"stirgate.status", rpc_status, rpc_status_doc, RET_ARRAY},
		{0, 0, 0, 0}};

/* ------------------------------------------------------------------------
 * Module
 */

static int mod_init(void)
{
	if(sg_config == NULL || sg_config[0] == '\0') {
		LM_ERR("stirgate: modparam config is empty\n");
		return -1;
	}
	if(sl_load_api(&slb) != 0) {
		LM_ERR("stirgate: cannot bind the sl module (loadmodule \"sl.so\")\n");
		return -1;
	}
	sg_shm_generation = shm_malloc(sizeof(atomic_t));
	if(sg_shm_generation == NULL) {
		SHM_MEM_ERROR;
		return -1;
	}
	atomic_set(sg_shm_generation, 0);
	return 0;
}

static int child_init(int rank)
{
	const char *err;

	if(rank == PROC_INIT) {
		/* Process slots are counted by now, and the workers not forked
		 * yet: the status table goes to shared memory here. */
		sg_nslots = get_max_procs();
		sg_slots = shm_malloc(sizeof(sg_slot_t) * sg_nslots);
		if(sg_slots == NULL) {
			SHM_MEM_ERROR;
			return -1;
		}
		memset(sg_slots, 0, sizeof(sg_slot_t) * sg_nslots);
		return 0;
	}
	/* SIP workers only (ranks 1..126); every other process (main, timer,
	 * RPC, TCP main) never loads the library unless it calls a function. */
	if(!sg_load_at_start || rank < PROC_SIPINIT || rank >= PROC_SIPRPC)
		return 0;
	if(handle(&err) == 0) {
		/* Not fatal: the worker starts, and the next call tries again. */
		LM_ERR("stirgate: worker %d: %s\n", rank, err);
		slot_error(err);
	}
	return 0;
}

static cmd_export_t cmds[] = {
		{"stirgate_sign", (cmd_function)w_stirgate_sign, 0, 0, 0, REQUEST_ROUTE | FAILURE_ROUTE | BRANCH_ROUTE},
		{"stirgate_sign_attest", (cmd_function)w_stirgate_sign_attest, 1, fixup_spve_null, fixup_free_spve_null, REQUEST_ROUTE | FAILURE_ROUTE | BRANCH_ROUTE},
		{"stirgate_verify", (cmd_function)w_stirgate_verify, 0, 0, 0, REQUEST_ROUTE},
		{"stirgate_check", (cmd_function)w_stirgate_check, 0, 0, 0, REQUEST_ROUTE},
		{"stirgate_reload", (cmd_function)w_stirgate_reload, 0, 0, 0, ANY_ROUTE},
		{0, 0, 0, 0, 0, 0}};

static param_export_t params[] = {
		{"config", PARAM_STRING, &sg_config},
		{"library", PARAM_STRING, &sg_library},
		{"load_at_start", PARAM_INT, &sg_load_at_start},
		{0, 0, 0}};

static pv_export_t mod_pvs[] = {
		{{"stirgate", sizeof("stirgate") - 1}, PVT_OTHER, pv_get_stirgate, 0,
				pv_parse_stirgate, 0, 0, 0},
		{{0, 0}, 0, 0, 0, 0, 0, 0, 0}};

struct module_exports exports = {
		"stirgate",
		DEFAULT_DLFLAGS,
		cmds,
		params,
		rpc_cmds,
		mod_pvs,
		0,
		mod_init,
		child_init,
		0};

/* clang-format off */
static sr_kemi_t sr_kemi_stirgate_exports[] = {
	{ str_init("stirgate"), str_init("sign"),
		SR_KEMIP_INT, ki_stirgate_sign,
		{ SR_KEMIP_NONE, SR_KEMIP_NONE, SR_KEMIP_NONE,
			SR_KEMIP_NONE, SR_KEMIP_NONE, SR_KEMIP_NONE }
	},
	{ str_init("stirgate"), str_init("sign_attest"),
		SR_KEMIP_INT, ki_stirgate_sign_attest,
		{ SR_KEMIP_STR, SR_KEMIP_NONE, SR_KEMIP_NONE,
			SR_KEMIP_NONE, SR_KEMIP_NONE, SR_KEMIP_NONE }
	},
	{ str_init("stirgate"), str_init("verify"),
		SR_KEMIP_INT, ki_stirgate_verify,
		{ SR_KEMIP_NONE, SR_KEMIP_NONE, SR_KEMIP_NONE,
			SR_KEMIP_NONE, SR_KEMIP_NONE, SR_KEMIP_NONE }
	},
	{ str_init("stirgate"), str_init("check"),
		SR_KEMIP_INT, ki_stirgate_check,
		{ SR_KEMIP_NONE, SR_KEMIP_NONE, SR_KEMIP_NONE,
			SR_KEMIP_NONE, SR_KEMIP_NONE, SR_KEMIP_NONE }
	},
	{ str_init("stirgate"), str_init("reload"),
		SR_KEMIP_INT, ki_stirgate_reload,
		{ SR_KEMIP_NONE, SR_KEMIP_NONE, SR_KEMIP_NONE,
			SR_KEMIP_NONE, SR_KEMIP_NONE, SR_KEMIP_NONE }
	},
	{ {0, 0}, {0, 0}, 0, NULL, { 0, 0, 0, 0, 0, 0 } }
};
/* clang-format on */

int mod_register(char *path, int *dlflags, void *p1, void *p2)
{
	sr_kemi_modules_add(sr_kemi_stirgate_exports);
	return 0;
}
