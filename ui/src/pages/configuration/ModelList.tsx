/** The editor's list of configured models, the dialog that adds one from a file, and the report
 * of "Check model files" (which entries point at a missing or unreadable file). */

import { useMutation } from "@tanstack/react-query";
import { FilePlus2 } from "lucide-react";
import { useState } from "react";
import { Badge, Button, Card, cx, Dialog, ErrorNote, Field, Input } from "../../components/ui";
import { ApiError, post } from "../../lib/api";

export interface ModelCheck {
  valid: boolean;
  total: number;
  validCount: number;
  missing: string[];
  unreadable: string[];
  models: { name: string; path: string; error?: string | null }[];
}

export function AddModelDialog({ open, onClose, onAdded }: { open: boolean; onClose: () => void; onAdded: (name: string) => void }) {
  const [path, setPath] = useState("");
  const [name, setName] = useState("");
  const add = useMutation({
    mutationFn: () => post<{ model: { name: string } }>("/api/config/add-model", { modelPath: path.trim(), modelName: name.trim() || undefined }),
    onSuccess: (r) => {
      setPath("");
      setName("");
      onAdded(r.model.name);
    },
  });
  return (
    <Dialog open={open} onClose={onClose} title="Add a model from a file">
      <form
        className="space-y-4"
        onSubmit={(e) => {
          e.preventDefault();
          if (path.trim()) add.mutate();
        }}
      >
        <p className="text-sm text-ink-2">
          The server reads the file, picks settings that fit this machine and adds it to config.yaml at once.
        </p>
        <Field label="File or folder on the server" error={add.error instanceof ApiError && add.error.param === "modelPath" ? add.error.message : null}>
          {(props) => (
            <Input {...props} value={path} onChange={(e) => setPath(e.target.value)} placeholder="/models/qwen2.5-0.5b-instruct-q4_k_m.gguf" className="font-mono text-[13px]" autoFocus />
          )}
        </Field>
        <Field label="Name (optional)" hint="What requests call it; by default made from the file name.">
          {(props) => <Input {...props} value={name} onChange={(e) => setName(e.target.value)} />}
        </Field>
        {!(add.error instanceof ApiError && add.error.param === "modelPath") && <ErrorNote error={add.error} />}
        <div className="flex justify-end gap-2">
          <Button variant="ghost" onClick={onClose}>
            Cancel
          </Button>
          <Button type="submit" variant="primary" busy={add.isPending} disabled={!path.trim()} icon={<FilePlus2 className="size-4" />}>
            Add model
          </Button>
        </div>
      </form>
    </Dialog>
  );
}

export function ModelList({
  models,
  selected,
  onSelect,
  problems,
  onAdd,
  canAdd,
}: {
  models: Record<string, unknown>[];
  selected: number;
  onSelect: (i: number) => void;
  problems: Map<number, number>;
  onAdd: () => void;
  canAdd: boolean;
}) {
  return (
    <Card className="p-2 lg:sticky lg:top-2 lg:self-start" aria-label="Configured models">
      <ul className="max-h-[50vh] space-y-0.5 overflow-auto lg:max-h-[70vh]">
        {models.map((m, i) => (
          <li key={i}>
            <button
              type="button"
              aria-current={i === selected ? "true" : undefined}
              onClick={() => onSelect(i)}
              className={cx(
                "flex w-full items-center gap-2 rounded-lg px-2.5 py-2 text-left text-sm transition",
                i === selected ? "bg-brand-soft text-brand" : "hover:bg-surface-2",
              )}
            >
              <span className="min-w-0 flex-1 truncate font-medium">{String(m.name ?? `models.${i}`)}</span>
              {typeof m.type === "string" && <span className="text-xs text-ink-3">{m.type}</span>}
              {problems.get(i) ? <Badge tone="bad">{problems.get(i)}</Badge> : null}
            </button>
          </li>
        ))}
      </ul>
      <div className="mt-2 border-t border-line pt-2">
        <Button size="sm" variant="ghost" className="w-full" icon={<FilePlus2 className="size-4" />} disabled={!canAdd} title={canAdd ? undefined : "Save or discard your changes first"} onClick={onAdd}>
          Add model
        </Button>
      </div>
    </Card>
  );
}

export function ModelFilesReport({ check }: { check: ModelCheck }) {
  return (
    <Card className="space-y-1 p-4 text-sm" aria-label="Model files">
      <Badge tone={check.valid ? "ok" : "bad"}>
        {check.validCount} of {check.total} model files usable
      </Badge>
      {check.models
        .filter((m) => check.missing.includes(m.name) || check.unreadable.includes(m.name))
        .map((m) => (
          <p key={m.name} className="text-bad">
            <span className="font-medium">{m.name}</span>: {check.missing.includes(m.name) ? "missing" : (m.error ?? "cannot be loaded")}{" "}
            <code className="font-mono text-xs">{m.path}</code>
          </p>
        ))}
    </Card>
  );
}
