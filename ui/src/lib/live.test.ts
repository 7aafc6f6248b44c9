import { describe, expect, it } from "vitest";
import { applyMetrics, applyModelEvent, applyRequest, pollDelay } from "./live";
import { withSample } from "./memory";
import type { Metrics, ModelInfo, ModelList, RequestRecord } from "./types";

function model(id: string, state: ModelInfo["state"] = "unloaded", extra: Partial<ModelInfo> = {}): ModelInfo {
  return { id, type: "llm", aliases: [], state, error: null, memory: { vram_bytes: 0, ram_bytes: 100 }, in_flight: 0, ...extra };
}

function list(...models: ModelInfo[]): ModelList {
  return { object: "list", data: models, budget: null };
}

const find = (l: ModelList | null, id: string) => l?.data.find((m) => m.id === id);

describe("applyModelEvent", () => {
  it("follows a load with its progress, and keeps the other models as they were", () => {
    const before = list(model("a"), model("b", "loaded"));
    const loading = applyModelEvent(before, { model: "a", type: "llm", state: "loading", progress: 0.37 });
    expect(find(loading, "a")).toMatchObject({ state: "loading", progress: 0.37 });
    expect(find(loading, "b")).toBe(before.data[1]);
    const loaded = applyModelEvent(loading!, {
      model: "a",
      type: "llm",
      state: "loaded",
      memory: { estimate: { vramBytes: 5, ramBytes: 7 }, measured: null },
    });
    expect(find(loaded, "a")).toMatchObject({ state: "loaded", progress: null, memory: { vram_bytes: 5, ram_bytes: 7 } });
  });

  it("keeps why a model was evicted, and for whom, until it loads again", () => {
    let l: ModelList | null = list(model("a", "loaded", { in_flight: 1 }));
    l = applyModelEvent(l!, { model: "a", type: "llm", state: "evicted", reason: "to make room for b", by: "b" });
    expect(find(l, "a")).toMatchObject({ state: "unloading", reason: "to make room for b", evictedBy: "b" });
    l = applyModelEvent(l!, { model: "a", type: "llm", state: "unloaded", reason: "evicted to make room for b" });
    expect(find(l, "a")).toMatchObject({ state: "unloaded", reason: "evicted to make room for b", evictedBy: "b", in_flight: 0 });
    l = applyModelEvent(l!, { model: "a", type: "llm", state: "loading", progress: 0 });
    expect(find(l, "a")).toMatchObject({ reason: null, evictedBy: null });
  });

  it("says why a load failed, and asks for a refetch for a model it has never seen", () => {
    const l = applyModelEvent(list(model("a", "loading")), { model: "a", type: "llm", state: "failed", error: "bad file" });
    expect(find(l, "a")).toMatchObject({ state: "failed", error: "bad file" });
    expect(applyModelEvent(list(model("a")), { model: "new", type: "llm", state: "loaded" })).toBeNull();
  });
});

describe("metrics and requests", () => {
  const metrics = {
    models: { loaded: 1, total: 2, items: [{ id: "a", inFlight: 3 }] },
    pool: { vram: { used: 0, budget: 10 }, ram: { used: 5, budget: 20 } },
  } as unknown as Metrics;

  it("take requests in flight and the budget from metrics", () => {
    const l = applyMetrics(list(model("a", "loaded"), model("b")), metrics);
    expect(l.budget).toEqual({ vram_bytes: 10, ram_bytes: 20 });
    expect(find(l, "a")?.in_flight).toBe(3);
    expect(find(l, "b")?.in_flight).toBe(0);
  });

  it("count a finished request out, never below zero", () => {
    const l = list(model("a", "loaded", { in_flight: 1 }));
    const once = applyRequest(l, { model: "a" } as RequestRecord);
    expect(find(once, "a")?.in_flight).toBe(0);
    expect(find(applyRequest(once, { model: "a" } as RequestRecord), "a")?.in_flight).toBe(0);
  });
});

describe("pollDelay (the fallback while the stream is down)", () => {
  it("polls fast while a model changes, backs off on failures", () => {
    expect(pollDelay(list(model("a", "loaded")), 0)).toBe(2000);
    expect(pollDelay(list(model("a", "unloading")), 0)).toBe(500);
    expect(pollDelay(undefined, 3)).toBe(4000);
  });
});

describe("withSample", () => {
  const s = (t: number) => ({ t, ramUsed: t, ramBudget: 10, vramUsed: 0, vramBudget: 0 });
  it("keeps the newest samples in order, at most max", () => {
    let samples = [s(1), s(2)];
    samples = withSample(samples, s(3), 3);
    samples = withSample(samples, s(4), 3);
    expect(samples.map((x) => x.t)).toEqual([2, 3, 4]);
    expect(withSample(samples, s(4), 3).map((x) => x.t)).toEqual([2, 3, 4]); // a repeat replaces
  });
});
