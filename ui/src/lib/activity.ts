/**
 * The activity page's arithmetic over request rows (`GET /api/activity` and `request` events):
 * the stat cards, sorting, filtering, CSV, and the series the charts draw. The speeds follow the
 * server's own definitions (`claracore/monitor/figures.py`), so a card and `/api/metrics` agree
 * on the same requests: prompt speed is uncached prompt tokens over the time to the first token,
 * generation speed the tokens after the first over the time after it; percentiles are nearest-rank.
 */

import type { RequestRecord } from "./types";

export function isError(r: RequestRecord): boolean {
  return r.errorCode != null || (r.status ?? 200) >= 400;
}

/** The nearest-rank percentile of an ascending list (null when empty). */
export function percentile(ordered: number[], p: number): number | null {
  if (!ordered.length) return null;
  const rank = Math.max(1, Math.ceil((p / 100) * ordered.length));
  return ordered[rank - 1];
}

export interface Stats {
  requests: number;
  errors: number;
  promptTokens: number;
  completionTokens: number;
  promptPerSecond: number | null;
  generationPerSecond: number | null;
  ttftP50: number | null;
  ttftP95: number | null;
}

export function stats(rows: RequestRecord[]): Stats {
  let prefillTokens = 0;
  let prefillSeconds = 0;
  let genTokens = 0;
  let genSeconds = 0;
  const ttfts: number[] = [];
  for (const r of rows) {
    if (r.ttft == null) continue; // it produced no token: nothing to time
    ttfts.push(r.ttft);
    const prefill = Math.max(r.promptTokens - r.cachedTokens, 0);
    if (prefill) {
      prefillTokens += prefill;
      prefillSeconds += r.ttft;
    }
    const gen = Math.max(r.completionTokens - 1, 0);
    if (gen) {
      genTokens += gen;
      genSeconds += Math.max(r.duration - r.ttft, 0);
    }
  }
  ttfts.sort((a, b) => a - b);
  return {
    requests: rows.length,
    errors: rows.filter(isError).length,
    promptTokens: rows.reduce((n, r) => n + r.promptTokens, 0),
    completionTokens: rows.reduce((n, r) => n + r.completionTokens, 0),
    promptPerSecond: prefillSeconds > 0 ? prefillTokens / prefillSeconds : null,
    generationPerSecond: genSeconds > 0 ? genTokens / genSeconds : null,
    ttftP50: percentile(ttfts, 50),
    ttftP95: percentile(ttfts, 95),
  };
}

export type SortKey = "time" | "model" | "route" | "status" | "promptTokens" | "completionTokens" | "ttft" | "tokensPerSecond" | "duration";

function sortValue(r: RequestRecord, key: SortKey): number | string | null {
  if (key === "status") return isError(r) ? (r.status ?? 599) : (r.status ?? 200);
  return r[key];
}

/** Sorted by one column; rows without a value (no TTFT) go last either way. */
export function sortRows(rows: RequestRecord[], key: SortKey, descending: boolean): RequestRecord[] {
  return [...rows].sort((a, b) => {
    const x = sortValue(a, key);
    const y = sortValue(b, key);
    if (x === null || y === null) return x === y ? 0 : x === null ? 1 : -1;
    const order = typeof x === "number" && typeof y === "number" ? x - y : String(x).localeCompare(String(y));
    return descending ? -order : order;
  });
}

export interface RowFilter {
  model: string;
  status: "all" | "ok" | "error";
  text: string;
}

export function filterRows(rows: RequestRecord[], f: RowFilter): RequestRecord[] {
  const q = f.text.trim().toLowerCase();
  return rows.filter(
    (r) =>
      (!f.model || r.model === f.model) &&
      (f.status === "all" || (f.status === "error") === isError(r)) &&
      (!q || [r.id, r.route, r.model, r.client ?? "", r.errorCode ?? "", String(r.status ?? "")].some((s) => s.toLowerCase().includes(q))),
  );
}

const COLUMNS: (keyof RequestRecord)[] = [
  "time",
  "id",
  "model",
  "route",
  "status",
  "errorCode",
  "stream",
  "promptTokens",
  "cachedTokens",
  "completionTokens",
  "ttft",
  "tokensPerSecond",
  "duration",
  "client",
];

function cell(value: unknown): string {
  const text = value == null ? "" : String(value);
  return /[",\n\r]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

/** RFC 4180 CSV with a header row. */
export function toCsv(rows: RequestRecord[]): string {
  return [COLUMNS.join(","), ...rows.map((r) => COLUMNS.map((c) => cell(r[c])).join(","))].join("\r\n") + "\r\n";
}

/**
 * uPlot's data for one figure per model over time: the x values (Unix seconds, ascending) and
 * one y array per model, null where a row belongs to another model (or has no value).
 */
export function seriesByModel(rows: RequestRecord[], value: (r: RequestRecord) => number | null): { models: string[]; data: (number | null)[][] } {
  const timed = rows.filter((r) => value(r) != null).sort((a, b) => Date.parse(a.time) - Date.parse(b.time));
  const models = [...new Set(timed.map((r) => r.model))].sort();
  const xs = timed.map((r) => Date.parse(r.time) / 1000);
  const ys = models.map((m) => timed.map((r) => (r.model === m ? value(r) : null)));
  return { models, data: [xs, ...ys] };
}
