#!/usr/bin/env bash
# Renders the test chart with helm template into cmd/webhook/testdata/check/chart/: the old
# release and three upgrades of it, the whole-release input of check's golden tests (unit
# tests run without helm). charts' TestCheckTestdataMatchesChart renders them again and
# fails when they drifted from the chart: rerun this script after changing the chart.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
helm=${HELM:-$root/bin/tools/helm}
out=${OUT:-$root/cmd/webhook/testdata/check/chart}
mkdir -p "$out"

render() {
	local name=$1
	shift
	{
		echo "# helm template pd-upgrade-example test/charts/pingdirectory $* (hack/render-check-testdata.sh)"
		"$helm" template pd-upgrade-example "$root/test/charts/pingdirectory" "$@"
	} > "$out/$name.yaml"
	echo "wrote $out/$name.yaml"
}

render old
# A plain upgrade: only the tag changes.
render tag --set image.tag=9.1.0.0-latest
# A bundle: the tag and the configuration (checksum/config) in one upgrade.
render bundle --set image.tag=9.1.0.0-latest --set env.LOG_LEVEL=DEBUG
# A change unrelated to the version: one more pod label, the tag kept.
render unrelated --set extraPodLabels.team=directory
