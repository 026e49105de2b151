#!/usr/bin/env bash
# The browser tests drive Debian's chromium through Playwright (Playwright never downloads a
# browser here). Install chromium from the distribution when it is missing.
set -euo pipefail
chromium="${CHROMIUM_PATH:-/usr/bin/chromium}"
[ -x "$chromium" ] && exit 0
if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  echo "chromium is missing; installing it with apt-get" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
else
  echo "ERROR: $chromium is missing: install Debian's chromium (apt-get install chromium) or set CHROMIUM_PATH." >&2
  exit 1
fi
