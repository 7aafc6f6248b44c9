import { describe, expect, it } from "vitest";
import { defaultText, fieldOf, label, textOf, valueOf } from "./schema";

// As GET /api/config/schema sends them (pydantic's JSON schema plus the server's meanings).
const TEMPERATURE = { anyOf: [{ maximum: 2, minimum: 0, type: "number" }, { type: "null" }], default: null, description: "randomness" };
const TOP_P = { anyOf: [{ exclusiveMinimum: 0, maximum: 1, type: "number" }, { type: "null" }], default: null };
const CACHE = { default: "f16", enum: ["f32", "f16", "q8_0"], type: "string" };
const FLASH = { default: "auto", anyOf: [{ type: "boolean" }, { const: "auto" }] };
const RAM = { default: "auto", anyOf: [{ type: "number", minimum: 0, maximum: 1048576 }, { const: "auto" }] };
const NAME = { minLength: 1, type: "string" };
const ALIASES = { items: { minLength: 1, type: "string" }, type: "array" };
const PARALLEL = { default: 4, maximum: 64, minimum: 1, type: "integer" };

describe("fieldOf", () => {
  it("gives numbers their range and optional ones an empty state", () => {
    const t = fieldOf("temperature", TEMPERATURE);
    expect([t.control, t.range, t.optional, t.min, t.max, t.description]).toEqual(["number", "0 to 2", true, 0, 2, "randomness"]);
    expect(fieldOf("top_p", TOP_P).range).toBe("above 0 to 1");
    expect(fieldOf("parallel", PARALLEL)).toMatchObject({ control: "integer", range: "1 to 64", optional: true, label: "Parallel" });
  });

  it("offers fixed choices, auto, lists, and marks required text", () => {
    expect(fieldOf("cache_type_k", CACHE)).toMatchObject({ control: "choice", choices: ["f32", "f16", "q8_0"] });
    expect(fieldOf("flash_attn", FLASH)).toMatchObject({ control: "choice", choices: ["auto", "true", "false"] });
    expect(fieldOf("ram_gb", RAM)).toMatchObject({ control: "text", auto: true, numeric: true, range: "auto or 0 to 1,048,576" });
    expect(fieldOf("name", NAME)).toMatchObject({ control: "text", optional: false, range: "required" });
    expect(fieldOf("aliases", ALIASES)).toMatchObject({ control: "list", optional: true });
    expect(fieldOf("chat_template", { anyOf: [{ type: "string" }, { type: "null" }], default: null }).control).toBe("multiline");
  });
});

describe("valueOf and textOf", () => {
  it("turn typed text into what the file holds, and back", () => {
    const ram = fieldOf("ram_gb", RAM);
    expect(valueOf(ram, "auto")).toBe("auto");
    expect(valueOf(ram, "12.5")).toBe(12.5);
    expect(valueOf(ram, "lots")).toBe("lots"); // for the server to name
    expect(valueOf(fieldOf("temperature", TEMPERATURE), " ")).toBeUndefined();
    expect(valueOf(fieldOf("flash_attn", FLASH), "false")).toBe(false);
    expect(valueOf(fieldOf("aliases", ALIASES), "a, b,,")).toEqual(["a", "b"]);
    expect(textOf(["a", "b"])).toBe("a, b");
    expect(textOf(null)).toBe("");
  });

  it("says what an empty field means", () => {
    expect(defaultText(fieldOf("parallel", PARALLEL))).toBe("default: 4");
    expect(defaultText(fieldOf("temperature", TEMPERATURE))).toBe("not set");
    expect(defaultText(fieldOf("name", NAME))).toBe("");
  });
});

describe("label", () => {
  it("spells keys out for people", () => {
    expect(["gpu_layers", "cache_type_k", "max_upload_mb", "top_p", "mmproj", "flash_attn"].map(label)).toEqual([
      "GPU layers",
      "Cache type (keys)",
      "Max upload (MB)",
      "Top P",
      "Vision projector",
      "Flash attention",
    ]);
  });
});
