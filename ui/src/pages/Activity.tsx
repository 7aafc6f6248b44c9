/**
 * Activity: what the server did and how fast. The requests are the server's stored history
 * (`GET /api/activity`, up to MAX_ROWS of the chosen range) extended live by `request` events;
 * the stat cards, the speed and TTFT charts and the table all follow the same filters, which are
 * in the URL (so a reload keeps them). Memory against the budget comes from `metrics` events.
 */

import { useQuery, useQueryClient } from "@tanstack/react-query";
import { Search, ScrollText } from "lucide-react";
import { useMemo, useSyncExternalStore } from "react";
import { Link, useSearchParams } from "wouter";
import { Chart } from "../components/Chart";
import { Card, ErrorNote, Input, PageHeader, Select, Spinner } from "../components/ui";
import { apiJson } from "../lib/api";
import { filterRows, seriesByModel, sortRows, stats, type RowFilter, type SortKey } from "../lib/activity";
import { useServerEvent } from "../lib/events";
import { formatBytes, formatDuration, formatRate } from "../lib/format";
import { useModelStates } from "../lib/live";
import { memorySamples } from "../lib/memory";
import type { ActivityPage, RequestRecord } from "../lib/types";
import { PAGE_SIZES, RequestTable } from "./activity/RequestTable";

/** The most rows the page holds: five pages of the server's largest. */
const MAX_ROWS = 5000;
const RANGES: { value: string; label: string; seconds: number | null }[] = [
  { value: "1h", label: "Last hour", seconds: 3600 },
  { value: "24h", label: "Last 24 hours", seconds: 86_400 },
  { value: "7d", label: "Last 7 days", seconds: 7 * 86_400 },
  { value: "all", label: "Everything kept", seconds: null },
];
const SORTS: SortKey[] = ["time", "model", "route", "status", "promptTokens", "completionTokens", "ttft", "tokensPerSecond", "duration"];

interface Held {
  rows: RequestRecord[];
  /** How many rows the server has in the range (more than `rows` when capped). */
  total: number;
}

async function load(seconds: number | null): Promise<Held> {
  const since = seconds === null ? "" : `&since=${Math.floor(Date.now() / 1000 - seconds)}`;
  const rows: RequestRecord[] = [];
  let total = 0;
  for (let page = 1; rows.length < MAX_ROWS; page++) {
    const answer = await apiJson<ActivityPage>(`/api/activity?page=${page}&pageSize=1000${since}`);
    rows.push(...answer.items);
    total = answer.total;
    if (page >= answer.pages) break;
  }
  return { rows: rows.slice(0, MAX_ROWS), total };
}

function Stat({ label, value, sub }: { label: string; value: string; sub?: string }) {
  return (
    <Card className="p-4" aria-label={label}>
      <p className="text-[13px] text-ink-3">{label}</p>
      <p className="mt-1 text-xl font-semibold tabular-nums" data-value>
        {value}
      </p>
      {sub && <p className="mt-0.5 text-xs text-ink-3 tabular-nums">{sub}</p>}
    </Card>
  );
}

function MemoryChart() {
  const samples = useSyncExternalStore(memorySamples.subscribe, memorySamples.get);
  const vram = samples.some((s) => s.vramBudget > 0);
  const data = useMemo(() => {
    const cols: (number | null)[][] = [samples.map((s) => s.t), samples.map((s) => s.ramUsed), samples.map((s) => s.ramBudget)];
    if (vram) cols.push(samples.map((s) => s.vramUsed), samples.map((s) => s.vramBudget));
    return cols as [number[], ...(number | null)[][]];
  }, [samples, vram]);
  const series = [
    { label: "RAM reserved" },
    { label: "RAM budget", dash: [6, 4], color: "#7b8199" },
    ...(vram ? [{ label: "VRAM reserved" }, { label: "VRAM budget", dash: [6, 4], color: "#b76e00" }] : []),
  ];
  return (
    <Card className="p-4">
      {samples.length < 2 ? (
        <p className="text-sm text-ink-3">
          Memory against the budget is drawn from the server's metrics as they arrive (every few seconds), for as long as this tab is open.
        </p>
      ) : (
        <Chart title="Pool memory against the budget" data={data} series={series} format={(v) => formatBytes(v)} height={200} />
      )}
    </Card>
  );
}

export default function ActivityPage() {
  const client = useQueryClient();
  const [params, setParams] = useSearchParams();
  const range = RANGES.find((r) => r.value === params.get("range")) ?? RANGES[1];
  const filter: RowFilter = {
    model: params.get("model") ?? "",
    status: (["ok", "error"].includes(params.get("status") ?? "") ? params.get("status") : "all") as RowFilter["status"],
    text: params.get("q") ?? "",
  };
  const sort = (SORTS.find((s) => s === params.get("sort")) ?? "time") as SortKey;
  const descending = params.get("order") !== "asc";
  const page = Math.max(1, Number(params.get("page")) || 1);
  const size = PAGE_SIZES.includes(Number(params.get("size"))) ? Number(params.get("size")) : 25;
  const change = (next: Record<string, string | number | null>, keepPage = false) => {
    const merged = new URLSearchParams(params);
    for (const [k, v] of Object.entries(next)) {
      if (v === null || v === "") merged.delete(k);
      else merged.set(k, String(v));
    }
    if (!keepPage) merged.delete("page");
    setParams(merged, { replace: true });
  };

  const key = ["activity", range.value] as const;
  const held = useQuery({ queryKey: key, queryFn: () => load(range.seconds), staleTime: Infinity });
  useServerEvent<RequestRecord>("request", (record) =>
    client.setQueryData<Held>(key, (h) => (h && !h.rows.some((r) => r.id === record.id) ? { rows: [record, ...h.rows].slice(0, MAX_ROWS), total: h.total + 1 } : h)),
  );
  useServerEvent("missed", () => void client.invalidateQueries({ queryKey: key }));

  const all = useMemo(() => held.data?.rows ?? [], [held.data]);
  const models = useMemo(() => [...new Set(all.map((r) => r.model))].sort(), [all]);
  const rows = useMemo(() => filterRows(all, filter), [all, filter.model, filter.status, filter.text]); // eslint-disable-line react-hooks/exhaustive-deps
  const sorted = useMemo(() => sortRows(rows, sort, descending), [rows, sort, descending]);
  const s = useMemo(() => stats(rows), [rows]);
  const speed = useMemo(() => seriesByModel(rows, (r) => r.tokensPerSecond), [rows]);
  const ttft = useMemo(() => seriesByModel(rows, (r) => r.ttft), [rows]);
  const inFlight = useModelStates().models.reduce((n, m) => n + m.in_flight, 0);

  return (
    <div className="mx-auto max-w-6xl space-y-5 p-4 md:p-6">
      <PageHeader
        title="Activity"
        description="Every inference request the server answered, how fast, and what it holds in memory."
        actions={
          <Link href="/logs" className="inline-flex h-9 items-center gap-1.5 rounded-lg border border-line bg-surface px-3.5 text-sm font-medium hover:bg-surface-2">
            <ScrollText className="size-4" aria-hidden /> Logs
          </Link>
        }
      />
      <div className="flex flex-wrap items-center gap-2" role="group" aria-label="Filters">
        <Select aria-label="Time range" className="w-auto" value={range.value} onChange={(e) => change({ range: e.target.value })}>
          {RANGES.map((r) => (
            <option key={r.value} value={r.value}>
              {r.label}
            </option>
          ))}
        </Select>
        <Select aria-label="Model" className="w-auto" value={filter.model} onChange={(e) => change({ model: e.target.value })}>
          <option value="">All models</option>
          {models.map((m) => (
            <option key={m} value={m}>
              {m}
            </option>
          ))}
        </Select>
        <Select aria-label="Outcome" className="w-auto" value={filter.status} onChange={(e) => change({ status: e.target.value === "all" ? null : e.target.value })}>
          <option value="all">Any outcome</option>
          <option value="ok">Succeeded</option>
          <option value="error">Failed</option>
        </Select>
        <div className="relative min-w-0 flex-1 basis-48">
          <Search className="pointer-events-none absolute top-1/2 left-3 size-4 -translate-y-1/2 text-ink-3" aria-hidden />
          <Input type="search" aria-label="Search requests" placeholder="Route, client, error, id" value={filter.text} onChange={(e) => change({ q: e.target.value })} className="pl-9" />
        </div>
      </div>

      <div className="grid grid-cols-2 gap-3 lg:grid-cols-4">
        <Stat label="Requests" value={s.requests.toLocaleString("en-US")} sub={`${inFlight} in flight now`} />
        <Stat label="Errors" value={s.errors.toLocaleString("en-US")} sub={s.requests ? `${((s.errors / s.requests) * 100).toFixed(1)}% of requests` : undefined} />
        <Stat
          label="Tokens"
          value={(s.promptTokens + s.completionTokens).toLocaleString("en-US")}
          sub={`${s.promptTokens.toLocaleString("en-US")} prompt · ${s.completionTokens.toLocaleString("en-US")} generated`}
        />
        <Stat label="Prompt speed" value={formatRate(s.promptPerSecond)} sub="uncached prompt tokens" />
        <Stat label="Generation speed" value={formatRate(s.generationPerSecond)} sub="tokens after the first" />
        <Stat label="TTFT p50" value={formatDuration(s.ttftP50)} sub="time to the first token" />
        <Stat label="TTFT p95" value={formatDuration(s.ttftP95)} />
        <Stat label="Held" value={`${all.length.toLocaleString("en-US")}`} sub={held.data && held.data.total > all.length ? `newest of ${held.data.total.toLocaleString("en-US")} in range` : "requests in range"} />
      </div>

      <div className="grid gap-4 lg:grid-cols-2">
        <Card className="p-4">
          <Chart title="Generation speed per request" data={speed.data as never} series={speed.models.map((m) => ({ label: m, points: true }))} format={(v) => formatRate(v)} />
        </Card>
        <Card className="p-4">
          <Chart title="Time to first token per request" data={ttft.data as never} series={ttft.models.map((m) => ({ label: m, points: true }))} format={(v) => formatDuration(v)} />
        </Card>
      </div>
      <MemoryChart />

      <Card className="overflow-hidden" aria-label="Request history">
        {held.isPending ? (
          <div className="flex items-center gap-2 p-4 text-sm text-ink-3">
            <Spinner /> Loading the requests…
          </div>
        ) : held.error ? (
          <div className="p-4">
            <ErrorNote error={held.error} />
          </div>
        ) : (
          <RequestTable
            rows={sorted}
            sort={sort}
            descending={descending}
            onSort={(k) => change({ sort: k === "time" ? null : k, order: k === sort ? (descending ? "asc" : null) : null })}
            page={page}
            size={size}
            onPage={(p) => change({ page: p === 1 ? null : p }, true)}
            onSize={(n) => change({ size: n === 25 ? null : n })}
          />
        )}
      </Card>
    </div>
  );
}
