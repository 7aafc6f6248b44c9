import { describe, expect, it } from "vitest";
import { formatAgo, formatBytes, formatDuration, formatRate, formatTokens, percent } from "./format";

describe("formatBytes", () => {
  it("uses binary units with at most three significant digits", () => {
    expect(formatBytes(0)).toBe("0 B");
    expect(formatBytes(1023)).toBe("1023 B");
    expect(formatBytes(1536)).toBe("1.5 KiB");
    expect(formatBytes(98 * 2 ** 20 + 300 * 1024)).toBe("98.3 MiB");
    expect(formatBytes(2 ** 30)).toBe("1 GiB");
    expect(formatBytes(123.4 * 2 ** 30)).toBe("123 GiB");
  });
  it("shows a dash for unknown values", () => {
    expect(formatBytes(null)).toBe("—");
    expect(formatBytes(undefined)).toBe("—");
    expect(formatBytes(Number.NaN)).toBe("—");
  });
});

describe("formatDuration", () => {
  it("picks the unit by size", () => {
    expect(formatDuration(0.0634)).toBe("63 ms");
    expect(formatDuration(2.4)).toBe("2.4 s");
    expect(formatDuration(12.25)).toBe("12.3 s");
    expect(formatDuration(185)).toBe("3 min 05 s");
    expect(formatDuration(3720)).toBe("1 h 02 min");
    expect(formatDuration(-1)).toBe("—");
  });
});

describe("formatRate and formatTokens", () => {
  it("formats speeds", () => {
    expect(formatRate(72.456)).toBe("72.5 tok/s");
    expect(formatRate(127.6)).toBe("128 tok/s");
    expect(formatRate(Number.POSITIVE_INFINITY)).toBe("—");
  });
  it("shortens round contexts", () => {
    expect(formatTokens(8192)).toBe("8K");
    expect(formatTokens(131072)).toBe("128K");
    expect(formatTokens(1500)).toBe("1,500");
  });
});

describe("percent", () => {
  it("clamps to 0..100 and survives an empty whole", () => {
    expect(percent(1, 4)).toBe(25);
    expect(percent(5, 4)).toBe(100);
    expect(percent(1, 0)).toBe(0);
  });
});

describe("formatAgo", () => {
  it("says how long ago", () => {
    const now = Date.UTC(2025, 0, 10, 12);
    expect(formatAgo(now - 10_000, now)).toBe("just now");
    expect(formatAgo(now - 5 * 60_000, now)).toBe("5 min ago");
    expect(formatAgo(now - 3 * 3_600_000, now)).toBe("3 h ago");
    expect(formatAgo(Date.UTC(2024, 11, 1), now)).toBe("1 Dec 2024");
  });
});
