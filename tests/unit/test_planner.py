"""The planner on tiny models and machines described by numbers: every option changes the output."""

from __future__ import annotations

from pathlib import Path

import pytest

from claracore.config import Config, ModelSpec
from claracore.errors import InvalidRequestError
from claracore.hardware import probe
from claracore.manage.planner import Hardware, PlanOptions, plan, plan_config
from claracore.manage.store import ModelFile
from claracore.modelfile.gguf import GGUFInfo, read_gguf
from tests.tiny_models import make_tiny_llama

MIB = 1 << 20
GIB = 1 << 30
GPU = Hardware(vram_bytes=GIB, ram_bytes=GIB, backend="cuda")


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> ModelFile:
    """8 layers, 32k trained context: ~4 KiB of f16 KV per token, so MiB budgets bite."""
    path = make_tiny_llama(
        tmp_path_factory.mktemp("planner") / "big.gguf", n_embd=128, n_layer=8, n_ff=256, n_ctx=32768
    )
    return ModelFile(path=str(path), folder=str(path.parent), size=1, mtime=0.0, name="big", kind="llm")


def _one(config: Config) -> ModelSpec:
    (spec,) = config.models
    return spec


def _opts(**kw: object) -> PlanOptions:
    return PlanOptions.from_api({"preferredContext": 8192, "minContext": 2048, **kw})


def test_baseline_all_layers_on_the_gpu_at_the_preferred_context(big: ModelFile) -> None:
    spec = _one(plan_config([big], GPU, _opts(), existing=None))
    assert (spec.gpu_layers, spec.context_length, spec.cache_type_k, spec.parallel) == (-1, 8192, "f16", 2)
    assert spec.backend == "auto" and spec.chat_template is None and spec.model == big.path


def test_force_backend_cpu_keeps_every_layer_in_ram(big: ModelFile) -> None:
    result = plan([big], GPU, _opts(forceBackend="cpu"))
    spec = _one(result.config)
    assert spec.gpu_layers == 0 and spec.backend == "cpu" and result.vram_budget == 0
    (m,) = result.models
    assert m.estimate is not None and m.estimate.vram_bytes == 0 and m.estimate.ram_bytes > 0


def test_force_vram_replaces_detection(big: ModelFile) -> None:
    # 40 MiB: a 1-slot f16 cache at 8192 (~47 MiB) does not fit on the GPU, q8_0 (~32 MiB) does.
    spec = _one(plan_config([big], GPU, _opts(forceVRAM=40 / 1024)))
    assert (spec.gpu_layers, spec.context_length, spec.cache_type_k, spec.parallel) == (-1, 8192, "q8_0", 1)
    # Smaller still: only some layers fit, the rest stays in RAM.
    result = plan([big], GPU, _opts(forceVRAM=20 / 1024, minContext=8192))
    spec = _one(result.config)
    assert 0 < spec.gpu_layers < 9 and spec.context_length == 8192
    assert result.config.memory.vram_gb == pytest.approx(20 / 1024)


def test_force_ram_replaces_detection(big: ModelFile) -> None:
    cpu = Hardware(vram_bytes=0, ram_bytes=GIB, backend="cpu")
    assert _one(plan_config([big], cpu, _opts())).cache_type_k == "f16"
    result = plan([big], cpu, _opts(forceRAM=40 / 1024))
    spec = _one(result.config)
    assert (spec.cache_type_k, spec.parallel, spec.context_length) == ("q8_0", 1, 8192)
    assert result.config.memory.ram_gb == pytest.approx(40 / 1024)


def test_throughput_first_takes_more_slots(big: ModelFile) -> None:
    assert _one(plan_config([big], GPU, _opts())).parallel <= 2
    assert _one(plan_config([big], GPU, _opts(throughputFirst=True))).parallel >= 4


def test_throughput_first_gives_up_context_before_slots(big: ModelFile) -> None:
    hw = Hardware(vram_bytes=0, ram_bytes=100 * MIB, backend="cpu")
    plain = _one(plan_config([big], hw, _opts(minContext=1024)))
    fast = _one(plan_config([big], hw, _opts(minContext=1024, throughputFirst=True)))
    assert fast.parallel >= 4 > plain.parallel
    assert fast.context_length is not None and plain.context_length is not None
    assert fast.context_length < plain.context_length


def test_preferred_context_is_used_and_capped_at_the_trained_context(big: ModelFile) -> None:
    assert _one(plan_config([big], GPU, _opts(preferredContext=4096))).context_length == 4096
    assert _one(plan_config([big], GPU, _opts(preferredContext=16384))).context_length == 16384
    assert _one(plan_config([big], GPU, _opts(preferredContext=65536))).context_length == 32768


def test_min_context_is_a_floor_and_drops_what_cannot_reach_it(big: ModelFile) -> None:
    tight = Hardware(vram_bytes=0, ram_bytes=20 * MIB, backend="cpu")  # ~18 MiB: 2048 tokens at q8_0
    spec = _one(plan_config([big], tight, _opts(minContext=1024)))
    assert spec.context_length is not None and spec.context_length < 8192
    result = plan([big], tight, _opts(minContext=4096))
    assert result.config.models == []
    (m,) = result.models
    assert m.dropped and "minContext 4096" in m.dropped and m.to_api()["dropped"] == m.dropped


def test_enable_jinja(big: ModelFile) -> None:
    assert _one(plan_config([big], GPU, _opts(enableJinja=True))).chat_template is None
    with pytest.raises(InvalidRequestError) as e:
        _opts(enableJinja=False)
    assert e.value.param == "enableJinja" and "not supported" in e.value.message


@pytest.mark.parametrize(
    ("options", "param"),
    [
        ({"forceVRAM": -3}, "forceVRAM"),
        ({"forceRAM": 0}, "forceRAM"),
        ({"forceRAM": "lots"}, "forceRAM"),
        ({"preferredContext": 10**9}, "preferredContext"),
        ({"minContext": 0}, "minContext"),
        ({"minContext": 1.5}, "minContext"),
        ({"minContext": 8192, "preferredContext": 4096}, "preferredContext"),
        ({"forceBackend": "tpu"}, "forceBackend"),
        ({"throughputFirst": "yes"}, "throughputFirst"),
        ({"preferedContext": 4096}, "preferedContext"),
    ],
)
def test_bad_options_are_rejected(options: dict[str, object], param: str) -> None:
    with pytest.raises(InvalidRequestError) as e:
        PlanOptions.from_api(options)
    assert e.value.param == param


def test_regeneration_keeps_hand_edits_of_models_that_still_exist(big: ModelFile, tmp_path: Path) -> None:
    first = plan_config([big], GPU, _opts())
    record = {big.path: _one(first).model_dump()}
    edited = _one(first).model_copy(
        update={"name": "mine", "aliases": ["m"], "temperature": 0.2, "parallel": 3}
    )
    gone = ModelSpec(name="gone", model=str(tmp_path / "deleted.gguf"))
    existing = first.model_copy(update={"models": [edited, gone], "port": 5999})
    again = plan_config([big], GPU, _opts(preferredContext=4096), existing=existing, generated=record)
    spec = _one(again)  # the deleted file's entry is gone
    assert again.port == 5999
    assert (spec.name, spec.aliases, spec.temperature, spec.parallel) == ("mine", ["m"], 0.2, 3)
    assert spec.context_length == 4096  # not edited by hand: replanned with the new option


def test_embedding_models_get_fixed_settings(tiny_bert: Path, big: ModelFile) -> None:
    emb = ModelFile(path=str(tiny_bert), folder="", size=1, mtime=0.0, name="emb", kind="embedding")
    stt = ModelFile(path="/w/whisper", folder="", size=1, mtime=0.0, name="whisper", kind="stt")
    twin = ModelFile(path=big.path + ".copy", folder="", size=1, mtime=0.0, name="big", kind="llm")
    result = plan([emb, stt, big], GPU, _opts(), read=_read_ignoring_copy)
    specs = {s.name: s for s in result.config.models}
    assert specs["emb"].parallel == 1 and specs["emb"].type == "embedding"
    assert specs["emb"].context_length is not None and specs["emb"].context_length <= 8192
    assert specs["whisper"].type == "stt" and specs["whisper"].parallel == 1
    names = plan_config([big, twin], GPU, _opts(), existing=None)
    assert [s.name for s in names.models] == ["big"]  # the copy does not exist: dropped, reported
    both = plan([big, twin], GPU, _opts(), read=_read_ignoring_copy)
    assert [s.name for s in both.config.models] == ["big", "big-2"]


def _read_ignoring_copy(path: str) -> GGUFInfo:
    """A second path to the same file, so two files share a name without a second model."""
    return read_gguf(path.removesuffix(".copy"))


def _machine(vram: int, ram: int, *, built: tuple[str, ...] = ("cpu", "cuda")) -> probe.Detection:
    gpu = probe.GPU(vendor="nvidia", name="a GPU", vram=vram, source="test")
    return probe.Detection(os="linux", arch="x86_64", cpu="cpu", cpu_cores=2, cpu_threads=2, ram_total=ram,
                           gpus=(gpu,), has_cuda=True, has_vulkan=True, built_backends=built)  # fmt: skip


def test_hardware_from_detection_keeps_exact_bytes() -> None:
    hw = Hardware.from_detection(_machine(8 * GIB + 12345, 16 * GIB + 1))
    assert (hw.vram_bytes, hw.ram_bytes, hw.backend) == (8 * GIB + 12345, 16 * GIB + 1, "cuda")
    # a CUDA GPU with a build that has only Vulkan plans for Vulkan
    assert Hardware.from_detection(_machine(GIB, GIB, built=("cpu", "vulkan"))).backend == "vulkan"


def test_cli_setup_scans_plans_and_writes(
    tmp_path: Path, big: ModelFile, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import shutil

    from claracore import cli
    from claracore.config import load_config

    models = tmp_path / "models"
    models.mkdir()
    shutil.copy(big.path, models / "big.gguf")
    monkeypatch.setenv("CLARACORE_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(probe, "detect", lambda: _machine(GIB, GIB))
    out = tmp_path / "config.yaml"
    args = ["setup", str(models), "--config", str(out), "--prefer-context", "4096", "--throughput-first"]
    assert cli.main(args) == 0
    spec = _one(load_config(out))
    assert (spec.context_length, spec.gpu_layers) == (4096, -1) and spec.parallel >= 4
    captured = capsys.readouterr()
    assert "scanning" in captured.err and "planning: 1/1 models" in captured.err
    assert f"wrote {out}" in captured.out
    # Again from the tracked folder alone (no DIR), forced onto the CPU: replanned.
    assert cli.main(["setup", "--config", str(out), "--force-backend", "cpu"]) == 0
    assert _one(load_config(out)).gpu_layers == 0
    assert cli.main(["setup", "--config", str(out), "--force-vram", "-3"]) == 2
    assert "forceVRAM" in capsys.readouterr().err
