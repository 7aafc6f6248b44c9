/**
 * The configuration editor: config.yaml as a form per model (every key from the server's schema,
 * with its meaning and valid range), the server's own keys, or raw YAML. All three edit one text;
 * "Review" asks the server to validate it (a dry run), then shows the diff of what a save changes;
 * the server's errors land at the field (or line) they name. A save writes the file only: the
 * soft restart it offers applies it.
 */

import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { Boxes, Braces, CheckCircle2, CopyX, FilePlus2, RotateCw, Save, Server, ShieldCheck, Undo2 } from "lucide-react";
import { useMemo, useRef, useState } from "react";
import { Link, useLocation, useParams, useSearchParams } from "wouter";
import { useRestart } from "../components/shell";
import { TabNav } from "../components/TabNav";
import { Badge, Button, Card, Dialog, EmptyState, ErrorNote, PageHeader, Spinner } from "../components/ui";
import { apiFetch, ApiError, apiJson, errorOf, messageOf, post } from "../lib/api";
import { lineDiff } from "../lib/diff";
import { useServerEvent } from "../lib/events";
import { fieldsOf, type JsonSchema } from "../lib/schema";
import { toast } from "../lib/toast";
import { deleteModel, duplicateModel, lineOf, modelsOf, parse, placeOf, serverOf, setKey, type Path } from "../lib/yamlconfig";
import { ModelForm, ServerForm, type Errors } from "./configuration/ConfigForm";
import { DiffView } from "./configuration/DiffView";
import { AddModelDialog, ModelFilesReport, ModelList, type ModelCheck } from "./configuration/ModelList";
import { YamlEditor } from "./configuration/YamlEditor";

const CONFIG_KEY = ["config", "yaml"] as const;
const YAML_BODY = { method: "POST", headers: { "Content-Type": "application/yaml" } } as const;

interface Issue {
  path: string;
  message: string;
}

async function readConfig(): Promise<string> {
  const r = await apiFetch("/api/config");
  if (!r.ok) throw await errorOf(r);
  return r.text();
}

/** The server's complaints about a config: `details.errors` of an INVALID_CONFIG answer. */
function issuesOf(error: unknown): Issue[] | null {
  if (!(error instanceof ApiError) || error.code !== "INVALID_CONFIG") return null;
  const listed = (error.details as { errors?: Issue[] } | undefined)?.errors;
  return listed?.length ? listed : [{ path: "", message: error.message }];
}

export default function ConfigurationPage() {
  const client = useQueryClient();
  const { tab = "models" } = useParams<{ tab?: string }>();
  const [, navigate] = useLocation();
  const [search, setSearch] = useSearchParams();
  const saved = useQuery({ queryKey: CONFIG_KEY, queryFn: readConfig });
  const schema = useQuery({ queryKey: ["config", "schema"], queryFn: () => apiJson<JsonSchema>("/api/config/schema"), staleTime: Infinity });
  const [draft, setDraft] = useState<string | null>(null);
  const [issues, setIssues] = useState<Issue[]>([]);
  const [review, setReview] = useState<{ warnings: string[] } | null>(null);
  const [adding, setAdding] = useState(false);
  const [justSaved, setJustSaved] = useState(false);
  const [changedOnServer, setChangedOnServer] = useState(false);
  const [focusLine, setFocusLine] = useState<{ line: number; at: number } | null>(null);
  const saving = useRef(false);
  const { restart, busy: restarting } = useRestart();

  const text = draft ?? saved.data ?? "";
  const dirty = draft !== null && saved.data !== undefined && draft !== saved.data;
  const parsed = useMemo(() => parse(text), [text]);
  const models = useMemo(() => modelsOf(parsed.doc), [parsed]);
  const server = useMemo(() => serverOf(parsed.doc), [parsed]);
  const wanted = search.get("model");
  const found = wanted ? models.findIndex((m) => m.name === wanted) : 0;
  const selected = Math.min(Math.max(found, 0), Math.max(models.length - 1, 0));
  const diff = useMemo(() => (review ? lineDiff(saved.data ?? "", text) : null), [review, saved.data, text]);

  const modelFields = useMemo(() => (schema.data ? fieldsOf(schema.data, "ModelSpec") : []), [schema.data]);
  const serverFields = useMemo(() => {
    if (!schema.data) return null;
    return {
      top: fieldsOf(schema.data),
      sections: [
        { key: "memory", title: "Memory budget", fields: fieldsOf(schema.data, "MemoryBudget") },
        { key: "monitoring", title: "Monitoring", fields: fieldsOf(schema.data, "Monitoring") },
      ],
    };
  }, [schema.data]);

  // Issues by form field, problem counts by model, the rest shown above the form; lines for the YAML tab.
  const fieldErrors: Errors = {};
  const problems = new Map<number, number>();
  const general: Issue[] = [];
  for (const issue of issues) {
    const { model, key } = placeOf(issue.path);
    const onForm = model !== null ? modelFields.some((f) => f.key === key) : !!key && !!serverFields?.top.some((f) => key.split(".")[0] === f.key);
    if (onForm) fieldErrors[model !== null ? `models.${model}.${key}` : key] = issue.message;
    else general.push(issue);
    if (model !== null) problems.set(model, (problems.get(model) ?? 0) + 1);
  }
  const lineIssues = [
    ...(parsed.error?.line ? [{ line: parsed.error.line, message: parsed.error.message }] : []),
    ...issues.map((i) => ({ line: lineOf(text, i.path) ?? 0, message: i.path ? `${i.path}: ${i.message}` : i.message })).filter((i) => i.line > 0),
  ];

  const edit = (next: string, clearPath?: string) => {
    setDraft(next);
    setJustSaved(false);
    if (clearPath !== undefined) setIssues((list) => list.filter((i) => i.path !== clearPath && !i.path.startsWith(`${clearPath}.`)));
  };
  const change = (path: Path, value: unknown) => {
    try {
      edit(setKey(text, path, value), path.join("."));
    } catch (error) {
      toast(messageOf(error), "bad");
    }
  };
  const select = (i: number) => {
    const name = models[i]?.name;
    setSearch(name ? { model: String(name) } : {}, { replace: true });
  };
  const goTo = (t: string) => navigate(t === "models" ? "/configuration" : `/configuration/${t}`);

  /** Shows the server's complaints where they belong and goes to the first. */
  const complain = (error: unknown) => {
    const found = issuesOf(error);
    if (!found) {
      toast(messageOf(error), "bad");
      return;
    }
    setIssues(found);
    const first = placeOf(found[0].path);
    if (first.model !== null && models[first.model]) {
      goTo("models");
      select(first.model);
    } else if (first.key && serverFields?.top.some((f) => first.key.split(".")[0] === f.key)) goTo("server");
    else goTo("yaml");
    toast(`The server found ${found.length} problem${found.length === 1 ? "" : "s"}: nothing was saved`, "bad");
  };

  const check = useMutation({
    mutationFn: async () => {
      const r = await apiFetch("/api/config?dryRun=1", { ...YAML_BODY, body: text });
      if (!r.ok) throw await errorOf(r);
      return (await r.json()) as { warnings: string[] };
    },
    onSuccess: (r) => {
      setIssues([]);
      setReview({ warnings: r.warnings ?? [] });
    },
    onError: complain,
  });
  const save = useMutation({
    mutationFn: async () => {
      saving.current = true;
      return apiJson<{ message: string }>("/api/config", { ...YAML_BODY, body: text });
    },
    onSuccess: async () => {
      client.setQueryData(CONFIG_KEY, text);
      setDraft(null);
      setReview(null);
      setJustSaved(true);
      setChangedOnServer(false);
      toast("Saved config.yaml");
      await client.invalidateQueries({ queryKey: CONFIG_KEY });
    },
    onError: (error) => {
      setReview(null);
      complain(error);
    },
    onSettled: () => {
      saving.current = false;
    },
  });
  const files = useMutation({ mutationFn: () => post<ModelCheck>("/api/config/validate-models") });
  const dedupe = useMutation({
    mutationFn: () => post<{ removedCount: number; removed: { name: string }[] }>("/api/config/cleanup-duplicates"),
    onSuccess: (r) => {
      toast(r.removedCount ? `Removed ${r.removedCount} duplicate${r.removedCount === 1 ? "" : "s"}: ${r.removed.map((m) => m.name).join(", ")}` : "No duplicates found");
      void client.invalidateQueries({ queryKey: CONFIG_KEY });
    },
    onError: complain,
  });

  useServerEvent<{ action?: string }>("config", (event) => {
    if (event.action !== "saved" || saving.current) return;
    if (dirty) setChangedOnServer(true);
    else void client.invalidateQueries({ queryKey: CONFIG_KEY });
  });

  const discard = () => {
    setDraft(null);
    setIssues([]);
    setChangedOnServer(false);
    if (changedOnServer) void client.invalidateQueries({ queryKey: CONFIG_KEY });
  };

  const canEditForm = !parsed.error;
  const tabs = [
    { href: "/configuration", label: "Models", icon: Boxes, active: tab === "models", extra: <span className="text-xs text-ink-3 tabular-nums">{models.length}</span> },
    { href: "/configuration/server", label: "Server", icon: Server, active: tab === "server" },
    {
      href: "/configuration/yaml",
      label: "YAML",
      icon: Braces,
      active: tab === "yaml",
      extra: lineIssues.length ? <Badge tone="bad">{lineIssues.length}</Badge> : null,
    },
  ];

  return (
    <div className="mx-auto max-w-6xl space-y-4 p-4 md:p-6">
      <PageHeader
        title="Configuration"
        description="config.yaml as a form or as YAML. The server checks every change before it is saved; a restart applies it."
        actions={
          <>
            <Button icon={<ShieldCheck className="size-4" />} busy={files.isPending} onClick={() => files.mutate()}>
              Check model files
            </Button>
            <Button icon={<CopyX className="size-4" />} busy={dedupe.isPending} disabled={dirty} title={dirty ? "Save or discard your changes first" : undefined} onClick={() => dedupe.mutate()}>
              Remove duplicates
            </Button>
          </>
        }
      />

      {(dirty || changedOnServer) && (
        <div role="region" aria-label="Unsaved changes" className="sticky top-0 z-20 flex flex-wrap items-center gap-3 rounded-xl border border-brand/30 bg-brand-soft px-4 py-2.5 text-sm shadow-sm">
          <span className="min-w-0 flex-1">
            {changedOnServer ? "config.yaml changed on the server since you started editing. " : ""}
            {dirty ? "You have unsaved changes." : ""}
          </span>
          <Button size="sm" variant="ghost" icon={<Undo2 className="size-4" />} onClick={discard}>
            {changedOnServer ? "Discard and reload" : "Discard"}
          </Button>
          <Button size="sm" variant="primary" icon={<CheckCircle2 className="size-4" />} busy={check.isPending} disabled={!!parsed.error || !dirty} onClick={() => check.mutate()}>
            Review and save
          </Button>
        </div>
      )}

      {justSaved && !dirty && (
        <Card className="flex flex-wrap items-center gap-3 border-ok/30 bg-ok-soft px-4 py-3 text-sm text-ok" role="status" aria-label="Saved">
          <CheckCircle2 className="size-4" aria-hidden />
          <span className="min-w-0 flex-1">Saved. The running server keeps its old settings until a restart applies the file.</span>
          <Button size="sm" variant="secondary" icon={<RotateCw className="size-4" />} busy={restarting === "soft"} onClick={() => void restart("soft").then(() => setJustSaved(false))}>
            Soft restart now
          </Button>
        </Card>
      )}

      {files.data && <ModelFilesReport check={files.data} />}
      <ErrorNote error={files.error} />

      {general.length > 0 && (
        <div role="alert" className="space-y-1 rounded-lg border border-bad/30 bg-bad-soft px-3 py-2 text-sm text-bad">
          {general.map((i) => (
            <p key={`${i.path}:${i.message}`}>{i.path ? `${i.path}: ${i.message}` : i.message}</p>
          ))}
        </div>
      )}

      <TabNav label="Configuration views" items={tabs} />

      {saved.isPending || schema.isPending ? (
        <div className="flex items-center gap-2 text-sm text-ink-3">
          <Spinner /> Loading the configuration…
        </div>
      ) : saved.error || schema.error ? (
        <ErrorNote error={saved.error ?? schema.error} />
      ) : tab === "yaml" || !canEditForm ? (
        <Card className="overflow-hidden" aria-label="config.yaml editor">
          {!canEditForm && tab !== "yaml" && (
            <p className="border-b border-line px-4 py-2 text-sm text-warn">The form needs YAML that parses: fix it here first.</p>
          )}
          <YamlEditor value={text} onChange={(next) => edit(next)} issues={lineIssues} focusLine={focusLine} />
          {lineIssues.length > 0 && (
            <ul className="space-y-1 border-t border-line px-4 py-3 text-sm" aria-label="Problems">
              {lineIssues.map((i) => (
                <li key={`${i.line}:${i.message}`}>
                  <button type="button" className="text-left text-bad hover:underline" onClick={() => setFocusLine({ line: i.line, at: Date.now() })}>
                    <span className="font-mono text-xs">line {i.line}</span> {i.message}
                  </button>
                </li>
              ))}
            </ul>
          )}
        </Card>
      ) : tab === "server" && serverFields ? (
        <ServerForm top={serverFields.top} sections={serverFields.sections} values={server} errors={fieldErrors} onChange={change} />
      ) : models.length === 0 ? (
        <EmptyState icon={<Boxes className="size-8" />} title="No models in config.yaml">
          <div className="flex flex-col items-center gap-3">
            <span>
              Add one from a file, or let <Link href="/setup" className="text-brand underline">Setup</Link> find and configure every model in a folder.
            </span>
            <Button variant="primary" icon={<FilePlus2 className="size-4" />} disabled={dirty} onClick={() => setAdding(true)}>
              Add model
            </Button>
          </div>
        </EmptyState>
      ) : (
        <div className="grid gap-4 lg:grid-cols-[15rem_minmax(0,1fr)]">
          <ModelList models={models} selected={selected} onSelect={select} problems={problems} onAdd={() => setAdding(true)} canAdd={!dirty} />
          <ModelForm
            key={selected}
            index={selected}
            entry={models[selected] ?? {}}
            fields={modelFields}
            errors={fieldErrors}
            onChange={(path, value) => {
              change(path, value);
              if (path[2] === "name" && typeof value === "string") setSearch({ model: value }, { replace: true });
            }}
            onDuplicate={() => {
              const copy = duplicateModel(text, selected);
              edit(copy.text);
              setSearch({ model: copy.name }, { replace: true });
            }}
            onDelete={() => {
              edit(deleteModel(text, selected), `models.${selected}`);
              select(Math.max(0, selected - 1));
            }}
          />
        </div>
      )}

      <Dialog open={review !== null} onClose={() => setReview(null)} title="Review the changes" wide>
        {diff && (
          <div className="space-y-4">
            <p className="text-sm text-ink-2">
              The server checked this configuration: it is valid.{" "}
              <span className="text-ok tabular-nums">+{diff.added}</span> <span className="text-bad tabular-nums">−{diff.removed}</span> lines.
            </p>
            <DiffView diff={diff} />
            {review && review.warnings.length > 0 && (
              <ul className="space-y-1 rounded-lg bg-warn-soft px-3 py-2 text-sm text-warn" aria-label="Warnings">
                {review.warnings.map((w) => (
                  <li key={w}>{w}</li>
                ))}
              </ul>
            )}
            <div className="flex justify-end gap-2">
              <Button variant="ghost" onClick={() => setReview(null)}>
                Keep editing
              </Button>
              <Button variant="primary" icon={<Save className="size-4" />} busy={save.isPending} onClick={() => save.mutate()}>
                Save config.yaml
              </Button>
            </div>
          </div>
        )}
      </Dialog>

      <AddModelDialog
        open={adding}
        onClose={() => setAdding(false)}
        onAdded={(name) => {
          setAdding(false);
          toast(`Added ${name}: restart to serve it`);
          void client.invalidateQueries({ queryKey: CONFIG_KEY }).then(() => setSearch({ model: name }, { replace: true }));
        }}
      />
    </div>
  );
}
