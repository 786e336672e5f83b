#!/usr/bin/env bash
# The integration tests render `webhook audit -o html` in Debian's headless chromium; a
# machine without it gets it here, so the test never finds it missing.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
	exit 0
fi
if [ "$(id -u)" != 0 ]; then
	echo "chromium is missing: install Debian's chromium package (apt-get install -y chromium) as root" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends chromium >/dev/null
command -v chromium
