"""A llama.cpp build with ggml's AMX kernels must not take the server down.

Those kernels die of an illegal instruction at the first tile operation on many machines (this
project's 2-core machines among them): with such a build, every decode of SmolLM2 (Q4_1, which
the AMX buffer type takes) killed the test process. See `extra_buffers_allowed` in
claracore/runtime/native.py.
"""

from __future__ import annotations

from pathlib import Path

import llama_cpp

from claracore import Engine
from claracore.protocol.openai import ChatCompletion
from claracore.runtime.native import AMX_OPT_IN, capture_log, extra_buffers_allowed, extra_buffers_allowed_for

AMX_BUILD = "CPU : SSE3 = 1 | AVX2 = 1 | AVX512 = 1 | AMX_INT8 = 1 | REPACK = 1 | "
PORTABLE_BUILD = "CPU : SSE3 = 1 | AVX2 = 1 | AVX512 = 0 | REPACK = 1 | "


def test_a_build_with_amx_loads_without_extra_buffers_unless_told_amx_works() -> None:
    assert not extra_buffers_allowed_for(AMX_BUILD, {})
    assert not extra_buffers_allowed_for(AMX_BUILD, {AMX_OPT_IN: "0"})
    assert extra_buffers_allowed_for(AMX_BUILD, {AMX_OPT_IN: "1"})
    assert extra_buffers_allowed_for(PORTABLE_BUILD, {})  # repacking stays where AMX is absent


def test_this_build_decodes_smollm2_and_puts_no_weights_in_amx_buffers(smollm2: Path) -> None:
    amx = "AMX_INT8 = 1" in llama_cpp.llama_print_system_info().decode()
    assert extra_buffers_allowed() == (not amx)  # CLARACORE_AMX is not set in the test run
    spec = {"name": "m", "model": str(smollm2), "context_length": 512}
    with capture_log() as lines, Engine({"models": [spec]}) as engine:
        answer = engine.chat(model="m", messages=[{"role": "user", "content": "Say hi."}], max_tokens=4)
    assert isinstance(answer, ChatCompletion) and answer.usage.completion_tokens > 0
    if amx:
        assert not [line for line in lines if "AMX model buffer" in line]
