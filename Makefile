GO ?= go
# Integration and end-to-end tests start real processes the Go test cache cannot see,
# so a cached pass would prove nothing.
TESTFLAGS ?= -count=1

.PHONY: tools test test-unit test-integration test-e2e demo bench

# etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, kwok and helm,
# built once from the Go module proxy into bin/tools.
tools:
	hack/build-tools.sh

test-unit: tools
	$(GO) vet -tags integration,e2e ./...
	$(GO) test ./...

# The suite's own figures (a "fault: ... held" line per fault scenario, timings) are
# printed after the run: go test hides a passing package's output.
test-integration: tools
	hack/install-chromium.sh
	@rm -f bin/integration-summary.txt
	PDGUARD_TEST_SUMMARY=$(CURDIR)/bin/integration-summary.txt $(GO) test $(TESTFLAGS) -tags integration ./test/integration/...; \
		rc=$$?; echo "=== integration figures"; cat bin/integration-summary.txt 2>/dev/null; exit $$rc

test-e2e: tools
	$(GO) test $(TESTFLAGS) -tags e2e -timeout 40m ./test/e2e/...

# All three stages in order, stopping at the first failure, with the time each took.
test:
	@hack/timed-stages.sh $(MAKE) test-unit test-integration test-e2e

demo: tools
	$(GO) run ./hack/demo

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...
	@echo "decision latency with the GC target webhook serve runs with (GOGC=200):"
	GOGC=200 $(GO) test -run '^$$' -bench DecisionLatency -benchtime 20000x ./webhook/

# The audit pipeline's cost on an admission answer: off and on interleaved in one loop,
# AUDITCOUNT runs, then per case the median over the runs of each p50 and of on/off-p50.
AUDITCOUNT ?= 6
.PHONY: bench-audit
bench-audit:
	$(GO) test -run '^$$' -bench AdmissionAudit -benchtime 2s -count $(AUDITCOUNT) ./webhook/ | tee /tmp/pdguard-bench-audit.txt
	@hack/audit-median.sh /tmp/pdguard-bench-audit.txt

# Admission latency of the real webhook server under helm-shaped load; pass flags with
# LOADFLAGS, e.g. make load LOADFLAGS='--rate 200 --out load.json'.
# Every fuzz target in turn for FUZZTIME each (CI replays only the seed corpora).
FUZZTIME ?= 1m
.PHONY: fuzz
fuzz:
	hack/fuzz.sh $(FUZZTIME)

.PHONY: load
load: tools
	$(GO) run ./hack/loadtest $(LOADFLAGS)

# pdguard next to a controller-runtime webhook that allows everything, case by case, as
# ratios to it; pass flags with BENCHFLAGS, e.g. make bench-load BENCHFLAGS='--runs 5'.
.PHONY: bench-load
bench-load: tools
	$(GO) run ./hack/loadtest --mode bench-load $(BENCHFLAGS)

# pdguard's memory with 1,000 guarded StatefulSets and 5,000 Ready pods in the API server.
.PHONY: bench-scale
bench-scale: tools
	$(GO) run ./hack/loadtest --mode bench-scale $(BENCHFLAGS)

# The kubectl-pdguard archives for krew and dist/pdguard.yaml with their sha256:
# make release VERSION=v0.1.0
.PHONY: release
release:
	VERSION=$(VERSION) hack/release.sh
