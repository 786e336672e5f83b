#!/usr/bin/env bash
# Runs every fuzz target in the module for FUZZTIME each, one at a time (the fuzzer
# wants the cores to itself), and stops at the first target that finds a failure. The
# failing input lands in the package's testdata/fuzz/<target>/, where plain `go test`
# replays it from then on.
#
#   hack/fuzz.sh [FUZZTIME] [target-regexp]     e.g. hack/fuzz.sh 10m 'Scan|Parse'
set -euo pipefail
cd "$(dirname "$0")/.."

fuzztime=${1:-${FUZZTIME:-1m}}
only=${2:-${FUZZ:-.}}
go=${GO:-go}

grep -rE --include='*_test.go' '^func Fuzz[A-Za-z0-9_]+\(' . |
	sed -E 's#^\./(.*)/[^/]+:func (Fuzz[A-Za-z0-9_]+)\(.*#\1 \2#' |
	sort -u |
	while read -r dir target; do
		if ! grep -qE "$only" <<<"$target"; then
			continue
		fi
		echo "== $target (./$dir) for $fuzztime"
		nice -n 10 "$go" test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" -parallel "${FUZZPARALLEL:-1}" "./$dir" </dev/null
	done
