/** The setup wizard's helpers: what a found model is, and why the planner chose what it did. */

import type { PlannedModel, ScannedModel } from "./types";

export type Flag = "vision" | "embedding" | "reranker" | "speech" | "moe" | "draft";

export const FLAG_LABELS: Record<Flag, string> = {
  vision: "vision",
  embedding: "embedding",
  reranker: "reranker",
  speech: "speech",
  moe: "MoE",
  draft: "draft-sized",
};

/** Small chat models can draft for a bigger one of their family (speculative decoding). */
const DRAFT_PARAMS = 1.5e9;

/**
 * What the scan's facts say about a model: vision (a projector was paired with it), embedding or
 * reranker (from the GGUF's metadata), speech (Whisper, Piper), MoE (an expert architecture, or
 * a name like 8x7B or 30B-A3B), draft-sized (a chat model under 1.5 B parameters, or named so).
 */
export function modelFlags(m: ScannedModel): Flag[] {
  const flags: Flag[] = [];
  if (m.mmproj) flags.push("vision");
  if (m.type === "embedding") flags.push("embedding");
  if (m.type === "reranker") flags.push("reranker");
  if (m.type === "stt" || m.type === "tts") flags.push("speech");
  const name = `${m.name} ${m.path.split("/").pop() ?? ""}`;
  if (/moe/i.test(m.architecture ?? "") || /moe|\d+x\d+(\.\d+)?b|\d+(\.\d+)?b[-_]a\d+(\.\d+)?b/i.test(name)) flags.push("moe");
  if ((m.type ?? "llm") === "llm" && (/draft/i.test(name) || (m.parameterCount != null && m.parameterCount < DRAFT_PARAMS))) {
    flags.push("draft");
  }
  return flags;
}

export interface PlanOptions {
  preferredContext: number;
  minContext: number;
  throughputFirst: boolean;
}

/** Why the planner chose each value, in words, from what it chose and what it was asked; a value
 * kept from a hand edit says so instead. */
export function planReasons(m: PlannedModel, asked: PlanOptions, backend: string): string[] {
  if (m.type === "stt" || m.type === "tts") return ["speech models size themselves"];
  const kept = new Set(keptFields(m));
  const why: string[] = [];
  if (kept.has("gpu_layers")) why.push(`GPU layers ${m.gpuLayers}: yours`);
  else if (m.gpuLayers === -1) why.push("every layer on the GPU");
  else if (m.gpuLayers && m.gpuLayers > 0) why.push(`${m.gpuLayers} layers on the GPU, the rest on the CPU: the whole model does not fit VRAM`);
  else why.push(backend === "cpu" ? "on the CPU: no GPU backend" : "on the CPU: no layer fits VRAM");
  const ctx = m.contextLength ?? 0;
  if (kept.has("context_length")) why.push(`context ${ctx}: yours`);
  else if (m.type === "embedding" || m.type === "reranker") why.push(`context ${ctx}: an encoder reads short passages`);
  else if (ctx >= asked.preferredContext) why.push(`context ${ctx}: the preferred context`);
  else if (ctx) why.push(`context ${ctx}: the most that fits, or the model's trained context (preferred ${asked.preferredContext})`);
  if (kept.has("cache_type_k")) why.push(`${m.cacheType} KV cache: yours`);
  else if (m.cacheType === "q8_0") why.push("q8_0 KV cache: half the memory of f16, so more fits");
  if (kept.has("parallel")) why.push(`${m.parallel} sequences at once: yours`);
  else if (m.parallel && m.parallel > 1) {
    why.push(`${m.parallel} sequences at once${asked.throughputFirst && m.parallel >= 4 ? ": throughput first" : ""}`);
  }
  return why;
}

/** The fields the planner kept because someone set them by hand (from its note). */
export function keptFields(m: PlannedModel): string[] {
  const note = m.notes?.find((n) => n.startsWith("kept hand-edited "));
  return note ? note.slice("kept hand-edited ".length).split(", ") : [];
}
