/**
 * The pool's memory over time, for the activity page's chart: one sample per `metrics` event
 * (every few seconds), collected from whichever page is open and kept in this tab's session
 * storage, so the chart survives a reload. The server keeps no history of it.
 */

import { Store } from "./api";
import type { Metrics } from "./types";

export interface MemorySample {
  /** Unix seconds. */
  t: number;
  ramUsed: number;
  ramBudget: number;
  vramUsed: number;
  vramBudget: number;
}

const STORAGE = "claracore.memorySamples";
/** An hour at the default 5 s interval. */
export const MAX_SAMPLES = 720;

function restore(): MemorySample[] {
  try {
    const saved = JSON.parse(sessionStorage.getItem(STORAGE) ?? "[]");
    return Array.isArray(saved) ? saved.slice(-MAX_SAMPLES) : [];
  } catch {
    return [];
  }
}

export const memorySamples = new Store<MemorySample[]>(typeof sessionStorage === "undefined" ? [] : restore());

/** The samples with one more, oldest dropped past `max`; a sample no newer than the last replaces it. */
export function withSample(samples: MemorySample[], sample: MemorySample, max = MAX_SAMPLES): MemorySample[] {
  const last = samples[samples.length - 1];
  const kept = last && last.t >= sample.t ? samples.slice(0, -1) : samples;
  return [...kept.slice(-(max - 1)), sample];
}

export function pushMemorySample(metrics: Metrics, now: number = Date.now() / 1000): void {
  const sample: MemorySample = {
    t: Math.round(now * 10) / 10,
    ramUsed: metrics.pool.ram.used,
    ramBudget: metrics.pool.ram.budget,
    vramUsed: metrics.pool.vram.used,
    vramBudget: metrics.pool.vram.budget,
  };
  memorySamples.set(withSample(memorySamples.get(), sample));
  try {
    sessionStorage.setItem(STORAGE, JSON.stringify(memorySamples.get()));
  } catch {
    /* storage full or disabled: the chart just starts over after a reload */
  }
}
