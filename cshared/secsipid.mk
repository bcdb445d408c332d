# libsecsipid.so.1 drop-in (cshared/secsipid): Kamailio's secsipid module
# on the stirgate core.
#   make secsipid         bin/secsipid/libsecsipid.so.1 (+ secsipid.h)
#   make secsipid-test    C test of the built library, plain and under valgrind
#   make bench-kamailio   Kamailio signing rate: drop-in vs Debian's library
SECSIPID_DIR := $(BIN)/secsipid
SECSIPID_LIB := $(SECSIPID_DIR)/libsecsipid.so.1
SECSIPID_SRC := $(shell find cshared/secsipid core -name '*.go' -not -name '*_test.go' 2>/dev/null) cshared/secsipid/shim.c cshared/secsipid/libsecsipid.map

.PHONY: secsipid secsipid-test bench-kamailio

secsipid: $(SECSIPID_LIB)

$(SECSIPID_LIB): $(SECSIPID_SRC) cshared/secsipid/secsipid.h go.mod go.sum
	mkdir -p $(SECSIPID_DIR)
	CGO_CFLAGS='$(HARDEN_CGO_CFLAGS)' $(GO) build -buildmode=c-shared -ldflags='-extldflags=-Wl,-soname,libsecsipid.so.1,--version-script,$(CURDIR)/cshared/secsipid/libsecsipid.map,-z,relro,-z,now' -o $@ ./cshared/secsipid
	rm -f $(SECSIPID_DIR)/libsecsipid.so.h
	cp cshared/secsipid/secsipid.h $(SECSIPID_DIR)/secsipid.h
	ln -sf libsecsipid.so.1 $(SECSIPID_DIR)/libsecsipid.so

# The Go tests (go test ./...) build their own copy; this target tests the
# artifact `make secsipid` produces, the one an operator installs.
secsipid-test: secsipid
	SECSIPID_LIB_DIR=$(CURDIR)/$(SECSIPID_DIR) $(GO) test -count=1 -v \
		-run 'TestCAPI|TestExports|TestHeaderMatchesDebian' ./cshared/secsipid/ctest

EXTRA_TESTS += secsipid-test

bench-kamailio: secsipid build
	SECSIPID_LIB_DIR=$(CURDIR)/$(SECSIPID_DIR) STIRGATE_BIN=$(CURDIR)/$(BIN)/stirgate \
		$(GO) run ./kamailio/secsipid/benchkam
