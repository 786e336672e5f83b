#!/usr/bin/env bash
# Renders the test chart with helm template into cmd/webhook/testdata/check/chart-release.yaml,
# the whole-release input of check's golden tests (unit tests run without helm).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
helm=${HELM:-$root/bin/tools/helm}
out=$root/cmd/webhook/testdata/check/chart-release.yaml
{
	echo "# helm template pd-upgrade-example test/charts/pingdirectory (hack/render-check-testdata.sh)"
	"$helm" template pd-upgrade-example "$root/test/charts/pingdirectory"
} > "$out"
echo "wrote $out"
