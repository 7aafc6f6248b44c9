/** The server's shapes the UI reads (see claracore/protocol and the API spec). */

export type ModelState = "unloaded" | "loading" | "loaded" | "unloading" | "failed";
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
  /** Loading only: 0..1, from llama.cpp's load callback (through the event stream). */
  progress?: number | null;
  /** Why it was (or is being) unloaded: "requested", "idle past its ttl", "to make room for b"… */
  reason?: string | null;
  /** The model it is being evicted for. */
  evictedBy?: string | null;
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

// ---------------------------------------------------------------- events (claracore/protocol/events.py)

export interface Bytes {
  vramBytes: number;
  ramBytes: number;
}

export interface ModelEvent {
  model: string;
  type: string;
  state: "unloaded" | "loading" | "loaded" | "unloading" | "evicted" | "failed";
  progress?: number;
  seconds?: number;
  memory?: { estimate: Bytes | null; measured: Bytes | null };
  reason?: string;
  by?: string;
  error?: string;
}

/** One finished inference request: a `request` event, and a row of `GET /api/activity`. */
export interface RequestRecord {
  id: string;
  time: string;
  route: string;
  model: string;
  client: string | null;
  stream: boolean;
  promptTokens: number;
  completionTokens: number;
  cachedTokens: number;
  ttft: number | null;
  duration: number;
  tokensPerSecond: number | null;
  status: number | null;
  errorCode: string | null;
}

export interface ActivityPage {
  items: RequestRecord[];
  page: number;
  pageSize: number;
  total: number;
  pages: number;
}

export interface LogLine {
  time: string;
  level: "debug" | "info" | "warning" | "error" | "critical";
  source: string;
  logger: string;
  message: string;
}

export interface ModelFigures {
  id: string;
  type: string;
  state: string;
  inFlight: number;
  slots: number | null;
  activeSlots: number | null;
  queued: number | null;
  memory: { estimate: Bytes | null; measured: Bytes | null };
  requests: number;
  errors: number;
  promptTokens: number;
  completionTokens: number;
  cachedTokens: number;
  promptTokensPerSecond: number | null;
  generationTokensPerSecond: number | null;
  ttft: { p50: number | null; p95: number | null };
  loads: number;
  evictions: number;
  lastUsed: string | null;
}

/** `GET /api/metrics`, and each `metrics` event. */
export interface Metrics {
  cpu: { usage: number; cores: number };
  memory: { used: number; total: number; percent: number };
  gpu: unknown;
  models: { loaded: number; total: number; items: ModelFigures[] };
  pool: { vram: { used: number; budget: number }; ram: { used: number; budget: number } };
}

// ---------------------------------------------------------------- downloads (claracore/protocol/downloads.py)

export type DownloadState = "queued" | "downloading" | "paused" | "verifying" | "completed" | "failed" | "cancelled";

export interface DownloadStatus {
  id: string;
  state: DownloadState;
  source: "hub" | "url";
  repo: string | null;
  revision: string | null;
  url: string | null;
  modelId: string | null;
  filename: string;
  targetDir: string;
  destination: string;
  files: { name: string; path: string; role: "model" | "mmproj"; size: number | null; bytesDone: number; verified: boolean }[];
  totalBytes: number | null;
  bytesDone: number;
  progress: number | null;
  speed: number;
  eta: number | null;
  retries: number;
  message: string | null;
  error: string | null;
  errorCode: string | null;
  autoConfigure: boolean;
  model: { name: string | null; path: string; mmproj: string | null; configured: boolean; note: string | null } | null;
  needsRestart: boolean;
  createdAt: string;
  updatedAt: string;
  completedAt: string | null;
}

export type FitVerdict = "gpu" | "partial" | "ram" | "too_big" | "unknown";

export interface RepoModel {
  name: string;
  filename: string;
  files: string[];
  size: number;
  quantization: string | null;
  split: boolean;
  complete: boolean;
  kind: string | null;
  mmproj: string[];
  fit: {
    verdict: FitVerdict;
    contextLength: number | null;
    gpuLayers: number | null;
    vramBytes: number | null;
    ramBytes: number | null;
    reason: string | null;
    notes: string[];
    estimated: boolean;
  };
  recommended: boolean;
}

export interface RepoFiles {
  repo: string;
  revision: string;
  commit: string | null;
  models: RepoModel[];
  mmproj: { name: string; size: number }[];
  hardware: { backend: string; vramBytes: number; ramBytes: number };
}

export interface SearchHit {
  id: string;
  author: string | null;
  downloads: number | null;
  likes: number | null;
  updated: string | null;
  gated: boolean;
  pipelineTag: string | null;
  tags: string[];
}

// ---------------------------------------------------------------- setup (claracore/manage/setup.py, scanner.py)

export interface ScannedModel {
  name: string;
  path: string;
  type: string | null;
  size: number;
  architecture: string | null;
  parameterCount: number | null;
  quantization: string | null;
  contextLength: number | null;
  mmproj: string | null;
  folder: string;
}

export interface ScanResult {
  folderPath: string;
  recursive: boolean;
  models: ScannedModel[];
  skipped: { path: string; reason: string }[];
  modelCount: number;
}

export interface TrackedFolder {
  path: string;
  enabled?: boolean;
  recursive: boolean;
  addedAt: string;
  lastScanned: string | null;
  modelCount: number;
}

export interface PlannedModel {
  name: string;
  path: string;
  type: string;
  gpuLayers?: number;
  contextLength?: number | null;
  cacheType?: string;
  batchSize?: number;
  parallel?: number;
  vramBytes?: number;
  ramBytes?: number;
  dropped?: string;
  notes?: string[];
}

export interface SetupProgress {
  status: "idle" | "detecting" | "scanning" | "planning" | "writing" | "restarting" | "completed" | "error";
  step: string;
  progress: number;
  running: boolean;
  currentOperation: string;
  startedAt?: string;
  finishedAt?: string;
  filesRead?: number;
  filesTotal?: number;
  error?: string;
  code?: string;
  result?: {
    backend: string;
    vramBudgetBytes: number;
    ramBudgetBytes: number;
    models: PlannedModel[];
    dropped: PlannedModel[];
    configPath: string;
    restart: Record<string, string[]>;
    needsRestart: boolean;
  };
}
