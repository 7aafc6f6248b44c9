/**
 * The config schema (`GET /api/config/schema`, pydantic's JSON schema of config.yaml with each
 * key's meaning) turned into form fields: which control, its choices, its valid range in words,
 * and how typed text becomes the value written to the file.
 */

export interface JsonSchema {
  type?: string;
  enum?: unknown[];
  const?: unknown;
  anyOf?: JsonSchema[];
  items?: JsonSchema;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  exclusiveMaximum?: number;
  minLength?: number;
  default?: unknown;
  description?: string;
  title?: string;
  properties?: Record<string, JsonSchema>;
  $ref?: string;
  $defs?: Record<string, JsonSchema>;
}

export type Control = "choice" | "switch" | "integer" | "number" | "text" | "list" | "multiline";

export interface FieldSpec {
  key: string;
  label: string;
  control: Control;
  description: string;
  /** For choice: the values offered ("" stands for "not set"). */
  choices: string[];
  /** May be left empty: the key is then removed and the default applies. */
  optional: boolean;
  default: unknown;
  min?: number;
  max?: number;
  /** "0 to 2", "at least 1", "true, false or auto": what the server accepts, in words. */
  range: string;
  /** Also accepts "auto" (numbers and switches that can be left to detection). */
  auto: boolean;
  /** Typed text is read as a number (also in a text control that takes "auto" too). */
  numeric: boolean;
}

const LONG_TEXT = new Set(["chat_template"]);

function fmt(n: number): string {
  return Math.abs(n) >= 10_000 ? n.toLocaleString("en-US") : String(n);
}

function rangeOf(s: JsonSchema): string {
  const lo = s.minimum ?? s.exclusiveMinimum;
  const hi = s.maximum ?? s.exclusiveMaximum;
  const above = s.exclusiveMinimum !== undefined ? "above" : "at least";
  if (lo !== undefined && hi !== undefined) return `${s.exclusiveMinimum !== undefined ? "above " : ""}${fmt(lo)} to ${fmt(hi)}`;
  if (lo !== undefined) return `${above} ${fmt(lo)}`;
  if (hi !== undefined) return `at most ${fmt(hi)}`;
  return "";
}

/** Words a key is written with that read better spelled out or in capitals. */
const WORDS: Record<string, string> = {
  gpu: "GPU",
  ttl: "TTL",
  api: "API",
  cors: "CORS",
  mb: "(MB)",
  gb: "(GB)",
  mmproj: "Vision projector",
  k: "(keys)",
  v: "(values)",
  p: "P",
  attn: "attention",
  mmap: "mmap",
  dir: "folder",
};

export function label(key: string): string {
  const words = key.split("_").map((w) => WORDS[w] ?? w);
  const text = words.join(" ");
  return text.charAt(0).toUpperCase() + text.slice(1);
}

/** One key's form field. */
export function fieldOf(key: string, schema: JsonSchema): FieldSpec {
  const variants = schema.anyOf ?? [schema];
  const auto = variants.some((v) => v.const === "auto");
  const main = variants.find((v) => v.type !== "null" && v.const === undefined) ?? {};
  // Left empty, the key is removed: fine where null or a default (or an empty list) is what absent means.
  const optional = variants.some((v) => v.type === "null") || "default" in schema || main.type === "array";
  const base: FieldSpec = {
    key,
    label: label(key),
    control: "text",
    description: schema.description ?? "",
    choices: [],
    optional,
    default: schema.default,
    range: "",
    auto,
    numeric: false,
  };
  if (main.enum) {
    const choices = main.enum.map(String);
    return { ...base, control: "choice", choices, range: "" }; // the list shows the choices
  }
  switch (main.type) {
    case "boolean":
      if (auto) return { ...base, control: "choice", choices: ["auto", "true", "false"], range: "" };
      return { ...base, control: "switch", range: "true or false" };
    case "integer":
    case "number": {
      const range = rangeOf(main);
      return {
        ...base,
        control: auto ? "text" : (main.type as Control),
        numeric: true,
        min: main.minimum ?? main.exclusiveMinimum,
        max: main.maximum ?? main.exclusiveMaximum,
        range: auto ? `auto or ${range || "a number"}` : range,
      };
    }
    case "array":
      return { ...base, control: "list", range: "comma-separated" };
    default:
      return { ...base, control: LONG_TEXT.has(key) ? "multiline" : "text", range: main.minLength ? "required" : "" };
  }
}

/** The fields of one section of the schema (`ModelSpec`, `MemoryBudget`, or the top level). */
export function fieldsOf(schema: JsonSchema, section?: string): FieldSpec[] {
  const s = section ? schema.$defs?.[section] : schema;
  return Object.entries(s?.properties ?? {}).map(([key, prop]) => fieldOf(key, prop));
}

/** What a control's text means for the file: undefined removes the key (the default applies);
 * text that is not a valid value is passed on as typed, for the server to name the problem. */
export function valueOf(field: FieldSpec, raw: string | boolean): unknown {
  if (typeof raw === "boolean") return raw;
  const text = raw.trim();
  if (text === "") return undefined;
  if (field.auto && text === "auto") return "auto";
  if (field.control === "choice" && (text === "true" || text === "false")) return text === "true";
  if (field.control === "list") return text.split(",").map((s) => s.trim()).filter(Boolean);
  if (field.numeric) {
    const n = Number(text);
    return Number.isFinite(n) ? n : text;
  }
  if (field.control === "multiline") return raw; // a template keeps its spacing
  return text;
}

/** The text a control shows for a value from the file. */
export function textOf(value: unknown): string {
  if (value === undefined || value === null) return "";
  if (Array.isArray(value)) return value.join(", ");
  return String(value);
}

/** The default in words, for the placeholder of an empty field. */
export function defaultText(field: FieldSpec): string {
  if (field.default === undefined || field.default === null) return field.optional ? "not set" : "";
  if (Array.isArray(field.default)) return field.default.length ? field.default.join(", ") : "none";
  return `default: ${String(field.default)}`;
}
