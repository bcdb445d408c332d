-- deb-test: every request is verified with the packaged configuration;
-- the reply carries the result (200 <result>) and the verstat.
local stirgate = require "stirgate"
local h = stirgate.open("/etc/stirgate/stirgate.toml")

function ksr_request_route()
	local r, err = h:check{
		identity = KSR.hdr.get("Identity"),
		from = KSR.hdr.get("From"),
		to = KSR.hdr.get("To"),
		date = KSR.hdr.get("Date"),
	}
	if not r then
		KSR.hdr.append_to_reply("X-Stirgate-Error: " .. tostring(err) .. "\r\n")
		KSR.sl.sl_send_reply(500, "stirgate error")
		return
	end
	KSR.hdr.append_to_reply("X-Stirgate-Verstat: " .. tostring(r.verstat) .. "\r\n")
	KSR.sl.sl_send_reply(200, r.result)
end
