-- api_test.lua: one test of the Lua API of stirgate, run against both
-- implementations: the Lua C module under PUC Lua 5.1 (host.c) and the
-- LuaJIT FFI binding under luajit. They must answer the same tables.
--
-- usage: HOST api_test.lua RELAXED.toml STRICT.toml
--   package.path / package.cpath must find "stirgate"; STIRGATE_LIBRARY
--   names libstirgate.so.1.

local stirgate = require "stirgate"
local relaxed_path, strict_path = arg[1], arg[2]

local checks, failures = 0, 0
local function check(cond, msg)
	checks = checks + 1
	if not cond then
		failures = failures + 1
		io.stderr:write("FAIL: " .. msg .. "\n" .. debug.traceback() .. "\n")
	end
end
local function has(s, sub)
	return type(s) == "string" and string.find(s, sub, 1, true) ~= nil
end

local FROM = '"Alice" <sip:+12155550121;verstat=TN-Validation-Passed@pbx.example.net;user=phone>;tag=a1'
local PAI = "<sip:+12155550121@pbx.example.net;user=phone>"
local TO = "<sip:+12155550131@carrier.example.net;user=phone>"

-- Nothing is loaded by require or open.
check(stirgate.loaded() == false, "loaded before first use")
local sg = stirgate.open(relaxed_path)
local strict = stirgate.open(strict_path)
check(stirgate.loaded() == false, "open loaded the library")
check(has(tostring(stirgate.version()), "stirgate"), "version")
local ok, pid = stirgate.loaded()
check(ok == true and type(pid) == "number", "loaded after first use")

-- A configuration that cannot load.
local r, err = stirgate.open("/nonexistent/stirgate.toml"):check{}
check(r == nil and err.name == "ECONFIG" and err.code == -3 and has(err.message, "nonexistent"),
	"bad config: " .. tostring(err and err.name) .. " " .. tostring(err and err.message))

-- Signing.
local s, e = sg:sign{orig = "+1 215 555 0121", dest = {"2155550131", "2155550132"}, attest = "A"}
check(s ~= nil, "sign: " .. tostring(e and e.message))
check(s and s.attest == "A" and s.orig == "12155550121", "sign attest/orig")
check(s and #s.dest == 2 and s.dest[1] == "12155550131" and s.dest[2] == "12155550132", "sign dest list")
check(s and has(s.identity, ";info=<") and has(s.date, "GMT") and s.iat > 1700000000, "sign identity/date/iat")
check(s and has(s.json, '"identity":'), "sign json")
local good = s.identity

s = sg:sign{from = FROM, to = TO, source = "127.0.0.1", call_id = "c1@pbx"}
check(s and s.attest == "A", "policy attest for the customer's source: " .. tostring(s and s.attest))
s = sg:sign{from = FROM, to = TO, source = "192.0.2.9"}
check(s and s.attest == "B", "policy attest for an unknown source: " .. tostring(s and s.attest))
s, e = sg:sign{orig = "2155550121", dest = "2155550131", date = "Mon, 01 Jan 2001 00:00:00 GMT"}
check(s == nil and e.name == "ESIGN" and e.error == "sign_date_out_of_window" and e.sip_code == 403 and e.reason ~= nil,
	"sign refused: " .. tostring(e and e.error))
s, e = sg:sign{orig = "2155550121", dest = "2155550131", attest = "D"}
check(s == nil and e.name == "EINVAL", "bad attest: " .. tostring(e and e.name))

-- Verification and disposition.
local bad = string.gsub(good, "%.", ".e", 1)
r = sg:check{identity = {good}, from = FROM, pai = PAI, to = TO}
check(r and r.result == "pass" and r.code == stirgate.PASS and r.sip_code == 0, "check pass")
check(r and r.verstat == "TN-Validation-Passed" and r.mark == "TN-Validation-Passed", "check verstat")
check(r and r.attest == "A" and r.spc == "1234" and r.orig == "12155550121" and r.dest[1] == "12155550131", "check claims")
check(r and r.reject == false and r.reason_header == nil and r.iat ~= nil and has(r.json, '"result":"pass"'), "check pass fields")
check(r and has(r.from, "sip:+12155550121;verstat=TN-Validation-Passed@pbx.example.net") and has(r.from, '"Alice"'), "from: " .. tostring(r and r.from))
check(r and has(r.pai, ";verstat=TN-Validation-Passed@"), "pai")

r = sg:check{identity = bad, from = FROM, to = TO}
check(r and r.result == "fail" and r.sip_code == 438 and r.reject == false, "tampered relaxed")
check(r and r.reason_header == 'SIP;cause=438;text="Invalid Identity Header"', "reason header: " .. tostring(r and r.reason_header))
check(r and has(r.from, "verstat=TN-Validation-Failed") and not has(r.from, "Passed") and r.pai == nil, "tampered from/pai")
r = sg:check{from = FROM, to = TO}
check(r and r.result == "none" and r.code == stirgate.NONE and r.verstat == "No-TN-Validation" and r.reject == false, "missing relaxed")
r = sg:check{identity = {bad, good}, from = FROM, to = TO}
check(r and r.result == "pass", "one good header of two passes")

r = strict:check{identity = {bad}, from = FROM, to = TO}
check(r and r.reject == true and r.reject_code == 438 and r.reject_reason == "Invalid Identity Header" and r.reason_header == nil, "strict tampered")
r = strict:check{from = FROM, to = TO}
check(r and r.reject == true and r.reject_code == 428, "strict missing: " .. tostring(r and r.reject_code))

local outcome, json = sg:verify{identity = good, from = FROM, to = TO}
check(outcome == "pass" and has(json, '"verstat":"TN-Validation-Passed"'), "verify")
outcome, json = sg:verify{identity = {}, from = FROM, to = TO}
check(outcome == "none" and has(json, '"result":"none"'), "verify none")

-- PASSporT extensions (the tokens come from luaapi_test.go): a diverted
-- call verifies against its target, the Request-URI; the verified
-- diverting numbers and rich call data come back, on pass only.
local SHAKEN, DIV, BROKEN, RCD = os.getenv("API_TEST_SHAKEN"), os.getenv("API_TEST_DIV"),
	os.getenv("API_TEST_DIV_BROKEN"), os.getenv("API_TEST_RCD")
check(SHAKEN and DIV and BROKEN and RCD, "extension tokens missing from the environment")
local RETARGET = "sip:+12155550141@inside.example.net;user=phone"
for _, ids in ipairs({{SHAKEN, DIV}, {DIV, SHAKEN}}) do
	r, e = sg:check{identity = ids, from = FROM, pai = PAI, to = TO, target = RETARGET}
	check(r and r.result == "pass" and r.verstat == "TN-Validation-Passed", "diverted call: " .. tostring(r and r.error or e and e.message))
	check(r and type(r.div) == "table" and #r.div == 1 and r.div[1] == "12155550131", "div: " .. tostring(r and r.div and r.div[1]))
	check(r and r.rcd == nil and r.call_info == nil and has(r.json, '"div":[{"tn":"12155550131"}]'), "diverted call without rcd")
end
r = sg:check{identity = {SHAKEN, DIV}, from = FROM, to = TO, target = "12155550141"}
check(r and r.result == "pass", "a bare number as target")
r = sg:check{identity = {SHAKEN, DIV}, from = FROM, to = TO, target = "sip:+12155550199@inside.example.net"}
check(r and r.result == "fail" and r.error == "dest_mismatch" and r.div == nil, "diverted elsewhere: " .. tostring(r and r.error))
r = sg:check{identity = {SHAKEN, DIV}, from = FROM, to = TO}
check(r and r.result == "fail" and r.div == nil, "no target: the To header is the target, and the div names another")
r = sg:check{identity = {SHAKEN, BROKEN}, from = FROM, to = TO, target = RETARGET}
check(r and r.result == "fail" and r.sip_code == 438 and r.error == "div_chain_broken" and r.div == nil,
	"broken chain: " .. tostring(r and r.error) .. " " .. tostring(r and r.sip_code))
r = strict:check{identity = {BROKEN, SHAKEN}, from = FROM, to = TO, target = RETARGET}
check(r and r.reject == true and r.reject_code == 438, "strict broken chain: " .. tostring(r and r.reject_code))
outcome, json = sg:verify{identity = {DIV, SHAKEN}, from = FROM, to = TO, target = RETARGET}
check(outcome == "pass" and has(json, '"div":[{"tn":"12155550131"}]'), "verify with a target: " .. tostring(json))

r = sg:check{identity = RCD, from = FROM, pai = PAI, to = TO, target = "sip:+12155550131@inside.example.net"}
check(r and r.result == "pass" and r.div == nil, "rcd call: " .. tostring(r and r.error))
check(r and type(r.rcd) == "table" and r.rcd.nam == 'ACME "Corp" <Sales>' and r.rcd.crn == "Appointment reminder",
	"rcd claims: " .. tostring(r and r.rcd and r.rcd.nam))
check(r and has(r.call_info, "<data:application/json;base64,") and has(r.call_info, ";purpose=jcard")
	and has(r.call_info, ';call-reason="Appointment reminder"') and has(r.call_info, ";verified"), "Call-Info: " .. tostring(r and r.call_info))
local tampered = string.gsub(RCD, "%.", ".e", 1)
r = sg:check{identity = tampered, from = FROM, to = TO}
check(r and r.result == "fail" and r.rcd == nil and r.call_info == nil, "tampered rcd call: no claims")

-- Bad input: wrong types raise; limits are errors; garbage is a result.
check(not pcall(sg.sign, sg, "not a table"), "sign of a string raises")
check(not pcall(sg.sign, sg, {orig = 12155550121, dest = "2155550131"}), "number field raises")
check(not pcall(sg.check, sg, {identity = "a\0b"}), "NUL byte raises")
check(not pcall(sg.check, sg, {identity = {1}}), "number identity raises")
check(not pcall(sg.check, sg, {identity = true}), "boolean identity raises")
check(not pcall(stirgate.open, nil), "open(nil) raises")
local many = {}
for i = 1, 300 do
	many[i] = good
end
r, e = sg:check{identity = many, from = FROM, to = TO}
check(r == nil and e.name == "ETOOLARGE", "300 identities: " .. tostring(e and e.name))
r, e = sg:check{identity = string.rep("A", 70000), from = FROM, to = TO}
check(r == nil and e.name == "ETOOLARGE", "huge identity")
local garbage = {}
for i = 1, 255 do
	garbage[i] = string.char(i)
end
r = sg:check{identity = table.concat(garbage), from = table.concat(garbage), to = "x"}
check(r and r.result == "fail", "garbage identity is a failed result")

-- Reload keeps a working configuration on failure.
check(sg:reload() == true, "reload")
r, e = sg:reload("/nonexistent.toml")
check(r == nil and e.name == "ECONFIG", "reload of a missing file")
check(sg:sign{orig = "2155550121", dest = "2155550131", attest = "C"} ~= nil, "works after a failed reload")
check(sg:reload(relaxed_path) == true, "reload back")

-- Many calls: no crash, memory collected.
for i = 1, tonumber(os.getenv("API_TEST_ITERATIONS") or "500") do
	local x = sg:sign{orig = "2155550121", dest = "2155550131", attest = "A"}
	local y = sg:check{identity = x.identity, from = FROM, to = TO}
	if not y or y.result ~= "pass" then
		check(false, "iteration " .. i)
		break
	end
end
collectgarbage()

-- Fork guard: a process forked after the library was loaded must get an
-- error, never call into the (dead) Go runtime.
if host_fork and os.getenv("API_TEST_NO_FORK") == nil then
	local child = host_fork()
	if child == 0 then
		local rr, ee = sg:check{identity = good, from = FROM, to = TO}
		host_exit((rr == nil and ee.name == "ELOAD" and has(ee.message, "fork")) and 0 or 1)
	end
	check(child > 0 and host_wait(child) == 0, "forked child was not refused")
end

-- Closed handles.
sg:close()
r, e = sg:check{from = FROM, to = TO}
check(r == nil and e.name == "EHANDLE", "closed handle: " .. tostring(e and e.name))
strict:close()

print(string.format("api_test: %d checks, %d failures (%s)", checks, failures, jit and jit.version or _VERSION))
os.exit(failures == 0 and 0 or 1)
