/** Setup (part 2 brings the wizard): the hardware found and the folders being tracked. */

import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { Cpu, FolderPlus, Folders } from "lucide-react";
import { useState } from "react";
import { Badge, Button, Card, EmptyState, ErrorNote, Field, Input, PageHeader, Spinner } from "../components/ui";
import { apiJson, post } from "../lib/api";
import { formatAgo } from "../lib/format";
import { toast } from "../lib/toast";
import type { Detection } from "../lib/types";

interface Folder {
  path: string;
  recursive: boolean;
  addedAt: string;
  lastScanned: string | null;
  modelCount: number;
}

export default function SetupPage() {
  const client = useQueryClient();
  const detection = useQuery({ queryKey: ["system", "detection"], queryFn: () => apiJson<Detection>("/api/system/detection"), staleTime: Infinity });
  const folders = useQuery({ queryKey: ["folders"], queryFn: () => apiJson<{ folders: Folder[] }>("/api/config/folders") });
  const [path, setPath] = useState("");
  const add = useMutation({
    mutationFn: (folder: string) => post("/api/config/folders", { folderPaths: [folder], recursive: true }),
    onSuccess: () => {
      setPath("");
      toast("Folder added and scanned");
      void client.invalidateQueries({ queryKey: ["folders"] });
    },
  });
  const d = detection.data;
  return (
    <div className="mx-auto max-w-4xl space-y-5 p-4 md:p-6">
      <PageHeader
        title="Setup"
        description="Where models come from and what this machine can run. The guided wizard (scan, plan, generate) arrives with the next part of the UI; until then `claracore setup DIR` does it in one command."
      />
      <Card className="p-5" aria-label="Hardware">
        <h2 className="mb-3 flex items-center gap-2 font-semibold">
          <Cpu className="size-4 text-brand" /> Hardware
        </h2>
        {detection.isPending ? <Spinner /> : <ErrorNote error={detection.error} />}
        {d && (
          <div className="grid gap-3 text-sm sm:grid-cols-3">
            <div>
              <p className="text-ink-3">Backend</p>
              <p className="font-medium">{d.recommendedBackend}</p>
            </div>
            <div>
              <p className="text-ink-3">Memory</p>
              <p className="font-medium">
                {d.totalRAMGB} GB RAM{d.totalVRAMGB ? ` · ${d.totalVRAMGB} GB VRAM` : ""}
              </p>
            </div>
            <div>
              <p className="text-ink-3">CPU</p>
              <p className="font-medium">
                {d.cpuCores} cores · {d.cpuThreads} threads
              </p>
            </div>
            <div className="flex flex-wrap gap-1 sm:col-span-3">
              {(["hasCUDA", "hasROCm", "hasVulkan", "hasMetal"] as const).map((k) => (
                <Badge key={k} tone={d[k] ? "ok" : "neutral"}>
                  {k.slice(3)} {d[k] ? "found" : "not found"}
                </Badge>
              ))}
            </div>
          </div>
        )}
      </Card>
      <Card className="p-5" aria-label="Model folders">
        <h2 className="mb-3 flex items-center gap-2 font-semibold">
          <Folders className="size-4 text-brand" /> Model folders
        </h2>
        <form
          className="mb-4 flex flex-wrap items-end gap-2"
          onSubmit={(e) => {
            e.preventDefault();
            if (path.trim()) add.mutate(path.trim());
          }}
        >
          <Field label="Folder on the server" className="min-w-0 flex-1">
            {(props) => <Input {...props} value={path} onChange={(e) => setPath(e.target.value)} placeholder="/home/me/models" />}
          </Field>
          <Button type="submit" variant="primary" icon={<FolderPlus className="size-4" />} busy={add.isPending} disabled={!path.trim()}>
            Add and scan
          </Button>
        </form>
        <ErrorNote error={add.error} />
        {folders.data?.folders.length === 0 && <EmptyState title="No folders tracked yet">Add a folder of GGUF files to scan it.</EmptyState>}
        <ul className="divide-y divide-line">
          {folders.data?.folders.map((f) => (
            <li key={f.path} className="flex flex-wrap items-center justify-between gap-2 py-2.5 text-sm">
              <code className="min-w-0 truncate font-mono text-xs">{f.path}</code>
              <span className="text-ink-3">
                {f.modelCount} model{f.modelCount === 1 ? "" : "s"} · {f.lastScanned ? `scanned ${formatAgo(Date.parse(f.lastScanned))}` : "not scanned"}
              </span>
            </li>
          ))}
        </ul>
      </Card>
    </div>
  );
}
