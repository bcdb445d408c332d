# libstirgate: the C library (cshared/) and its C test under valgrind.
#   make lib            bin/libstirgate.so (SONAME libstirgate.so.1), the
#                       libstirgate.so.1 link and bin/include/stirgate.h
#   make cshared-test   the C test program (cshared/test/) under valgrind
#   make install-lib    PREFIX=/usr/local DESTDIR= : library and header

LIBSTIRGATE     := $(BIN)/libstirgate.so
LIBSTIRGATE_HDR := $(BIN)/include/stirgate.h
CSHARED_SRCS    := $(wildcard cshared/*.go cshared/*.c) cshared/stirgate.h cshared/libstirgate.map
CSHARED_TEST    := $(BIN)/cshared-test/stirgate_test
CSHARED_LAB     := $(BIN)/cshared-test/lab
PREFIX          ?= /usr/local
VALGRIND        ?= valgrind
VALGRIND_FLAGS  := --leak-check=full --errors-for-leak-kinds=definite --show-possibly-lost=no --error-exitcode=1 \
                   --suppressions=cshared/test/go.supp --quiet

.PHONY: lib cshared-test install-lib

lib: $(LIBSTIRGATE) $(LIBSTIRGATE_HDR)

# The cgo-generated header is internal: it stays in bin/cgo/.
$(LIBSTIRGATE): $(CSHARED_SRCS) go.mod
	@mkdir -p $(BIN)/cgo
	$(GO) build -buildmode=c-shared \
		-ldflags "-extldflags '-Wl,-soname,libstirgate.so.1 -Wl,--version-script=$(CURDIR)/cshared/libstirgate.map'" \
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

# Two valgrind runs: the test must be clean, and the same test leaking one
# Identity string on purpose must be caught, so that the suppressions for
# the Go runtime cannot hide a leak of the C API.
cshared-test: $(CSHARED_TEST) $(CSHARED_LAB)/sp.key
	$(CSHARED_TEST) $(CSHARED_LAB)
	GODEBUG=asyncpreemptoff=1 STIRGATE_TEST_ITERATIONS=10 \
		$(VALGRIND) $(VALGRIND_FLAGS) $(CSHARED_TEST) $(CSHARED_LAB)
	@if GODEBUG=asyncpreemptoff=1 STIRGATE_TEST_ITERATIONS=2 \
		$(VALGRIND) $(VALGRIND_FLAGS) --log-file=$(BIN)/cshared-test/leak.log \
		$(CSHARED_TEST) $(CSHARED_LAB) leak >/dev/null; then \
		echo "valgrind missed a deliberate leak"; cat $(BIN)/cshared-test/leak.log; exit 1; \
	fi; \
	grep -q 'definitely lost' $(BIN)/cshared-test/leak.log && grep -q 'sign_good (stirgate_test.c' $(BIN)/cshared-test/leak.log \
		|| { echo "valgrind failed for another reason than the deliberate leak:"; cat $(BIN)/cshared-test/leak.log; exit 1; }
	@echo "cshared-test: valgrind clean; deliberate leak caught"

install-lib: lib
	install -D -m 0755 $(LIBSTIRGATE) $(DESTDIR)$(PREFIX)/lib/libstirgate.so.1
	ln -sf libstirgate.so.1 $(DESTDIR)$(PREFIX)/lib/libstirgate.so
	install -D -m 0644 cshared/stirgate.h $(DESTDIR)$(PREFIX)/include/stirgate.h

EXTRA_TESTS += cshared-test
