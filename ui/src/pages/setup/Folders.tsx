/**
 * The folders step: track folders of models (recursive or not), scan them, and list what was
 * found with its type, quantisation, size and flags. Each folder is scanned by its own request,
 * so the list shows which folder is being read and how far through the folders the scan is.
 */

import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { FolderPlus, Folders as FoldersIcon, RefreshCw, Trash2 } from "lucide-react";
import { useEffect, useRef, useState } from "react";
import { Badge, Button, Card, EmptyState, ErrorNote, Field, Input, Spinner, type Tone } from "../../components/ui";
import { apiFetch, apiJson, errorOf, post } from "../../lib/api";
import { formatAgo, formatBytes, formatTokens } from "../../lib/format";
import { FLAG_LABELS, modelFlags, type Flag } from "../../lib/setup";
import { TYPE_LABELS, type ScanResult, type TrackedFolder } from "../../lib/types";

export const FOLDERS_KEY = ["folders"] as const;

const FLAG_TONES: Record<Flag, Tone> = { vision: "info", embedding: "brand", reranker: "brand", speech: "brand", moe: "warn", draft: "neutral" };

function scan(path: string, recursive: boolean): Promise<ScanResult> {
  return post<ScanResult>("/api/config/scan-folder", { folderPath: path, recursive, addToDatabase: false });
}

async function untrack(path: string): Promise<void> {
  const r = await apiFetch("/api/config/folders", { method: "DELETE", json: { folderPaths: [path] } });
  if (!r.ok) throw await errorOf(r);
}

function Elapsed({ since }: { since: number }) {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const timer = setInterval(() => setNow(Date.now()), 500);
    return () => clearInterval(timer);
  }, []);
  return <span className="tabular-nums">{Math.floor((now - since) / 1000)} s</span>;
}

/** Scans every tracked folder once when the step opens (cached by size and time: fast), and on demand. */
export function useFolderScans(folders: TrackedFolder[] | undefined) {
  const [results, setResults] = useState<Record<string, ScanResult>>({});
  const [scanning, setScanning] = useState<{ path: string; index: number; total: number; since: number } | null>(null);
  const [error, setError] = useState<unknown>(null);
  const started = useRef(false);
  const client = useQueryClient();

  const run = async (list: TrackedFolder[]) => {
    setError(null);
    try {
      for (const [index, f] of list.entries()) {
        setScanning({ path: f.path, index: index + 1, total: list.length, since: Date.now() });
        const result = await scan(f.path, f.recursive);
        setResults((r) => ({ ...r, [f.path]: result }));
      }
    } catch (e) {
      setError(e);
    } finally {
      setScanning(null);
      void client.invalidateQueries({ queryKey: FOLDERS_KEY });
    }
  };
  useEffect(() => {
    if (!folders || started.current) return;
    started.current = true;
    if (folders.length) void run(folders);
  });
  return { results, setResults, scanning, error, rescan: run };
}

export function FoldersStep({ onCount }: { onCount: (models: number) => void }) {
  const client = useQueryClient();
  const folders = useQuery({ queryKey: FOLDERS_KEY, queryFn: () => apiJson<{ folders: TrackedFolder[] }>("/api/config/folders") });
  const { results, setResults, scanning, error, rescan } = useFolderScans(folders.data?.folders);
  const [path, setPath] = useState("");
  const [recursive, setRecursive] = useState(true);
  const [adding, setAdding] = useState<{ path: string; since: number } | null>(null);

  const add = useMutation({
    mutationFn: (folder: string) => {
      setAdding({ path: folder, since: Date.now() });
      return post<{ folders: TrackedFolder[]; scans: ScanResult[] }>("/api/config/folders", { folderPaths: [folder], recursive });
    },
    onSuccess: (r) => {
      setPath("");
      setResults((now) => ({ ...now, ...Object.fromEntries(r.scans.map((s) => [s.folderPath, s])) }));
      void client.invalidateQueries({ queryKey: FOLDERS_KEY });
    },
    onSettled: () => setAdding(null),
  });
  const remove = useMutation({
    mutationFn: untrack,
    onSuccess: (_, gone) => {
      setResults(({ [gone]: _drop, ...rest }) => rest);
      void client.invalidateQueries({ queryKey: FOLDERS_KEY });
    },
  });

  const tracked = folders.data?.folders ?? [];
  const found = tracked.flatMap((f) => results[f.path]?.models ?? []);
  const skipped = tracked.flatMap((f) => results[f.path]?.skipped ?? []);
  useEffect(() => onCount(found.length), [found.length, onCount]);

  return (
    <div className="space-y-4">
      <Card className="p-5" aria-label="Model folders">
        <form
          className="flex flex-wrap items-end gap-3"
          onSubmit={(e) => {
            e.preventDefault();
            if (path.trim()) add.mutate(path.trim());
          }}
        >
          <Field label="Folder on the server" className="min-w-0 flex-1 basis-72">
            {(props) => <Input {...props} value={path} onChange={(e) => setPath(e.target.value)} placeholder="/home/me/models" className="font-mono text-[13px]" />}
          </Field>
          <label className="flex h-9 items-center gap-2 text-sm">
            <input type="checkbox" checked={recursive} onChange={(e) => setRecursive(e.target.checked)} className="size-4 accent-[var(--brand)]" />
            Include subfolders
          </label>
          <Button type="submit" variant="primary" icon={<FolderPlus className="size-4" />} busy={add.isPending} disabled={!path.trim()}>
            Add and scan
          </Button>
        </form>
        <div className="mt-3">
          <ErrorNote error={add.error ?? remove.error ?? error} />
        </div>
        {(adding || scanning) && (
          <p role="status" aria-label="Scan progress" className="mt-3 flex items-center gap-2 text-sm text-ink-2">
            <Spinner />
            {adding ? (
              <>
                Scanning <code className="font-mono text-xs">{adding.path}</code> · <Elapsed since={adding.since} />
              </>
            ) : scanning ? (
              <>
                Scanning folder {scanning.index} of {scanning.total}: <code className="font-mono text-xs">{scanning.path}</code> · <Elapsed since={scanning.since} />
              </>
            ) : null}
          </p>
        )}
        <ul className="mt-3 divide-y divide-line">
          {tracked.map((f) => (
            <li key={f.path} className="flex flex-wrap items-center gap-x-3 gap-y-1 py-2.5 text-sm" data-folder={f.path}>
              <FoldersIcon className="size-4 text-ink-3" aria-hidden />
              <code className="min-w-0 flex-1 truncate font-mono text-xs" title={f.path}>
                {f.path}
              </code>
              {f.recursive && <Badge>subfolders</Badge>}
              <span className="text-ink-3">
                {(results[f.path]?.modelCount ?? f.modelCount)} model{(results[f.path]?.modelCount ?? f.modelCount) === 1 ? "" : "s"} ·{" "}
                {f.lastScanned ? `scanned ${formatAgo(Date.parse(f.lastScanned))}` : "not scanned"}
              </span>
              <Button size="sm" variant="ghost" icon={<RefreshCw className="size-3.5" />} disabled={!!scanning} onClick={() => void rescan([f])} aria-label={`Rescan ${f.path}`}>
                Rescan
              </Button>
              <Button size="sm" variant="ghost" icon={<Trash2 className="size-3.5" />} busy={remove.isPending && remove.variables === f.path} onClick={() => remove.mutate(f.path)} aria-label={`Remove ${f.path}`}>
                Remove
              </Button>
            </li>
          ))}
        </ul>
        {folders.data && tracked.length === 0 && (
          <EmptyState icon={<FoldersIcon className="size-8" />} title="No folders yet">
            Add the folder where your GGUF files are (Whisper folders and Piper voices are found too).
          </EmptyState>
        )}
      </Card>

      {found.length > 0 && (
        <Card className="overflow-hidden" aria-label="Models found">
          <div className="border-b border-line px-4 py-2.5 text-sm font-semibold">
            {found.length} model{found.length === 1 ? "" : "s"} found
          </div>
          <div className="overflow-x-auto">
            <table className="w-full text-sm">
              <thead className="bg-surface-2 text-left text-xs text-ink-3">
                <tr>
                  <th className="px-4 py-2 font-medium">Model</th>
                  <th className="px-3 py-2 font-medium">Type</th>
                  <th className="px-3 py-2 font-medium">Quant</th>
                  <th className="px-3 py-2 text-right font-medium">Size</th>
                  <th className="px-3 py-2 text-right font-medium">Context</th>
                  <th className="px-4 py-2 font-medium">Flags</th>
                </tr>
              </thead>
              <tbody className="divide-y divide-line">
                {found.map((m) => (
                  <tr key={m.path} data-found={m.name}>
                    <td className="max-w-72 px-4 py-2">
                      <div className="truncate font-medium" title={m.name}>
                        {m.name}
                      </div>
                      <div className="truncate font-mono text-[11px] text-ink-3" title={m.path}>
                        {m.path}
                      </div>
                    </td>
                    <td className="px-3 py-2">{TYPE_LABELS[m.type ?? ""] ?? m.type ?? "—"}</td>
                    <td className="px-3 py-2 font-mono text-xs">{m.quantization ?? "—"}</td>
                    <td className="px-3 py-2 text-right tabular-nums">{formatBytes(m.size)}</td>
                    <td className="px-3 py-2 text-right tabular-nums">{m.contextLength ? formatTokens(m.contextLength) : "—"}</td>
                    <td className="px-4 py-2">
                      <div className="flex flex-wrap gap-1">
                        {modelFlags(m).map((f) => (
                          <Badge key={f} tone={FLAG_TONES[f]}>
                            {FLAG_LABELS[f]}
                          </Badge>
                        ))}
                      </div>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
          {skipped.length > 0 && (
            <details className="border-t border-line px-4 py-2.5 text-sm">
              <summary className="cursor-pointer text-ink-2">
                {skipped.length} file{skipped.length === 1 ? "" : "s"} skipped
              </summary>
              <ul className="mt-2 space-y-1 text-xs">
                {skipped.map((s) => (
                  <li key={s.path}>
                    <code className="font-mono">{s.path}</code>: <span className="text-ink-3">{s.reason}</span>
                  </li>
                ))}
              </ul>
            </details>
          )}
        </Card>
      )}
    </div>
  );
}
