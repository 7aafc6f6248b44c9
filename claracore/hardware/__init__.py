"""This machine: its memory and the pool's budget (`memory`), the GPU probes (`probe`), and the
doctor that checks the installed llama.cpp build against them (`doctor`).

The facts about the compiled llama.cpp itself come from `claracore.runtime.native`, the one
place that imports llama_cpp; nothing here imports it.
"""
