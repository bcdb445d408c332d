-- coldstart.lua CONFIG - how long the first call of a fresh process takes
-- (dlopen of libstirgate, Go runtime start, configuration load, one
-- signature) next to a warm call. A Kamailio worker pays the first once,
-- at its first message; `make bench-coldstart` runs this in fresh
-- processes and prints the spread.
local ffi = require "ffi"
local stirgate = require "stirgate"

ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } coldstart_timespec;
int clock_gettime(int clk, coldstart_timespec *ts);
]]
local CLOCK_MONOTONIC = 1

local function now()
	local ts = ffi.new("coldstart_timespec")
	ffi.C.clock_gettime(CLOCK_MONOTONIC, ts)
	return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) / 1e9
end

local req = { orig = "12155550121", dest = "12155550131", attest = "A" }
local t0 = now()
local sg = stirgate.open(assert(arg[1], "usage: coldstart.lua CONFIG"))
local sig, err = sg:sign(req)
local t1 = now()
if not sig then
	io.stderr:write("sign failed: ", tostring(err.message or err.name), "\n")
	os.exit(1)
end
sg:sign(req)
local t2 = now()
print(string.format("%.2f %.3f", (t1 - t0) * 1000, (t2 - t1) * 1000))
