/**
 * Downloads: search the hub through the server (the browser never talks to it), a repository's
 * files judged for this machine, a download from any link, the Hugging Face token, and every
 * download with live progress and its controls. The search and the repository are in the URL.
 */

import { useMutation, useQuery } from "@tanstack/react-query";
import { Download, Heart, KeyRound, Link2, Lock, Search } from "lucide-react";
import { useState } from "react";
import { useSearchParams } from "wouter";
import { Badge, Button, cx, EmptyState, ErrorNote, Field, Input, PageHeader, Spinner } from "../components/ui";
import { apiJson, messageOf, post } from "../lib/api";
import { repoFromText } from "../lib/downloads";
import { formatAgo } from "../lib/format";
import { useHfToken } from "../lib/hfToken";
import { toast } from "../lib/toast";
import type { DownloadStatus, SearchHit } from "../lib/types";
import { DownloadList, usePutDownload } from "./downloads/DownloadList";
import { RepoFiles } from "./downloads/RepoFiles";

function HfToken() {
  const { query: key, save } = useHfToken();
  const [token, setToken] = useState("");
  return (
    <details className="group rounded-xl border border-line bg-surface px-5 py-3 text-sm" aria-label="Hugging Face token">
      <summary className="flex cursor-pointer items-center gap-2 font-medium">
        <KeyRound className="size-4 text-brand" aria-hidden /> Hugging Face token
        {key.data && <Badge tone={key.data.apiKeySet ? "ok" : "neutral"}>{key.data.apiKeySet ? `set · ${key.data.apiKey}` : "none"}</Badge>}
        <span className="text-xs font-normal text-ink-3">for gated and private models</span>
      </summary>
      <form
        className="mt-3 flex flex-wrap items-end gap-2"
        onSubmit={(e) => {
          e.preventDefault();
          if (token.trim()) save.mutate(token.trim(), { onSuccess: () => setToken("") });
        }}
      >
        <Field label="Token" className="min-w-0 flex-1 basis-64" error={save.error ? messageOf(save.error) : null}>
          {(props) => <Input {...props} type="password" autoComplete="off" value={token} onChange={(e) => setToken(e.target.value)} placeholder="hf_…" />}
        </Field>
        <Button type="submit" variant="primary" busy={save.isPending && !!token} disabled={!token.trim()}>
          Save token
        </Button>
        {key.data?.apiKeySet && (
          <Button variant="ghost" busy={save.isPending && !token} onClick={() => save.mutate("")}>
            Remove
          </Button>
        )}
      </form>
      <p className="mt-2 text-xs text-ink-3">Stored on the server and sent to the hub only; this page never sees it again.</p>
    </details>
  );
}

function FromLink() {
  const [url, setUrl] = useState("");
  const [sha256, setSha] = useState("");
  const put = usePutDownload();
  const start = useMutation({
    mutationFn: () => post<DownloadStatus>("/api/models/download", { url: url.trim(), sha256: sha256.trim() || undefined }),
    onSuccess: (d) => {
      put(d);
      setUrl("");
      setSha("");
      toast("Download started: its progress is in the list below", "info");
    },
  });
  return (
    <details className="rounded-xl border border-line bg-surface px-5 py-3 text-sm" aria-label="Download from a link">
      <summary className="flex cursor-pointer items-center gap-2 font-medium">
        <Link2 className="size-4 text-brand" aria-hidden /> Download from a link
      </summary>
      <form
        className="mt-3 grid gap-2 sm:grid-cols-[2fr_1fr_auto] sm:items-end"
        onSubmit={(e) => {
          e.preventDefault();
          if (url.trim()) start.mutate();
        }}
      >
        <Field label="URL of a GGUF file">
          {(props) => <Input {...props} value={url} onChange={(e) => setUrl(e.target.value)} placeholder="https://…/model.gguf" />}
        </Field>
        <Field label="SHA-256 (optional)">
          {(props) => <Input {...props} value={sha256} onChange={(e) => setSha(e.target.value)} className="font-mono text-[12px]" />}
        </Field>
        <Button type="submit" icon={<Download className="size-4" />} busy={start.isPending} disabled={!url.trim()}>
          Download
        </Button>
      </form>
      <div className="mt-2">
        <ErrorNote error={start.error} />
      </div>
    </details>
  );
}

function Results({ q, selected, onPick }: { q: string; selected: string | null; onPick: (repo: string) => void }) {
  const search = useQuery({
    queryKey: ["hub", "search", q],
    queryFn: () => apiJson<{ results: SearchHit[] }>(`/api/models/search?q=${encodeURIComponent(q)}&limit=20`),
    enabled: q.length > 0,
    staleTime: 60_000,
  });
  if (!q) return null;
  if (search.isPending)
    return (
      <p className="flex items-center gap-2 text-sm text-ink-3">
        <Spinner /> Searching…
      </p>
    );
  if (search.error) return <ErrorNote error={search.error} />;
  const hits = search.data?.results ?? [];
  if (hits.length === 0) return <EmptyState icon={<Search className="size-8" />} title={`No GGUF repository matches “${q}”`} />;
  return (
    <ul className="grid gap-2 sm:grid-cols-2" aria-label="Search results">
      {hits.map((h) => (
        <li key={h.id}>
          <button
            type="button"
            onClick={() => onPick(h.id)}
            aria-current={selected === h.id ? "true" : undefined}
            className={cx(
              "flex w-full flex-col gap-1 rounded-xl border bg-surface px-4 py-3 text-left transition hover:border-brand",
              selected === h.id ? "border-brand ring-2 ring-brand/20" : "border-line",
            )}
          >
            <span className="flex items-center gap-1.5 truncate font-medium">
              {h.gated && <Lock className="size-3.5 text-warn" aria-label="Gated" />}
              {h.id}
            </span>
            <span className="flex flex-wrap gap-x-3 text-xs text-ink-3 tabular-nums">
              <span className="inline-flex items-center gap-1">
                <Download className="size-3" aria-hidden /> {(h.downloads ?? 0).toLocaleString("en-US")}
              </span>
              <span className="inline-flex items-center gap-1">
                <Heart className="size-3" aria-hidden /> {(h.likes ?? 0).toLocaleString("en-US")}
              </span>
              {h.updated && <span>updated {formatAgo(Date.parse(h.updated))}</span>}
            </span>
          </button>
        </li>
      ))}
    </ul>
  );
}

export default function DownloadsPage() {
  const [params, setParams] = useSearchParams();
  const q = params.get("q") ?? "";
  const repo = params.get("repo");
  const [typed, setTyped] = useState(q);
  const set = (next: { q?: string; repo?: string | null }) => {
    const merged = { q: next.q ?? q, repo: next.repo === undefined ? repo : next.repo };
    setParams(Object.fromEntries(Object.entries(merged).filter(([, v]) => v)) as Record<string, string>);
  };
  return (
    <div className="mx-auto max-w-5xl space-y-5 p-4 md:p-6">
      <PageHeader title="Downloads" description="Search the Hugging Face hub for GGUF models; ClaraCore says which files fit this machine." />
      <form
        className="flex gap-2"
        role="search"
        onSubmit={(e) => {
          e.preventDefault();
          const text = typed.trim();
          const direct = repoFromText(text);
          set(direct ? { q: text, repo: direct } : { q: text, repo: null });
        }}
      >
        <div className="relative min-w-0 flex-1">
          <Search className="pointer-events-none absolute top-1/2 left-3 size-4 -translate-y-1/2 text-ink-3" aria-hidden />
          <Input type="search" aria-label="Search the hub" value={typed} onChange={(e) => setTyped(e.target.value)} placeholder="qwen2.5 0.5b, or owner/repository" className="pl-9" />
        </div>
        <Button type="submit" variant="primary" disabled={!typed.trim()}>
          Search
        </Button>
      </form>
      <Results q={q} selected={repo} onPick={(r) => set({ repo: r })} />
      {repo && <RepoFiles key={repo} repo={repo} />}
      <div className="grid gap-3 lg:grid-cols-2">
        <HfToken />
        <FromLink />
      </div>
      <DownloadList />
    </div>
  );
}
