# libstirgate: the C library (cshared/) and its C test under valgrind.
#   make lib            bin/libstirgate.so (SONAME libstirgate.so.1), the
#                       libstirgate.so.1 link and bin/include/stirgate.h
#   make cshared-test   the C test program (cshared/test/) under valgrind
#   make install-lib    PREFIX=/usr/local DESTDIR= : library and header
#   make lua            bin/lua/stirgate.so, the Lua 5.1 C module for
#                       Kamailio's app_lua (kamailio/lua/)
#   make install-lua    the C module into $(LUA_CMOD_DIR)
#   make bench-coldstart first call of a fresh process (dlopen, Go runtime,
#                       config, one signature) vs a warm call, through the
#                       LuaJIT binding; part of `make bench`
#   make install-luajit the LuaJIT FFI binding into $(LUAJIT_LMOD_DIR), a
#                       directory PUC Lua does not search (both are
#                       require "stirgate"; PUC Lua must find the C module)

LIBSTIRGATE     := $(BIN)/libstirgate.so
LIBSTIRGATE_HDR := $(BIN)/include/stirgate.h
# The library is the whole core: any Go file it is built from counts.
CSHARED_SRCS    := $(wildcard cshared/*.c) $(shell find cshared core -maxdepth 2 -name '*.go' -not -name '*_test.go' -not -path 'cshared/secsipid/*' 2>/dev/null) cshared/stirgate.h cshared/libstirgate.map
CSHARED_TEST    := $(BIN)/cshared-test/stirgate_test
CSHARED_LAB     := $(BIN)/cshared-test/lab
PREFIX          ?= /usr/local
LIBDIR          ?= $(PREFIX)/lib

LUA_MODULE      := $(BIN)/lua/stirgate.so
LUA_CMOD_DIR    ?= $(PREFIX)/lib/lua/5.1
LUAJIT_LMOD_DIR ?= $(PREFIX)/share/luajit-2.1

.PHONY: lib cshared-test install-lib lua install-lua install-luajit bench-coldstart

EXTRA_BENCH += bench-coldstart
COLDSTART_RUNS ?= 20

# Each run is a new process: what a Kamailio worker pays at its first
# message. Prints min, median and max over COLDSTART_RUNS.
bench-coldstart: $(LIBSTIRGATE) $(CSHARED_LAB)/sp.key
	@for i in $$(seq $(COLDSTART_RUNS)); do \
		STIRGATE_LIBRARY=$(CURDIR)/$(BIN)/libstirgate.so.1 LUA_PATH='$(CURDIR)/kamailio/ffi/?.lua;;' \
			luajit kamailio/ffi/coldstart.lua $(abspath $(CSHARED_LAB))/lab.toml 2>$(BIN)/coldstart.err || { cat $(BIN)/coldstart.err >&2; exit 1; }; \
	done | sort -n | awk '{c[NR]=$$1; w[NR]=$$2} END {n=NR; \
		printf "coldstart: first call of a fresh process min %.1f ms, median %.1f ms, max %.1f ms; warm call median %.3f ms (%d runs)\n", \
		c[1], c[int((n+1)/2)], c[n], w[int((n+1)/2)], n}'

lib: $(LIBSTIRGATE) $(LIBSTIRGATE_HDR)

# The cgo-generated header is internal: it stays in bin/cgo/.
$(LIBSTIRGATE): $(CSHARED_SRCS) go.mod
	@mkdir -p $(BIN)/cgo
	CGO_CFLAGS='$(HARDEN_CGO_CFLAGS)' $(GO) build -buildmode=c-shared \
		-ldflags "-extldflags '-Wl,-soname,libstirgate.so.1 -Wl,--version-script=$(CURDIR)/cshared/libstirgate.map -Wl,-z,relro -Wl,-z,now'" \
		-o $(BIN)/cgo/libstirgate.so ./cshared
	mv $(BIN)/cgo/libstirgate.so $@
	ln -sf libstirgate.so $(BIN)/libstirgate.so.1

$(LIBSTIRGATE_HDR): cshared/stirgate.h
	@mkdir -p $(dir $@)
	cp $< $@

$(CSHARED_TEST): cshared/test/stirgate_test.c $(LIBSTIRGATE_HDR) $(LIBSTIRGATE)
	@mkdir -p $(dir $@)
	$(CC) -std=c99 -D_XOPEN_SOURCE=700 -O1 -g -Wall -Wextra -Werror \
		-I$(BIN)/include -o $@ $< -L$(BIN) -l:libstirgate.so.1 -Wl,-rpath,'$$ORIGIN/..' -lpthread

# The lab PKI comes from the CLI (config check generates a [lab] dir).
$(CSHARED_LAB)/sp.key: | build
	@mkdir -p $(CSHARED_LAB)
	printf '[lab]\ndir = "."\n' > $(CSHARED_LAB)/lab.toml
	$(BIN)/stirgate config check $(abspath $(CSHARED_LAB))/lab.toml >/dev/null

# Under valgrind (internal/memcheck says why GODEBUG=cpu.rdtscp=off makes
# this work on every x86-64 host): the test must be clean, and three control
# runs of the same test, each planting one defect in an output of the
# library (a leak, a double free, a use after free), must each be failed by
# valgrind with that defect reported in plant_defect, so the Go-runtime
# suppressions cannot hide an error of the C API and a valgrind that died
# early cannot pass. valgrind cannot always unwind a leaked block through Go
# frames back to the test, so a leak may also be named by the library's
# allocation site (_Cfunc__Cmalloc).
MEMCHECK      := $(BIN)/memcheck
MEMCHECK_DONE := -done 'stirgate_test: [0-9]+ checks, 0 failures'

$(MEMCHECK): $(wildcard internal/memcheck/*.go internal/memcheck/cmd/memcheck/*.go)
	$(GO) build -o $@ ./internal/memcheck/cmd/memcheck

cshared-test: $(CSHARED_TEST) $(CSHARED_LAB)/sp.key $(MEMCHECK)
	$(CSHARED_TEST) $(CSHARED_LAB)
	$(MEMCHECK) -supp cshared/test/go.supp -env STIRGATE_TEST_ITERATIONS=10 $(MEMCHECK_DONE) -- $(CSHARED_TEST) $(CSHARED_LAB)
	$(MEMCHECK) -supp cshared/test/go.supp -env STIRGATE_TEST_ITERATIONS=2 $(MEMCHECK_DONE) \
		-expect leak -site 'plant_defect (stirgate_test.c' -site _Cfunc__Cmalloc -- $(CSHARED_TEST) $(CSHARED_LAB) leak
	$(MEMCHECK) -supp cshared/test/go.supp -env STIRGATE_TEST_ITERATIONS=2 $(MEMCHECK_DONE) \
		-expect double-free -site 'plant_defect (stirgate_test.c' -- $(CSHARED_TEST) $(CSHARED_LAB) double-free
	$(MEMCHECK) -supp cshared/test/go.supp -env STIRGATE_TEST_ITERATIONS=2 $(MEMCHECK_DONE) \
		-expect use-after-free -site 'plant_defect (stirgate_test.c' -- $(CSHARED_TEST) $(CSHARED_LAB) use-after-free
	@echo "cshared-test: valgrind clean; planted leak, double free and use after free caught"

install-lib: lib
	install -D -m 0755 $(LIBSTIRGATE) $(DESTDIR)$(LIBDIR)/libstirgate.so.1
	ln -sf libstirgate.so.1 $(DESTDIR)$(LIBDIR)/libstirgate.so
	install -D -m 0644 cshared/stirgate.h $(DESTDIR)$(PREFIX)/include/stirgate.h

# The Lua module does not link libstirgate: it dlopens it on first use, in
# a Kamailio worker (see kamailio/README.md, "Fork model").
lua: $(LUA_MODULE)

$(LUA_MODULE): kamailio/lua/stirgate.c kamailio/module/resultjson.c kamailio/module/resultjson.h cshared/stirgate.h
	@mkdir -p $(dir $@)
	@# Debian's hardening (lintian checks the packaged module): fortify,
	@# stack protector, full RELRO, BIND_NOW.
	$(CC) -std=c99 -D_XOPEN_SOURCE=700 -D_FORTIFY_SOURCE=2 -O2 -g -fstack-protector-strong -Wall -Wextra -Werror -fPIC -shared \
		-Wl,-z,relro -Wl,-z,now -I/usr/include/lua5.1 -Icshared -o $@ $< -ldl

install-lua: lua
	install -D -m 0755 $(LUA_MODULE) $(DESTDIR)$(LUA_CMOD_DIR)/stirgate.so

install-luajit:
	install -D -m 0644 kamailio/ffi/stirgate.lua $(DESTDIR)$(LUAJIT_LMOD_DIR)/stirgate.lua

EXTRA_TESTS += cshared-test
