import { describe, expect, it } from "vitest";
import { keptFields, modelFlags, planReasons } from "./setup";
import type { ScannedModel } from "./types";

function scanned(extra: Partial<ScannedModel>): ScannedModel {
  return {
    name: "m",
    path: "/m/m.gguf",
    type: "llm",
    size: 1,
    architecture: "llama",
    parameterCount: 7e9,
    quantization: "Q4_K_M",
    contextLength: 4096,
    mmproj: null,
    folder: "/m",
    ...extra,
  };
}

describe("modelFlags", () => {
  it("reads vision, kinds, MoE and draft size from the scan", () => {
    expect(modelFlags(scanned({}))).toEqual([]);
    expect(modelFlags(scanned({ mmproj: "/m/mmproj.gguf" }))).toEqual(["vision"]);
    expect(modelFlags(scanned({ type: "embedding", parameterCount: 2e7 }))).toEqual(["embedding"]);
    expect(modelFlags(scanned({ architecture: "qwen3moe" }))).toEqual(["moe"]);
    expect(modelFlags(scanned({ name: "mixtral-8x7b-instruct" }))).toEqual(["moe"]);
    expect(modelFlags(scanned({ name: "qwen3-30b-a3b" }))).toEqual(["moe"]);
    expect(modelFlags(scanned({ parameterCount: 5e8 }))).toEqual(["draft"]);
    expect(modelFlags(scanned({ name: "llama-draft" }))).toEqual(["draft"]);
    expect(modelFlags(scanned({ type: "stt", parameterCount: null }))).toEqual(["speech"]);
  });
});

describe("planReasons and keptFields", () => {
  const asked = { preferredContext: 8192, minContext: 2048, throughputFirst: true };
  it("says where the layers went and why the context and cache", () => {
    const full = planReasons({ name: "a", path: "", type: "llm", gpuLayers: -1, contextLength: 8192, cacheType: "f16", parallel: 4 }, asked, "cuda");
    expect(full).toEqual(["every layer on the GPU", "context 8192: the preferred context", "4 sequences at once: throughput first"]);
    const tight = planReasons({ name: "a", path: "", type: "llm", gpuLayers: 20, contextLength: 4096, cacheType: "q8_0", parallel: 1 }, asked, "cuda");
    expect(tight[0]).toMatch(/^20 layers on the GPU/);
    expect(tight[1]).toMatch(/^context 4096: the most that fits/);
    expect(tight[2]).toMatch(/^q8_0 KV cache/);
    expect(planReasons({ name: "a", path: "", type: "llm", gpuLayers: 0, contextLength: 8192 }, asked, "cpu")[0]).toBe("on the CPU: no GPU backend");
  });
  it("says a value was kept from a hand edit instead of why it was chosen", () => {
    const m = { name: "a", path: "", type: "llm", gpuLayers: 0, contextLength: 512, parallel: 3, notes: ["kept hand-edited parallel"] };
    expect(planReasons(m, asked, "cpu")).toEqual(["on the CPU: no GPU backend", "context 512: the most that fits, or the model's trained context (preferred 8192)", "3 sequences at once: yours"]);
  });
  it("lists the fields kept from hand edits", () => {
    expect(keptFields({ name: "a", path: "", type: "llm", notes: ["kept hand-edited temperature, parallel"] })).toEqual(["temperature", "parallel"]);
    expect(keptFields({ name: "a", path: "", type: "llm" })).toEqual([]);
  });
});
