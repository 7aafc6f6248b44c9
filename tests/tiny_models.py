"""Tiny random-weight GGUF models written with the `gguf` package, for fast unit tests.

The weights are random, so the text is gibberish, but every llama.cpp path (load, tokenize,
decode, sampling, chat template, embeddings, rank pooling) runs in milliseconds.
"""

from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np

# A small readable word list, so sampled text is words rather than raw bytes.
WORDS = (
    "the a is of and to in it you that he was for on are with as I his they be at one have this "
    "from or had by hello world yes no cat dog sun sea red blue test ok"
).split()

EOS_ID = 2  # `</s>`
# A logit bias that bans end-of-sequence: a generation then runs to exactly `max_tokens`, so a
# test can tell "cancelled early" from "finished" (and counts never depend on an EOS draw).
NO_EOS = {str(EOS_ID): -100}

CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}</s>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


def make_tiny_llama(
    path: Path,
    *,
    n_embd: int = 64,
    n_layer: int = 2,
    n_head: int = 4,
    n_head_kv: int = 4,
    n_ff: int = 128,
    n_ctx: int = 512,
    seed: int = 0,
    chat_template: str | None = CHAT_TEMPLATE,
    fim: bool = False,
    split_max_tensors: int = 0,
) -> Path:
    """A random llama-architecture model with a SentencePiece vocab and a chat template.

    `fim` adds fill-in-the-middle tokens, as code models have, for completions with a suffix.
    `split_max_tensors` writes it as a split model (`stem-00001-of-0000N.gguf`, returned first).
    """
    r = np.random.default_rng(seed)
    w = gguf.GGUFWriter(str(path), "llama", split_max_tensors=split_max_tensors)
    w.add_name("tiny-random-llama")
    w.add_context_length(n_ctx)
    w.add_embedding_length(n_embd)
    w.add_block_count(n_layer)
    w.add_feed_forward_length(n_ff)
    w.add_head_count(n_head)
    w.add_head_count_kv(n_head_kv)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_dimension_count(n_embd // n_head)
    w.add_rope_freq_base(10000.0)
    w.add_file_type(gguf.LlamaFileType.ALL_F32)

    tokens = ["<unk>", "<s>", "</s>"]  # ids 0, 1, 2 = EOS_ID
    types = [gguf.TokenType.UNKNOWN, gguf.TokenType.CONTROL, gguf.TokenType.CONTROL]
    tokens += [f"<0x{b:02X}>" for b in range(256)]
    types += [gguf.TokenType.BYTE] * 256
    pieces = ["\u2581"] + ["\u2581" + x for x in WORDS] + list("abcdefghijklmnopqrstuvwxyz")
    tokens += pieces
    types += [gguf.TokenType.NORMAL] * len(pieces)
    scores = [0.0] * 259 + [float(len(p)) - 100.0 for p in pieces]  # SPM merges longer pieces first
    if fim:
        keys = (
            gguf.Keys.Tokenizer.FIM_PRE_ID,
            gguf.Keys.Tokenizer.FIM_SUF_ID,
            gguf.Keys.Tokenizer.FIM_MID_ID,
        )
        for key, text in zip(keys, ("<fim_prefix>", "<fim_suffix>", "<fim_middle>"), strict=True):
            w.add_uint32(key, len(tokens))
            tokens.append(text)
            types.append(gguf.TokenType.CONTROL)
            scores.append(0.0)
    n_vocab = len(tokens)
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    w.add_add_bos_token(True)
    if chat_template:
        w.add_chat_template(chat_template)

    def t(*shape: int, scale: float = 0.02) -> np.ndarray:
        return (r.standard_normal(shape) * scale).astype(np.float32)

    n_embd_kv = n_embd // n_head * n_head_kv
    w.add_tensor("token_embd.weight", t(n_vocab, n_embd, scale=1.0))
    w.add_tensor("output_norm.weight", np.ones(n_embd, dtype=np.float32))
    out = t(n_vocab, n_embd, scale=1.0)
    out[3:259] *= 0.0  # never sample raw byte tokens: readable output
    w.add_tensor("output.weight", out)
    for i in range(n_layer):
        p = f"blk.{i}."
        w.add_tensor(p + "attn_norm.weight", np.ones(n_embd, dtype=np.float32))
        w.add_tensor(p + "attn_q.weight", t(n_embd, n_embd))
        w.add_tensor(p + "attn_k.weight", t(n_embd_kv, n_embd))
        w.add_tensor(p + "attn_v.weight", t(n_embd_kv, n_embd))
        w.add_tensor(p + "attn_output.weight", t(n_embd, n_embd))
        w.add_tensor(p + "ffn_norm.weight", np.ones(n_embd, dtype=np.float32))
        w.add_tensor(p + "ffn_gate.weight", t(n_ff, n_embd))
        w.add_tensor(p + "ffn_up.weight", t(n_ff, n_embd))
        w.add_tensor(p + "ffn_down.weight", t(n_embd, n_ff))
    _finish(w)
    if split_max_tensors:
        return sorted(Path(path).parent.glob(f"{Path(path).stem}-00001-of-*.gguf"))[0]
    return Path(path)


def make_tiny_bert(
    path: Path,
    *,
    rerank: bool = False,
    n_embd: int = 32,
    n_layer: int = 2,
    n_head: int = 4,
    n_ff: int = 64,
    n_ctx: int = 128,
    seed: int = 1,
) -> Path:
    """A random BERT: mean-pooled embedder, or with `rerank` a rank-pooled cross-encoder."""
    r = np.random.default_rng(seed)
    w = gguf.GGUFWriter(str(path), "bert")
    w.add_name("tiny-random-bert-rerank" if rerank else "tiny-random-bert")
    w.add_context_length(n_ctx)
    w.add_embedding_length(n_embd)
    w.add_feed_forward_length(n_ff)
    w.add_block_count(n_layer)
    w.add_head_count(n_head)
    w.add_layer_norm_eps(1e-12)
    w.add_causal_attention(False)
    w.add_pooling_type(gguf.PoolingType.RANK if rerank else gguf.PoolingType.MEAN)
    if rerank:
        w.add_classifier_output_labels(["score"])

    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    chars = list("abcdefghijklmnopqrstuvwxyz0123456789.,!?")
    words = list(dict.fromkeys([x.lower() for x in WORDS] + chars))  # duplicates abort llama.cpp
    tokens = special + ["\u2581" + x for x in words] + list("abcdefghijklmnopqrstuvwxyz")
    types = [gguf.TokenType.CONTROL] * len(special)
    types += [gguf.TokenType.NORMAL] * (len(tokens) - len(special))
    w.add_token_type_count(2)
    w.add_tokenizer_model("bert")
    w.add_tokenizer_pre("bert-bge")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_pad_token_id(0)
    w.add_unk_token_id(1)
    w.add_bos_token_id(2)
    w.add_sep_token_id(3)
    w.add_mask_token_id(4)
    n_vocab = len(tokens)

    def t(*shape: int, scale: float = 0.05) -> np.ndarray:
        return (r.standard_normal(shape) * scale).astype(np.float32)

    def ones() -> np.ndarray:
        return np.ones(n_embd, np.float32)

    def zeros(n: int = n_embd) -> np.ndarray:
        return np.zeros(n, np.float32)

    w.add_tensor("token_embd.weight", t(n_vocab, n_embd, scale=1.0))
    w.add_tensor("token_types.weight", t(2, n_embd))
    w.add_tensor("position_embd.weight", t(n_ctx, n_embd))
    w.add_tensor("token_embd_norm.weight", ones())
    w.add_tensor("token_embd_norm.bias", zeros())
    for i in range(n_layer):
        p = f"blk.{i}."
        for n in ("attn_q", "attn_k", "attn_v", "attn_output"):
            w.add_tensor(p + n + ".weight", t(n_embd, n_embd))
            w.add_tensor(p + n + ".bias", zeros())
        w.add_tensor(p + "attn_output_norm.weight", ones())
        w.add_tensor(p + "attn_output_norm.bias", zeros())
        w.add_tensor(p + "ffn_up.weight", t(n_ff, n_embd))
        w.add_tensor(p + "ffn_up.bias", zeros(n_ff))
        w.add_tensor(p + "ffn_down.weight", t(n_embd, n_ff))
        w.add_tensor(p + "ffn_down.bias", zeros())
        w.add_tensor(p + "layer_output_norm.weight", ones())
        w.add_tensor(p + "layer_output_norm.bias", zeros())
    if rerank:  # BertForSequenceClassification head: tanh(pooler(CLS)) -> classifier
        w.add_tensor("cls.weight", t(n_embd, n_embd, scale=0.5))
        w.add_tensor("cls.bias", zeros())
        w.add_tensor("cls.output.weight", t(1, n_embd, scale=1.0))
        w.add_tensor("cls.output.bias", zeros(1))
    _finish(w)
    return Path(path)


def _finish(w: gguf.GGUFWriter) -> None:
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def make_tiny_mmproj(
    path: Path, *, n_embd_llm: int = 64, image_size: int = 32, patch: int = 8, seed: int = 0
) -> Path:
    """A random vision projector (llama.cpp `mmproj`, Gemma 3's layout: a SigLIP-style tower, then
    average pooling and one projection into the LLM's embeddings) for an LLM of `n_embd_llm`.

    A 32-pixel image with 8-pixel patches pooled 2 x 2 becomes 4 embeddings in the LLM's context.
    The tensor names and keys are those globalmm writes for a real SigLIP tower.
    """
    r = np.random.default_rng(seed)
    d, ff, n_pos = 32, 64, (image_size // patch) ** 2
    w = gguf.GGUFWriter(str(path), "clip")
    w.add_string("clip.projector_type", "gemma3")
    w.add_bool("clip.has_text_encoder", False)
    w.add_bool("clip.has_vision_encoder", True)
    w.add_bool("clip.has_llava_projector", False)
    w.add_uint32("clip.vision.image_size", image_size)
    w.add_uint32("clip.vision.patch_size", patch)
    w.add_uint32("clip.vision.embedding_length", d)
    w.add_uint32("clip.vision.feed_forward_length", ff)
    w.add_uint32("clip.vision.projection_dim", n_embd_llm)
    w.add_uint32("clip.vision.block_count", 1)
    w.add_uint32("clip.vision.attention.head_count", 2)
    w.add_float32("clip.vision.attention.layer_norm_epsilon", 1e-6)
    w.add_array("clip.vision.image_mean", [0.5, 0.5, 0.5])
    w.add_array("clip.vision.image_std", [0.5, 0.5, 0.5])
    w.add_bool("clip.use_gelu", True)
    w.add_uint32("clip.vision.projector.scale_factor", 2)

    def t(*shape: int, scale: float = 0.2) -> np.ndarray:
        return (r.standard_normal(shape) * scale).astype(np.float32)

    def ones(n: int) -> np.ndarray:
        return np.ones(n, dtype=np.float32)

    w.add_tensor("v.patch_embd.weight", t(d, 3, patch, patch))
    w.add_tensor("v.patch_embd.bias", t(d))
    w.add_tensor("v.position_embd.weight", t(n_pos, d))
    for name, shape in (("attn_q", (d, d)), ("attn_k", (d, d)), ("attn_v", (d, d)), ("attn_out", (d, d))):
        w.add_tensor(f"v.blk.0.{name}.weight", t(*shape))
        w.add_tensor(f"v.blk.0.{name}.bias", t(shape[0]))
    w.add_tensor("v.blk.0.ln1.weight", ones(d))
    w.add_tensor("v.blk.0.ln1.bias", t(d))
    w.add_tensor("v.blk.0.ln2.weight", ones(d))
    w.add_tensor("v.blk.0.ln2.bias", t(d))
    w.add_tensor("v.blk.0.ffn_up.weight", t(ff, d))
    w.add_tensor("v.blk.0.ffn_up.bias", t(ff))
    w.add_tensor("v.blk.0.ffn_down.weight", t(d, ff))
    w.add_tensor("v.blk.0.ffn_down.bias", t(d))
    w.add_tensor("v.post_ln.weight", ones(d))
    w.add_tensor("v.post_ln.bias", t(d))
    w.add_tensor("mm.input_projection.weight", t(d, n_embd_llm, scale=1.0))
    w.add_tensor("mm.soft_emb_norm.weight", ones(d))
    _finish(w)
    return Path(path)


def make_tiny_audio_mmproj(
    path: Path,
    *,
    n_embd_llm: int = 64,
    n_mel: int = 16,
    stack_factor: int = 100,
    seed: int = 0,
) -> Path:
    """A random audio projector (llama.cpp `mmproj`, Ultravox's layout) for an LLM of `n_embd_llm`.

    A Whisper-style encoder (two 1-D convolutions over the log-mel spectrogram, the second of
    stride 2, one transformer block), then Ultravox's projector: frames stacked `stack_factor` at
    a time, RMS norm, SwiGLU, RMS norm, one projection into the LLM's embeddings. libmtmd pads
    every clip to Whisper's 30 s window (3000 mel frames, 1500 after the convolutions), so each
    clip under 30 s becomes `AUDIO_TOKENS` = 1500 / `stack_factor` embeddings in the LLM's context
    (15 by default; a real Ultravox stacks 8, i.e. 187). The tensor names and keys are those
    llama.cpp's converter writes for fixie-ai's Ultravox; no begin/end text wraps the clip.
    """
    r = np.random.default_rng(seed)
    d, ff, n_pos = 16, 32, 1500  # encoder width, its FFN, positions after the stride-2 conv
    hidden = 32  # the projector's SwiGLU width (after halving)
    w = gguf.GGUFWriter(str(path), "clip")
    w.add_string("clip.projector_type", "ultravox")
    w.add_bool("clip.has_vision_encoder", False)
    w.add_bool("clip.has_audio_encoder", True)
    w.add_uint32("clip.audio.projection_dim", n_embd_llm)
    w.add_uint32("clip.audio.embedding_length", d)
    w.add_uint32("clip.audio.feed_forward_length", ff)
    w.add_uint32("clip.audio.block_count", 1)
    w.add_uint32("clip.audio.attention.head_count", 2)
    w.add_float32("clip.audio.attention.layer_norm_epsilon", 1e-5)
    w.add_uint32("clip.audio.num_mel_bins", n_mel)
    w.add_uint32("clip.audio.projector.stack_factor", stack_factor)

    def t(*shape: int, scale: float = 0.2) -> np.ndarray:
        return (r.standard_normal(shape) * scale).astype(np.float32)

    def ones(n: int) -> np.ndarray:
        return np.ones(n, dtype=np.float32)

    # convolution kernels are f16, as the converter writes them (ggml's im2col path)
    w.add_tensor("a.conv1d.1.weight", t(d, n_mel, 3).astype(np.float16))
    w.add_tensor("a.conv1d.1.bias", t(d, 1))
    w.add_tensor("a.conv1d.2.weight", t(d, d, 3).astype(np.float16))
    w.add_tensor("a.conv1d.2.bias", t(d, 1))
    w.add_tensor("a.position_embd.weight", t(n_pos, d))
    p = "a.blk.0."
    w.add_tensor(p + "attn_q.weight", t(d, d))
    w.add_tensor(p + "attn_q.bias", t(d))
    w.add_tensor(p + "attn_k.weight", t(d, d))  # Whisper's key projection has no bias
    w.add_tensor(p + "attn_v.weight", t(d, d))
    w.add_tensor(p + "attn_v.bias", t(d))
    w.add_tensor(p + "attn_out.weight", t(d, d))
    w.add_tensor(p + "attn_out.bias", t(d))
    w.add_tensor(p + "ln1.weight", ones(d))
    w.add_tensor(p + "ln1.bias", t(d))
    w.add_tensor(p + "ln2.weight", ones(d))
    w.add_tensor(p + "ln2.bias", t(d))
    w.add_tensor(p + "ffn_up.weight", t(ff, d))
    w.add_tensor(p + "ffn_up.bias", t(ff))
    w.add_tensor(p + "ffn_down.weight", t(d, ff))
    w.add_tensor(p + "ffn_down.bias", t(d))
    w.add_tensor("a.post_ln.weight", ones(d))
    w.add_tensor("a.post_ln.bias", t(d))
    w.add_tensor("mm.a.norm_pre.weight", ones(d * stack_factor))
    w.add_tensor("mm.a.mlp.1.weight", t(2 * hidden, d * stack_factor, scale=0.05))
    w.add_tensor("mm.a.norm_mid.weight", ones(hidden))
    w.add_tensor("mm.a.mlp.2.weight", t(n_embd_llm, hidden, scale=1.0))
    _finish(w)
    return Path(path)


#: Audio embeddings one clip (under 30 s) becomes with `make_tiny_audio_mmproj`'s defaults.
AUDIO_TOKENS = 1500 // 100


def wav_bytes(seconds: float = 1.0, *, seed: int = 0, rate: int = 16000, hz: float = 0.0) -> bytes:
    """A mono 16-bit WAV clip: seeded noise, or a sine of `hz` (written with the stdlib `wave`)."""
    import io
    import wave

    n = int(seconds * rate)
    if hz:
        samples = 0.5 * np.sin(2 * np.pi * hz * np.arange(n) / rate)
    else:
        samples = np.random.default_rng(seed).uniform(-0.5, 0.5, n)
    buf = io.BytesIO()
    with wave.open(buf, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes((samples * 32767).astype("<i2").tobytes())
    return buf.getvalue()


def png_bytes(width: int, height: int, rgb: tuple[int, int, int], *, seed: int | None = None) -> bytes:
    """A PNG image of one colour, or of random pixels with `seed`, written with zlib alone."""
    import struct
    import zlib

    if seed is None:
        pixels = np.tile(np.array(rgb, dtype=np.uint8), (height, width, 1))
    else:
        pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    raw = b"".join(b"\x00" + pixels[y].tobytes() for y in range(height))  # filter 0 per row

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def make_tiny_lora(
    path: Path, *, n_embd: int = 64, n_layer: int = 2, n_ff: int = 128, rank: int = 4, seed: int = 1
) -> Path:
    """A random LoRA adapter (GGUF, as llama.cpp's convert_lora_to_gguf writes) for `make_tiny_llama`'s
    default shapes: low-rank updates of every layer's attention output and FFN down projection."""
    r = np.random.default_rng(seed)
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_string("general.type", "adapter")
    w.add_string("adapter.type", "lora")
    w.add_float32("adapter.lora.alpha", float(rank))

    def t(*shape: int) -> np.ndarray:
        return (r.standard_normal(shape) * 0.5).astype(np.float32)

    for i in range(n_layer):
        for name, n_in, n_out in (("attn_output", n_embd, n_embd), ("ffn_down", n_ff, n_embd)):
            w.add_tensor(f"blk.{i}.{name}.weight.lora_a", t(rank, n_in))
            w.add_tensor(f"blk.{i}.{name}.weight.lora_b", t(n_out, rank))
    _finish(w)
    return Path(path)
