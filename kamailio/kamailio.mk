# The native Kamailio module (kamailio/module/), built against the source of
# the Kamailio release installed on this host (Debian has no kamailio-dev):
#   make kamailio-module   bin/kamailio/stirgate.so
#   make install-kamailio-module  into $(KAMAILIO_MODULES_DIR)
# The source is fetched once with apt-get source (deb-src entries derived
# from the system's apt sources, in a private apt state) into
# bin/kamailio-src/ and configured with the options of Debian's build, so
# that the module's version and compile flags match the binary's.

KAMAILIO_SRC         := $(BIN)/kamailio-src/kamailio
KAMAILIO_MODULE      := $(BIN)/kamailio/stirgate.so
KAMAILIO_MODULES_DIR ?= /usr/lib/x86_64-linux-gnu/kamailio/modules

.PHONY: kamailio-module install-kamailio-module

kamailio-module: $(KAMAILIO_MODULE)

$(KAMAILIO_SRC)/src/config.mak:
	kamailio/module/kamailio-source.sh $(BIN)/kamailio-src
	$(MAKE) -C $(KAMAILIO_SRC) cfg quiet=silent prefix=/usr cfg_target=/etc/kamailio/ FLAVOUR=kamailio \
		CC_EXTRA_OPTS="$$(dpkg-buildflags --get CPPFLAGS) $$(dpkg-buildflags --get CFLAGS) -DVERSION_NODATE" \
		LD_EXTRA_OPTS="$$(dpkg-buildflags --get LDFLAGS)" group_include=kstandard >/dev/null

# The module is replaced, not overwritten: a running Kamailio maps the old
# file.
$(KAMAILIO_MODULE): $(KAMAILIO_SRC)/src/config.mak kamailio/module/stirgate_mod.c kamailio/module/verstat.c kamailio/module/verstat.h kamailio/module/resultjson.c kamailio/module/resultjson.h kamailio/module/Makefile cshared/stirgate.h
	@mkdir -p $(KAMAILIO_SRC)/src/modules/stirgate $(dir $@)
	cp kamailio/module/stirgate_mod.c kamailio/module/verstat.c kamailio/module/verstat.h kamailio/module/resultjson.c kamailio/module/resultjson.h kamailio/module/Makefile $(KAMAILIO_SRC)/src/modules/stirgate/
	$(MAKE) -C $(KAMAILIO_SRC)/src/modules/stirgate quiet=silent STIRGATE_INCLUDE=$(CURDIR)/cshared
	cp $(KAMAILIO_SRC)/src/modules/stirgate/stirgate.so $@.tmp && mv -f $@.tmp $@

install-kamailio-module: $(KAMAILIO_MODULE)
	install -D -m 0644 $(KAMAILIO_MODULE) $(DESTDIR)$(KAMAILIO_MODULES_DIR)/stirgate.so

# Kamailio CPU time per signed call: the native module vs app_lua (Lua C
# module) vs the secsipid module on the libsecsipid drop-in, in one run.
# Part of `make bench`.
.PHONY: bench-kamailio-module
EXTRA_BENCH += bench-kamailio-module

bench-kamailio-module: $(KAMAILIO_MODULE) $(LIBSTIRGATE) $(LUA_MODULE) secsipid
	STIRGATE_LIB=$(CURDIR)/$(BIN)/libstirgate.so.1 STIRGATE_LUA_DIR=$(CURDIR)/$(dir $(LUA_MODULE)) \
		STIRGATE_MODULE=$(CURDIR)/$(KAMAILIO_MODULE) SECSIPID_LIB_DIR=$(CURDIR)/$(SECSIPID_DIR) \
		$(GO) run ./kamailio/module/benchsign
