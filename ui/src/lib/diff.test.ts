import { describe, expect, it } from "vitest";
import { lineDiff } from "./diff";

const BEFORE = Array.from({ length: 20 }, (_, i) => `line ${i + 1}`).join("\n") + "\n";

describe("lineDiff", () => {
  it("shows a changed line with its context and line numbers", () => {
    const after = BEFORE.replace("line 10\n", "line ten\n");
    const d = lineDiff(BEFORE, after, 2);
    expect([d.added, d.removed]).toEqual([1, 1]);
    expect(d.lines.map((l) => `${l.kind}:${l.text}`)).toEqual([
      "gap:@@ line 8 @@",
      "same:line 8",
      "same:line 9",
      "remove:line 10",
      "add:line ten",
      "same:line 11",
      "same:line 12",
    ]);
    expect(d.lines.find((l) => l.kind === "add")?.newLine).toBe(10);
  });

  it("is empty when nothing changed, and counts additions at the end", () => {
    expect(lineDiff(BEFORE, BEFORE).lines).toEqual([]);
    const d = lineDiff("a: 1\n", "a: 1\nb: 2\n");
    expect([d.added, d.removed]).toEqual([1, 0]);
    expect(d.lines.map((l) => l.kind)).toEqual(["same", "add"]);
  });
});
