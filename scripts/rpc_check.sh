#!/usr/bin/env bash
# The RPC check: SmolLM2 split over two `claracore worker` processes and the local CPU must
# answer exactly as the same model served locally (greedy), and how much slower it is.
#   scripts/rpc_check.sh            (writes rpc-summary.txt)
# Steps: build llama.cpp's `rpc` preset (GGML_RPC; the libraries only, into build/rpc, from the
# llama.cpp vendored in llama-cpp-python's sdist, or LLAMA_CPP_SRC), start two workers on
# loopback ports from that build, run tests/integration/test_rpc.py and scripts/bench_rpc.py with
# LLAMA_CPP_LIB_PATH pointing at it, and write the summary. The installed llama-cpp-python is not
# touched. Not in CI: the build takes 10-20 minutes on 2 cores (then it is reused).
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-.venv/bin/python}
BUILD=${BUILD:-build/rpc}
SUMMARY=${SUMMARY:-rpc-summary.txt}
JOBS=${JOBS:-2}
export PYTHONPATH=$PWD

if [ -z "${LLAMA_CPP_SRC:-}" ]; then
  # The llama.cpp that the installed llama-cpp-python was built from: its sdist, unpacked once.
  VERSION=$("$PY" -c 'import importlib.metadata as m; print(m.version("llama-cpp-python"))')
  SRC_DIR=build/llama_cpp_python-$VERSION
  if [ ! -d "$SRC_DIR" ]; then
    mkdir -p build
    "$PY" -m pip download -q --no-deps --no-binary :all: "llama-cpp-python==$VERSION" -d build/sdist
    tar -xzf "build/sdist/llama_cpp_python-$VERSION.tar.gz" -C build
  fi
  LLAMA_CPP_SRC=$SRC_DIR/vendor/llama.cpp
fi

# The preset's switches (native/CMakePresets.json) plus only what the check needs.
CMAKE_ARGS=$("$PY" -c 'from claracore.native.presets import load_presets; p = load_presets()["rpc"]; print(" ".join(f"-D{k}={v}" for k, v in p.cache.items()))')
if [ ! -f "$BUILD/bin/libggml-rpc.so" ] || [ ! -f "$BUILD/bin/libllama.so" ]; then
  # shellcheck disable=SC2086
  cmake -S "$LLAMA_CPP_SRC" -B "$BUILD" -G Ninja $CMAKE_ARGS \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_CURL=OFF
  nice -n 10 cmake --build "$BUILD" --target llama ggml-rpc -j "$JOBS"
fi
export LLAMA_CPP_LIB_PATH=$PWD/$BUILD/bin

port() { "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
P1=$(port); P2=$(port)
PIDS=()
# SIGTERM: a script's background children ignore SIGINT.
cleanup() { for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
# Both workers cap the memory they report (`--mem`, the relay of claracore/runtime/rpc_relay.py):
# llama.cpp splits the offloaded layers by the free memory each worker reports, so 1 and 0.5 GiB
# make the split 2:1 whatever this machine has free. (A capped worker beside an uncapped one,
# which reports all of this machine's free RAM, would get no layer at all.) The workers of
# tests/integration/test_rpc.py run uncapped, and one of its tests runs a capped one.
"$PY" -m claracore worker --port "$P1" --threads 1 --mem 1 > "$BUILD/worker-$P1.log" 2>&1 & PIDS+=($!)
"$PY" -m claracore worker --port "$P2" --threads 1 --mem 0.5 > "$BUILD/worker-$P2.log" 2>&1 & PIDS+=($!)
WORKERS=127.0.0.1:$P1,127.0.0.1:$P2
for p in "$P1" "$P2"; do
  for _ in $(seq 100); do
    "$PY" -c "import socket; socket.create_connection(('127.0.0.1', $p), 1)" 2>/dev/null && break
    sleep 0.2
  done
done

{
  echo "RPC check $(date -u +%Y-%m-%dT%H:%M:%SZ), llama.cpp from $LLAMA_CPP_SRC, libraries in $BUILD/bin"
  echo
  echo "## tests/integration/test_rpc.py"
  "$PY" -m pytest -q -p no:cacheprovider tests/integration/test_rpc.py 2>&1 | tail -3
  echo
  echo "## scripts/bench_rpc.py --workers $WORKERS"
  "$PY" scripts/bench_rpc.py --workers "$WORKERS"
} 2>&1 | tee "$SUMMARY"
grep -q "answers identical.*: yes" "$SUMMARY" && ! grep -qE "[0-9]+ (failed|error)" "$SUMMARY"
