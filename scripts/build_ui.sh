#!/usr/bin/env bash
# Build the web UI (ui/, React + Vite) into claracore/server/ui_build, which the server serves at
# /ui/ and a wheel ships as package data. Does nothing when the build is newer than its sources.
#   ./scripts/build_ui.sh [--force]
# Needs Node.js 20.19+ and npm; `npm ci` installs the exact versions in ui/package-lock.json.
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=claracore/server/ui_build/index.html
SOURCES=(ui/src ui/public ui/index.html ui/package.json ui/package-lock.json ui/vite.config.ts ui/tsconfig.json)

if ! command -v npm >/dev/null; then
  echo "build_ui.sh: npm is missing: install Node.js 20.19 or newer to build the web UI" >&2
  exit 1
fi
if [ ! -f ui/node_modules/.package-lock.json ] || [ ui/package-lock.json -nt ui/node_modules/.package-lock.json ]; then
  (cd ui && npm ci --no-audit --no-fund)
fi
if [ "${1:-}" = --force ] || [ ! -f "$OUT" ] || [ -n "$(find "${SOURCES[@]}" -newer "$OUT" -print -quit)" ]; then
  (cd ui && npm run build)
else
  echo "web UI is up to date ($OUT)"
fi
