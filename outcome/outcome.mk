# The outcome store at scale: a month of outcomes (10 million by default,
# STIRGATE_SCALE_ROWS to change) seeded into SQLite and PostgreSQL, every
# dashboard read, the drill-down, the write path and retention timed; a
# table of the times at the end. Minutes, not seconds: `make bench` only.
.PHONY: bench-scale
EXTRA_BENCH += bench-scale

STIRGATE_SCALE_ROWS ?= 10000000

bench-scale:
	STIRGATE_SCALE_ROWS=$(STIRGATE_SCALE_ROWS) $(GO) test -run='^$$' -bench='^BenchmarkDashboardScale$$' -benchtime=3x -timeout=3h ./outcome/
