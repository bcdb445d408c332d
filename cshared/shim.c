// The public functions of stirgate.h. Compiled against the header, so the
// compiler checks that the header and the library agree; each forwards to
// the Go bridge of export.go (sg_*), except the ones that need no Go:
// version, errmsg and the free functions.
//
// Every function that enters Go first checks that it runs in the process
// that loaded the library (sg_forked). The Go runtime starts when the
// library is loaded and does not survive fork(): in a child, its other
// threads are gone, and the first cgo call waits for them forever. Go
// itself cannot run the check (entering Go is what hangs), and a
// pthread_atfork handler cannot repair the runtime, so the check is here,
// in C, before any cgo call.

#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include "stirgate.h"
#include "_cgo_export.h"

#define STIRGATE_VERSION_STRING "0.1.0"

void sg_record_error(int h, char *msg, size_t len);

/* The process that loaded the library, recorded by a constructor: it runs
 * at load (dlopen, or program start for a linked library), in the process
 * whose Go runtime the library starts, before any call can be made. */
static pid_t sg_load_pid;

#define SG_EFORK_MSG "libstirgate was loaded in process %d; this process (%d) " \
	"was forked from it afterwards, and the Go runtime does not survive " \
	"fork(): load the library after fork()"

__attribute__((constructor)) static void sg_record_load_pid(void)
{
	sg_load_pid = getpid();
}

/* sg_forked reports whether this process is not the one that loaded the
 * library, and then records the error for stirgate_errmsg (C only: the
 * per-thread error slot needs no Go). */
static int sg_forked(int h)
{
	pid_t pid = getpid();
	char *msg;
	int n;

	if(pid == sg_load_pid)
		return 0;
	n = snprintf(NULL, 0, SG_EFORK_MSG, (int)sg_load_pid, (int)pid);
	msg = n > 0 ? malloc((size_t)n + 1) : NULL;
	if(msg != NULL) {
		snprintf(msg, (size_t)n + 1, SG_EFORK_MSG, (int)sg_load_pid, (int)pid);
		sg_record_error(h, msg, (size_t)n);
	}
	return 1;
}

const char *stirgate_version(void)
{
	return "stirgate " STIRGATE_VERSION_STRING " (libstirgate ABI 1)";
}

int stirgate_init_file(const char *path)
{
	if(sg_forked(-1))
		return STIRGATE_EFORK;
	return sg_init_file((char *)path);
}

int stirgate_init_toml(const char *toml)
{
	if(sg_forked(-1))
		return STIRGATE_EFORK;
	return sg_init_toml((char *)toml);
}

int stirgate_reload(int h, const char *path)
{
	if(sg_forked(h))
		return STIRGATE_EFORK;
	return sg_reload(h, (char *)path);
}

int stirgate_close(int h)
{
	if(sg_forked(h))
		return STIRGATE_EFORK;
	return sg_close(h);
}

int stirgate_sign(int h, const char *orig, const char *dest_csv,
		const char *attest, const char *origid, char **identity, char **date)
{
	if(sg_forked(h)) {
		if(identity != NULL)
			*identity = NULL;
		if(date != NULL)
			*date = NULL;
		return STIRGATE_EFORK;
	}
	return sg_sign(h, (char *)orig, (char *)dest_csv, (char *)attest,
			(char *)origid, identity, date);
}

int stirgate_sign_call(int h, const stirgate_sign_request *req,
		stirgate_signature *sig)
{
	if(sg_forked(h)) {
		if(sig != NULL)
			memset(sig, 0, sizeof(*sig));
		return STIRGATE_EFORK;
	}
	return sg_sign_call(h, (stirgate_sign_request *)req, sig);
}

int stirgate_verify(int h, const char *const *identity, int n_identity,
		const char *from, const char *pai, const char *to, const char *date,
		char **result_json)
{
	if(sg_forked(h)) {
		if(result_json != NULL)
			*result_json = NULL;
		return STIRGATE_EFORK;
	}
	return sg_verify(h, (char **)identity, n_identity, (char *)from,
			(char *)pai, (char *)to, (char *)date, result_json);
}

int stirgate_check(int h, const char *const *identity, int n_identity,
		const char *from, const char *pai, const char *to, const char *date,
		stirgate_result *res)
{
	if(sg_forked(h)) {
		if(res != NULL)
			memset(res, 0, sizeof(*res));
		return STIRGATE_EFORK;
	}
	return sg_check(h, (char **)identity, n_identity, (char *)from,
			(char *)pai, (char *)to, (char *)date, res);
}

int stirgate_check_call(int h, const stirgate_verify_request *req,
		stirgate_result *res, char **call_info)
{
	if(call_info != NULL)
		*call_info = NULL;
	if(sg_forked(h)) {
		if(res != NULL)
			memset(res, 0, sizeof(*res));
		return STIRGATE_EFORK;
	}
	return sg_check_call(h, (stirgate_verify_request *)req, res, call_info);
}

int stirgate_status(int h, char **json)
{
	if(sg_forked(h)) {
		if(json != NULL)
			*json = NULL;
		return STIRGATE_EFORK;
	}
	return sg_status(h, json);
}

void stirgate_free(void *p)
{
	free(p);
}

void stirgate_signature_free(stirgate_signature *s)
{
	if(s == NULL)
		return;
	free(s->identity);
	free(s->date);
	free(s->attest);
	free(s->origid);
	free(s->orig);
	free(s->dest);
	free(s->x5u);
	free(s->json);
	free(s->error);
	free(s->reason);
	free(s->detail);
	memset(s, 0, sizeof(*s));
}

void stirgate_result_free(stirgate_result *r)
{
	if(r == NULL)
		return;
	free(r->verstat);
	free(r->reason);
	free(r->error);
	free(r->detail);
	free(r->attest);
	free(r->origid);
	free(r->orig);
	free(r->dest);
	free(r->x5u);
	free(r->spc);
	free(r->json);
	free(r->reject_reason);
	free(r->reason_header);
	free(r->mark);
	free(r->from);
	free(r->pai);
	memset(r, 0, sizeof(*r));
}

/* The last error of each thread: which handle, and the message. A thread
 * that exits frees its own through the key's destructor. */
struct sg_err {
	int h;
	size_t len;
	char *msg;
};

static pthread_key_t sg_err_key;
static pthread_once_t sg_err_once = PTHREAD_ONCE_INIT;
static int sg_err_ok;

static void sg_err_destroy(void *p)
{
	struct sg_err *e = p;
	if(e != NULL) {
		free(e->msg);
		free(e);
	}
}

static void sg_err_init(void)
{
	sg_err_ok = pthread_key_create(&sg_err_key, sg_err_destroy) == 0;
}

/* Called by Go (run) on the thread of the failing call; takes ownership
 * of msg (malloc'ed). */
void sg_record_error(int h, char *msg, size_t len)
{
	struct sg_err *e;

	pthread_once(&sg_err_once, sg_err_init);
	if(!sg_err_ok) {
		free(msg);
		return;
	}
	e = pthread_getspecific(sg_err_key);
	if(e == NULL) {
		e = calloc(1, sizeof(*e));
		if(e == NULL) {
			free(msg);
			return;
		}
		if(pthread_setspecific(sg_err_key, e) != 0) {
			free(e);
			free(msg);
			return;
		}
	}
	free(e->msg);
	e->h = h;
	e->msg = msg;
	e->len = msg != NULL ? len : 0;
}

int stirgate_errmsg(int h, char *buf, size_t len)
{
	struct sg_err *e = NULL;
	const char *m = "";
	size_t n = 0, c;

	if(buf == NULL && len > 0)
		return STIRGATE_EINVAL;
	pthread_once(&sg_err_once, sg_err_init);
	if(sg_err_ok)
		e = pthread_getspecific(sg_err_key);
	if(e != NULL && e->msg != NULL && (h == -1 || e->h == h)) {
		m = e->msg;
		n = e->len;
	}
	if(len > 0) {
		c = n < len - 1 ? n : len - 1;
		memcpy(buf, m, c);
		buf[c] = '\0';
	}
	return n > INT_MAX ? INT_MAX : (int)n;
}
