#!/usr/bin/env bash
# Builds the kubectl-pdguard release archives for krew (linux and darwin, amd64 and arm64)
# into dist/ and writes dist/pdguard.yaml with their sha256: VERSION=v0.1.0 hack/release.sh.
# Extra arguments go to hack/release (e.g. --platforms linux/amd64).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
: "${VERSION:?set VERSION to the release version, e.g. VERSION=v0.1.0}"
cd "$root"
commit=$(git rev-parse HEAD)
# The commit's time, not the clock: the same commit builds the same archives.
date=$(TZ=UTC git log -1 --format=%cd --date=format-local:%Y-%m-%dT%H:%M:%SZ)
rm -rf "$root/dist"
exec go run ./hack/release --version "$VERSION" --commit "$commit" --date "$date" --dist "$root/dist" "$@"
