/** The form side of the editor: one model's keys, grouped, or the server's own keys. */

import { Copy, Trash2 } from "lucide-react";
import { Badge, Button, Card } from "../../components/ui";
import type { FieldSpec } from "../../lib/schema";
import type { Entry, Path } from "../../lib/yamlconfig";
import { FieldControl } from "./FieldControl";

/** Keys the form shows together; keys it does not list (a newer server's) land in "Other". */
const MODEL_GROUPS: { title: string; keys: string[] }[] = [
  { title: "Model", keys: ["name", "model", "type", "aliases", "mmproj", "backend", "embedding"] },
  {
    title: "Memory and speed",
    keys: ["context_length", "gpu_layers", "parallel", "batch_size", "threads", "cache_type_k", "cache_type_v", "flash_attn", "use_mmap"],
  },
  { title: "Sampling defaults", keys: ["temperature", "top_p", "top_k", "min_p", "repeat_penalty", "max_tokens"] },
  { title: "Lifecycle", keys: ["ttl", "pinned", "preload"] },
  { title: "Chat template", keys: ["chat_template"] },
];

export type Errors = Record<string, string>;

function Group({
  title,
  fields,
  entry,
  errors,
  prefix,
  onChange,
}: {
  title: string;
  fields: FieldSpec[];
  entry: Entry;
  errors: Errors;
  prefix: Path;
  onChange: (path: Path, value: unknown) => void;
}) {
  if (fields.length === 0) return null;
  return (
    <fieldset className="border-t border-line pt-4 first:border-t-0 first:pt-0">
      <legend className="mb-3 text-sm font-semibold">{title}</legend>
      <div className="grid gap-x-5 gap-y-4 sm:grid-cols-2">
        {fields.map((f) => {
          const path = [...prefix, f.key];
          const key = path.join(".");
          return (
            <FieldControl
              key={f.key}
              field={f}
              path={key}
              value={entry[f.key]}
              error={errors[key]}
              onChange={(value) => onChange(path, value)}
            />
          );
        })}
      </div>
    </fieldset>
  );
}

export function ModelForm({
  index,
  entry,
  fields,
  errors,
  onChange,
  onDuplicate,
  onDelete,
}: {
  index: number;
  entry: Entry;
  fields: FieldSpec[];
  errors: Errors;
  onChange: (path: Path, value: unknown) => void;
  onDuplicate: () => void;
  onDelete: () => void;
}) {
  const listed = new Set(MODEL_GROUPS.flatMap((g) => g.keys));
  const groups = [
    ...MODEL_GROUPS.map((g) => ({ title: g.title, fields: g.keys.map((k) => fields.find((f) => f.key === k)).filter((f): f is FieldSpec => !!f) })),
    { title: "Other", fields: fields.filter((f) => !listed.has(f.key)) },
  ];
  const unknown = Object.keys(entry).filter((k) => !fields.some((f) => f.key === k));
  const name = String(entry.name ?? `models.${index}`);
  return (
    <Card className="p-5" aria-label={`Model ${name} settings`}>
      <div className="mb-4 flex flex-wrap items-center justify-between gap-2">
        <h2 className="min-w-0 truncate text-lg font-semibold" title={name}>
          {name}
        </h2>
        <div className="flex gap-2">
          <Button size="sm" icon={<Copy className="size-3.5" />} onClick={onDuplicate}>
            Duplicate
          </Button>
          <Button size="sm" variant="danger" icon={<Trash2 className="size-3.5" />} onClick={onDelete}>
            Delete
          </Button>
        </div>
      </div>
      {unknown.length > 0 && (
        <p className="mb-4 rounded-lg bg-warn-soft px-3 py-2 text-sm text-warn">
          Keys this server does not know: {unknown.map((k) => <Badge key={k} tone="warn">{k}</Badge>)} Remove them in the YAML tab.
        </p>
      )}
      <div className="space-y-5">
        {groups.map((g) => (
          <Group key={g.title} {...g} entry={entry} errors={errors} prefix={["models", index]} onChange={onChange} />
        ))}
      </div>
    </Card>
  );
}

/** The server's keys (address, key, limits) and its memory and monitoring sections. */
export function ServerForm({
  top,
  sections,
  values,
  errors,
  onChange,
}: {
  top: FieldSpec[];
  sections: { key: string; title: string; fields: FieldSpec[] }[];
  values: Entry;
  errors: Errors;
  onChange: (path: Path, value: unknown) => void;
}) {
  const plain = top.filter((f) => f.key !== "models" && !sections.some((s) => s.key === f.key));
  return (
    <Card className="space-y-5 p-5" aria-label="Server settings">
      <Group title="Server" fields={plain} entry={values} errors={errors} prefix={[]} onChange={onChange} />
      {sections.map((s) => (
        <Group
          key={s.key}
          title={s.title}
          fields={s.fields}
          entry={(values[s.key] as Entry | undefined) ?? {}}
          errors={errors}
          prefix={[s.key]}
          onChange={onChange}
        />
      ))}
    </Card>
  );
}
