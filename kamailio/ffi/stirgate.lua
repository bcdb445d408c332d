-- stirgate.lua - LuaJIT FFI binding of libstirgate (stirgate.h), for
-- Kamailio builds whose app_lua uses LuaJIT (and any other LuaJIT host).
-- Debian's app_lua links PUC Lua 5.1, which has no FFI: use the Lua C
-- module (kamailio/lua/) there; both offer the same functions and tables.
--
--   local stirgate = require "stirgate"           -- this file
--   local sg = stirgate.open("/etc/stirgate/stirgate.toml")  -- loads nothing
--   local sig, err = sg:sign{from=..., pai=..., to=..., call_id=..., source=...}
--   local r, err = sg:check{identity={...}, from=..., pai=..., to=..., date=...,
--                           target=...}   -- the Request-URI: a diverted call's target
--
-- On a pass, r.div lists the diverting numbers of a verified diversion
-- chain (RFC 8946) and r.rcd holds the verified rich call data (RFC 9795:
-- nam, crn, icn, jcl); r.call_info is the Call-Info header value (RFC 9796)
-- to add when the call goes on. A libstirgate without stirgate_check_call
-- (before the extensions) is still used: target is then ignored.
--
-- Fork safety: libstirgate starts a Go runtime, which does not survive
-- fork(). ffi.load runs on the first call that needs the library, never at
-- require or open, and the process that loaded it is remembered: a process
-- forked after that gets an error instead of a hang.
--
-- Library failures return nil and an error table {code=-3,
-- name="ECONFIG", message="..."} (sign refusals add error, sip_code,
-- reason, detail); wrong argument types raise a Lua error.

local ffi = require "ffi"

ffi.cdef [[
typedef struct stirgate_sign_request {
    const char *orig; const char *dest; const char *from; const char *pai;
    const char *to; const char *date; const char *attest; const char *origid;
    const char *call_id; const char *customer; const char *source;
} stirgate_sign_request;

typedef struct stirgate_signature {
    char *identity; char *date; char *attest; char *origid; char *orig;
    char *dest; char *x5u; long long iat; char *json;
    char *error; int sip_code; char *reason; char *detail;
} stirgate_signature;

typedef struct stirgate_result {
    int result; int sip_code; long long iat;
    char *verstat; char *reason; char *error; char *detail; char *attest;
    char *origid; char *orig; char *dest; char *x5u; char *spc; char *json;
    int reject; int reject_code; char *reject_reason; char *reason_header;
    char *mark; char *from; char *pai;
} stirgate_result;

const char *stirgate_version(void);
int stirgate_init_file(const char *path);
int stirgate_init_toml(const char *toml);
int stirgate_reload(int h, const char *path);
int stirgate_close(int h);
int stirgate_errmsg(int h, char *buf, size_t len);
void stirgate_free(void *p);
int stirgate_sign(int h, const char *orig, const char *dest_csv,
                  const char *attest, const char *origid,
                  char **identity, char **date);
int stirgate_sign_call(int h, const stirgate_sign_request *req,
                       stirgate_signature *sig);
void stirgate_signature_free(stirgate_signature *sig);
int stirgate_verify(int h, const char *const *identity, int n_identity,
                    const char *from, const char *pai, const char *to,
                    const char *date, char **result_json);
int stirgate_check(int h, const char *const *identity, int n_identity,
                   const char *from, const char *pai, const char *to,
                   const char *date, stirgate_result *res);
void stirgate_result_free(stirgate_result *res);
typedef struct stirgate_verify_request {
    const char *const *identity; int n_identity;
    const char *from; const char *pai; const char *to; const char *date;
    const char *target;
} stirgate_verify_request;
int stirgate_check_call(int h, const stirgate_verify_request *req,
                        stirgate_result *res, char **call_info);

int getpid(void);
]]

local M = {PASS = 0, NONE = 1, FAIL = 2, MAX_IDENTITY = 256}

local names = {
	[-1] = "EINVAL", [-2] = "EHANDLE", [-3] = "ECONFIG", [-4] = "ENOSIGNER",
	[-5] = "ENOVERIFIER", [-6] = "ESIGN", [-7] = "ETOOLARGE", [-8] = "EINTERNAL",
	[-9] = "ELIMIT", [-10] = "EFORK",
}
local outcomes = {[0] = "pass", [1] = "none", [2] = "fail"}

local library -- path set by M.library
local lib, lib_pid
local check_call -- lib.stirgate_check_call, or false in an older library

-- load returns the library namespace, or nil and a message.
local function load()
	if lib ~= nil then
		if lib_pid ~= ffi.C.getpid() then
			return nil, "libstirgate was loaded in process " .. lib_pid .. " before this process ("
				.. ffi.C.getpid() .. ") was forked from it; the Go runtime does not survive fork()"
		end
		return lib
	end
	local path = library or os.getenv("STIRGATE_LIBRARY") or "libstirgate.so.1"
	local ok, l = pcall(ffi.load, path)
	if not ok then
		return nil, "load " .. path .. ": " .. tostring(l)
	end
	lib, lib_pid = l, ffi.C.getpid()
	-- A missing symbol raises on access: probe once.
	local has, fn = pcall(function() return l.stirgate_check_call end)
	check_call = has and fn or false
	return lib
end

-- M.library(path): where to load libstirgate from, before the first use.
function M.library(path)
	if lib ~= nil then
		error("stirgate.library: libstirgate is already loaded", 2)
	end
	library = path
end

-- M.loaded(): true and the loading pid, or false.
function M.loaded()
	if lib == nil then
		return false
	end
	return true, lib_pid
end

function M.version()
	local l, err = load()
	if l == nil then
		return nil, {name = "ELOAD", message = err}
	end
	return ffi.string(l.stirgate_version())
end

local function errtable(l, code, h)
	local buf = ffi.new("char[1024]")
	l.stirgate_errmsg(h, buf, 1024)
	return {code = code, name = names[code] or "EUNKNOWN", message = ffi.string(buf)}
end

local function str(p)
	if p == nil then
		return nil
	end
	return ffi.string(p)
end

local function list(p)
	if p == nil then
		return nil
	end
	local t = {}
	for item in string.gmatch(ffi.string(p), "[^,]+") do
		t[#t + 1] = item
	end
	return t
end

local function field(t, k)
	local v = t[k]
	if v ~= nil and type(v) ~= "string" then
		error("stirgate: field '" .. k .. "' must be a string", 3)
	end
	if v ~= nil and string.find(v, "\0", 1, true) then
		error("stirgate: field '" .. k .. "' contains a NUL byte", 3)
	end
	return v
end

-- decode reads the JSON libstirgate writes (a result's json): objects,
-- arrays, strings, numbers, literals. It returns the value, or nil on
-- anything else; it never raises.
local function decode(js)
	local pos = 1
	local value
	local function ws()
		pos = string.find(js, "[^ \t\r\n]", pos) or #js + 1
	end
	local function utf8(c)
		if c < 0x80 then
			return string.char(c)
		elseif c < 0x800 then
			return string.char(0xc0 + math.floor(c / 0x40), 0x80 + c % 0x40)
		elseif c < 0x10000 then
			return string.char(0xe0 + math.floor(c / 0x1000), 0x80 + math.floor(c / 0x40) % 0x40, 0x80 + c % 0x40)
		end
		return string.char(0xf0 + math.floor(c / 0x40000), 0x80 + math.floor(c / 0x1000) % 0x40,
			0x80 + math.floor(c / 0x40) % 0x40, 0x80 + c % 0x40)
	end
	local esc = {['"'] = '"', ["\\"] = "\\", ["/"] = "/", b = "\b", f = "\f", n = "\n", r = "\r", t = "\t"}
	local function str()
		local out = {}
		pos = pos + 1
		while true do
			local i = string.find(js, '["\\]', pos)
			if i == nil then
				return nil
			end
			out[#out + 1] = string.sub(js, pos, i - 1)
			if string.sub(js, i, i) == '"' then
				pos = i + 1
				return table.concat(out)
			end
			local e = string.sub(js, i + 1, i + 1)
			if e == "u" then
				local c = tonumber(string.sub(js, i + 2, i + 5), 16)
				if c == nil or not string.find(string.sub(js, i + 2, i + 5), "^%x%x%x%x$") then
					return nil
				end
				pos = i + 6
				if c >= 0xd800 and c <= 0xdbff and string.find(js, "^\\u[dD][c-fC-F]%x%x", pos) then
					c = 0x10000 + (c - 0xd800) * 0x400 + (tonumber(string.sub(js, pos + 2, pos + 5), 16) - 0xdc00)
					pos = pos + 6
				elseif c >= 0xd800 and c <= 0xdfff then
					c = 0xfffd -- a lone surrogate
				end
				out[#out + 1] = utf8(c)
			elseif esc[e] then
				out[#out + 1] = esc[e]
				pos = i + 2
			else
				return nil
			end
		end
	end
	local function seq(close, item)
		pos = pos + 1
		ws()
		if string.sub(js, pos, pos) == close then
			pos = pos + 1
			return true
		end
		while true do
			if not item() then
				return false
			end
			ws()
			local c = string.sub(js, pos, pos)
			pos = pos + 1
			if c == close then
				return true
			elseif c ~= "," then
				return false
			end
			ws()
		end
	end
	function value(depth)
		if depth > 32 then
			return nil
		end
		ws()
		local c = string.sub(js, pos, pos)
		if c == '"' then
			return str()
		elseif c == "{" then
			local t = {}
			local ok = seq("}", function()
				if string.sub(js, pos, pos) ~= '"' then
					return false
				end
				local k = str()
				ws()
				if k == nil or string.sub(js, pos, pos) ~= ":" then
					return false
				end
				pos = pos + 1
				local v = value(depth + 1)
				t[k] = v
				return v ~= nil
			end)
			return ok and t or nil
		elseif c == "[" then
			local t = {}
			local ok = seq("]", function()
				local v = value(depth + 1)
				t[#t + 1] = v
				return v ~= nil
			end)
			return ok and t or nil
		end
		local lit = string.match(js, "^[%w%.%+%-]+", pos)
		if lit == nil then
			return nil
		end
		pos = pos + #lit
		if lit == "true" then
			return true
		elseif lit == "false" or lit == "null" then
			return false -- null: present but empty; never nil, which means an error
		end
		return tonumber(lit)
	end
	local ok, v = pcall(value, 0)
	if not ok then
		return nil
	end
	return v
end

-- extensions sets r.div and r.rcd from a result's JSON, as the C module
-- does: the diverting TNs, and the string claims of rcd with control
-- characters dropped (a value may end up in a header).
local function extensions(r, json)
	local t = json and decode(json)
	if type(t) ~= "table" then
		return
	end
	if type(t.div) == "table" then
		local div = {}
		for _, d in ipairs(t.div) do
			if type(d) == "table" and type(d.tn) == "string" and d.tn ~= "" then
				div[#div + 1] = d.tn
			end
		end
		if #div > 0 then
			r.div = div
		end
	end
	if type(t.rcd) == "table" then
		local rcd
		for _, k in ipairs({"nam", "crn", "icn", "jcl"}) do
			local v = t.rcd[k]
			if type(v) == "string" then
				v = string.gsub(v, "%c", "")
				if v ~= "" then
					rcd = rcd or {}
					rcd[k] = v
				end
			end
		end
		r.rcd = rcd
	end
end

-- For tests: the div and rcd a result JSON gives, or nil when it does not
-- decode.
function M._extensions(json)
	if decode(json) == nil then
		return nil
	end
	local r = {}
	extensions(r, json)
	return r
end

local Handle = {}
Handle.__index = Handle

-- M.open(path): a handle that opens the configuration in each process on
-- its first use there.
function M.open(path)
	if type(path) ~= "string" then
		error("stirgate.open: path must be a string", 2)
	end
	return setmetatable({path = path, h = 0, pid = 0}, Handle)
end

-- handle returns the library and this process's handle, or nil, err.
function Handle:handle()
	local l, err = load()
	if l == nil then
		return nil, {name = "ELOAD", message = err}
	end
	if self.path == nil then
		return nil, {code = -2, name = "EHANDLE", message = "handle is closed"}
	end
	if self.h > 0 and self.pid == lib_pid then
		return l, self.h
	end
	local h = l.stirgate_init_file(self.path)
	if h < 0 then
		return nil, errtable(l, h, -1)
	end
	-- Closed when the handle is collected (in the process that opened it).
	self.box = ffi.gc(ffi.new("int[1]", h), function(b)
		if lib ~= nil and lib_pid == ffi.C.getpid() then
			lib.stirgate_close(b[0])
		end
	end)
	self.h, self.pid = h, lib_pid
	return l, h
end

function Handle:sign(t)
	if type(t) ~= "table" then
		error("stirgate: sign takes a table", 2)
	end
	local req = ffi.new("stirgate_sign_request")
	-- The strings stay referenced by t (and dest by the local) for the call.
	local dest = t.dest
	if type(dest) == "table" then
		for i, d in ipairs(dest) do
			if type(d) ~= "string" then
				error("stirgate: dest[" .. i .. "] must be a string", 2)
			end
		end
		dest = table.concat(dest, ",")
	else
		dest = field(t, "dest")
	end
	req.orig, req.dest = field(t, "orig"), dest
	req.from, req.pai, req.to, req.date = field(t, "from"), field(t, "pai"), field(t, "to"), field(t, "date")
	req.attest, req.origid = field(t, "attest"), field(t, "origid")
	req.call_id, req.customer, req.source = field(t, "call_id"), field(t, "customer"), field(t, "source")
	local l, h = self:handle()
	if l == nil then
		return nil, h
	end
	local sig = ffi.new("stirgate_signature")
	local rc = l.stirgate_sign_call(h, req, sig)
	if rc ~= 0 then
		local e = errtable(l, rc, h)
		e.error, e.reason, e.detail = str(sig.error), str(sig.reason), str(sig.detail)
		if sig.sip_code ~= 0 then
			e.sip_code = sig.sip_code
		end
		l.stirgate_signature_free(sig)
		return nil, e
	end
	local r = {
		identity = str(sig.identity), date = str(sig.date), attest = str(sig.attest),
		origid = str(sig.origid), orig = str(sig.orig), dest = list(sig.dest),
		x5u = str(sig.x5u), iat = tonumber(sig.iat), json = str(sig.json),
	}
	l.stirgate_signature_free(sig)
	return r
end

-- identities returns a const char *[] of t.identity (string or array),
-- its count, and the anchor that keeps the strings alive.
local function identities(t)
	local v = t.identity
	if v == nil then
		return nil, 0
	end
	if type(v) == "string" then
		v = {v}
	elseif type(v) ~= "table" then
		error("stirgate: identity must be a string or an array of strings", 3)
	end
	local n = #v
	if n > M.MAX_IDENTITY then
		n = M.MAX_IDENTITY + 1 -- the library answers ETOOLARGE
	end
	local arr = ffi.new("const char *[?]", n > 0 and n or 1)
	for i = 1, n do
		if type(v[i]) ~= "string" then
			error("stirgate: identity[" .. i .. "] must be a string", 3)
		end
		if string.find(v[i], "\0", 1, true) then
			error("stirgate: identity[" .. i .. "] contains a NUL byte", 3)
		end
		arr[i - 1] = v[i]
	end
	return arr, n, v
end

-- run_check verifies with the call's target when the library can (else as
-- before, target ignored). It returns the code, the result and the
-- Call-Info value (or nil).
local function run_check(l, h, ids, n, from, pai, to, date, target)
	local res = ffi.new("stirgate_result")
	if not check_call then
		return l.stirgate_check(h, ids, n, from, pai, to, date, res), res
	end
	local vr = ffi.new("stirgate_verify_request")
	vr.identity, vr.n_identity = ids, n
	vr.from, vr.pai, vr.to, vr.date, vr.target = from, pai, to, date, target
	local ci = ffi.new("char *[1]")
	local rc = check_call(h, vr, res, ci)
	local call_info = str(ci[0])
	l.stirgate_free(ci[0])
	return rc, res, call_info
end

function Handle:check(t)
	if type(t) ~= "table" then
		error("stirgate: check takes a table", 2)
	end
	local from, pai, to, date = field(t, "from"), field(t, "pai"), field(t, "to"), field(t, "date")
	local target = field(t, "target")
	local ids, n, anchor = identities(t)
	local l, h = self:handle()
	if l == nil then
		return nil, h
	end
	local rc, res, call_info = run_check(l, h, ids, n, from, pai, to, date, target)
	local _ = anchor
	if rc < 0 then
		return nil, errtable(l, rc, h)
	end
	local r = {
		result = outcomes[rc], code = rc, sip_code = res.sip_code,
		verstat = str(res.verstat), reason = str(res.reason), error = str(res.error),
		detail = str(res.detail), attest = str(res.attest), origid = str(res.origid),
		orig = str(res.orig), dest = list(res.dest), x5u = str(res.x5u), spc = str(res.spc),
		json = str(res.json), reject = res.reject ~= 0, reason_header = str(res.reason_header),
		mark = str(res.mark), from = str(res.from), pai = str(res.pai), call_info = call_info,
	}
	extensions(r, r.json)
	if res.iat ~= 0 then
		r.iat = tonumber(res.iat)
	end
	if r.reject then
		r.reject_code, r.reject_reason = res.reject_code, str(res.reject_reason)
	end
	l.stirgate_result_free(res)
	return r
end

-- Handle:verify{...} returns the outcome ("pass", "none", "fail") and the
-- JSON of `stirgate verify`; with target, of the check against it.
function Handle:verify(t)
	if type(t) ~= "table" then
		error("stirgate: verify takes a table", 2)
	end
	local from, pai, to, date = field(t, "from"), field(t, "pai"), field(t, "to"), field(t, "date")
	local target = field(t, "target")
	local ids, n, anchor = identities(t)
	local l, h = self:handle()
	if l == nil then
		return nil, h
	end
	if target ~= nil and check_call then
		-- stirgate_verify has no target: the check's JSON has the same fields.
		local rc, res = run_check(l, h, ids, n, from, pai, to, date, target)
		local _ = anchor
		if rc < 0 then
			return nil, errtable(l, rc, h)
		end
		local json = str(res.json)
		l.stirgate_result_free(res)
		return outcomes[rc], json
	end
	local out = ffi.new("char *[1]")
	local rc = l.stirgate_verify(h, ids, n, from, pai, to, date, out)
	local _ = anchor
	if rc < 0 then
		return nil, errtable(l, rc, h)
	end
	local json = str(out[0])
	l.stirgate_free(out[0])
	return outcomes[rc], json
end

function Handle:reload(path)
	if path ~= nil then
		if type(path) ~= "string" then
			error("stirgate: reload path must be a string", 2)
		end
		self.path = path
	end
	if self.h <= 0 or lib == nil or self.pid ~= ffi.C.getpid() then
		return true
	end
	local rc = lib.stirgate_reload(self.h, path)
	if rc < 0 then
		return nil, errtable(lib, rc, self.h)
	end
	return true
end

function Handle:close()
	if self.box ~= nil then
		ffi.gc(self.box, nil)
		if lib ~= nil and self.pid == ffi.C.getpid() then
			lib.stirgate_close(self.h)
		end
		self.box = nil
	end
	self.h, self.path = 0, nil
end

return M
