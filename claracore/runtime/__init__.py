"""Runtimes: the only package that imports llama_cpp, faster_whisper or piper."""
