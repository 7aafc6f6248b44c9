#!/usr/bin/env bash
# Prove the GPU path on a machine with an NVIDIA GPU and no network, in one short run:
#   1. build llama.cpp (the copy vendored in llama-cpp-python's sdist) with CUDA, as shared libraries;
#   2. point llama-cpp-python's Python package at them (LLAMA_CPP_LIB_PATH);
#   3. run the GPU-marked tests (offload, VRAM accounting against NVML and llama.cpp, VRAM eviction);
#   4. run the engine benchmark on a generated model, fully offloaded;
#   5. write a summary to $SUMMARY (default gpu-summary.txt).
#
# Usage: scripts/gpu_check.sh LLAMA_SRC_TARBALL [WHEEL_DIR]
#   LLAMA_SRC_TARBALL  a tar.gz holding llama-cpp-python's `llama_cpp/` package and `vendor/llama.cpp`
#                      (the sdist, or the parts of it that build the libraries)
#   WHEEL_DIR          wheels of ClaraCore's Python dependencies, for a machine without an index
# Environment: CUDA_ARCH (default 90, Hopper), SUMMARY, WORK (default /tmp/claracore-gpu).
set -euo pipefail
cd "$(dirname "$0")/.."
SRC_TAR=${1:?usage: scripts/gpu_check.sh LLAMA_SRC_TARBALL [WHEEL_DIR]}
WHEELS=${2:-}
WORK=${WORK:-/tmp/claracore-gpu}
SUMMARY=${SUMMARY:-gpu-summary.txt}
ARCH=${CUDA_ARCH:-90}
PY=${PYTHON:-python3}
started=$(date +%s)
mkdir -p "$WORK/src"
say() { echo "$*" | tee -a "$SUMMARY"; }
: > "$SUMMARY"
say "== ClaraCore GPU check, $(date -u +%FT%TZ)"
say "$(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader)"

if [ -n "$WHEELS" ]; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --target "$WORK/site" "$WHEELS"/*.whl
  export PYTHONPATH="$WORK/site${PYTHONPATH:+:$PYTHONPATH}"
fi

tar xzf "$SRC_TAR" -C "$WORK/src"
cmake -S "$WORK/src/vendor/llama.cpp" -B "$WORK/build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES="$ARCH" -DGGML_NATIVE=OFF -DBUILD_SHARED_LIBS=ON \
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF \
  -DLLAMA_BUILD_COMMON=OFF -DLLAMA_BUILD_APP=OFF -DLLAMA_CURL=OFF > "$WORK/configure.log"
cmake --build "$WORK/build" -j "$(nproc)" > "$WORK/build.log" 2>&1 || { tail -40 "$WORK/build.log"; exit 1; }
lib=$(dirname "$(find "$WORK/build" -name 'libllama.so' | head -1)")
export LLAMA_CPP_LIB_PATH="$lib"
export PYTHONPATH="$WORK/src:$PWD${PYTHONPATH:+:$PYTHONPATH}"
say "built CUDA (sm_$ARCH) in $(( $(date +%s) - started ))s: $lib"
"$PY" -c "import llama_cpp; ok = llama_cpp.llama_supports_gpu_offload(); print('llama_supports_gpu_offload:', ok); assert ok" \
  | tee -a "$SUMMARY"

set +e
"$PY" -m pytest -p no:cacheprovider -m gpu tests/gpu -v -s -o addopts="" 2>&1 | tee "$WORK/pytest.log" \
  | grep -E "gpu_layers=|PASSED|FAILED|SKIPPED|ERROR|passed|failed|^E " | tee -a "$SUMMARY"
tests_rc=${PIPESTATUS[0]}
set -e

bench_model="$WORK/bench.gguf"
"$PY" -c "
import sys; sys.path.insert(0, '.')
from tests.tiny_models import make_tiny_llama
make_tiny_llama('$bench_model', n_embd=1024, n_layer=16, n_head=16, n_head_kv=4, n_ff=2816, n_ctx=4096)"
say "== bench_engine.py, random 16-layer 1024-wide model (~720 MB f32), all layers on the GPU"
"$PY" scripts/bench_engine.py --model "$bench_model" --gpu-layers -1 --repeat 1 2>&1 \
  | grep -vE "^llama_context: n_ctx_seq" | tee -a "$SUMMARY"
say "== finished in $(( $(date +%s) - started ))s, GPU tests exit code $tests_rc"
exit "$tests_rc"
