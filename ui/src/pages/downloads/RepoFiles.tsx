/**
 * One hub repository's GGUF models, as the server lists them: split parts as one model, the
 * projectors offered with it, size, quantisation, and whether it fits this machine (on the GPU,
 * split with RAM, in RAM, too big) with the context it would get. "Download" queues it.
 */

import { useMutation, useQuery } from "@tanstack/react-query";
import { Download, Star } from "lucide-react";
import { useState } from "react";
import { Badge, Button, Card, ErrorNote, Field, Input, Select, Spinner } from "../../components/ui";
import { apiJson, messageOf, post } from "../../lib/api";
import { VERDICTS } from "../../lib/downloads";
import { formatBytes, formatTokens } from "../../lib/format";
import { toast } from "../../lib/toast";
import type { DownloadStatus, RepoFiles as RepoFilesData, RepoModel } from "../../lib/types";
import { usePutDownload } from "./DownloadList";

function Fit({ m }: { m: RepoModel }) {
  const v = VERDICTS[m.fit.verdict];
  const memory = [m.fit.vramBytes ? `${formatBytes(m.fit.vramBytes)} VRAM` : "", m.fit.ramBytes ? `${formatBytes(m.fit.ramBytes)} RAM` : ""].filter(Boolean).join(" + ");
  return (
    <div className="space-y-0.5" title={v.help}>
      <Badge tone={v.tone}>{v.label}</Badge>
      <p className="text-[11px] text-ink-3">
        {m.fit.contextLength ? `context ${formatTokens(m.fit.contextLength)}` : ""}
        {memory ? ` · ${memory}` : ""}
        {m.fit.estimated ? " · estimated" : ""}
      </p>
      {m.fit.reason && <p className="text-[11px] text-bad">{m.fit.reason}</p>}
    </div>
  );
}

export function RepoFiles({ repo }: { repo: string }) {
  const files = useQuery({
    queryKey: ["hub", "files", repo],
    queryFn: () => apiJson<RepoFilesData>(`/api/models/search/${repo.split("/").map(encodeURIComponent).join("/")}/files`),
    staleTime: 60_000,
  });
  const [modelId, setModelId] = useState("");
  const [targetDir, setTargetDir] = useState("");
  const [configure, setConfigure] = useState(true);
  const [projector, setProjector] = useState<Record<string, string>>({});
  const put = usePutDownload();
  const start = useMutation({
    mutationFn: (m: RepoModel) =>
      post<DownloadStatus>("/api/models/download", {
        repo,
        revision: files.data?.commit ?? undefined,
        filename: m.filename,
        mmproj: (projector[m.filename] ?? m.mmproj[0]) || undefined,
        modelId: modelId.trim() || undefined,
        targetDir: targetDir.trim() || undefined,
        autoConfigure: configure,
      }),
    onSuccess: (d) => {
      put(d);
      toast(`Started downloading ${d.filename}: its progress is in the list below`, "info");
    },
    onError: (error) => toast(`The download did not start: ${messageOf(error)}`, "bad"),
  });
  const hw = files.data?.hardware;
  return (
    <Card className="overflow-hidden" aria-label={`Files of ${repo}`}>
      <div className="border-b border-line px-5 py-3">
        <h2 className="font-semibold">{repo}</h2>
        {hw && (
          <p className="text-xs text-ink-3">
            Judged for this machine: backend {hw.backend}, {hw.vramBytes ? `${formatBytes(hw.vramBytes)} VRAM, ` : ""}
            {formatBytes(hw.ramBytes)} RAM.
          </p>
        )}
      </div>
      <div className="grid gap-3 border-b border-line px-5 py-3 sm:grid-cols-[1fr_1.4fr_auto] sm:items-end">
        <Field label="Name in the config (optional)">
          {(props) => <Input {...props} value={modelId} onChange={(e) => setModelId(e.target.value)} placeholder="from the file name" />}
        </Field>
        <Field label="Destination folder (optional)">
          {(props) => <Input {...props} value={targetDir} onChange={(e) => setTargetDir(e.target.value)} placeholder="ClaraCore's models folder" className="font-mono text-[13px]" />}
        </Field>
        <label className="flex h-9 items-center gap-2 text-sm whitespace-nowrap">
          <input type="checkbox" checked={configure} onChange={(e) => setConfigure(e.target.checked)} className="size-4 accent-[var(--brand)]" />
          Add to the config when done
        </label>
      </div>
      {files.isPending && (
        <div className="flex items-center gap-2 px-5 py-4 text-sm text-ink-3">
          <Spinner /> Reading the repository and judging each file…
        </div>
      )}
      <div className="px-5">
        <ErrorNote error={files.error} />
      </div>
      {files.data && files.data.models.length === 0 && <p className="px-5 py-4 text-sm text-ink-3">No GGUF model in this repository.</p>}
      {files.data && files.data.models.length > 0 && (
        <div className="overflow-x-auto">
          <table className="w-full text-sm">
            <thead className="bg-surface-2 text-left text-xs text-ink-3">
              <tr>
                <th className="px-5 py-2 font-medium">Model</th>
                <th className="px-3 py-2 font-medium">Quant</th>
                <th className="px-3 py-2 text-right font-medium">Size</th>
                <th className="px-3 py-2 font-medium">On this machine</th>
                <th className="px-5 py-2 font-medium">
                  <span className="sr-only">Download</span>
                </th>
              </tr>
            </thead>
            <tbody className="divide-y divide-line">
              {files.data.models.map((m) => (
                <tr key={m.filename} data-file={m.filename} data-verdict={m.fit.verdict}>
                  <td className="px-5 py-2.5 align-top">
                    <div className="flex items-center gap-1.5 font-medium">
                      {m.recommended && <Star className="size-3.5 fill-current text-warn" aria-label="Recommended" />}
                      {m.name}
                    </div>
                    <div className="mt-0.5 flex flex-wrap gap-1">
                      {m.split && <Badge>{m.files.length} parts</Badge>}
                      {!m.complete && <Badge tone="bad">parts missing</Badge>}
                      {m.kind && m.kind !== "llm" && <Badge tone="brand">{m.kind}</Badge>}
                    </div>
                    {m.mmproj.length > 0 && (
                      <Select
                        aria-label={`Vision projector for ${m.name}`}
                        className="mt-1.5 h-8 max-w-72 text-xs"
                        value={projector[m.filename] ?? m.mmproj[0]}
                        onChange={(e) => setProjector((p) => ({ ...p, [m.filename]: e.target.value }))}
                      >
                        {m.mmproj.map((p) => (
                          <option key={p} value={p}>
                            with {p}
                          </option>
                        ))}
                        <option value="">without a vision projector</option>
                      </Select>
                    )}
                  </td>
                  <td className="px-3 py-2.5 align-top font-mono text-xs">{m.quantization ?? "—"}</td>
                  <td className="px-3 py-2.5 text-right align-top tabular-nums">{formatBytes(m.size)}</td>
                  <td className="px-3 py-2.5 align-top">
                    <Fit m={m} />
                  </td>
                  <td className="px-5 py-2.5 text-right align-top">
                    <Button
                      size="sm"
                      variant={m.recommended ? "primary" : "secondary"}
                      icon={<Download className="size-3.5" />}
                      disabled={!m.complete}
                      busy={start.isPending && start.variables?.filename === m.filename}
                      onClick={() => start.mutate(m)}
                      aria-label={`Download ${m.name}`}
                    >
                      Download
                    </Button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </Card>
  );
}
