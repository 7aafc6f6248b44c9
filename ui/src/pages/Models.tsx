/** Every configured model with its live state, facts and memory; load, unload, chat. */

import { AlertTriangle, Boxes, Info, MessageSquare, Play, Power, PowerOff, Search } from "lucide-react";
import { useEffect, useMemo, useState } from "react";
import { Link, useLocation } from "wouter";
import { Badge, Button, Card, cx, EmptyState, ErrorNote, Input, Meter, PageHeader, Spinner, type Tone } from "../components/ui";
import { messageOf } from "../lib/api";
import { formatBytes, formatTokens } from "../lib/format";
import { useModelActions, useModelStates } from "../lib/live";
import { toast } from "../lib/toast";
import { OFFERED } from "./setup/wizard";
import { TYPE_LABELS, type Memory, type ModelInfo, type ModelState } from "../lib/types";

const STATE: Record<ModelState, { label: string; tone: Tone }> = {
  loaded: { label: "Loaded", tone: "ok" },
  loading: { label: "Loading", tone: "warn" },
  unloading: { label: "Unloading", tone: "warn" },
  unloaded: { label: "Unloaded", tone: "neutral" },
  failed: { label: "Failed", tone: "bad" },
};

/** Where each kind of model is tried out in the playground. */
export const PLAYGROUND_TAB: Record<string, string> = {
  llm: "/chat",
  embedding: "/chat/embeddings",
  reranker: "/chat/rerank",
  tts: "/chat/speech",
  stt: "/chat/transcribe",
};

const SEGMENT_TONES = ["bg-brand", "bg-info", "bg-ok", "bg-warn", "bg-bad"];

function StateBadge({ state, progress }: { state: ModelState; progress?: number | null }) {
  const { label, tone } = STATE[state] ?? STATE.unloaded;
  const busy = state === "loading" || state === "unloading";
  return (
    <Badge tone={tone}>
      {busy ? (
        <Spinner className="size-3" />
      ) : (
        <span className={cx("size-1.5 rounded-full", state === "loaded" ? "bg-ok" : state === "failed" ? "bg-bad" : "bg-ink-3")} />
      )}
      {label}
      {state === "loading" && progress != null && <span className="tabular-nums">{Math.round(progress * 100)}%</span>}
    </Badge>
  );
}

/** Why a model left memory, in words, when it was not the user's own unload. */
export function unloadNote(model: ModelInfo): string | null {
  if (model.state === "unloading" && model.evictedBy) return `Evicting ${model.reason ?? `to make room for ${model.evictedBy}`}`;
  if (model.state !== "unloaded" || !model.reason || model.reason === "requested") return null;
  return `Unloaded: ${model.reason}`;
}

function Fact({ label, value }: { label: string; value: React.ReactNode }) {
  return (
    <div className="min-w-0">
      <dt className="text-[11px] font-medium tracking-wide text-ink-3 uppercase">{label}</dt>
      <dd className="truncate text-sm font-medium tabular-nums">{value}</dd>
    </div>
  );
}

function gpuLayers(model: ModelInfo): string {
  if (model.gpu_layers == null) return "—";
  if (model.gpu_layers < 0) return "all";
  return String(model.gpu_layers);
}

function memoryLine(memory: Memory | null): string {
  if (!memory) return "no estimate";
  const parts = [`${formatBytes(memory.ram_bytes)} RAM`];
  if (memory.vram_bytes > 0) parts.unshift(`${formatBytes(memory.vram_bytes)} VRAM`);
  return parts.join(" + ");
}

function ModelCard({ model, budget }: { model: ModelInfo; budget: Memory | null }) {
  const { load, unload } = useModelActions();
  const busy = (load.isPending && load.variables === model.id) || (unload.isPending && unload.variables === model.id);
  const onVram = (model.memory?.vram_bytes ?? 0) > 0;
  const budgetBytes = onVram ? budget?.vram_bytes ?? 0 : budget?.ram_bytes ?? 0;
  const cost = onVram ? model.memory?.vram_bytes ?? 0 : model.memory?.ram_bytes ?? 0;
  const share = budgetBytes > 0 ? (cost / budgetBytes) * 100 : 0;
  const tab = PLAYGROUND_TAB[model.type] ?? "/chat";
  const note = unloadNote(model);

  const act = async (action: "load" | "unload") => {
    try {
      await (action === "load" ? load : unload).mutateAsync(model.id);
      toast(action === "load" ? `${model.id} loaded` : `${model.id} unloaded`);
    } catch (error) {
      toast(`${action === "load" ? "Loading" : "Unloading"} ${model.id} failed: ${messageOf(error)}`, "bad");
    }
  };

  return (
    <Card
      className="flex flex-col p-4"
      data-model={model.id}
      data-state={model.state}
      data-progress={model.state === "loading" && model.progress != null ? Math.round(model.progress * 100) : undefined}
      aria-label={`Model ${model.id}`}
    >
      <div className="flex items-start gap-3">
        <div className="min-w-0 flex-1">
          <div className="flex flex-wrap items-center gap-2">
            <h2 className="truncate text-[15px] font-semibold" title={model.id}>
              {model.id}
            </h2>
            <StateBadge state={model.state} progress={model.progress} />
            {model.in_flight > 0 && (
              <Badge tone="info" className="tabular-nums">
                {model.in_flight} in flight
              </Badge>
            )}
          </div>
          <div className="mt-1 flex flex-wrap items-center gap-1.5">
            <Badge tone="brand">{TYPE_LABELS[model.type] ?? model.type}</Badge>
            {model.aliases.map((alias) => (
              <span key={alias} className="rounded-md bg-surface-2 px-1.5 py-0.5 font-mono text-[11px] text-ink-2">
                {alias}
              </span>
            ))}
          </div>
        </div>
      </div>

      {model.file && (
        <p className="mt-3 truncate font-mono text-xs text-ink-3" title={model.file}>
          {model.file}
        </p>
      )}

      <dl className="mt-3 grid grid-cols-3 gap-x-3 gap-y-2.5">
        <Fact label="Size" value={formatBytes(model.size_bytes)} />
        <Fact label="Quant" value={model.quantization ?? "—"} />
        <Fact label="Context" value={model.context_length ? formatTokens(model.context_length) : "—"} />
        <Fact label="GPU layers" value={gpuLayers(model)} />
        <Fact label="Parallel" value={model.parallel ?? "—"} />
        <Fact label="In flight" value={model.in_flight} />
      </dl>

      <div className="mt-3">
        <div className="mb-1 flex items-baseline justify-between gap-2 text-xs">
          <span className="text-ink-2">
            Memory: <span className="font-medium text-ink">{memoryLine(model.memory)}</span>
          </span>
          {budgetBytes > 0 && (
            <span className="text-ink-3 tabular-nums">
              {share < 0.1 && share > 0 ? "<0.1" : share.toFixed(share < 10 ? 1 : 0)}% of {formatBytes(budgetBytes)}{" "}
              {onVram ? "VRAM" : "RAM"} budget
            </span>
          )}
        </div>
        <Meter
          label={`${model.id} memory estimate against the budget`}
          max={budgetBytes}
          segments={[{ value: cost, tone: model.state === "loaded" ? "bg-brand" : "bg-ink-3/40" }]}
        />
      </div>

      {model.state === "loading" && model.progress != null && (
        <Meter
          label={`${model.id} load progress`}
          max={1}
          className="mt-3 h-1.5"
          segments={[{ value: model.progress, tone: "bg-warn" }]}
        />
      )}

      {note && (
        <p className="mt-3 flex gap-2 rounded-lg bg-surface-2 px-3 py-2 text-xs text-ink-2" data-note="unload">
          <Info className="mt-0.5 size-3.5 shrink-0" aria-hidden />
          <span className="break-words">{note}</span>
        </p>
      )}

      {(model.state === "failed" || model.state === "unloaded") && model.error && (
        <p className="mt-3 flex gap-2 rounded-lg bg-bad-soft px-3 py-2 text-xs text-bad">
          <AlertTriangle className="mt-0.5 size-3.5 shrink-0" aria-hidden />
          <span className="break-words">{model.error}</span>
        </p>
      )}

      <div className="mt-4 flex flex-wrap items-center gap-2 border-t border-line pt-3">
        {model.state === "loaded" ? (
          <Button size="sm" variant="secondary" busy={busy} icon={<PowerOff className="size-3.5" />} onClick={() => void act("unload")}>
            Unload
          </Button>
        ) : (
          <Button
            size="sm"
            variant="secondary"
            busy={busy || model.state === "loading" || model.state === "unloading"}
            icon={<Power className="size-3.5" />}
            onClick={() => void act("load")}
          >
            {{ failed: "Retry load", loading: "Loading", unloading: "Unloading" }[model.state as string] ?? "Load"}
          </Button>
        )}
        <Link
          href={`${tab}?model=${encodeURIComponent(model.id)}`}
          className="inline-flex h-8 items-center gap-1.5 rounded-lg bg-brand px-2.5 text-[13px] font-medium text-brand-ink shadow-sm transition hover:brightness-110"
        >
          {model.type === "llm" ? <MessageSquare className="size-3.5" aria-hidden /> : <Play className="size-3.5" aria-hidden />}
          {model.type === "llm" ? "Chat" : "Try it"}
        </Link>
      </div>
    </Card>
  );
}

function PoolSummary({ models, budget }: { models: ModelInfo[]; budget: Memory | null }) {
  const resident = models.filter((m) => m.state === "loaded" || m.state === "loading");
  const rows = [
    { key: "ram_bytes" as const, label: "RAM" },
    { key: "vram_bytes" as const, label: "VRAM" },
  ].filter((r) => (budget?.[r.key] ?? 0) > 0 || resident.some((m) => (m.memory?.[r.key] ?? 0) > 0));
  if (!budget || rows.length === 0) return null;
  return (
    <Card className="mb-5 p-4">
      <div className={cx("grid gap-4", rows.length > 1 && "md:grid-cols-2")}>
        {rows.map(({ key, label }) => {
          const used = resident.reduce((sum, m) => sum + (m.memory?.[key] ?? 0), 0);
          const max = budget[key];
          return (
            <div key={key}>
              <div className="mb-1.5 flex items-baseline justify-between text-sm">
                <span className="font-medium">{label} budget</span>
                <span className="text-ink-3 tabular-nums">
                  {formatBytes(used)} of {formatBytes(max)} reserved
                </span>
              </div>
              <Meter
                label={`${label} reserved by loaded models`}
                max={max}
                className="h-2.5"
                segments={resident.map((m, i) => ({
                  value: m.memory?.[key] ?? 0,
                  tone: SEGMENT_TONES[i % SEGMENT_TONES.length],
                  title: `${m.id}: ${formatBytes(m.memory?.[key] ?? 0)}`,
                }))}
              />
              <div className="mt-2 flex flex-wrap gap-x-3 gap-y-1 text-xs text-ink-3">
                {resident.length === 0 && <span>No model is loaded.</span>}
                {resident.map((m, i) => (
                  <span key={m.id} className="inline-flex items-center gap-1.5">
                    <span className={cx("size-2 rounded-sm", SEGMENT_TONES[i % SEGMENT_TONES.length])} aria-hidden />
                    {m.id} {formatBytes(m.memory?.[key] ?? 0)}
                  </span>
                ))}
              </div>
            </div>
          );
        })}
      </div>
    </Card>
  );
}

function FilterChips<T extends string>({
  label,
  options,
  value,
  onChange,
}: {
  label: string;
  options: { value: T; label: string; count: number }[];
  value: T;
  onChange: (v: T) => void;
}) {
  return (
    <div role="radiogroup" aria-label={label} className="flex flex-wrap gap-1">
      {options.map((o) => (
        <button
          key={o.value}
          type="button"
          role="radio"
          aria-checked={value === o.value}
          onClick={() => onChange(o.value)}
          className={cx(
            "h-8 rounded-lg px-2.5 text-[13px] font-medium transition",
            value === o.value ? "bg-ink text-bg" : "text-ink-2 hover:bg-surface-2",
          )}
        >
          {o.label} <span className="opacity-60 tabular-nums">{o.count}</span>
        </button>
      ))}
    </div>
  );
}

export function matches(model: ModelInfo, query: string): boolean {
  const q = query.trim().toLowerCase();
  if (!q) return true;
  return [model.id, ...model.aliases, model.file ?? "", model.quantization ?? ""].some((s) => s.toLowerCase().includes(q));
}

/** The wizard opens by itself on a server with no model, once per browser tab. */
function useOfferSetup(empty: boolean) {
  const [, navigate] = useLocation();
  useEffect(() => {
    if (!empty || sessionStorage.getItem(OFFERED)) return;
    sessionStorage.setItem(OFFERED, "1");
    navigate("/setup", { replace: true });
  }, [empty, navigate]);
}

export function ModelsPage() {
  const { models, budget, isLoading, error } = useModelStates();
  useOfferSetup(!isLoading && !error && models.length === 0);
  const { unloadAll } = useModelActions();
  const [query, setQuery] = useState("");
  const [type, setType] = useState("all");
  const [state, setState] = useState("all");

  const types = useMemo(() => [...new Set(models.map((m) => m.type))], [models]);
  const shown = models.filter(
    (m) => matches(m, query) && (type === "all" || m.type === type) && (state === "all" || m.state === state),
  );
  const loaded = models.filter((m) => m.state === "loaded").length;

  const onUnloadAll = async () => {
    try {
      const r = await unloadAll.mutateAsync();
      toast(r.unloadedCount ? `Unloaded ${r.unloadedCount} model${r.unloadedCount === 1 ? "" : "s"}` : "Nothing was loaded");
    } catch (e) {
      toast(`Unload all failed: ${messageOf(e)}`, "bad");
    }
  };

  return (
    <div className="mx-auto max-w-6xl p-4 md:p-6">
      <PageHeader
        title="Models"
        description={isLoading ? "Loading…" : `${models.length} configured · ${loaded} loaded`}
        actions={
          <Button variant="danger" busy={unloadAll.isPending} disabled={loaded === 0} icon={<PowerOff className="size-4" />} onClick={() => void onUnloadAll()}>
            Unload all
          </Button>
        }
      />
      {error && !models.length && <ErrorNote error={error} />}
      <PoolSummary models={models} budget={budget} />

      <div className="mb-4 flex flex-wrap items-center gap-x-4 gap-y-2">
        <div className="relative w-full sm:w-72">
          <Search className="pointer-events-none absolute top-1/2 left-3 size-4 -translate-y-1/2 text-ink-3" aria-hidden />
          <Input
            type="search"
            aria-label="Search models"
            placeholder="Search name, alias, file"
            value={query}
            onChange={(e) => setQuery(e.target.value)}
            className="pl-9"
          />
        </div>
        <FilterChips
          label="Type"
          value={type}
          onChange={setType}
          options={[
            { value: "all", label: "All types", count: models.length },
            ...types.map((t) => ({ value: t, label: TYPE_LABELS[t] ?? t, count: models.filter((m) => m.type === t).length })),
          ]}
        />
        <FilterChips
          label="State"
          value={state}
          onChange={setState}
          options={(["all", "loaded", "loading", "unloading", "unloaded", "failed"] as const)
            .map((s) => ({
              value: s as string,
              label: s === "all" ? "Any state" : STATE[s].label,
              count: s === "all" ? models.length : models.filter((m) => m.state === s).length,
            }))
            .filter((o) => o.value === "all" || o.count > 0 || o.value === state)}
        />
      </div>

      {isLoading ? (
        <div className="flex items-center gap-2 text-sm text-ink-3">
          <Spinner /> Loading models…
        </div>
      ) : shown.length === 0 ? (
        <EmptyState icon={<Boxes className="size-8" />} title={models.length ? "No model matches" : "No models configured"}>
          {models.length ? (
            "Clear the search or the filters to see every model."
          ) : (
            <>
              Add a folder of GGUF files in <Link href="/setup" className="text-brand underline">Setup</Link>, or start the
              server with <code className="font-mono">--models-dir DIR</code>.
            </>
          )}
        </EmptyState>
      ) : (
        <div className="grid grid-cols-1 gap-4 lg:grid-cols-2">
          {shown.map((m) => (
            <ModelCard key={m.id} model={m} budget={budget} />
          ))}
        </div>
      )}
    </div>
  );
}
