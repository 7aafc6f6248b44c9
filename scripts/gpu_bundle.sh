#!/usr/bin/env bash
# Prepare what scripts/gpu_check.sh needs on a GPU machine that has no package index:
#   BUNDLE/llama_cpp_python-VERSION.tar.gz  llama-cpp-python's sdist without the parts no build reads
#                                           (its 75 MB of test models, docs, tests), ~10 MB
#   BUNDLE/whl/*.whl                        ClaraCore's and the benchmark peer's Python dependencies
#                                           that the machine's image lacks, for its Python
# Run it here, where the index is reachable. The bundle stays well under 64 MiB.
#
# Usage: scripts/gpu_bundle.sh [BUNDLE]   (default .gpu, which .gitignore leaves out)
# Environment: LLAMA_CPP_PYTHON (default 0.3.36), PY_VERSION (the GPU machine's Python, default 3.12).
set -euo pipefail
cd "$(dirname "$0")/.."
BUNDLE=${1:-.gpu}
VERSION=${LLAMA_CPP_PYTHON:-0.3.36}
PYV=${PY_VERSION:-3.12}
PY=${PYTHON:-python3}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$BUNDLE/whl"

"$PY" -m pip download -q --no-deps --no-binary :all: -d "$tmp" "llama-cpp-python==$VERSION"
tar xzf "$tmp/llama_cpp_python-$VERSION.tar.gz" -C "$tmp"
src="llama_cpp_python-$VERSION"
v="$src/vendor/llama.cpp"
tar czf "$BUNDLE/$src.tar.gz" -C "$tmp" \
  --exclude="$src/.git" --exclude="$v/.git" --exclude="$src/docs" --exclude="$src/examples" \
  --exclude="$src/tests" --exclude="$src/docker" --exclude="$v/models" --exclude="$v/docs" \
  --exclude="$v/media" --exclude="$v/tools/ui/tests" --exclude="$v/tests" --exclude="$v/benches" \
  --exclude="$v/examples" --exclude="$v/gguf-py" --exclude="$v/conversion" --exclude="$v/.github" "$src"

# What the image's Python lacks (its package list is in the device tool's KINDS.md): ClaraCore's
# own dependencies, the openai client the benchmark drives, and llama_cpp.server's for the peer.
wheels=(
  "pydantic==2.14.4" "pydantic-core==2.50.5" "annotated-types==0.8.0" "typing-inspection==0.4.5"
  "gguf==0.19.0" "diskcache==5.6.3" "pytest-asyncio==1.5.0"
  "fastapi==0.165.0" "starlette==1.10.0" "annotated-doc==0.0.7" "uvicorn==0.54.0" "python-multipart==0.0.34"
  "opentelemetry-api==1.45.2" "typing-extensions==4.16.0" "anyio==4.16.0"
  "openai==3.57.0" "distro==1.9.0" "jiter==0.19.0" "sniffio==1.3.1"
  "httpx2==2.16.2" "httpcore2==2.16.2" "truststore==0.10.5"
  "pydantic-settings==2.16.3" "python-dotenv==1.2.4" "sse-starlette==3.7.0" "starlette-context==0.5.1"
)
rm -f "$BUNDLE"/whl/*.whl
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version "$PYV" --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d "$BUNDLE/whl" "${wheels[@]}"
du -sh "$BUNDLE/$src.tar.gz" "$BUNDLE/whl"
