"""Memory estimates: the arithmetic on its own, then against what llama.cpp itself allocates."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import gguf
import numpy as np
import pytest

from claracore.errors import InvalidRequestError
from claracore.modelfile.estimate import MemoryEstimate, _GraphAlloc, estimate_file, estimate_llm, pad_context
from claracore.modelfile.gguf import GGUFError, GGUFInfo, read_gguf
from tests.tiny_models import WORDS, make_tiny_llama

MIB = 1 << 20

BASE = GGUFInfo(
    path=Path("m.gguf"),
    architecture="llama",
    name=None,
    file_type="F16",
    parameter_count=0,
    context_length=8192,
    block_count=4,
    embedding_length=256,
    feed_forward_length=512,
    head_count=8,
    head_count_kv=8,
    key_length=32,
    value_length=32,
    vocab_size=1000,
    tensor_bytes=4 * 1000 + 300,
    layer_bytes=(1000,) * 4,
    other_bytes=300,
    output_bytes=100,
    token_embd_bytes=200,
)
ROW_F16 = 8 * (32 + 32) * 2  # one KV cell of one layer: heads x (key + value) x 2 bytes


def _info(**changes: Any) -> GGUFInfo:
    return dataclasses.replace(BASE, **changes)


# --- arithmetic ------------------------------------------------------------------------------


def test_context_is_padded_like_llama_cpp() -> None:
    assert [pad_context(n) for n in (1, 256, 257, 1000, 4000)] == [256, 256, 512, 1024, 4096]


def test_kv_formula() -> None:
    e = estimate_llm(BASE, n_ctx=1000)
    assert e.kv_cells == 1024
    assert e.kv_bytes == 1024 * 4 * ROW_F16
    assert e.vram_bytes == 0 and e.ram_bytes == e.total


def test_unified_cache_holds_every_sequence() -> None:
    one, four = estimate_llm(BASE, n_ctx=1000), estimate_llm(BASE, n_ctx=1000, n_seq=4)
    assert four.kv_cells == 4096 and four.kv_bytes == 4 * one.kv_bytes
    assert four.output_bytes == 4 * one.output_bytes == 4 * 4 * BASE.vocab_size


def test_gqa_uses_kv_heads() -> None:
    mha = estimate_llm(BASE, n_ctx=2048)
    gqa = estimate_llm(_info(head_count_kv=2, head_count_kv_layers=(2,) * 4), n_ctx=2048)
    assert gqa.kv_bytes * 4 == mha.kv_bytes
    mixed = estimate_llm(_info(head_count_kv_layers=(8, 0, 8, 0)), n_ctx=2048)  # e.g. hybrid recurrent
    assert mixed.kv_bytes * 2 == mha.kv_bytes


@pytest.mark.parametrize(
    ("k", "v", "k_bytes", "v_bytes"),
    [
        ("q8_0", "q8_0", 34 / 32, 34 / 32),
        ("q4_0", "f16", 18 / 32, 2),
        ("f32", "q5_1", 4, 24 / 32),
    ],
)
def test_quantised_cache(k: str, v: str, k_bytes: float, v_bytes: float) -> None:
    e = estimate_llm(BASE, n_ctx=2048, cache_type_k=k, cache_type_v=v)
    assert e.kv_bytes == int(2048 * 4 * 8 * 32 * (k_bytes + v_bytes))


def test_unknown_cache_type() -> None:
    with pytest.raises(InvalidRequestError) as exc:
        estimate_llm(BASE, n_ctx=512, cache_type_v="q9_9")
    assert exc.value.param == "cache_type_v"
    with pytest.raises(InvalidRequestError):
        estimate_llm(BASE, n_ctx=0)


@pytest.mark.parametrize("gpu_layers", [0, 1, 2, 3, 4, 5, -1])
def test_gpu_split_moves_bytes_without_changing_weights(gpu_layers: int) -> None:
    e = estimate_llm(BASE, n_ctx=2048, gpu_layers=gpu_layers)
    cpu = estimate_llm(BASE, n_ctx=2048)
    assert e.weights_vram + e.weights_ram == BASE.tensor_bytes
    assert e.kv_bytes == cpu.kv_bytes
    assert e.vram_bytes + e.ram_bytes == e.total


def test_gpu_layers_follow_llama_cpp() -> None:
    none = estimate_llm(BASE, n_ctx=2048, gpu_layers=0)
    assert none.vram_bytes == 0 and not none.kv_on_gpu
    head = estimate_llm(BASE, n_ctx=2048, gpu_layers=1)  # n_gpu_layers=1 is the output head alone
    assert head.weights_vram == BASE.output_bytes and head.kv_vram == 0
    three = estimate_llm(BASE, n_ctx=2048, gpu_layers=3)  # the head and the last two layers
    assert three.weights_vram == BASE.output_bytes + 2000 and three.kv_vram * 2 == three.kv_bytes
    for every in (4, 5, -1):  # block_count or more, or -1: every layer and the head
        full = estimate_llm(BASE, n_ctx=2048, gpu_layers=every)
        assert full.weights_vram == 4000 + BASE.output_bytes
        assert full.weights_ram == BASE.other_bytes - BASE.output_bytes  # the input embedding stays
        assert full.kv_vram == full.kv_bytes and full.kv_on_gpu
        assert full.compute_vram > 0 and full.compute_vram >= full.compute_bytes - full.compute_vram


def test_tied_head_is_copied_to_the_gpu() -> None:
    tied = _info(tied_embeddings=True)
    cpu, gpu = estimate_llm(tied, n_ctx=512), estimate_llm(tied, n_ctx=512, gpu_layers=-1)
    assert cpu.weights_ram == tied.tensor_bytes
    assert gpu.weights_vram + gpu.weights_ram == tied.tensor_bytes + tied.token_embd_bytes


def test_sliding_window_layers_hold_their_window() -> None:
    swa = _info(sliding_window=128, swa_layers=(True, True, True, False))
    windowed = estimate_llm(swa, n_ctx=4096, swa_full=False)
    swa_cells = pad_context(128 + 512)  # window per sequence plus one ubatch
    assert windowed.kv_bytes == (3 * swa_cells + 4096) * ROW_F16
    assert estimate_llm(swa, n_ctx=4096, swa_full=True).kv_bytes == 4 * 4096 * ROW_F16
    four = estimate_llm(swa, n_ctx=4096, n_seq=4, swa_full=False)
    assert four.kv_bytes == (3 * pad_context(4 * 128 + 512) + 4 * 4096) * ROW_F16


def test_compute_buffer_terms() -> None:
    big_vocab = _info(vocab_size=100_000)
    all_logits = estimate_llm(big_vocab, n_ctx=2048)
    assert all_logits.compute_bytes >= 512 * 100_000 * 4  # logits of every ubatch token
    last_only = estimate_llm(big_vocab, n_ctx=2048, n_outputs_max=1)
    assert last_only.compute_bytes < all_logits.compute_bytes / 4
    long = estimate_llm(BASE, n_ctx=32768)
    assert long.compute_bytes >= 32768 * 512 * 8 * 4  # attention scores without flash attention
    assert estimate_llm(BASE, n_ctx=32768, flash_attn=True).compute_bytes < long.compute_bytes / 4


def test_graph_alloc_replays_ggml_alloc() -> None:
    g = _GraphAlloc()
    a = g.op(128)
    b = g.op(128, a)  # a is freed once b has read it: a 128-byte gap at 0
    c = g.op(128, b)  # fits that gap; freeing b returns its bytes to the open end
    g.op(192, c)  # fits no gap, so the buffer grows to 128 + 192
    assert g.run() == (320, 320)

    in_place = _GraphAlloc()
    a = in_place.op(128)
    in_place.op(128, in_place.op(128, a, inplace=True), inplace=True)  # both take over a's memory
    assert in_place.run() == (128, 128)

    shared = _GraphAlloc()
    a = shared.op(128)
    b = shared.op(128, a, inplace=True)  # a is still read by the next node, so b cannot take it
    shared.mark()
    shared.op(100, a, b)  # rounded up to ggml's 32-byte alignment
    assert shared.run() == (384, 256)


def test_ffn_product_reuses_the_attention_gap() -> None:
    """With n_ff <= 2 × n_embd the feed-forward product fits the gap the attention leaves in
    layer 0 (a fixed count of live tensors over-priced this tiny model by 0.25 MiB); wider, it
    lands on top. The figures are what llama.cpp reports for these shapes."""
    tiny = _info(
        embedding_length=64,
        feed_forward_length=128,
        head_count=4,
        head_count_kv=4,
        key_length=16,
        value_length=16,
        block_count=2,
        vocab_size=323,
    )

    def compute(**changes: Any) -> float:
        info = dataclasses.replace(tiny, **changes)
        e = estimate_llm(info, n_ctx=512, flash_attn=True, n_outputs_max=1)
        return round(e.compute_bytes / MIB, 2)

    assert compute() == 1.51
    assert compute(feed_forward_length=256) == 2.51
    assert compute(block_count=4) == 1.64  # layer 1 leaves a smaller gap


def test_encoder_has_no_kv_cache() -> None:
    bert = _info(architecture="bert", causal=False, pooling_type=1)
    e = estimate_llm(bert, n_ctx=512, n_seq=8, embedding_only=True)
    assert e.kv_bytes == 0 and e.kv_cells == 0
    assert e.output_bytes == 8 * 4 * (bert.vocab_size + bert.embedding_length)


def test_memory_estimate_shape() -> None:
    e = MemoryEstimate(vram_bytes=3, ram_bytes=4, kv_vram=1)
    assert e.total == 7 and e.kv_on_gpu and e.needed() == {"vram": 3, "ram": 4}


def test_estimate_file(tmp_path: Path) -> None:
    folder = tmp_path / "whisper"
    (folder / "sub").mkdir(parents=True)
    (folder / "model.bin").write_bytes(b"x" * 1000)
    (folder / "sub" / "vocab.json").write_bytes(b"x" * 24)
    assert estimate_file(folder).ram_bytes == 1024
    voice = tmp_path / "v.onnx"
    voice.write_bytes(b"x" * 100)
    (tmp_path / "v.onnx.json").write_bytes(b"x" * 10)
    on_gpu = estimate_file(voice, on_gpu=True)
    assert (on_gpu.vram_bytes, on_gpu.ram_bytes) == (110, 0)
    with pytest.raises(GGUFError):
        estimate_file(tmp_path / "missing")


# --- against llama.cpp -----------------------------------------------------------------------

# Runs in a child process: llama.cpp's log callback is process-global, and a context's native
# memory is best returned by exiting. Prints one JSON line of buffer sizes (MiB) per config.
_MEASURE = r"""
import ctypes, json, re, sys
import llama_cpp

lines = []

@llama_cpp.llama_log_callback
def _log(level, text, user_data):
    lines.append(text.decode("utf-8", "replace"))

llama_cpp.llama_log_set(_log, ctypes.c_void_p(0))
llama_cpp.llama_backend_init()
mp = llama_cpp.llama_model_default_params()
mp.use_extra_bufts = sys.argv[3] == "1"  # as claracore loads it (extra_buffers_allowed)
model = llama_cpp.llama_model_load_from_file(sys.argv[1].encode(), mp)
weights = sum(float(x) for x in re.findall(r"model buffer size =\s*([\d.]+) MiB", "".join(lines)))
for cfg in json.loads(sys.argv[2]):
    lines.clear()
    p = llama_cpp.llama_context_default_params()
    p.n_ctx, p.n_seq_max, p.kv_unified = cfg["n_ctx"] * cfg["n_seq"], cfg["n_seq"], True
    p.n_batch, p.n_ubatch, p.embeddings = 512, 512, cfg.get("embedding_only", False)
    p.n_outputs_max = cfg.get("n_outputs_max") or 0
    p.flash_attn_type = 1 if cfg.get("flash_attn") else 0
    p.swa_full = cfg.get("swa_full", True)
    ctx = llama_cpp.llama_init_from_model(model, p)
    text = "".join(lines)
    def total(what):
        return sum(float(x) for x in re.findall(what + r" buffer size =\s*([\d.]+) MiB", text))
    print(json.dumps({"weights": weights, "kv": total("KV"), "compute": total("compute"),
                      "output": total("output")}))
    llama_cpp.llama_free(ctx)
"""

needs_llama = pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None, reason="llama_cpp missing")


def _measure(path: Path, configs: list[dict[str, Any]]) -> list[dict[str, float]]:
    from claracore.runtime.native import extra_buffers_allowed  # needs llama_cpp, as the callers do

    out = subprocess.run(
        [
            sys.executable,
            "-c",
            _MEASURE,
            str(path),
            json.dumps(configs),
            "1" if extra_buffers_allowed() else "0",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def _compare(path: Path, configs: list[dict[str, Any]]) -> list[tuple[MemoryEstimate, dict[str, float]]]:
    """Estimate and measurement per config; asserts the totals agree within 10 % and the compute
    buffers within 2 % (plus llama.cpp's rounding to 0.01 MiB)."""
    info = read_gguf(path)
    measured = _measure(path, configs)
    assert len(measured) == len(configs)
    pairs = [(estimate_llm(info, **c), got) for c, got in zip(configs, measured, strict=True)]
    for cfg, (est, got) in zip(configs, pairs, strict=True):
        assert est.total / MIB == pytest.approx(sum(got.values()), rel=0.10), (cfg, est, got)
        assert est.kv_bytes / MIB == pytest.approx(got["kv"], rel=0.01, abs=0.006), (cfg, est, got)
        assert est.compute_bytes / MIB == pytest.approx(got["compute"], rel=0.02, abs=0.011), (cfg, est, got)
        assert est.weights_ram / MIB == pytest.approx(got["weights"], abs=0.006)
    return pairs


@needs_llama
def test_tiny_llama_matches_llama_cpp(tiny_llama: Path) -> None:
    _compare(
        tiny_llama,
        [
            {"n_ctx": 512, "n_seq": 1},
            {"n_ctx": 256, "n_seq": 4},
            {"n_ctx": 2048, "n_seq": 1, "flash_attn": True},
        ],
    )


@needs_llama
@pytest.mark.parametrize(
    "shape",
    [
        {},
        {"n_head_kv": 2},
        {"n_ff": 256},
        {"n_ff": 96, "n_layer": 3},
        {"n_embd": 128, "n_ff": 384, "n_layer": 3},
    ],
)
def test_compute_buffer_matches_llama_cpp_across_shapes(tmp_path: Path, shape: dict[str, Any]) -> None:
    """The allocator replay against llama.cpp, with and without flash attention, for the
    runtime's outputs (one per sequence) and llama.cpp's default (every token)."""
    path = make_tiny_llama(tmp_path / "m.gguf", **shape)
    _compare(
        path,
        [
            {"n_ctx": 512, "n_seq": 1, "flash_attn": True, "n_outputs_max": 1},
            {"n_ctx": 512, "n_seq": 4, "flash_attn": True, "n_outputs_max": 4},
            {"n_ctx": 256, "n_seq": 1, "flash_attn": True},
            {"n_ctx": 512, "n_seq": 1, "n_outputs_max": 1},
            {"n_ctx": 256, "n_seq": 2},
        ],
    )


@needs_llama
def test_tiny_gqa_kv_matches_llama_cpp(tiny_llama: Path, tiny_llama_gqa: Path) -> None:
    configs: list[dict[str, Any]] = [{"n_ctx": 2048, "n_seq": 1}, {"n_ctx": 512, "n_seq": 4}]
    mha, gqa = _compare(tiny_llama, configs), _compare(tiny_llama_gqa, configs)
    for (mha_est, mha_got), (gqa_est, gqa_got) in zip(mha, gqa, strict=True):
        assert gqa_got["kv"] * 2 == pytest.approx(mha_got["kv"])  # 2 KV heads instead of 4
        assert gqa_est.kv_bytes * 2 == mha_est.kv_bytes


@pytest.mark.integration
@needs_llama
def test_smollm2_matches_llama_cpp(smollm2: Path) -> None:
    _compare(
        smollm2,
        [
            {"n_ctx": 2048, "n_seq": 1},
            {"n_ctx": 2048, "n_seq": 4},
            {"n_ctx": 2048, "n_seq": 4, "flash_attn": True},
            {"n_ctx": 8192, "n_seq": 1},
        ],
    )


@needs_llama
def test_sliding_window_matches_llama_cpp(tmp_path: Path) -> None:
    path = _tiny_gemma3(tmp_path / "gemma3.gguf")
    assert read_gguf(path).swa_layers == (True,) * 5 + (False,)
    _compare(
        path,
        [
            {"n_ctx": 2048, "n_seq": 2, "swa_full": False},
            {"n_ctx": 2048, "n_seq": 2, "swa_full": True},
            {"n_ctx": 4096, "n_seq": 1, "swa_full": False, "flash_attn": True},
        ],
    )


@needs_llama
def test_encoder_matches_llama_cpp(tiny_bert: Path) -> None:
    _compare(
        tiny_bert,
        [
            {"n_ctx": 512, "n_seq": 1, "embedding_only": True},
            {"n_ctx": 128, "n_seq": 4, "embedding_only": True},
        ],
    )


def _tiny_gemma3(path: Path, n_layer: int = 6, n_embd: int = 64, n_ff: int = 128) -> Path:
    """A random gemma3 (five sliding-window layers, then a global one) that llama.cpp loads."""
    r = np.random.default_rng(5)
    n_head, n_head_kv, head_dim = 4, 2, 16
    w = gguf.GGUFWriter(str(path), "gemma3")
    w.add_context_length(8192)
    w.add_embedding_length(n_embd)
    w.add_block_count(n_layer)
    w.add_feed_forward_length(n_ff)
    w.add_head_count(n_head)
    w.add_head_count_kv(n_head_kv)
    w.add_key_length(head_dim)
    w.add_value_length(head_dim)
    w.add_layer_norm_rms_eps(1e-6)
    w.add_sliding_window(128)
    tokens = ["<pad>", "<eos>", "<bos>", "<unk>"] + [f"<0x{b:02X}>" for b in range(256)]
    tokens += ["\u2581" + x for x in dict.fromkeys(WORDS)]
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores([0.0] * len(tokens))
    w.add_token_types(
        [gguf.TokenType.CONTROL] * 4
        + [gguf.TokenType.BYTE] * 256
        + [gguf.TokenType.NORMAL] * (len(tokens) - 260)
    )
    w.add_bos_token_id(2)
    w.add_eos_token_id(1)

    def t(*shape: int) -> np.ndarray:
        return (r.standard_normal(shape) * 0.02).astype(np.float32)

    def ones(n: int) -> np.ndarray:
        return np.ones(n, np.float32)

    w.add_tensor("token_embd.weight", t(len(tokens), n_embd))
    w.add_tensor("output_norm.weight", ones(n_embd))
    for i in range(n_layer):
        p = f"blk.{i}."
        for name, tensor in [
            ("attn_norm", ones(n_embd)),
            ("attn_q", t(n_head * head_dim, n_embd)),
            ("attn_k", t(n_head_kv * head_dim, n_embd)),
            ("attn_v", t(n_head_kv * head_dim, n_embd)),
            ("attn_q_norm", ones(head_dim)),
            ("attn_k_norm", ones(head_dim)),
            ("attn_output", t(n_embd, n_head * head_dim)),
            ("post_attention_norm", ones(n_embd)),
            ("ffn_norm", ones(n_embd)),
            ("ffn_gate", t(n_ff, n_embd)),
            ("ffn_up", t(n_ff, n_embd)),
            ("ffn_down", t(n_embd, n_ff)),
            ("post_ffw_norm", ones(n_embd)),
        ]:
            w.add_tensor(p + name + ".weight", tensor)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path
