"""The GGUF metadata reader: fields, speed on a real 49k-vocab model, splits, SWA, and bad files."""

from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np
import pytest

from claracore.errors import ClaraCoreError
from claracore.modelfile.gguf import GGUFError, GGUFInfo, read_gguf
from claracore.modelfile.kind import infer_model_type
from claracore.modelfile.names import split_parts
from tests.tiny_models import CHAT_TEMPLATE


def _reference(path: Path) -> tuple[int, int]:
    """Parameter count and tensor bytes as the `gguf` package's own (slow, full) reader sees them."""
    reader = gguf.GGUFReader(path)
    return sum(int(t.n_elements) for t in reader.tensors), sum(int(t.n_bytes) for t in reader.tensors)


def _write(path: Path, arch: str, kv: dict[str, object], n_tensors: int = 1, **writer_args: int) -> Path:
    """A minimal GGUF with arbitrary keys: metadata tests need no loadable model."""
    w = gguf.GGUFWriter(str(path), arch, **writer_args)  # type: ignore[arg-type]
    for key, value in kv.items():
        if isinstance(value, bool):
            w.add_bool(key, value)
        elif isinstance(value, int):
            w.add_uint32(key, value)
        elif isinstance(value, list):
            w.add_array(key, value)
        elif isinstance(value, str):
            w.add_string(key, value)
    for i in range(n_tensors):
        w.add_tensor(f"blk.{i}.attn_q.weight", np.ones((4, 8), np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def test_tiny_llama_fields(tiny_llama: Path) -> None:
    info = read_gguf(tiny_llama)
    assert isinstance(info, GGUFInfo)
    assert (info.architecture, info.name, info.file_type) == ("llama", "tiny-random-llama", "F32")
    assert (info.block_count, info.embedding_length, info.feed_forward_length) == (2, 64, 128)
    assert (info.head_count, info.head_count_kv, info.key_length, info.value_length) == (4, 4, 16, 16)
    assert info.context_length == 512
    assert info.vocab_size == 3 + 256 + 1 + 37 + 26 + 4  # specials, bytes, "▁", words, letters
    assert info.chat_template == CHAT_TEMPLATE
    assert (info.bos_token_id, info.eos_token_id, info.add_bos) == (1, 2, True)
    assert info.pooling_type is None and info.causal is None and info.n_cls_out == 0
    assert info.sliding_window is None and info.swa_layers == ()
    assert (info.split_no, info.split_count, info.parts) == (0, 1, (tiny_llama,))
    assert info.file_size == tiny_llama.stat().st_size
    assert not info.tied_embeddings
    params, nbytes = _reference(tiny_llama)
    assert (info.parameter_count, info.tensor_bytes) == (params, nbytes)
    assert len(info.layer_bytes) == 2 and info.layer_bytes[0] == info.layer_bytes[1]
    assert sum(info.layer_bytes) + info.other_bytes == info.tensor_bytes
    # token_embd + output (V x 64 floats each) and output_norm (64 floats)
    assert info.token_embd_bytes == info.vocab_size * 64 * 4
    assert info.output_bytes == info.vocab_size * 64 * 4 + 64 * 4
    assert info.data_offset % 32 == 0 and info.data_offset + info.tensor_bytes <= info.file_size


def test_metadata_keeps_small_values_only(tiny_llama: Path) -> None:
    md = read_gguf(tiny_llama).metadata
    assert md["llama.block_count"] == 2
    assert md["general.architecture"] == "llama"
    assert "tokenizer.ggml.tokens" not in md and "tokenizer.ggml.scores" not in md


def test_gqa_head_count_kv(tiny_llama_gqa: Path) -> None:
    info = read_gguf(tiny_llama_gqa)
    assert (info.head_count, info.head_count_kv) == (4, 2)
    assert info.head_count_kv_layers == (2, 2)


def test_bert_embedding_and_reranker(tiny_bert: Path, tiny_rerank: Path) -> None:
    embed, rank = read_gguf(tiny_bert), read_gguf(tiny_rerank)
    assert (embed.architecture, embed.pooling_type, embed.causal) == ("bert", 1, False)
    assert embed.classifier_labels == () and embed.n_cls_out == 0
    assert (rank.pooling_type, rank.classifier_labels, rank.n_cls_out) == (4, ("score",), 1)
    assert not embed.tied_embeddings  # an encoder has no LM head to tie
    assert infer_model_type(tiny_bert) == "embedding"
    assert infer_model_type(tiny_rerank) == "reranker"


@pytest.mark.integration
def test_smollm2_read_right(smollm2: Path) -> None:
    info = read_gguf(smollm2)
    assert (info.architecture, info.file_type, info.context_length) == ("llama", "Q4_1", 8192)
    assert (info.block_count, info.embedding_length, info.head_count, info.head_count_kv) == (30, 576, 9, 3)
    assert info.vocab_size == 49152
    assert info.chat_template and "im_start" in info.chat_template
    assert info.tied_embeddings
    assert (info.parameter_count, info.tensor_bytes) == _reference(smollm2)
    assert 130e6 < info.parameter_count < 140e6
    assert infer_model_type(smollm2) == "llm"


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(GGUFError, match="not found") as exc:
        read_gguf(tmp_path / "nope.gguf")
    assert isinstance(exc.value, ClaraCoreError)
    assert exc.value.code == "INVALID_MODEL_FILE"
    assert exc.value.details["path"].endswith("nope.gguf")


@pytest.mark.parametrize("content", [b"", b"GGU", b"hello, this is not a model at all\n" * 10])
def test_not_a_gguf(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "x.gguf"
    path.write_bytes(content)
    with pytest.raises(GGUFError, match="not a GGUF"):
        read_gguf(path)


def test_truncated_tensor_data(corrupt_gguf: Path) -> None:
    with pytest.raises(GGUFError, match="truncated"):
        read_gguf(corrupt_gguf)


@pytest.mark.parametrize("keep", [24, 200, 2000])
def test_truncated_metadata(tmp_path: Path, tiny_llama: Path, keep: int) -> None:
    path = tmp_path / "cut.gguf"
    path.write_bytes(tiny_llama.read_bytes()[:keep])
    with pytest.raises(GGUFError, match="truncated"):
        read_gguf(path)


def test_metadata_of_the_wrong_type(tmp_path: Path) -> None:
    path = _write(tmp_path / "x.gguf", "llama", {"llama.block_count": "two"})
    with pytest.raises(GGUFError, match="corrupt metadata"):
        read_gguf(path)


def test_split_model(tmp_path: Path) -> None:
    first = tmp_path / "m-00001-of-00003.gguf"
    _write(tmp_path / "m.gguf", "llama", {"llama.block_count": 6}, n_tensors=6, split_max_tensors=2)
    parts = sorted(tmp_path.glob("m-*.gguf"))
    assert [p.name for p in parts] == [f"m-0000{i}-of-00003.gguf" for i in (1, 2, 3)]
    info = read_gguf(first)
    assert (info.split_no, info.split_count, info.parts) == (0, 3, tuple(parts))
    assert info.parameter_count == 6 * 32
    assert info.layer_bytes == (128,) * 6
    assert info.file_size == sum(p.stat().st_size for p in parts)
    assert split_parts(first) == tuple(parts)
    parts[2].unlink()
    with pytest.raises(GGUFError, match="3 parts, found 2"):
        read_gguf(first)


def test_swa_pattern_from_architecture(tmp_path: Path) -> None:
    kv = {"gemma3.block_count": 8, "gemma3.attention.sliding_window": 512, "gemma3.attention.head_count": 4}
    info = read_gguf(_write(tmp_path / "g.gguf", "gemma3", kv))
    assert info.sliding_window == 512
    assert info.swa_layers == (True,) * 5 + (False,) + (True,) * 2  # five local layers, then a global one


def test_swa_pattern_from_file(tmp_path: Path) -> None:
    kv = {
        "gemma3.block_count": 4,
        "gemma3.attention.sliding_window": 256,
        "gemma3.attention.sliding_window_pattern": [True, False, True, False],
    }
    info = read_gguf(_write(tmp_path / "g.gguf", "gemma3", kv))
    assert info.swa_layers == (True, False, True, False)


def test_sliding_window_ignored_where_llama_cpp_ignores_it(tmp_path: Path) -> None:
    kv = {"qwen2.block_count": 2, "qwen2.attention.sliding_window": 4096}
    assert read_gguf(_write(tmp_path / "q.gguf", "qwen2", kv)).swa_layers == ()


def test_file_type_guessed_from_tensors(tmp_path: Path) -> None:
    info = read_gguf(_write(tmp_path / "x.gguf", "llama", {"llama.block_count": 1}))
    assert info.file_type == "F32"


def test_infer_speech_layouts(tmp_path: Path) -> None:
    whisper = tmp_path / "whisper-tiny"
    whisper.mkdir()
    (whisper / "model.bin").write_bytes(b"\0")
    (whisper / "config.json").write_text("{}")
    assert infer_model_type(whisper) == "stt"
    voice = tmp_path / "en_US-joe-medium.onnx"
    voice.write_bytes(b"\0")
    with pytest.raises(GGUFError, match="onnx.json"):
        infer_model_type(voice)
    (tmp_path / "en_US-joe-medium.onnx.json").write_text("{}")
    assert infer_model_type(voice) == "tts"
    empty = tmp_path / "empty-dir"
    empty.mkdir()
    with pytest.raises(GGUFError, match="model.bin"):
        infer_model_type(empty)


def test_infer_non_causal_and_pooled(tmp_path: Path) -> None:
    kv = {"llama.block_count": 1, "llama.attention.causal": False}
    assert infer_model_type(_write(tmp_path / "a.gguf", "llama", kv)) == "embedding"
    kv = {"qwen3.block_count": 1, "qwen3.pooling_type": 3}
    assert infer_model_type(_write(tmp_path / "b.gguf", "qwen3", kv)) == "embedding"
    assert infer_model_type(_write(tmp_path / "c.gguf", "nomic-bert", {})) == "embedding"
