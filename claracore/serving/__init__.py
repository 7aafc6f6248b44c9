"""Engine requests turned into wire answers: chat and completions (`generation` prepares and
submits jobs, `replies` writes OpenAI's responses and chunks, `tool_calls` finds calls in the
text), embeddings and reranking, speech (`speech`, with the audio containers in `audio` and the
transcript formats in `transcripts`). Above the pool and the runtimes; below the engine.
"""
