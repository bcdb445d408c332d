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

.PHONY: all build run test test-deps unit vet gotest libtests fuzz lint bench clean

all: build

# HARDEN=1 (set by `make deb`) builds the binary as Debian builds C: a
# position-independent executable, its cgo parts compiled and the whole
# linked with Debian's hardening flags (stack protector, fortify, full
# RELRO, BIND_NOW), which lintian checks.
HARDEN_ENV     = DEB_BUILD_MAINT_OPTIONS=hardening=+all
HARDEN_CFLAGS  = $(shell $(HARDEN_ENV) dpkg-buildflags --get CFLAGS) $(shell $(HARDEN_ENV) dpkg-buildflags --get CPPFLAGS)
HARDEN_LDFLAGS = $(shell $(HARDEN_ENV) dpkg-buildflags --get LDFLAGS)
# The C of the shared libraries (cgo's and our shims) is always built so:
# they are file targets the tests share with the packages.
HARDEN_CGO_CFLAGS = -g -O2 -fstack-protector-strong -D_FORTIFY_SOURCE=2

build:
	$(if $(HARDEN),CGO_CFLAGS='$(HARDEN_CFLAGS)' CGO_LDFLAGS='$(HARDEN_LDFLAGS)') $(GO) build \
		$(if $(HARDEN),-buildmode=pie -ldflags "-linkmode=external -extldflags '$(HARDEN_LDFLAGS)'") -o $(BIN)/stirgate ./cmd/stirgate

run: build
	$(BIN)/stirgate serve

test-deps:
	.ci/deps

# Every package; integration tests find the peers installed by test-deps
# and fail (never skip) when one is missing.
unit: vet gotest libtests

vet:
	$(GO) vet ./...

gotest: build
	STIRGATE_BIN=$(CURDIR)/$(BIN)/stirgate $(GO) test -race -count=1 -timeout 30m ./...

# The tests that pin why a design-chosen library is not used. amigo's own
# data races would trip -race, so these run without it.
libtests:
	$(GO) test -count=1 -tags amigo -run Amigo ./ami/
	$(GO) test -count=1 -tags sipgo -run Sipgo ./sipredirect/

# Every fuzz target in the tree (found, not listed, so none is forgotten)
# runs briefly on top of its checked-in seed corpus. A failing target does
# not stop the others; the run fails at the end, naming them.
fuzz:
	@failed=; for f in $$(git ls-files '*_test.go' | xargs grep -l '^func Fuzz'); do \
		for name in $$(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' "$$f"); do \
			echo "fuzz $$name ($(FUZZTIME))"; \
			$(GO) test -run='^$$' -fuzz="^$$name$$" -fuzztime=$(FUZZTIME) ./$$(dirname "$$f") || failed="$$failed $$name"; \
		done; \
	done; \
	if [ -n "$$failed" ]; then echo "fuzz: failed:$$failed"; exit 1; fi

# Surfaces add their own targets in <dir>/*.mk and append to EXTRA_TESTS
# (run by `make test`) and EXTRA_BENCH (run by `make bench`).
EXTRA_TESTS :=
EXTRA_BENCH :=
-include $(sort $(wildcard */*.mk))

# `make test` runs every part even when one fails, so one failure cannot
# hide the others, then fails at the end with the list of failed parts.
TEST_PARTS = vet gotest libtests fuzz $(EXTRA_TESTS)

test: test-deps
	@passed=0; failed=; for part in $(TEST_PARTS); do \
		echo "=== make $$part"; \
		if $(MAKE) --no-print-directory $$part; then passed=$$((passed+1)); else failed="$$failed $$part"; fi; \
	done; \
	echo "parts: $$passed passed, $$(echo $$failed | wc -w) failed"; \
	if [ -n "$$failed" ]; then echo "make test: FAILED:$$failed"; exit 1; fi; \
	echo "make test: every part passed ($(TEST_PARTS))"

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
