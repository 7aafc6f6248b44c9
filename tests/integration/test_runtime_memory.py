"""The pool's estimate against what llama.cpp reports when our runtime really loads the model."""

from __future__ import annotations

import re

import pytest

from claracore.config import ModelSpec
from claracore.pool import loaders
from claracore.runtime.native import capture_log

BUFFER = re.compile(r"(model|KV|compute|output) buffer size =\s+([\d.]+) MiB")


@pytest.mark.parametrize("fixture", ["tiny_llama", "tiny_llama_gqa", "smollm2"])
@pytest.mark.parametrize(("ctx", "parallel"), [(512, 1), (2048, 4)])
def test_runtime_allocates_what_the_pool_budgets(
    request: pytest.FixtureRequest, fixture: str, ctx: int, parallel: int
) -> None:
    path = request.getfixturevalue(fixture)
    recipe = loaders.recipe(
        ModelSpec(name="m", model=str(path), context_length=ctx, parallel=parallel), gpu_offload=False
    )
    with capture_log() as lines:
        runtime = recipe.load()
    runtime.close()
    reported = {}
    for line in lines:
        if m := BUFFER.search(line):
            reported[m.group(1)] = reported.get(m.group(1), 0.0) + float(m.group(2)) * 2**20
    assert set(reported) >= {"model", "KV", "compute"}, lines
    rounding = 0.01 * 2**20 * len(reported)  # llama.cpp prints MiB with two decimals
    assert recipe.estimate.kv_bytes == pytest.approx(reported["KV"], rel=0.01, abs=rounding)
    assert recipe.estimate.total == pytest.approx(sum(reported.values()), rel=0.10, abs=rounding)
