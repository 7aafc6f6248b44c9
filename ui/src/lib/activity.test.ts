import { describe, expect, it } from "vitest";
import { filterRows, percentile, seriesByModel, sortRows, stats, toCsv } from "./activity";
import type { RequestRecord } from "./types";

function row(extra: Partial<RequestRecord>): RequestRecord {
  return {
    id: "r",
    time: "2026-01-01T00:00:00.000Z",
    route: "POST /v1/chat/completions",
    model: "a",
    client: "127.0.0.1",
    stream: false,
    promptTokens: 10,
    completionTokens: 11,
    cachedTokens: 0,
    ttft: 0.5,
    duration: 1.5,
    tokensPerSecond: 10,
    status: 200,
    errorCode: null,
    ...extra,
  };
}

describe("stats", () => {
  it("computes speeds as the server does: uncached prompt over TTFT, tokens after the first over the rest", () => {
    const s = stats([
      row({ promptTokens: 10, cachedTokens: 5, ttft: 0.5, completionTokens: 11, duration: 1.5 }),
      row({ promptTokens: 20, ttft: 1, completionTokens: 21, duration: 3 }),
      row({ status: 404, errorCode: "MODEL_NOT_FOUND", ttft: null, promptTokens: 0, completionTokens: 0, duration: 0.01 }),
    ]);
    expect(s.requests).toBe(3);
    expect(s.errors).toBe(1);
    expect(s.promptTokens).toBe(30);
    expect(s.completionTokens).toBe(32);
    expect(s.promptPerSecond).toBeCloseTo(25 / 1.5);
    expect(s.generationPerSecond).toBeCloseTo(30 / 3);
    expect([s.ttftP50, s.ttftP95]).toEqual([0.5, 1]);
    expect(stats([]).generationPerSecond).toBeNull();
  });

  it("takes nearest-rank percentiles", () => {
    const xs = Array.from({ length: 20 }, (_, i) => i + 1);
    expect([percentile(xs, 50), percentile(xs, 95), percentile([], 50)]).toEqual([10, 19, null]);
  });
});

describe("sort and filter", () => {
  const rows = [
    row({ id: "1", model: "b", ttft: 0.2, time: "2026-01-01T00:00:01Z" }),
    row({ id: "2", model: "a", ttft: null, status: 500, errorCode: "INTERNAL_ERROR", time: "2026-01-01T00:00:02Z" }),
    row({ id: "3", model: "a", ttft: 0.9, client: "10.0.0.7", time: "2026-01-01T00:00:03Z" }),
  ];
  it("sorts by a column either way, with missing values last", () => {
    expect(sortRows(rows, "ttft", false).map((r) => r.id)).toEqual(["1", "3", "2"]);
    expect(sortRows(rows, "ttft", true).map((r) => r.id)).toEqual(["3", "1", "2"]);
    expect(sortRows(rows, "time", true).map((r) => r.id)).toEqual(["3", "2", "1"]);
    expect(sortRows(rows, "model", false).map((r) => r.model)).toEqual(["a", "a", "b"]);
  });
  it("filters by model, outcome and text", () => {
    expect(filterRows(rows, { model: "a", status: "all", text: "" }).map((r) => r.id)).toEqual(["2", "3"]);
    expect(filterRows(rows, { model: "", status: "error", text: "" }).map((r) => r.id)).toEqual(["2"]);
    expect(filterRows(rows, { model: "", status: "ok", text: "10.0.0" }).map((r) => r.id)).toEqual(["3"]);
    expect(filterRows(rows, { model: "", status: "all", text: "internal" }).map((r) => r.id)).toEqual(["2"]);
  });
});

describe("toCsv", () => {
  it("writes a header and quotes what needs it", () => {
    const csv = toCsv([row({ id: 'x"y', client: "a,b" })]);
    const [head, line] = csv.split("\r\n");
    expect(head.split(",")[0]).toBe("time");
    expect(line).toContain('"x""y"');
    expect(line).toContain('"a,b"');
    expect(csv.endsWith("\r\n")).toBe(true);
  });
});

describe("seriesByModel", () => {
  it("gives one y series per model over ascending time, null for the others' rows", () => {
    const { models, data } = seriesByModel(
      [row({ model: "b", time: "2026-01-01T00:00:02Z", tokensPerSecond: 5 }), row({ model: "a", time: "2026-01-01T00:00:01Z", tokensPerSecond: 7 }), row({ tokensPerSecond: null })],
      (r) => r.tokensPerSecond,
    );
    expect(models).toEqual(["a", "b"]);
    expect(data[0]).toEqual([Date.parse("2026-01-01T00:00:01Z") / 1000, Date.parse("2026-01-01T00:00:02Z") / 1000]);
    expect(data.slice(1)).toEqual([
      [7, null],
      [null, 5],
    ]);
  });
});
