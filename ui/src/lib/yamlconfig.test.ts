import { describe, expect, it } from "vitest";
import { deleteModel, duplicateModel, freeName, lineOf, modelsOf, parse, placeOf, serverOf, setKey } from "./yamlconfig";

// What PyYAML writes (the setup's own files): lists at the key's indent.
const WRITTEN = "models:\n- name: chat\n  model: /m/chat.gguf\n  context_length: 256\n  aliases:\n  - c\n- name: embed\n  model: /m/embed.gguf\n";
// What a person writes: comments, indented lists, flow lists, quotes, a block scalar.
const HAND = `# my models
port: 5800
memory:
  ram_gb: 8 # leave room for the browser
models:
  - name: tiny
    model: "../models/tiny.gguf"
    aliases: [t]
    temperature: 0.7

  - name: other
    model: other.gguf
    chat_template: |
      {{ messages }}
`;

describe("setKey", () => {
  it("changes one line of a file setup wrote, in its style", () => {
    const out = setKey(WRITTEN, ["models", 0, "context_length"], 512);
    expect(out).toBe(WRITTEN.replace("context_length: 256", "context_length: 512"));
    expect(setKey(WRITTEN, ["models", 1, "temperature"], 0.2)).toBe(`${WRITTEN}  temperature: 0.2\n`);
  });

  it("keeps comments, quoting and a hand-written layout", () => {
    const out = setKey(HAND, ["models", 0, "temperature"], 0.5);
    expect(out.split("\n").filter((l, i) => l !== HAND.split("\n")[i])).toEqual(["    temperature: 0.5"]);
    expect(out).toContain("# leave room for the browser");
    expect(out).toContain('model: "../models/tiny.gguf"');
    expect(out).toContain("aliases: [t]");
  });

  it("removes a key left empty, and a section left empty with it", () => {
    expect(setKey(HAND, ["models", 0, "temperature"], undefined)).not.toContain("temperature");
    const out = setKey(HAND, ["memory", "ram_gb"], undefined);
    expect(out).not.toContain("memory");
    expect(setKey(WRITTEN, ["models", 0, "nothing"], undefined)).toBe(WRITTEN);
  });

  it("starts an empty file", () => {
    expect(modelsOf(parse(setKey("", ["port"], 5801)).doc)).toEqual([]);
  });
});

describe("models", () => {
  it("reads models and the server keys apart", () => {
    const { doc } = parse(HAND);
    expect(modelsOf(doc).map((m) => m.name)).toEqual(["tiny", "other"]);
    expect(serverOf(doc)).toEqual({ port: 5800, memory: { ram_gb: 8 } });
  });

  it("duplicates under a free name without the aliases, right after the original", () => {
    const { text, name } = duplicateModel(HAND, 0);
    expect(name).toBe("tiny-copy");
    const models = modelsOf(parse(text).doc);
    expect(models.map((m) => m.name)).toEqual(["tiny", "tiny-copy", "other"]);
    expect(models[1]).toEqual({ name: "tiny-copy", model: "../models/tiny.gguf", temperature: 0.7 });
    expect(duplicateModel(text, 0).name).toBe("tiny-copy-2");
  });

  it("deletes one model", () => {
    expect(modelsOf(parse(deleteModel(WRITTEN, 0)).doc).map((m) => m.name)).toEqual(["embed"]);
  });

  it("finds free names across names and aliases", () => {
    expect(freeName("c", [{ name: "chat", aliases: ["c"] }])).toBe("c-2");
    expect(freeName("x", [])).toBe("x");
  });
});

describe("errors", () => {
  it("says where the YAML breaks", () => {
    expect(parse("models:\n  - name: a\n   bad: [\n").error?.line).toBeGreaterThan(1);
    expect(parse("- a list\n").error?.message).toMatch(/mapping/);
    expect(parse(HAND).error).toBeNull();
  });

  it("finds the line of a key path, or of the nearest key that exists", () => {
    expect(lineOf(HAND, "models.0.temperature")).toBe(9);
    expect(lineOf(HAND, "models.1.model")).toBe(12);
    expect(lineOf(HAND, "models.1.paralel")).toBe(11); // not in the file: the model's line
    expect(lineOf(HAND, "memory.ram_gb")).toBe(4);
    expect(lineOf(HAND, "")).toBeNull();
  });

  it("places a server error at the form field it names", () => {
    expect(placeOf("models.2.temperature")).toEqual({ model: 2, key: "temperature" });
    expect(placeOf("models.0.aliases.1")).toEqual({ model: 0, key: "aliases" });
    expect(placeOf("models")).toEqual({ model: null, key: "" });
    expect(placeOf("memory.ram_gb")).toEqual({ model: null, key: "memory.ram_gb" });
    expect(placeOf("port")).toEqual({ model: null, key: "port" });
  });
});
