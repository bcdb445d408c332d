-- stirgate.lua - STIR/SHAKEN in Kamailio through app_lua (KEMI).
--
-- Egress: an initial INVITE from an internal source (the PBX or softswitch
-- listed in stirgate.internal) is signed, with the attestation chosen by the
-- [policy] of the stirgate configuration, and relayed to stirgate.carrier.
-- Ingress: an initial INVITE from anywhere else is verified; verstat goes on
-- From and P-Asserted-Identity (any verstat that arrived is removed first),
-- strict mode ([verifier] mode = "strict") answers 428/436/437/438/403 with
-- the reason, relaxed mode adds a Reason header; the call is relayed to
-- stirgate.inside. The Request-URI is the call's target: a diverted call
-- (RFC 8946 div PASSporTs) verifies when its chain leads to it. A verified
-- diversion and rich call data (RFC 9795) are exposed in
-- $avp(stirgate_div) (the diverting numbers, comma-separated),
-- $avp(stirgate_rcd_nam) and $avp(stirgate_rcd_crn); a Call-Info header
-- (RFC 9796) carries the verified rich call data to the next hop. A
-- Request-URI that does not name this proxy is routed as it is instead of
-- to carrier or inside.
--
-- The transaction is created before signing or verifying, which may wait
-- for a certificate fetch: a retransmission that arrives meanwhile, at this
-- worker or another, is answered from the transaction, never verified
-- again.
--
-- Settings are custom cfg variables of kamailio.cfg (see kamailio-lua.cfg):
-- stirgate.config, stirgate.internal, stirgate.carrier, stirgate.inside,
-- stirgate.sign_required, stirgate.fail_closed, stirgate.log_results. They
-- can be changed at run time with
-- `kamcmd cfg.set_now_string stirgate carrier sip:...`.
--
-- Fork safety: depending on the release, app_lua may run this file in
-- Kamailio's main process too, before the workers are forked. Nothing here may start libstirgate at load time:
-- `require "stirgate"` loads only the small Lua C module, and the library
-- (and its Go runtime) is dlopen()ed by the first sign or check, which only
-- a worker handling a message makes.

local stirgate = require "stirgate"

local sg, sg_path -- this process's handle, opened on first use

local function setting(name)
	return KSR.pv.get("$sel(cfg_get.stirgate." .. name .. ")")
end

-- flag reads a 0/1 setting; $sel gives its value as a string.
local function flag(name)
	return tonumber(setting(name)) == 1
end

local function handle()
	local path = setting("config")
	if sg == nil or sg_path ~= path then
		if sg ~= nil then
			sg:close()
		end
		sg, sg_path = stirgate.open(path), path
	end
	return sg
end

local function hdr(name)
	return KSR.pv.get("$hdr(" .. name .. ")")
end

-- headers returns every value of a header, in order.
local function headers(name, into)
	local n = KSR.pv.get("$hdrc(" .. name .. ")") or 0
	for i = 0, n - 1 do
		local v = KSR.pv.get("$(hdr(" .. name .. ")[" .. i .. "])")
		if v ~= nil then
			into[#into + 1] = v
		end
	end
	return into
end

local function from_internal()
	local list = setting("internal") or ""
	local si, sp = KSR.pv.get("$si"), KSR.pv.get("$sp")
	for item in string.gmatch(list, "[^,%s]+") do
		if item == si or item == si .. ":" .. tostring(sp) then
			return true
		end
	end
	return false
end

local function replace_header(name, value)
	KSR.hdr.remove(name)
	KSR.hdr.append(name .. ": " .. value .. "\r\n")
end

local function errtext(err)
	return (err.error or err.name or "?") .. ": " .. (err.detail or err.message or "")
end

-- egress_sign adds Identity (and Date when missing). It returns false when
-- it has answered the request itself.
local function egress_sign()
	if KSR.hdr.is_present("Identity") > 0 then
		-- Never add a second SHAKEN Identity (conformance 1.11).
		return true
	end
	local date = hdr("Date")
	local r, err = handle():sign{
		from = hdr("From"),
		pai = hdr("P-Asserted-Identity"),
		to = hdr("To"),
		date = date,
		call_id = KSR.pv.get("$ci"),
		source = KSR.pv.get("$si"),
	}
	if r == nil then
		KSR.warn("stirgate: INVITE " .. tostring(KSR.pv.get("$ci")) .. " not signed: " .. errtext(err) .. "\n")
		if flag("sign_required") then
			KSR.tm.t_reply(err.sip_code or 500, err.reason or "Server Internal Error")
			return false
		end
		return true
	end
	if date == nil then
		KSR.hdr.append("Date: " .. r.date .. "\r\n")
	end
	KSR.hdr.append("Identity: " .. r.identity .. "\r\n")
	return true
end

-- strip_verstat is the fallback when the library cannot be asked: no
-- verstat from outside may travel on as if we had set it.
local function strip_verstat(v)
	return (string.gsub(v, ";%s*[vV][eE][rR][sS][tT][aA][tT]%s*=[^;@>,]*", ""))
end

-- expose puts the verified extensions where the rest of the routing can
-- read them, and logs the outcome when stirgate.log_results is 1.
local function expose(r)
	local div = r.div and table.concat(r.div, ",") or nil
	local nam, crn = r.rcd and r.rcd.nam, r.rcd and r.rcd.crn
	for name, v in pairs({stirgate_div = div, stirgate_rcd_nam = nam, stirgate_rcd_crn = crn}) do
		KSR.pv.sets("$avp(" .. name .. ")", v)
	end
	if flag("log_results") then
		-- Read back from the AVPs: what the rest of the routing sees.
		local function avp(name)
			return tostring(KSR.pv.get("$avp(" .. name .. ")"))
		end
		KSR.info("stirgate: INVITE " .. tostring(KSR.pv.get("$ci")) .. " checked: result=" .. r.result
			.. " verstat=" .. tostring(r.verstat) .. " sip_code=" .. r.sip_code .. " error=" .. tostring(r.error)
			.. " div=" .. avp("stirgate_div") .. " rcd_nam=" .. avp("stirgate_rcd_nam")
			.. " rcd_crn=" .. avp("stirgate_rcd_crn") .. "\n")
	end
end

-- ingress_verify checks the Identity headers and marks or rejects the
-- call. It returns false when it has answered the request itself.
local function ingress_verify()
	-- Kamailio parses the compact form "y" as the Identity header type, so
	-- $hdr(Identity) already returns both forms, in order.
	local ids = headers("Identity", {})
	local from, pai = hdr("From"), hdr("P-Asserted-Identity")
	-- target: after a diversion the last div PASSporT names the
	-- Request-URI, which the To header no longer does.
	local r, err = handle():check{identity = ids, from = from, pai = pai, to = hdr("To"), date = hdr("Date"),
		target = KSR.pv.get("$ru")}
	if r == nil then
		KSR.err("stirgate: INVITE " .. tostring(KSR.pv.get("$ci")) .. " not verified: " .. errtext(err) .. "\n")
		if flag("fail_closed") then
			KSR.tm.t_reply(500, "Server Internal Error")
			return false
		end
		if from ~= nil and strip_verstat(from) ~= from then
			replace_header("From", strip_verstat(from))
		end
		if pai ~= nil and strip_verstat(pai) ~= pai then
			replace_header("P-Asserted-Identity", strip_verstat(pai))
		end
		return true
	end
	expose(r)
	if r.reject then
		KSR.info("stirgate: INVITE " .. tostring(KSR.pv.get("$ci")) .. " rejected " .. r.reject_code .. " " .. tostring(r.error) .. "\n")
		KSR.tm.t_reply(r.reject_code, r.reject_reason)
		return false
	end
	if r.from ~= nil and r.from ~= from then
		replace_header("From", r.from)
	end
	if r.pai ~= nil and r.pai ~= pai then
		replace_header("P-Asserted-Identity", r.pai)
	end
	if r.reason_header ~= nil then
		KSR.hdr.append("Reason: " .. r.reason_header .. "\r\n")
	end
	if r.call_info ~= nil then
		KSR.hdr.append("Call-Info: " .. r.call_info .. "\r\n")
	end
	return true
end

local function relay()
	if KSR.tm.t_relay() < 0 then
		KSR.sl.sl_reply_error()
	end
end

function ksr_request_route()
	if KSR.maxfwd.process_maxfwd(10) < 0 then
		KSR.sl.sl_send_reply(483, "Too Many Hops")
		return
	end
	local in_dialog = KSR.siputils.has_totag() > 0
	if KSR.is_OPTIONS() and KSR.is_myself_ruri() and not in_dialog then
		KSR.sl.sl_send_reply(200, "Keepalive")
		return
	end
	if in_dialog then
		if KSR.rr.loose_route() > 0 then
			relay()
		elseif KSR.is_ACK() and KSR.tm.t_check_trans() > 0 then
			relay()
		end
		return
	end
	if KSR.is_CANCEL() then
		if KSR.tm.t_check_trans() > 0 then
			relay()
		end
		return
	end
	-- A retransmission is absorbed here, so it is signed or verified once.
	if KSR.tm.t_check_trans() == 0 then
		return
	end
	KSR.rr.record_route()
	local internal = from_internal()
	if KSR.is_INVITE() then
		-- The transaction first: a retransmission that arrives while this
		-- INVITE is signed or verified (a certificate fetch may take
		-- seconds) matches it in t_check_trans above, in any worker, and
		-- is absorbed by it (answered with its reply once there is one)
		-- instead of being verified again. Replies go through it (t_reply).
		local rc = KSR.tm.t_newtran()
		if rc == 0 then
			return -- a retransmission that won the race: absorbed
		elseif rc < 0 then
			KSR.sl.sl_reply_error()
			return
		end
		local go_on
		if internal then
			go_on = egress_sign()
		else
			go_on = ingress_verify()
		end
		if not go_on then
			return
		end
	end
	-- A request addressed to this proxy goes to the configured next hop;
	-- one addressed elsewhere goes where its Request-URI says.
	if KSR.is_myself_ruri() then
		KSR.setdsturi(internal and setting("carrier") or setting("inside"))
	end
	relay()
end
