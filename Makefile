# stirgate — build, test, benchmark and run.
#   make run    the main job on an embedded lab default (generated PKI)
#   make test   everything CI runs: installs missing peers, unit, interop,
#               integration and short fuzz runs
GO        ?= go
BIN       := bin
# A count, not a duration: go1.26's fuzz coordinator can report its own
# -fuzztime deadline as a failure ("context deadline exceeded", no crasher;
# golang/go#75804, fixed in go1.27). A count has no deadline to race.
FUZZTIME  ?= 100000x
export CGO_ENABLED ?= 1

.PHONY: all build run test test-deps unit fuzz lint bench clean

all: build

build:
	$(GO) build -o $(BIN)/stirgate ./cmd/stirgate

run: build
	$(BIN)/stirgate serve

test-deps:
	.ci/deps

# Every package; integration tests find the peers installed by test-deps
# and fail (never skip) when one is missing.
unit: build
	$(GO) vet ./...
	STIRGATE_BIN=$(CURDIR)/$(BIN)/stirgate $(GO) test -race -count=1 -timeout 20m ./...
	# The tests that pin why a design-chosen library is not used. amigo's own
	# data races would trip -race, so these run without it.
	$(GO) test -count=1 -tags amigo -run Amigo ./ami/
	$(GO) test -count=1 -tags sipgo -run Sipgo ./sipredirect/

# Every fuzz target in the tree (found, not listed, so none is forgotten)
# runs briefly on top of its checked-in seed corpus.
fuzz:
	@set -e; git ls-files '*_test.go' | xargs grep -l '^func Fuzz' | while read -r f; do \
		for name in $$(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' "$$f"); do \
			echo "fuzz $$name ($(FUZZTIME))"; \
			$(GO) test -run='^$$' -fuzz="^$$name$$" -fuzztime=$(FUZZTIME) ./$$(dirname "$$f"); \
		done; \
	done

# Surfaces add their own targets in <dir>/*.mk and append to EXTRA_TESTS
# (run by `make test`) and EXTRA_BENCH (run by `make bench`).
EXTRA_TESTS :=
EXTRA_BENCH :=
-include $(sort $(wildcard */*.mk))

test: test-deps unit fuzz $(EXTRA_TESTS)

lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...

# Debian's libsecsipid (secsipidx) is measured in a process of its own:
# two Go runtimes cannot share one.
$(BIN)/secsipid_bench: internal/secsipidbench/secsipid_bench.c
	@mkdir -p $(BIN)
	cc -O2 -Wall -o $@ $< $$(pkg-config --cflags --libs secsipid-1)

bench: test-deps build $(BIN)/secsipid_bench $(EXTRA_BENCH)
	$(BIN)/stirgate bench --secsipid $(BIN)/secsipid_bench
	$(GO) test -run='^$$' -bench=. -benchmem ./core/...

clean:
	rm -rf $(BIN)
