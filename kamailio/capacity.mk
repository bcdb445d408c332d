# Kamailio (kamailio-lua.cfg: app_lua, the Lua C module, libstirgate)
# verifying inbound INVITEs: Kamailio CPU per verified call beside raw
# ECDSA verify, and the highest clean rate. Part of `make bench-capacity`
# (sipredirect/capacity.mk).
#   CAPACITY_KAMAILIO_ARGS='-cpu-rate 1000'  flags of kamailio/benchverify
.PHONY: bench-capacity-kamailio

bench-capacity-kamailio: $(LIBSTIRGATE) $(LUA_MODULE)
	STIRGATE_LIB=$(CURDIR)/$(BIN)/libstirgate.so.1 STIRGATE_LUA_DIR=$(CURDIR)/$(dir $(LUA_MODULE)) \
		$(GO) run ./kamailio/benchverify $(CAPACITY_KAMAILIO_ARGS)
