"""Runtimes: the only package that imports llama_cpp, faster_whisper or piper.

One module per kind of model (`llm` with its batched loop, `embedding`, `reranker`, `whisper`,
`piper`) plus what the LLM loop is made of (`jobs`, `sampling`, `chat_template`, `vocab`,
`llm_context`) and `native`, the seam to libllama itself (handles, log routing, build facts).
Speech libraries load when a speech model does, so a chat-only install never pays for them.
"""

# libllama (and with it the GPU runtime) loads before numpy and the other extension modules:
# `import claracore` imports this package first for that reason. On a CUDA build the first
# offloaded load segfaulted in every process that had imported numpy-based modules first, and in
# none that imported llama_cpp first (GPU check, 2026-11-26). The cause is not yet understood;
# this order is what was seen to work.
try:
    import llama_cpp  # noqa: F401
except (ImportError, OSError, RuntimeError):
    # No usable llama-cpp-python yet: `python -m claracore.native build` is how one gets
    # installed, so the package must import without it. The engine re-raises the real error.
    pass
