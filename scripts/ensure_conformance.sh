#!/usr/bin/env bash
# The official MCP conformance suite runs in `make test` (tests/conformance), and so do the
# README's MCP Inspector commands (tests/docs/test_readme.py). Both need Node 22, which is
# installed from the npm registry into .tools/ next to them: nothing global, and the machine's
# Node 20 is left alone. A stamp file makes repeated runs instant.
set -euo pipefail
cd "$(dirname "$0")/.."
LEGACY="@modelcontextprotocol/conformance@0.1.16"
NEXT="@modelcontextprotocol/conformance@0.2.0-alpha.12"
INSPECTOR="@modelcontextprotocol/inspector@2.12.0"  # the version README.md names
stamp=".tools/.conformance-0.1.16-0.2.0-alpha.12-inspector-2.12.0-node22"
[ -f "$stamp" ] && exit 0
command -v npm >/dev/null || { echo "ERROR: npm is missing (install Node.js and npm)" >&2; exit 1; }
mkdir -p .tools
npm install --silent --no-audit --no-fund --prefix .tools/node node@22 "$LEGACY" "$INSPECTOR" >/dev/null
npm install --silent --no-audit --no-fund --prefix .tools/conformance-next "$NEXT" >/dev/null
.tools/node/node_modules/.bin/node --version | grep -q '^v22\.' || { echo "ERROR: node 22 did not install" >&2; exit 1; }
touch "$stamp"
