import { describe, expect, it } from "vitest";
import { filterLogs, formatLine, LogBuffer } from "./logs";
import type { LogLine } from "./types";

const line = (n: number, extra: Partial<LogLine> = {}): LogLine => ({
  time: `2026-01-01T00:00:${String(n % 60).padStart(2, "0")}.000Z`,
  level: "info",
  source: "claracore",
  logger: "claracore.pool",
  message: `line ${n}`,
  ...extra,
});

describe("LogBuffer", () => {
  it("keeps the newest lines up to its cap, in order", () => {
    const buffer = new LogBuffer(100);
    for (let i = 0; i < 1000; i += 10) buffer.push(Array.from({ length: 10 }, (_, j) => line(i + j)));
    const lines = buffer.lines();
    expect(lines).toHaveLength(100);
    expect(lines[0].message).toBe("line 900");
    expect(lines[99].message).toBe("line 999");
    expect(buffer.dropped).toBe(900);
  });

  it("holds 100,000 lines by default", () => {
    const buffer = new LogBuffer();
    buffer.push(Array.from({ length: 120_000 }, (_, i) => line(i)));
    expect(buffer.lines()).toHaveLength(100_000);
    expect(buffer.lines()[0].message).toBe("line 20000");
  });
});

describe("filterLogs", () => {
  const lines = [
    line(1, { level: "debug", source: "llama.cpp", logger: "llama.cpp", message: "load_tensors: CPU" }),
    line(2, { level: "info", message: "loaded smollm2" }),
    line(3, { level: "warning", source: "uvicorn", logger: "uvicorn.error", message: "slow client" }),
    line(4, { level: "error", message: "load failed: bad file" }),
  ];
  it("filters by least level, hidden sources and text (any case, message or logger)", () => {
    const at = (f: Partial<Parameters<typeof filterLogs>[1]>) => filterLogs(lines, { level: "debug", hidden: [], text: "", ...f }).map((l) => l.message);
    expect(at({})).toHaveLength(4);
    expect(at({ level: "warning" })).toEqual(["slow client", "load failed: bad file"]);
    expect(at({ hidden: ["claracore"] })).toEqual(["load_tensors: CPU", "slow client"]);
    expect(at({ text: "LOAD" })).toEqual(["load_tensors: CPU", "loaded smollm2", "load failed: bad file"]);
    expect(at({ text: "uvicorn" })).toEqual(["slow client"]);
  });
  it("writes a line as text", () => {
    expect(formatLine(lines[3])).toBe("2026-01-01T00:00:04.000Z ERROR    claracore.pool: load failed: bad file");
  });
});
