/**
 * config.yaml as the editor holds it: one YAML text, which the form and the raw tab both edit.
 *
 * The form changes the text through the `yaml` library's document model, which keeps comments,
 * key order and quoting, and writes the file back in the style it came in (PyYAML's unindented
 * `- name:` lists or indented ones), so a one-field change is a one-line diff. The server's
 * validation errors name key paths (`models.1.temperature`); `lineOf` finds that key's line.
 */

import { isMap, isSeq, LineCounter, parseDocument, type Document, type ToStringOptions } from "yaml";

export type Path = (string | number)[];
export type Entry = Record<string, unknown>;

export interface Parsed {
  doc: Document | null;
  /** The first syntax error, with its 1-based line. */
  error: { message: string; line: number | null } | null;
}

export function parse(text: string): Parsed {
  const counter = new LineCounter();
  const doc = parseDocument(text, { lineCounter: counter, prettyErrors: false });
  const first = doc.errors[0];
  if (first) {
    const line = first.pos ? counter.linePos(first.pos[0]).line : null;
    return { doc: null, error: { message: first.message.split("\n")[0], line } };
  }
  const root = doc.contents;
  if (root !== null && !isMap(root)) return { doc: null, error: { message: "the top level must be a mapping of keys", line: 1 } };
  return { doc, error: null };
}

/** How the text writes lists under a key: PyYAML (what setup writes) puts `- ` at the key's indent. */
export function styleOf(text: string): ToStringOptions {
  return { indentSeq: !/^[^\s#][^\n]*:[ \t]*\n- /m.test(text), lineWidth: 0, flowCollectionPadding: false };
}

function write(doc: Document, before: string): string {
  return doc.toString(styleOf(before));
}

/** The models as plain objects, in file order ([] when there are none). */
export function modelsOf(doc: Document | null): Entry[] {
  const models = doc?.get("models");
  return isSeq(models) ? models.items.map((item) => (isMap(item) ? (item.toJSON() as Entry) : {})) : [];
}

/** The top-level keys but `models`, as plain objects (sections nested). */
export function serverOf(doc: Document | null): Entry {
  const all = (doc?.toJSON() ?? {}) as Entry;
  const { models: _models, ...rest } = all ?? {};
  return rest;
}

function docOf(text: string): Document {
  const { doc, error } = parse(text);
  if (!doc) throw new Error(error?.message ?? "the YAML does not parse");
  if (doc.contents === null) return parseDocument("models: []\n");
  return doc;
}

/** The text with the key at `path` set to `value`, or removed when `value` is undefined. */
export function setKey(text: string, path: Path, value: unknown): string {
  const doc = docOf(text);
  if (value === undefined) {
    if (!doc.hasIn(path)) return text;
    doc.deleteIn(path);
    // A section left empty (`memory: {}`) goes too: it means the defaults, as absent does.
    const parent = path.slice(0, -1);
    const section = parent.length ? doc.getIn(parent) : null;
    if (parent.length === 1 && isMap(section) && section.items.length === 0) doc.deleteIn(parent);
  } else {
    doc.setIn(path, value);
  }
  return write(doc, text);
}

/** A name no model has as a name or alias: `base`, else `base-2`, `base-3`… */
export function freeName(base: string, models: Entry[]): string {
  const taken = new Set(models.flatMap((m) => [String(m.name ?? ""), ...((m.aliases as string[] | undefined) ?? [])]));
  if (!taken.has(base)) return base;
  for (let n = 2; ; n++) if (!taken.has(`${base}-${n}`)) return `${base}-${n}`;
}

export function deleteModel(text: string, index: number): string {
  const doc = docOf(text);
  doc.deleteIn(["models", index]);
  return write(doc, text);
}

/** A copy of model `index` right after it, under a free name and without aliases (they must be unique). */
export function duplicateModel(text: string, index: number): { text: string; name: string } {
  const doc = docOf(text);
  const models = doc.get("models");
  if (!isSeq(models) || !isMap(models.items[index])) throw new Error(`there is no model ${index}`);
  const copy = models.items[index].clone();
  if (!isMap(copy)) throw new Error("cannot copy this model");
  const name = freeName(`${String(copy.get("name") ?? "model")}-copy`, modelsOf(doc));
  copy.set("name", name);
  copy.delete("aliases");
  copy.commentBefore = null;
  models.items.splice(index + 1, 0, copy);
  return { text: write(doc, text), name };
}

/** The 1-based line of the key at `path` (a server error's `models.0.temperature`), or of the
 * nearest enclosing key that exists; null when nothing matches. */
export function lineOf(text: string, path: string): number | null {
  const counter = new LineCounter();
  const doc = parseDocument(text, { lineCounter: counter, keepSourceTokens: false });
  if (doc.errors.length) return null;
  const parts: Path = path ? path.split(".").map((p) => (/^\d+$/.test(p) ? Number(p) : p)) : [];
  for (let n = parts.length; n > 0; n--) {
    const at = parts.slice(0, n);
    const parent = doc.getIn(at.slice(0, -1), true);
    const last = at[at.length - 1];
    let range: [number, number, number] | null | undefined = null;
    if (isMap(parent)) {
      const pair = parent.items.find((p) => (p.key as { value?: unknown })?.value === last);
      range = (pair?.key as { range?: [number, number, number] } | undefined)?.range;
    } else if (isSeq(parent) && typeof last === "number") {
      range = (parent.items[last] as { range?: [number, number, number] } | undefined)?.range;
    }
    if (range) return counter.linePos(range[0]).line;
  }
  return null;
}

/** Splits a server error path into the form's place for it: which model (or the server section) and which key. */
export function placeOf(path: string): { model: number | null; key: string } {
  const parts = path.split(".");
  if (parts[0] === "models" && parts.length >= 3 && /^\d+$/.test(parts[1])) return { model: Number(parts[1]), key: parts[2] };
  if (parts[0] === "models") return { model: null, key: "" };
  if ((parts[0] === "memory" || parts[0] === "monitoring") && parts.length >= 2) return { model: null, key: `${parts[0]}.${parts[1]}` };
  return { model: null, key: parts[0] };
}
