/**
 * The downloads ClaraCore remembers, kept live by the event stream's `download` events (progress
 * four times a second): state, bytes, speed, ETA, what it is doing; pause, resume, retry, cancel,
 * remove; and for a finished model, "add and load" (apply the config, load it) and a link to try it.
 */

import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { Ban, CheckCircle2, Pause, Play, Power, RotateCcw, Trash2, XCircle } from "lucide-react";
import { Link } from "wouter";
import { useRestart } from "../../components/shell";
import { Badge, Button, Card, EmptyState, Meter, type Tone } from "../../components/ui";
import { apiFetch, apiJson, errorOf, messageOf, post } from "../../lib/api";
import { actionsFor, applyDownloadEvent, mergeDownloads, type Action, type DownloadEvent } from "../../lib/downloads";
import { events, useServerEvent } from "../../lib/events";
import { formatBytes, formatDuration } from "../../lib/format";
import { useModelActions, useModelStates } from "../../lib/live";
import { toast } from "../../lib/toast";
import type { DownloadState, DownloadStatus } from "../../lib/types";
import { PLAYGROUND_TAB } from "../Models";

export const DOWNLOADS_KEY = ["downloads"] as const;

const STATES: Record<DownloadState, { label: string; tone: Tone }> = {
  queued: { label: "Queued", tone: "neutral" },
  downloading: { label: "Downloading", tone: "info" },
  paused: { label: "Paused", tone: "warn" },
  verifying: { label: "Verifying", tone: "info" },
  completed: { label: "Completed", tone: "ok" },
  failed: { label: "Failed", tone: "bad" },
  cancelled: { label: "Cancelled", tone: "neutral" },
};

const ACTIONS: Record<Action, { label: string; icon: typeof Pause }> = {
  pause: { label: "Pause", icon: Pause },
  resume: { label: "Resume", icon: Play },
  retry: { label: "Retry", icon: RotateCcw },
  cancel: { label: "Cancel", icon: XCircle },
  remove: { label: "Remove", icon: Trash2 },
};

/** Every download, newest first, live. */
export function useDownloads() {
  const client = useQueryClient();
  const query = useQuery({
    queryKey: DOWNLOADS_KEY,
    queryFn: async () => (await apiJson<{ downloads: DownloadStatus[] }>("/api/models/downloads")).downloads,
  });
  const update = (change: (list: DownloadStatus[]) => DownloadStatus[]) => {
    if (client.getQueryData(DOWNLOADS_KEY)) client.setQueryData<DownloadStatus[]>(DOWNLOADS_KEY, (list) => change(list ?? []));
  };
  useServerEvent<DownloadEvent>("download", (event) => update((list) => applyDownloadEvent(list, event)));
  useServerEvent<{ downloads?: DownloadStatus[] }>("snapshot", (s) => s.downloads && update((list) => mergeDownloads(list, s.downloads ?? [])));
  useServerEvent("missed", () => void client.invalidateQueries({ queryKey: DOWNLOADS_KEY }));
  return query;
}

/** Puts a download as a route answered it into the list while the event stream is down. (While
 * it is live, its events are the truth: an answer can arrive after the events that followed it.) */
export function usePutDownload(): (d: DownloadStatus, gone?: boolean) => void {
  const client = useQueryClient();
  return (d, gone = false) => {
    if (events.state.get() === "live") return;
    client.setQueryData<DownloadStatus[]>(DOWNLOADS_KEY, (list) => applyDownloadEvent(list ?? [], { ...d, event: gone ? "removed" : "state" }));
  };
}

async function act(id: string, action: Action): Promise<DownloadStatus> {
  if (action === "remove") {
    const r = await apiFetch(`/api/models/downloads/${encodeURIComponent(id)}`, { method: "DELETE" });
    if (!r.ok) throw await errorOf(r);
    return (await r.json()) as DownloadStatus;
  }
  return post<DownloadStatus>(`/api/models/downloads/${encodeURIComponent(id)}/${action === "retry" ? "resume" : action}`);
}

function title(d: DownloadStatus): string {
  return d.modelId ?? d.filename.split("/").pop() ?? d.filename;
}

/** Apply the config the download wrote (or add the file first), then load the model. */
function AddAndLoad({ d }: { d: DownloadStatus }) {
  const { models } = useModelStates();
  const { restart } = useRestart();
  const { load } = useModelActions();
  const name = d.model?.name ?? null;
  const served = name ? models.find((m) => m.id === name) : undefined;
  const go = useMutation({
    mutationFn: async () => {
      let target = name;
      if (!d.model?.configured || !target) {
        const added = await post<{ model: { name: string } }>("/api/config/append-model", { filePath: d.destination });
        target = added.model.name;
      }
      if (!models.some((m) => m.id === target)) await restart("soft");
      await load.mutateAsync(target);
      return target;
    },
    onSuccess: (target) => toast(`${target} is loaded`),
    onError: (error) => toast(`Add and load failed: ${messageOf(error)}`, "bad"),
  });
  if (served?.state === "loaded") {
    return (
      <Link
        href={`${PLAYGROUND_TAB[served.type] ?? "/chat"}?model=${encodeURIComponent(served.id)}`}
        className="inline-flex h-8 items-center gap-1.5 rounded-lg bg-brand px-2.5 text-[13px] font-medium text-brand-ink shadow-sm hover:brightness-110"
      >
        <Play className="size-3.5" aria-hidden /> {served.type === "llm" ? "Chat" : "Try it"}
      </Link>
    );
  }
  return (
    <Button size="sm" variant="primary" icon={<Power className="size-3.5" />} busy={go.isPending || served?.state === "loading"} onClick={() => go.mutate()}>
      Add and load
    </Button>
  );
}

function Row({ d }: { d: DownloadStatus }) {
  const put = usePutDownload();
  const action = useMutation({
    mutationFn: (a: Action) => act(d.id, a),
    onSuccess: (status, a) => put(status, a === "remove"),
    onError: (error, a) => toast(`${ACTIONS[a].label} failed: ${messageOf(error)}`, "bad"),
  });
  const { label, tone } = STATES[d.state];
  const active = d.state === "downloading" || d.state === "verifying";
  const total = d.totalBytes ?? 0;
  return (
    <li className="space-y-2 py-3.5" data-download={d.id} data-state={d.state} aria-label={`Download ${title(d)}`}>
      <div className="flex flex-wrap items-center gap-2">
        <span className="min-w-0 truncate font-semibold" title={d.filename}>
          {title(d)}
        </span>
        <Badge tone={tone}>{label}</Badge>
        {d.files.length > 1 && <Badge>{d.files.length} files</Badge>}
        <span className="min-w-0 flex-1 truncate text-xs text-ink-3">{d.repo ?? d.url}</span>
      </div>
      {d.state !== "completed" && d.state !== "cancelled" && (
        <>
          <Meter label={`${title(d)} progress`} max={Math.max(total, 1)} className="h-2" segments={[{ value: d.bytesDone, tone: d.state === "failed" ? "bg-bad" : d.state === "paused" ? "bg-warn" : "bg-brand" }]} />
          <p className="flex flex-wrap gap-x-3 text-xs text-ink-3 tabular-nums" aria-label="Transfer">
            <span>
              {formatBytes(d.bytesDone)} of {total ? formatBytes(total) : "?"}
              {d.progress != null ? ` (${Math.floor(d.progress * 100)}%)` : ""}
            </span>
            {active && d.speed > 0 && <span>{formatBytes(d.speed)}/s</span>}
            {active && d.eta != null && <span>{formatDuration(d.eta)} left</span>}
            {d.retries > 0 && <span>{d.retries} retr{d.retries === 1 ? "y" : "ies"}</span>}
          </p>
        </>
      )}
      {d.message && <p className="text-xs text-ink-2">{d.message}</p>}
      {d.error && (
        <p role="alert" className="flex gap-1.5 text-xs text-bad">
          <Ban className="mt-0.5 size-3.5 shrink-0" aria-hidden />
          {d.error}
        </p>
      )}
      {d.state === "completed" && (
        <p className="flex flex-wrap items-center gap-1.5 text-xs text-ok">
          <CheckCircle2 className="size-3.5" aria-hidden />
          {formatBytes(d.bytesDone)} verified
          {d.model?.configured ? ` · in config.yaml as ${d.model.name}` : d.model?.note ? ` · ${d.model.note}` : ""}
        </p>
      )}
      <p className="truncate font-mono text-[11px] text-ink-3" title={d.destination}>
        {d.destination}
      </p>
      <div className="flex flex-wrap gap-2">
        {d.state === "completed" && <AddAndLoad d={d} />}
        {actionsFor(d.state).map((a) => {
          const { label: text, icon: Icon } = ACTIONS[a];
          return (
            <Button key={a} size="sm" variant={a === "cancel" || a === "remove" ? "ghost" : "secondary"} icon={<Icon className="size-3.5" />} busy={action.isPending && action.variables === a} onClick={() => action.mutate(a)}>
              {text}
            </Button>
          );
        })}
      </div>
    </li>
  );
}

export function DownloadList() {
  const downloads = useDownloads();
  const cancelAll = useMutation({ mutationFn: () => post<{ cancelled: string[] }>("/api/models/download/cancel"), onSuccess: (r) => toast(`Cancelled ${r.cancelled.length}`) });
  const list = [...(downloads.data ?? [])].reverse();
  const running = list.filter((d) => ["queued", "downloading", "paused", "verifying"].includes(d.state)).length;
  return (
    <Card className="p-5" aria-label="Downloads">
      <div className="mb-1 flex items-center justify-between gap-2">
        <h2 className="font-semibold">Downloads</h2>
        {running > 0 && (
          <Button size="sm" variant="ghost" icon={<XCircle className="size-3.5" />} busy={cancelAll.isPending} onClick={() => cancelAll.mutate()}>
            Cancel all
          </Button>
        )}
      </div>
      {downloads.data && list.length === 0 ? (
        <EmptyState title="Nothing downloaded yet">Search for a model above, or paste a link.</EmptyState>
      ) : (
        <ul className="divide-y divide-line">
          {list.map((d) => (
            <Row key={d.id} d={d} />
          ))}
        </ul>
      )}
    </Card>
  );
}
