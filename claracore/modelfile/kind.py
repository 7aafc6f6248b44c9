"""Which runtime serves a model file: llm, embedding, reranker (GGUF), stt (Whisper) or tts (Piper).

A config entry may leave `type` out and the scanner files every model it finds by type, so the
type must come from the file itself, the way llama.cpp would treat it, not from its name.
"""

from __future__ import annotations

from pathlib import Path

import gguf

from claracore.config import ModelType
from claracore.modelfile.gguf import ENCODER_ARCHITECTURES, GGUFError, GGUFInfo, read_gguf

_EMBED_POOLING = frozenset(
    int(p) for p in (gguf.PoolingType.MEAN, gguf.PoolingType.CLS, gguf.PoolingType.LAST)
)


def infer_model_type(path: str | Path) -> ModelType:
    """Which runtime serves this file or folder, decided from its layout and GGUF metadata.

    A folder with `model.bin` is a CTranslate2 Whisper (stt); an `.onnx` with a sibling
    `.onnx.json` is a Piper voice (tts); a GGUF is a reranker (rank pooling or classifier
    labels), an embedding model (encoder architecture, non-causal attention, or mean/CLS/last
    pooling) or else an LLM. Raises GGUFError for anything else or an unreadable GGUF.
    """
    path = Path(path)
    if path.is_dir():
        if (path / "model.bin").is_file():
            return "stt"
        raise GGUFError(path, "folder is not a CTranslate2 Whisper model (no model.bin)")
    if path.suffix == ".onnx":
        if path.with_name(path.name + ".json").is_file():
            return "tts"
        raise GGUFError(path, "ONNX file without its Piper voice config (.onnx.json)")
    return gguf_model_type(read_gguf(path))


def gguf_model_type(info: GGUFInfo) -> ModelType:
    """The type a GGUF's metadata says: reranker (rank pooling or classifier labels), embedding
    (encoder architecture, non-causal attention, or mean/CLS/last pooling), else llm."""
    if info.pooling_type == int(gguf.PoolingType.RANK) or info.classifier_labels:
        return "reranker"
    if info.architecture in ENCODER_ARCHITECTURES or info.causal is False:
        return "embedding"
    if info.pooling_type in _EMBED_POOLING:
        return "embedding"
    return "llm"
