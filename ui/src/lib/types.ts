/** The server's shapes the UI reads (see claracore/protocol and the API spec). */

export type ModelState = "unloaded" | "loading" | "loaded" | "failed";
export type ModelType = "llm" | "embedding" | "reranker" | "stt" | "tts";

export interface Memory {
  vram_bytes: number;
  ram_bytes: number;
}

export interface ModelInfo {
  id: string;
  type: ModelType | string;
  aliases: string[];
  state: ModelState;
  error: string | null;
  memory: Memory | null;
  in_flight: number;
  file?: string | null;
  size_bytes?: number | null;
  quantization?: string | null;
  context_length?: number | null;
  gpu_layers?: number | null;
  parallel?: number | null;
}

export interface ModelList {
  object: "list";
  data: ModelInfo[];
  budget?: Memory | null;
}

export interface SystemSettings {
  gpuType: string;
  backend: string;
  vramGB: number;
  ramGB: number;
  preferredContext: number;
  throughputFirst: boolean;
  enableJinja: boolean;
  requireApiKey: boolean;
  apiKey: string;
  apiKeySet: boolean;
}

export interface HfKey {
  apiKeySet: boolean;
  apiKey: string;
}

export interface Doctor {
  version: string;
  python: string;
  llamaCppPython: string;
  libDir: string;
  backends: string[];
  gpuOffload: boolean;
  gpus: { index: number; name: string; vramGB: number; vramFreeGB: number }[];
  offloaded: [number, number] | null;
  offloadError: string | null;
  advice: string[];
}

export interface Specs {
  os: string;
  arch: string;
  cpu: string;
  ramGB: number;
  gpuInfo: string;
}

export interface Detection {
  os: string;
  architecture: string;
  hasCUDA: boolean;
  hasROCm: boolean;
  hasVulkan: boolean;
  hasMetal: boolean;
  totalRAMGB: number;
  totalVRAMGB: number;
  gpuType: string;
  recommendedBackend: string;
  cpuCores: number;
  cpuThreads: number;
}

export const TYPE_LABELS: Record<string, string> = {
  llm: "Chat",
  embedding: "Embedding",
  reranker: "Reranker",
  stt: "Speech to text",
  tts: "Text to speech",
};
