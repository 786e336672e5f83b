#!/usr/bin/env bash
# Usage: timed-stages.sh MAKE TARGET...
# Runs each make target in order, stops at the first failure, and prints how long every
# stage took so a slow suite is visible in CI logs.
set -uo pipefail

make=$1
shift
summary=()
total_start=$SECONDS
for target in "$@"; do
	start=$SECONDS
	echo "=== $target"
	if "$make" --no-print-directory "$target"; then
		status=ok
	else
		status=FAILED
	fi
	took=$((SECONDS - start))
	summary+=("$(printf '%-18s %-6s %4ds' "$target" "$status" "$took")")
	echo "=== $target $status in ${took}s"
	if [ "$status" != ok ]; then
		break
	fi
done
echo "=== stages"
printf '  %s\n' "${summary[@]}"
echo "  total              $((SECONDS - total_start))s"
[ "$status" = ok ]
