# SIP redirect server: load proof (part of `make test`), fuzzing and the
# SIPp rate benchmark. The Go tests behind the sipload tag drive the built
# binary (`stirgate serve --config`) with SIPp.
.PHONY: sip-load sip-fuzz bench-sip

SIP_LOAD_RATE    ?= 200
SIP_LOAD_SECONDS ?= 30

# A fixed rate for 30 s; fails on any failed call.
sip-load: build
	STIRGATE_BIN=$(CURDIR)/$(BIN)/stirgate SIP_LOAD_RATE=$(SIP_LOAD_RATE) SIP_LOAD_SECONDS=$(SIP_LOAD_SECONDS) \
		$(GO) test -tags sipload -count=1 -run '^TestSIPLoad$$' -v -timeout 5m ./sipredirect/

sip-fuzz:
	$(GO) test -run='^$$' -fuzz='^FuzzParseRequest$$' -fuzztime=$(FUZZTIME) ./sipredirect/

# Steps the rate up (doubling from SIP_BENCH_START, SIP_BENCH_SECONDS each)
# and prints the highest rate with 0 failures and its p99 latency.
bench-sip: build
	STIRGATE_BIN=$(CURDIR)/$(BIN)/stirgate $(GO) test -tags sipload -count=1 -run '^TestSIPBench$$' -v -timeout 30m ./sipredirect/

EXTRA_TESTS += sip-load
