#!/bin/sh
# Medians over the -count runs of BenchmarkAdmissionAudit: off p50, on p50 and on/off-p50
# per case, the figure the 5% bound is about.
set -eu
awk '
/^BenchmarkAdmissionAudit\// {
	name = $1; sub(/-[0-9]+$/, "", name); sub(/^BenchmarkAdmissionAudit\//, "", name)
	for (i = 3; i < NF; i++) {
		if ($(i+1) == "off-p50-ns") off[name] = off[name] " " $i
		if ($(i+1) == "on-p50-ns") on[name] = on[name] " " $i
		if ($(i+1) == "on/off-p50") r[name] = r[name] " " $i
	}
	seen[name] = 1
}
function median(list,   a, n, i, j, t) {
	n = split(list, a, " ")
	for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
	if (n == 0) return 0
	if (n % 2) return a[(n + 1) / 2]
	return (a[n / 2] + a[n / 2 + 1]) / 2
}
END {
	printf "%-10s %6s %14s %14s %12s\n", "case", "runs", "off p50 us", "on p50 us", "on/off p50"
	for (c in seen) {
		n = split(r[c], tmp, " ")
		printf "%-10s %6d %14.1f %14.1f %12.3f\n", c, n, median(off[c]) / 1000, median(on[c]) / 1000, median(r[c])
	}
}' "$1"
