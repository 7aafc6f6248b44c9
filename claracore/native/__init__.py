"""Building llama-cpp-python for a GPU backend from ClaraCore's CMake presets.

PyPI's llama-cpp-python wheel is CPU-only; a GPU build has to be compiled on the user's machine
with the right `CMAKE_ARGS`. This package keeps that knowledge in one place: `presets` reads the
CMake presets (the single source of the GGML_* switches), `build` checks the toolchain, builds
and caches a wheel, installs it and verifies it. Nothing here imports llama_cpp, so it works
while the installed llama-cpp-python is broken or missing.
"""

from claracore.native.presets import BACKENDS, Preset, cmake_args, load_presets

__all__ = ["BACKENDS", "Preset", "cmake_args", "load_presets"]
