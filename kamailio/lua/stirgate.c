/*
 * stirgate.so - a Lua 5.1 C module (require "stirgate") over libstirgate,
 * for Kamailio's app_lua (Debian links PUC Lua 5.1, so there is no FFI).
 *
 * FORK SAFETY. This module does not link libstirgate. Kamailio's app_lua
 * runs the routing script in the main process too (child_init(PROC_INIT),
 * before the workers are forked), so `require "stirgate"` and
 * stirgate.open() at the top of a script must not start a Go runtime
 * there. The library is dlopen()ed on the first call that needs it, which
 * a routing script only makes while handling a message, that is in a worker.
 * The process that loaded it is remembered: a process that inherited a
 * loaded library through fork() gets an error instead of a hang.
 *
 *   local stirgate = require "stirgate"
 *   local sg = stirgate.open("/etc/stirgate/stirgate.toml")  -- loads nothing
 *   local sig, err = sg:sign{from=..., pai=..., to=..., call_id=..., source=...}
 *   local r, err = sg:check{identity={...}, from=..., pai=..., to=..., date=...,
 *                           target=...}   -- the Request-URI: a diverted call's target
 *
 * On a pass, r.div lists the diverting numbers of a verified diversion
 * chain (RFC 8946) and r.rcd holds the verified rich call data (RFC 9795:
 * nam, crn, icn, jcl); r.call_info is the Call-Info header value (RFC 9796)
 * to add when the call goes on. A libstirgate without stirgate_check_call
 * (before the extensions) is still used: target is then ignored.
 *
 * Library failures return nil and an error table {code=-3, name="ECONFIG",
 * message="..."} (sign refusals add error, sip_code, reason, detail); wrong
 * argument types raise a Lua error.
 */
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>

#include "stirgate.h"

/* The result JSON reader of the native module (div and rcd of a result),
 * compiled into this one file so that every build line stays one source. */
#include "../module/resultjson.c"

#define MT "stirgate.handle"
#define DEFAULT_LIBRARY "libstirgate.so.1"

/* The functions of libstirgate, resolved by dlsym in the process that uses
 * them. */
static struct {
	void *dl;
	pid_t pid;
	const char *(*version)(void);
	int (*init_file)(const char *);
	int (*reload)(int, const char *);
	int (*close)(int);
	int (*errmsg)(int, char *, size_t);
	void (*free)(void *);
	int (*sign_call)(int, const stirgate_sign_request *, stirgate_signature *);
	void (*signature_free)(stirgate_signature *);
	int (*verify)(int, const char *const *, int, const char *, const char *,
			const char *, const char *, char **);
	int (*check)(int, const char *const *, int, const char *, const char *,
			const char *, const char *, stirgate_result *);
	/* NULL in a libstirgate older than the PASSporT extensions */
	int (*check_call)(int, const stirgate_verify_request *, stirgate_result *,
			char **);
	void (*result_free)(stirgate_result *);
} api;

static char library[4096] = "";
static char load_error[sizeof(library) + 1024] = "";

/* A handle object: the configuration path and, per process, the handle. */
typedef struct {
	char *path;
	int h;     /* 0 until opened in this process */
	pid_t pid; /* the process that opened h */
} sg_handle;

/* load_api dlopens libstirgate once per process; NULL on success, else a
 * message. */
static const char *load_api(void)
{
	const char *path;
	void *dl;

	if(api.dl != NULL) {
		if(api.pid != getpid()) {
			snprintf(load_error, sizeof(load_error),
					"libstirgate was loaded in process %d before this process "
					"(%d) was forked from it; the Go runtime does not survive "
					"fork(): call stirgate only from message handling, not at "
					"script load", (int)api.pid, (int)getpid());
			return load_error;
		}
		return NULL;
	}
	path = library[0] != '\0' ? library : getenv("STIRGATE_LIBRARY");
	if(path == NULL || path[0] == '\0')
		path = DEFAULT_LIBRARY;
	dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if(dl == NULL) {
		snprintf(load_error, sizeof(load_error), "dlopen %s: %s", path, dlerror());
		return load_error;
	}
#define SYM(field, name)                                                          \
	do {                                                                          \
		*(void **)(&api.field) = dlsym(dl, name);                                 \
		if(api.field == NULL) {                                                   \
			snprintf(load_error, sizeof(load_error), "%s: no symbol %s", path, name); \
			memset(&api, 0, sizeof(api));                                         \
			return load_error;                                                    \
		}                                                                         \
	} while(0)
	SYM(version, "stirgate_version");
	SYM(init_file, "stirgate_init_file");
	SYM(reload, "stirgate_reload");
	SYM(close, "stirgate_close");
	SYM(errmsg, "stirgate_errmsg");
	SYM(free, "stirgate_free");
	SYM(sign_call, "stirgate_sign_call");
	SYM(signature_free, "stirgate_signature_free");
	SYM(verify, "stirgate_verify");
	SYM(check, "stirgate_check");
	SYM(result_free, "stirgate_result_free");
#undef SYM
	*(void **)(&api.check_call) = dlsym(dl, "stirgate_check_call");
	/* Never dlclose: a Go runtime cannot be unloaded. */
	api.dl = dl;
	api.pid = getpid();
	return NULL;
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
		case STIRGATE_EFORK: return "EFORK";
	}
	return "EUNKNOWN";
}

/* push_error pushes nil and an error table {code, name, message} and
 * returns 2; the table is on top, so callers may add fields. */
static int push_error(lua_State *L, int code, int h, const char *message)
{
	char buf[1024];

	lua_pushnil(L);
	lua_createtable(L, 0, 6);
	if(code != 0) {
		lua_pushinteger(L, code);
		lua_setfield(L, -2, "code");
		lua_pushstring(L, code_name(code));
		lua_setfield(L, -2, "name");
	} else {
		lua_pushstring(L, "ELOAD");
		lua_setfield(L, -2, "name");
	}
	if(message == NULL && api.errmsg != NULL) {
		api.errmsg(h, buf, sizeof(buf));
		message = buf;
	}
	lua_pushstring(L, message != NULL ? message : "");
	lua_setfield(L, -2, "message");
	return 2;
}

static void set_str(lua_State *L, const char *k, const char *v)
{
	if(v == NULL)
		return;
	lua_pushstring(L, v);
	lua_setfield(L, -2, k);
}

static void set_int(lua_State *L, const char *k, lua_Integer v)
{
	lua_pushinteger(L, v);
	lua_setfield(L, -2, k);
}

/* set_list stores a comma-separated value as an array. */
static void set_list(lua_State *L, const char *k, const char *csv)
{
	const char *p, *e;
	int i = 1;

	if(csv == NULL)
		return;
	lua_newtable(L);
	for(p = csv; *p != '\0'; p = *e ? e + 1 : e) {
		e = strchr(p, ',');
		if(e == NULL)
			e = p + strlen(p);
		lua_pushlstring(L, p, (size_t)(e - p));
		lua_rawseti(L, -2, i++);
	}
	lua_setfield(L, -2, k);
}

/* opt_field reads t[k] as an optional string; a string with an embedded
 * NUL is rejected (it would be cut silently otherwise). */
static const char *opt_field(lua_State *L, int t, const char *k)
{
	const char *s;
	size_t n;

	lua_getfield(L, t, k);
	if(lua_isnil(L, -1)) {
		lua_pop(L, 1);
		return NULL;
	}
	/* Strings only: a number converted here would be anchored nowhere. */
	if(lua_type(L, -1) != LUA_TSTRING)
		luaL_error(L, "stirgate: field '%s' must be a string", k);
	s = lua_tolstring(L, -1, &n);
	if(strlen(s) != n)
		luaL_error(L, "stirgate: field '%s' contains a NUL byte", k);
	/* The string stays referenced by the table, which is on the stack. */
	lua_pop(L, 1);
	return s;
}

/* handle_of opens the configuration in this process on first use. On
 * failure it pushes nil, err and returns 0. */
static int handle_of(lua_State *L, sg_handle *sh)
{
	const char *err = load_api();
	int h;

	if(err != NULL) {
		push_error(L, 0, -1, err);
		return 0;
	}
	if(sh->path == NULL) {
		push_error(L, STIRGATE_EHANDLE, -1, "handle is closed");
		return 0;
	}
	if(sh->h > 0 && sh->pid == getpid())
		return sh->h;
	h = api.init_file(sh->path);
	if(h < 0) {
		push_error(L, h, -1, NULL);
		return 0;
	}
	sh->h = h;
	sh->pid = getpid();
	return h;
}

static sg_handle *check_handle(lua_State *L)
{
	return (sg_handle *)luaL_checkudata(L, 1, MT);
}

/* stirgate.open(path): a lazy handle; nothing is loaded yet. */
static int l_open(lua_State *L)
{
	const char *path = luaL_checkstring(L, 1);
	sg_handle *sh = (sg_handle *)lua_newuserdata(L, sizeof(*sh));

	memset(sh, 0, sizeof(*sh));
	sh->path = strdup(path);
	if(sh->path == NULL)
		return luaL_error(L, "stirgate: out of memory");
	luaL_getmetatable(L, MT);
	lua_setmetatable(L, -2);
	return 1;
}

/* stirgate.library(path): where to dlopen libstirgate from (default: the
 * STIRGATE_LIBRARY environment variable, else libstirgate.so.1 on the
 * loader's search path). Only before the first use. */
static int l_library(lua_State *L)
{
	const char *path = luaL_checkstring(L, 1);

	if(api.dl != NULL)
		return luaL_error(L, "stirgate.library: libstirgate is already loaded");
	if(strlen(path) >= sizeof(library))
		return luaL_error(L, "stirgate.library: path too long");
	strcpy(library, path);
	return 0;
}

/* stirgate.loaded(): true and the pid of the process that loaded
 * libstirgate, or false. */
static int l_loaded(lua_State *L)
{
	lua_pushboolean(L, api.dl != NULL);
	if(api.dl == NULL)
		return 1;
	lua_pushinteger(L, api.pid);
	return 2;
}

/* stirgate.version(): loads libstirgate (so: only in a worker). */
static int l_version(lua_State *L)
{
	const char *err = load_api();
	if(err != NULL)
		return push_error(L, 0, -1, err);
	lua_pushstring(L, api.version());
	return 1;
}

/* sg:sign{orig=, dest= (string or array), from=, pai=, to=, date=,
 * attest=, origid=, call_id=, customer=, source=} */
static int l_sign(lua_State *L)
{
	sg_handle *sh = check_handle(L);
	stirgate_sign_request req;
	stirgate_signature sig;
	int h, rc, i, n, t;

	luaL_checktype(L, 2, LUA_TTABLE);
	memset(&req, 0, sizeof(req));
	req.orig = opt_field(L, 2, "orig");
	req.from = opt_field(L, 2, "from");
	req.pai = opt_field(L, 2, "pai");
	req.to = opt_field(L, 2, "to");
	req.date = opt_field(L, 2, "date");
	req.attest = opt_field(L, 2, "attest");
	req.origid = opt_field(L, 2, "origid");
	req.call_id = opt_field(L, 2, "call_id");
	req.customer = opt_field(L, 2, "customer");
	req.source = opt_field(L, 2, "source");
	lua_getfield(L, 2, "dest");
	if(lua_istable(L, -1)) {
		/* Joined with commas into one string that stays on the stack. */
		t = lua_gettop(L);
		n = (int)lua_objlen(L, t);
		lua_pushliteral(L, "");
		for(i = 1; i <= n; i++) {
			luaL_checkstack(L, 3, "stirgate: dest");
			if(i > 1)
				lua_pushliteral(L, ",");
			lua_rawgeti(L, t, i);
			if(lua_type(L, -1) != LUA_TSTRING)
				return luaL_error(L, "stirgate: dest[%d] must be a string", i);
			lua_concat(L, i > 1 ? 3 : 2);
		}
		req.dest = lua_tostring(L, -1);
	} else if(!lua_isnil(L, -1)) {
		req.dest = opt_field(L, 2, "dest");
	}

	h = handle_of(L, sh);
	if(h == 0)
		return 2;
	rc = api.sign_call(h, &req, &sig);
	if(rc != 0) {
		push_error(L, rc, h, NULL);
		set_str(L, "error", sig.error);
		if(sig.sip_code != 0)
			set_int(L, "sip_code", sig.sip_code);
		set_str(L, "reason", sig.reason);
		set_str(L, "detail", sig.detail);
		api.signature_free(&sig);
		return 2;
	}
	lua_createtable(L, 0, 9);
	set_str(L, "identity", sig.identity);
	set_str(L, "date", sig.date);
	set_str(L, "attest", sig.attest);
	set_str(L, "origid", sig.origid);
	set_str(L, "orig", sig.orig);
	set_list(L, "dest", sig.dest);
	set_str(L, "x5u", sig.x5u);
	set_int(L, "iat", (lua_Integer)sig.iat);
	set_str(L, "json", sig.json);
	api.signature_free(&sig);
	return 1;
}

/* identities reads t.identity (a string or an array of strings) into a
 * malloc'ed array; the strings stay referenced by t. */
static const char **identities(lua_State *L, int t, int *n)
{
	const char **ids = NULL;
	size_t len;
	int i;

	*n = 0;
	lua_getfield(L, t, "identity");
	if(lua_isnil(L, -1)) {
		lua_pop(L, 1);
		return NULL;
	}
	if(lua_type(L, -1) == LUA_TSTRING) {
		const char *one;
		lua_pop(L, 1);
		one = opt_field(L, t, "identity"); /* may raise: before malloc */
		ids = malloc(sizeof(*ids));
		if(ids == NULL)
			luaL_error(L, "stirgate: out of memory");
		ids[0] = one;
		*n = 1;
		return ids;
	}
	if(!lua_istable(L, -1))
		luaL_error(L, "stirgate: identity must be a string or an array of strings");
	*n = (int)lua_objlen(L, -1);
	if(*n > STIRGATE_MAX_IDENTITY)
		*n = STIRGATE_MAX_IDENTITY + 1; /* the library reports ETOOLARGE */
	ids = calloc((size_t)(*n > 0 ? *n : 1), sizeof(*ids));
	if(ids == NULL)
		luaL_error(L, "stirgate: out of memory");
	for(i = 0; i < *n; i++) {
		lua_rawgeti(L, -1, i + 1);
		if(lua_type(L, -1) != LUA_TSTRING) {
			free(ids);
			luaL_error(L, "stirgate: identity[%d] must be a string", i + 1);
		}
		ids[i] = lua_tolstring(L, -1, &len);
		if(strlen(ids[i]) != len) {
			free(ids);
			luaL_error(L, "stirgate: identity[%d] contains a NUL byte", i + 1);
		}
		lua_pop(L, 1);
	}
	lua_pop(L, 1);
	return ids;
}

static const char *outcome_name(int rc)
{
	switch(rc) {
		case STIRGATE_PASS: return "pass";
		case STIRGATE_NONE: return "none";
	}
	return "fail";
}

/* vreq is what sg:check{} and sg:verify{} read from their table. */
typedef struct {
	const char *from, *pai, *to, *date;
	const char *target; /* Request-URI or number; NULL: To */
	const char **ids;
	int n;
} vreq;

/* run_check verifies q with the call's target when the library can (else
 * as before, target ignored) and fills r; *call_info gets the Call-Info
 * value of a pass with rich call data, or NULL. */
static int run_check(int h, const vreq *q, stirgate_result *r, char **call_info)
{
	stirgate_verify_request vr;

	*call_info = NULL;
	if(api.check_call == NULL)
		return api.check(h, q->ids, q->n, q->from, q->pai, q->to, q->date, r);
	memset(&vr, 0, sizeof(vr));
	vr.identity = q->ids;
	vr.n_identity = q->n;
	vr.from = q->from;
	vr.pai = q->pai;
	vr.to = q->to;
	vr.date = q->date;
	vr.target = q->target;
	return api.check_call(h, &vr, r, call_info);
}

/* set_extensions stores div (array of diverting TNs) and rcd (table of
 * its string claims) from a result JSON; both only on pass, as the JSON
 * has them. */
static void set_extensions(lua_State *L, const char *json)
{
	static const char *const keys[] = {"nam", "crn", "icn", "jcl"};
	char buf[4096];
	size_t i;
	int made = 0;

	if(json == NULL)
		return;
	if(result_div(json, buf, sizeof(buf)) > 0)
		set_list(L, "div", buf);
	for(i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		if(result_rcd(json, keys[i], buf, sizeof(buf)) <= 0)
			continue;
		if(!made) {
			lua_createtable(L, 0, 4);
			made = 1;
		}
		set_str(L, keys[i], buf);
	}
	if(made)
		lua_setfield(L, -2, "rcd");
}

/* read_vreq fills q from the table at index 2 and returns the handle, or 0
 * with nil and the error already pushed (q->ids then freed). */
static int read_vreq(lua_State *L, sg_handle *sh, vreq *q)
{
	int h;

	luaL_checktype(L, 2, LUA_TTABLE);
	q->from = opt_field(L, 2, "from");
	q->pai = opt_field(L, 2, "pai");
	q->to = opt_field(L, 2, "to");
	q->date = opt_field(L, 2, "date");
	q->target = opt_field(L, 2, "target");
	q->ids = identities(L, 2, &q->n);
	h = handle_of(L, sh);
	if(h == 0) {
		free(q->ids);
		q->ids = NULL;
	}
	return h;
}

/* sg:check{identity=, from=, pai=, to=, date=, target=}: the result and
 * its disposition as a table. */
static int l_check(lua_State *L)
{
	sg_handle *sh = check_handle(L);
	stirgate_result r;
	char *call_info;
	vreq q;
	int h, rc;

	memset(&q, 0, sizeof(q));
	if((h = read_vreq(L, sh, &q)) == 0)
		return 2;
	rc = run_check(h, &q, &r, &call_info);
	free(q.ids);
	if(rc < 0) {
		api.free(call_info);
		return push_error(L, rc, h, NULL);
	}
	lua_createtable(L, 0, 27);
	set_str(L, "result", outcome_name(rc));
	set_int(L, "code", rc);
	set_int(L, "sip_code", r.sip_code);
	if(r.iat != 0)
		set_int(L, "iat", (lua_Integer)r.iat);
	set_str(L, "verstat", r.verstat);
	set_str(L, "reason", r.reason);
	set_str(L, "error", r.error);
	set_str(L, "detail", r.detail);
	set_str(L, "attest", r.attest);
	set_str(L, "origid", r.origid);
	set_str(L, "orig", r.orig);
	set_list(L, "dest", r.dest);
	set_str(L, "x5u", r.x5u);
	set_str(L, "spc", r.spc);
	set_str(L, "json", r.json);
	lua_pushboolean(L, r.reject);
	lua_setfield(L, -2, "reject");
	if(r.reject) {
		set_int(L, "reject_code", r.reject_code);
		set_str(L, "reject_reason", r.reject_reason);
	}
	set_str(L, "reason_header", r.reason_header);
	set_str(L, "mark", r.mark);
	set_str(L, "from", r.from);
	set_str(L, "pai", r.pai);
	set_str(L, "call_info", call_info);
	set_extensions(L, r.json);
	api.free(call_info);
	api.result_free(&r);
	return 1;
}

#ifdef STIRGATE_PLANT_DEFECT
/* Test builds only (kamailio/luaapi_test.go): the memory check of this
 * module must fail when the module mishandles an output of libstirgate.
 * STIRGATE_PLANT picks the defect planted in the first sg:verify result:
 * leak, double-free or use-after-free. Never compiled into the module that
 * ships. */
static void plant_defect(char *json)
{
	static int planted;
	const char *kind = getenv("STIRGATE_PLANT");
	volatile size_t n = 0;

	if(planted || kind == NULL) {
		api.free(json);
		return;
	}
	planted = 1;
	if(strcmp(kind, "leak") == 0) {
		json = NULL;
	} else if(strcmp(kind, "double-free") == 0) {
		api.free(json);
		api.free(json);
	} else if(strcmp(kind, "use-after-free") == 0) {
		api.free(json);
		n = strlen(json);
	} else {
		api.free(json);
	}
	(void)n;
}
#endif

/* sg:verify{...}: the outcome ("pass", "none", "fail") and the JSON of
 * `stirgate verify`. With a target, the JSON of the check against it (the
 * same fields: stirgate_verify has no target). */
static int l_verify(lua_State *L)
{
	sg_handle *sh = check_handle(L);
	stirgate_result r;
	char *json = NULL, *call_info;
	vreq q;
	int h, rc;

	memset(&q, 0, sizeof(q));
	if((h = read_vreq(L, sh, &q)) == 0)
		return 2;
	if(q.target != NULL && api.check_call != NULL) {
		rc = run_check(h, &q, &r, &call_info);
		free(q.ids);
		api.free(call_info);
		if(rc < 0)
			return push_error(L, rc, h, NULL);
		lua_pushstring(L, outcome_name(rc));
		lua_pushstring(L, r.json);
		api.result_free(&r);
		return 2;
	}
	rc = api.verify(h, q.ids, q.n, q.from, q.pai, q.to, q.date, &json);
	free(q.ids);
	if(rc < 0)
		return push_error(L, rc, h, NULL);
	lua_pushstring(L, outcome_name(rc));
	lua_pushstring(L, json);
#ifdef STIRGATE_PLANT_DEFECT
	plant_defect(json);
#else
	api.free(json);
#endif
	return 2;
}

/* sg:reload([path]) -> true, or nil, err. Only a handle opened in this
 * process is reloaded; otherwise the next call opens the new path. */
static int l_reload(lua_State *L)
{
	sg_handle *sh = check_handle(L);
	const char *path = luaL_optstring(L, 2, NULL);
	char *np;
	int h, rc;

	if(path != NULL) {
		np = strdup(path);
		if(np == NULL)
			return luaL_error(L, "stirgate: out of memory");
		free(sh->path);
		sh->path = np;
	}
	if(sh->h <= 0 || sh->pid != getpid() || api.dl == NULL) {
		lua_pushboolean(L, 1);
		return 1;
	}
	h = sh->h;
	rc = api.reload(h, path);
	if(rc < 0)
		return push_error(L, rc, h, NULL);
	lua_pushboolean(L, 1);
	return 1;
}

static int l_close(lua_State *L)
{
	sg_handle *sh = check_handle(L);

	if(sh->h > 0 && sh->pid == getpid() && api.dl != NULL && api.pid == getpid())
		api.close(sh->h);
	sh->h = 0;
	free(sh->path);
	sh->path = NULL;
	return 0;
}

static int l_tostring(lua_State *L)
{
	sg_handle *sh = check_handle(L);
	lua_pushfstring(L, "stirgate.handle(%s, %d)", sh->path ? sh->path : "closed", sh->h);
	return 1;
}

static const luaL_Reg methods[] = {
	{"sign", l_sign},
	{"check", l_check},
	{"verify", l_verify},
	{"reload", l_reload},
	{"close", l_close},
	{NULL, NULL},
};

static const luaL_Reg functions[] = {
	{"open", l_open},
	{"library", l_library},
	{"loaded", l_loaded},
	{"version", l_version},
	{NULL, NULL},
};

int luaopen_stirgate(lua_State *L)
{
	luaL_newmetatable(L, MT);
	lua_pushvalue(L, -1);
	lua_setfield(L, -2, "__index");
	lua_pushcfunction(L, l_close);
	lua_setfield(L, -2, "__gc");
	lua_pushcfunction(L, l_tostring);
	lua_setfield(L, -2, "__tostring");
	luaL_register(L, NULL, methods);
	lua_pop(L, 1);

	luaL_register(L, "stirgate", functions);
	lua_pushinteger(L, STIRGATE_PASS);
	lua_setfield(L, -2, "PASS");
	lua_pushinteger(L, STIRGATE_NONE);
	lua_setfield(L, -2, "NONE");
	lua_pushinteger(L, STIRGATE_FAIL);
	lua_setfield(L, -2, "FAIL");
	return 1;
}
