# FastAGI surface: fuzz targets and the session benchmark (sessions/s on
# loopback, real core, warm x5u cache). The unit, protocol, concurrency and
# end-to-end tests run with every package in `make unit`.
.PHONY: agi-fuzz agi-bench
# `make fuzz` runs every fuzz target in the tree; agi-fuzz is for working here.
EXTRA_BENCH += agi-bench

agi-fuzz:
	$(GO) test -run='^$$' -fuzz='^FuzzSession$$' -fuzztime=$(FUZZTIME) ./agi
	$(GO) test -run='^$$' -fuzz='^FuzzQuote$$' -fuzztime=$(FUZZTIME) ./agi

agi-bench:
	$(GO) test -run='^$$' -bench='^BenchmarkAGI' -benchtime=2s ./agi
