#!/usr/bin/env bash
# Prove the GPU path on a bare machine with an NVIDIA GPU and no package index, in one short run:
#   1. build the CUDA preset with ClaraCore's own builder (python -m claracore.native build), from
#      the bundled llama-cpp-python source, offline; it installs the wheel and checks offload;
#   2. run the GPU-marked tests (offload, VRAM accounting against NVML and llama.cpp's report,
#      eviction by a VRAM budget with two models);
#   3. run `claracore doctor`;
#   4. run the server benchmark (ClaraCore against llama_cpp.server) on a generated model with
#      every layer on the GPU;
#   5. write a summary to $SUMMARY (default gpu-summary.txt).
#
# Usage: scripts/gpu_check.sh [BUNDLE]   (default .gpu, made here by scripts/gpu_bundle.sh)
# Environment: CUDA_ARCH (default 90: Hopper; one architecture keeps the build to minutes),
#   BACKEND (default cuda; cpu rehearses the whole script on a machine without a GPU),
#   SUMMARY, WORK (default /tmp/claracore-gpu), WHEELHOUSE (default $WORK/wheels), PYTHON,
#   BENCH_MODEL (a GGUF to benchmark instead of the generated one, e.g. a small one on a CPU),
#   PEER=llama-server (skip the builder: build llama.cpp's libraries and llama-server with cmake
#   from the same preset, and benchmark against llama-server too, on the same libraries).
set -uo pipefail
cd "$(dirname "$0")/.."
BUNDLE=${1:-.gpu}
BACKEND=${BACKEND:-cuda}
ARCH=${CUDA_ARCH:-90}
WORK=${WORK:-/tmp/claracore-gpu}
WHEELHOUSE=${WHEELHOUSE:-$WORK/wheels}
SUMMARY=${SUMMARY:-gpu-summary.txt}
PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1
started=$(date +%s)
elapsed() { echo "$(( $(date +%s) - started ))s"; }
say() { echo "$*" | tee -a "$SUMMARY"; }
fail=0
: > "$SUMMARY"
mkdir -p "$WORK/src"
say "== ClaraCore GPU check ($BACKEND), $(date -u +%FT%TZ)"
command -v nvidia-smi > /dev/null \
  && say "$(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader)"
say "python $("$PY" -c 'import sys; print(sys.version.split()[0])'), $(nproc) cores"

if compgen -G "$BUNDLE/whl/*.whl" > /dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$WORK/site" "$BUNDLE"/whl/*.whl || exit 1
  export PYTHONPATH="$WORK/site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}$PWD"  # claracore from this checkout, for the scripts too
sdist=$(compgen -G "$BUNDLE/llama_cpp_python-*.tar.gz" | head -1)
[ -n "$sdist" ] || { say "no llama_cpp_python-*.tar.gz in $BUNDLE: run scripts/gpu_bundle.sh first"; exit 2; }
tar xzf "$sdist" -C "$WORK/src"
src=$(compgen -G "$WORK/src/llama_cpp_python-*" | head -1)

sets=()
[ "$BACKEND" = cuda ] && sets=(--set "CMAKE_CUDA_ARCHITECTURES=$ARCH")

# The preset's CMake variables, built as bare shared libraries (plus llama-server when asked) and
# pointed at with LLAMA_CPP_LIB_PATH: the fallback when the builder fails, and the route that gives
# ClaraCore and llama-server the very same libraries for the side-by-side benchmark.
cmake_libs() {
  local server=OFF targets=(--target llama ggml)
  [ "${PEER:-}" = llama-server ] && server=ON targets=(--target llama ggml llama-server)
  eval "$("$PY" -m claracore.native build --backend "$BACKEND" "${sets[@]}" --source "$src" --dry-run \
    | head -1)"
  say "== cmake $CMAKE_ARGS, shared libraries (llama-server: $server)"
  eval "cmake -S '$src/vendor/llama.cpp' -B '$WORK/build' -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DBUILD_SHARED_LIBS=ON $CMAKE_ARGS -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
    -DLLAMA_BUILD_TOOLS=$server -DLLAMA_BUILD_SERVER=$server -DLLAMA_BUILD_COMMON=$server \
    -DLLAMA_BUILD_APP=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_BUILD_UI=OFF -DLLAMA_CURL=OFF" \
    > "$WORK/configure.log" 2>&1 \
    && timeout 330 cmake --build "$WORK/build" -j "$(nproc)" "${targets[@]}" > "$WORK/cmake-build.log" 2>&1 \
    || { tail -n 30 "$WORK/configure.log" "$WORK/cmake-build.log" | tee -a "$SUMMARY"; exit 1; }
  LLAMA_CPP_LIB_PATH=$(dirname "$(find "$WORK/build" -name 'libllama.so' | head -1)")
  export LLAMA_CPP_LIB_PATH PYTHONPATH="$src:$PYTHONPATH"
  say "built after $(elapsed): $LLAMA_CPP_LIB_PATH"
}

# 1. the builder, as a user runs it (plus --source/--offline for a machine without an index)
if [ "${PEER:-}" = llama-server ]; then
  cmake_libs
else
  say "== python -m claracore.native build --backend $BACKEND ${sets[*]} --source $(basename "$src") --offline"
  timeout 330 "$PY" -m claracore.native build --backend "$BACKEND" "${sets[@]}" --source "$src" --offline \
    --wheelhouse "$WHEELHOUSE" 2>&1 | tee "$WORK/build.log" | grep -vE "^\s*$" | tail -4 | tee -a "$SUMMARY"
  build_rc=${PIPESTATUS[0]}
  say "builder exit code $build_rc after $(elapsed)"
  if [ "$build_rc" != 0 ]; then
    grep -E "error|Error|ERROR" "$WORK/build.log" | tail -15 | tee -a "$SUMMARY"
    fail=1
    cmake_libs  # so one lent GPU still checks the runtime
  fi
fi
"$PY" -c "import llama_cpp; print('llama_cpp', llama_cpp.__version__, 'from', llama_cpp.__file__,
      '| offload:', llama_cpp.llama_supports_gpu_offload())" 2>&1 | tee -a "$SUMMARY"

# 2. the GPU-marked tests
say "== pytest -m gpu tests/gpu"
# Only the plugins the suite uses: the CUDA image's others (jax's, hypothesis's) would import numpy
# and CUDA libraries before conftest.py gets llama_cpp loaded first. Warnings from those packages'
# versions stay warnings here; CI keeps them errors.
PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 timeout 150 "$PY" -m pytest -p pytest_asyncio.plugin -p pytest_timeout \
  -p no:cacheprovider -W default -m gpu tests/gpu -v -s -o addopts="" 2>&1 \
  | tee "$WORK/pytest.log" | grep -E "gpu_layers=|budget|PASSED|FAILED|SKIPPED|ERROR|passed|failed|^E |Fatal|Segmentation" \
  | tee -a "$SUMMARY"
tests_rc=${PIPESTATUS[0]}
say "GPU tests exit code $tests_rc after $(elapsed)"
[ "$tests_rc" = 0 ] || fail=1

# 3. doctor
say "== claracore doctor"
timeout 60 "$PY" -m claracore doctor 2>&1 | tee -a "$SUMMARY"
[ "${PIPESTATUS[0]}" = 0 ] || fail=1

# 4. the server benchmark, every layer offloaded
model=${BENCH_MODEL:-$WORK/bench.gguf}
if [ -z "${BENCH_MODEL:-}" ]; then
  "$PY" -c "
import sys; sys.path.insert(0, '.')
from tests.tiny_models import make_tiny_llama
make_tiny_llama('$model', n_embd=1024, n_layer=16, n_head=16, n_head_kv=4, n_ff=2816, n_ctx=4096)"
  say "== bench_server.py, random 16-layer 1024-wide f32 model (~720 MB), --gpu-layers -1"
else
  say "== bench_server.py, $model, --gpu-layers -1"
fi
peer=()
[ "${PEER:-}" = llama-server ] && peer=(--llama-server "$WORK/build/bin/llama-server")
timeout 150 "$PY" scripts/bench_server.py --model "$model" --gpu-layers -1 --repeat 1 "${peer[@]}" \
  --with-llama-cpp-python --clients 1,4 --conversations 0 2>&1 \
  | grep -vE "^llama_context: n_ctx_seq" | tee -a "$SUMMARY"
[ "${PIPESTATUS[0]}" = 0 ] || fail=1
say "== finished in $(elapsed), exit code $fail"
exit "$fail"
