# Capacity of one node (a benchmark, part of `make bench`, never of
# `make test`): server CPU time per answered INVITE beside raw ECDSA in the
# same run, and the highest rate with p99 under 20 ms, for `stirgate serve`
# (sipredirect/benchcapacity) and for Kamailio verifying through
# libstirgate (kamailio/capacity.mk). About 3 minutes in all; the method
# and numbers are in sipredirect/README.md, "Capacity".
#   CAPACITY_ARGS='-cpu-rate 2000 -enforce'  flags of the server part
.PHONY: bench-capacity bench-capacity-server

EXTRA_BENCH += bench-capacity

bench-capacity: bench-capacity-server bench-capacity-kamailio

bench-capacity-server: build
	STIRGATE_BIN=$(CURDIR)/$(BIN)/stirgate $(GO) run ./sipredirect/benchcapacity $(CAPACITY_ARGS)
