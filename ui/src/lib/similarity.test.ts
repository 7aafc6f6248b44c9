import { describe, expect, it } from "vitest";
import { cosine, lines, similarityMatrix } from "./similarity";

describe("similarity", () => {
  it("computes cosine similarity", () => {
    expect(cosine([1, 0], [1, 0])).toBe(1);
    expect(cosine([1, 0], [0, 1])).toBe(0);
    expect(cosine([1, 1], [-1, -1])).toBeCloseTo(-1);
    expect(cosine([0, 0], [1, 1])).toBe(0);
    expect(() => cosine([1], [1, 2])).toThrow(/length/);
  });
  it("builds a symmetric matrix", () => {
    const m = similarityMatrix([
      [1, 0],
      [1, 1],
      [0, 1],
    ]);
    expect(m[0][0]).toBe(1);
    expect(m[0][1]).toBeCloseTo(Math.SQRT1_2);
    expect(m[1][0]).toBe(m[0][1]);
    expect(m[0][2]).toBe(0);
  });
  it("splits text into non-empty lines", () => {
    expect(lines(" a \n\n b\n")).toEqual(["a", "b"]);
  });
});
