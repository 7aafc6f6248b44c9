/**
 * The generate step: plan a config for this machine from the scanned models and apply it
 * (`regenerate-from-db`: plan, write, soft restart). Its progress comes live from the event
 * stream's `setup` events; the result says per model what was chosen and why, which hand-edited
 * fields were kept, and which files were left out.
 */

import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { AlertTriangle, Sparkles } from "lucide-react";
import { Badge, Button, Card, ErrorNote, Meter } from "../../components/ui";
import { apiJson, post } from "../../lib/api";
import { useServerEvent } from "../../lib/events";
import { formatBytes, formatTokens } from "../../lib/format";
import { keptFields, planReasons } from "../../lib/setup";
import type { PlannedModel, SetupProgress } from "../../lib/types";
import type { WizardState } from "./wizard";

export const SETUP_KEY = ["setup", "progress"] as const;

/** The running (or last) setup, kept current by the event stream. */
export function useSetupProgress() {
  const client = useQueryClient();
  const query = useQuery({ queryKey: SETUP_KEY, queryFn: () => apiJson<SetupProgress>("/api/setup/progress") });
  useServerEvent<SetupProgress>("setup", (progress) => client.setQueryData(SETUP_KEY, progress));
  useServerEvent<{ setup?: SetupProgress }>("snapshot", (s) => s.setup && client.setQueryData(SETUP_KEY, s.setup));
  return query;
}

function layers(m: PlannedModel): string {
  if (m.gpuLayers === -1) return "all";
  return m.gpuLayers ? String(m.gpuLayers) : "CPU";
}

function PlanRow({ m, wizard, backend }: { m: PlannedModel; wizard: WizardState; backend: string }) {
  const kept = keptFields(m);
  const notes = (m.notes ?? []).filter((n) => !n.startsWith("kept hand-edited "));
  return (
    <li className="space-y-1.5 py-3" data-planned={m.name}>
      <div className="flex flex-wrap items-baseline gap-x-3 gap-y-1">
        <span className="font-semibold">{m.name}</span>
        <Badge tone="brand">{m.type}</Badge>
        <span className="text-xs text-ink-3 tabular-nums">
          {m.vramBytes ? `${formatBytes(m.vramBytes)} VRAM + ` : ""}
          {formatBytes(m.ramBytes ?? 0)} RAM
        </span>
      </div>
      <dl className="flex flex-wrap gap-x-5 gap-y-1 text-sm">
        {[
          ["GPU layers", layers(m)],
          ["Context", m.contextLength ? formatTokens(m.contextLength) : "—"],
          ["KV cache", m.cacheType ?? "—"],
          ["Parallel", m.parallel ?? "—"],
          ["Batch", m.batchSize ?? "—"],
        ].map(([k, v]) => (
          <div key={k} className="flex gap-1.5">
            <dt className="text-ink-3">{k}</dt>
            <dd className="font-medium tabular-nums">{v}</dd>
          </div>
        ))}
      </dl>
      <p className="text-xs text-ink-2">Why: {planReasons(m, wizard, backend).join("; ")}.</p>
      {notes.map((n) => (
        <p key={n} className="text-xs text-warn">
          {n}
        </p>
      ))}
      {kept.length > 0 && (
        <p className="text-xs text-info" data-kept={kept.join(",")}>
          Kept your hand-edited {kept.join(", ")}.
        </p>
      )}
    </li>
  );
}

export function GenerateStep({ wizard }: { wizard: WizardState }) {
  const progress = useSetupProgress();
  const start = useMutation({
    mutationFn: () =>
      post("/api/config/regenerate-from-db", {
        options: {
          ...(wizard.hardware
            ? { forceBackend: wizard.hardware.backend, forceVRAM: wizard.hardware.vramGB, forceRAM: wizard.hardware.ramGB }
            : {}),
          preferredContext: wizard.preferredContext,
          minContext: wizard.minContext,
          throughputFirst: wizard.throughputFirst,
          enableJinja: true,
        },
      }),
  });
  const p = progress.data;
  const running = !!p?.running || start.isPending;
  const result = p?.status === "completed" ? p.result : undefined;
  const restart = result?.restart ?? {};
  return (
    <div className="space-y-4">
      <Card className="space-y-4 p-5" aria-label="Generate">
        <p className="text-sm text-ink-2">
          ClaraCore reads each model's header and picks GPU layers, context, KV cache type, batch and parallel sequences so every model fits
          this machine, writes config.yaml (keeping any value you set by hand) and applies it with a soft restart.
        </p>
        <div className="flex flex-wrap items-center gap-3">
          <Button variant="primary" icon={<Sparkles className="size-4" />} busy={running} onClick={() => start.mutate()}>
            {result ? "Generate again" : "Generate configuration"}
          </Button>
          {p && p.status !== "idle" && (
            <span className="text-sm text-ink-3" role="status" aria-label="Setup progress">
              {p.status === "completed" ? "Done" : p.status === "error" ? "Failed" : p.step}
              {p.running && p.filesTotal ? ` · ${p.filesRead} of ${p.filesTotal} files` : ""}
            </span>
          )}
        </div>
        {p && p.status !== "idle" && (
          <Meter label="Setup progress" max={100} className="h-2" segments={[{ value: p.progress, tone: p.status === "error" ? "bg-bad" : "bg-brand" }]} />
        )}
        <ErrorNote error={start.error} />
        {p?.status === "error" && (
          <p role="alert" className="flex gap-2 rounded-lg bg-bad-soft px-3 py-2 text-sm text-bad">
            <AlertTriangle className="mt-0.5 size-4 shrink-0" aria-hidden /> {p.error}
          </p>
        )}
      </Card>

      {result && (
        <Card className="p-5" aria-label="Planned models">
          <h2 className="font-semibold">What was chosen, and why</h2>
          <p className="text-sm text-ink-3">
            Budget: {result.vramBudgetBytes ? `${formatBytes(result.vramBudgetBytes)} VRAM, ` : ""}
            {formatBytes(result.ramBudgetBytes)} RAM · backend {result.backend} · written to{" "}
            <code className="font-mono text-xs">{result.configPath}</code>
          </p>
          <ul className="divide-y divide-line">
            {result.models.map((m) => (
              <PlanRow key={m.name} m={m} wizard={wizard} backend={result.backend} />
            ))}
          </ul>
          {result.dropped.length > 0 && (
            <div className="mt-2 rounded-lg bg-warn-soft px-3 py-2 text-sm text-warn">
              <p className="font-medium">Left out:</p>
              {result.dropped.map((m) => (
                <p key={m.path}>
                  {m.name}: {m.dropped}
                </p>
              ))}
            </div>
          )}
          {Object.values(restart).some((v) => v.length) && (
            <p className="mt-3 text-sm text-ink-2" aria-label="Applied">
              Applied:{" "}
              {Object.entries(restart)
                .filter(([, v]) => v.length)
                .map(([k, v]) => `${k} ${v.join(", ")}`)
                .join(" · ")}
            </p>
          )}
        </Card>
      )}
    </div>
  );
}
