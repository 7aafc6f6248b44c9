/** The requests as a table: sortable columns, a page at a time, CSV of everything the filters keep. */

import { ArrowDown, ArrowUp, ChevronLeft, ChevronRight, FileDown } from "lucide-react";
import { Badge, Button, cx, Select } from "../../components/ui";
import { isError, toCsv, type SortKey } from "../../lib/activity";
import { saveFile } from "../../lib/files";
import { formatDuration, formatRate } from "../../lib/format";
import type { RequestRecord } from "../../lib/types";

const COLUMNS: { key: SortKey; label: string; right?: boolean }[] = [
  { key: "time", label: "Time" },
  { key: "model", label: "Model" },
  { key: "route", label: "Route" },
  { key: "status", label: "Status" },
  { key: "promptTokens", label: "Prompt", right: true },
  { key: "completionTokens", label: "Output", right: true },
  { key: "ttft", label: "TTFT", right: true },
  { key: "tokensPerSecond", label: "Speed", right: true },
  { key: "duration", label: "Duration", right: true },
];

export const PAGE_SIZES = [25, 50, 100];

function time(iso: string): string {
  const d = new Date(iso);
  const today = new Date().toDateString() === d.toDateString();
  return today ? d.toLocaleTimeString() : d.toLocaleString();
}

export function RequestTable({
  rows,
  sort,
  descending,
  onSort,
  page,
  size,
  onPage,
  onSize,
}: {
  rows: RequestRecord[];
  sort: SortKey;
  descending: boolean;
  onSort: (key: SortKey) => void;
  page: number;
  size: number;
  onPage: (page: number) => void;
  onSize: (size: number) => void;
}) {
  const pages = Math.max(1, Math.ceil(rows.length / size));
  const at = Math.min(page, pages);
  const shown = rows.slice((at - 1) * size, at * size);
  return (
    <div>
      <div className="overflow-x-auto">
        <table className="w-full text-sm" aria-label="Requests">
          <thead className="bg-surface-2 text-left text-xs text-ink-3">
            <tr>
              {COLUMNS.map((c) => (
                <th
                  key={c.key}
                  aria-sort={sort === c.key ? (descending ? "descending" : "ascending") : undefined}
                  className={cx("px-3 py-2 font-medium whitespace-nowrap", c.right && "text-right")}
                >
                  <button type="button" onClick={() => onSort(c.key)} className="inline-flex items-center gap-1 hover:text-ink">
                    {c.label}
                    {sort === c.key && (descending ? <ArrowDown className="size-3" aria-hidden /> : <ArrowUp className="size-3" aria-hidden />)}
                  </button>
                </th>
              ))}
            </tr>
          </thead>
          <tbody className="divide-y divide-line">
            {shown.map((r) => (
              <tr key={r.id} data-request={r.id} className="hover:bg-surface-2/60">
                <td className="px-3 py-1.5 whitespace-nowrap tabular-nums" title={r.time}>
                  {time(r.time)}
                </td>
                <td className="max-w-48 truncate px-3 py-1.5 font-medium" title={r.model}>
                  {r.model}
                </td>
                <td className="px-3 py-1.5 whitespace-nowrap text-ink-2">
                  {r.route.replace(/^POST /, "")}
                  {r.stream && <span className="ml-1 text-[11px] text-ink-3">stream</span>}
                </td>
                <td className="px-3 py-1.5">
                  <Badge tone={isError(r) ? "bad" : "ok"}>{r.errorCode ?? r.status ?? "ok"}</Badge>
                </td>
                <td className="px-3 py-1.5 text-right tabular-nums">
                  {r.promptTokens.toLocaleString("en-US")}
                  {r.cachedTokens > 0 && <span className="ml-1 text-[11px] text-ink-3">({r.cachedTokens} cached)</span>}
                </td>
                <td className="px-3 py-1.5 text-right tabular-nums">{r.completionTokens.toLocaleString("en-US")}</td>
                <td className="px-3 py-1.5 text-right tabular-nums">{formatDuration(r.ttft)}</td>
                <td className="px-3 py-1.5 text-right whitespace-nowrap tabular-nums">{formatRate(r.tokensPerSecond)}</td>
                <td className="px-3 py-1.5 text-right tabular-nums">{formatDuration(r.duration)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <div className="flex flex-wrap items-center justify-between gap-3 border-t border-line px-4 py-2.5 text-sm">
        <span className="text-ink-3 tabular-nums" aria-label="Rows shown">
          {rows.length ? `${(at - 1) * size + 1}–${(at - 1) * size + shown.length} of ${rows.length.toLocaleString("en-US")}` : "No request matches"}
        </span>
        <div className="flex items-center gap-2">
          <Select aria-label="Rows per page" className="h-8 w-auto text-[13px]" value={size} onChange={(e) => onSize(Number(e.target.value))}>
            {PAGE_SIZES.map((n) => (
              <option key={n} value={n}>
                {n} per page
              </option>
            ))}
          </Select>
          <Button size="sm" variant="ghost" aria-label="Previous page" disabled={at <= 1} onClick={() => onPage(at - 1)} icon={<ChevronLeft className="size-4" />} />
          <span className="tabular-nums" aria-label="Page">
            {at} / {pages}
          </span>
          <Button size="sm" variant="ghost" aria-label="Next page" disabled={at >= pages} onClick={() => onPage(at + 1)} icon={<ChevronRight className="size-4" />} />
          <Button
            size="sm"
            icon={<FileDown className="size-4" />}
            disabled={!rows.length}
            onClick={() => saveFile(`claracore-requests-${new Date().toISOString().slice(0, 19).replace(/:/g, "")}.csv`, toCsv(rows), "text/csv")}
          >
            CSV
          </Button>
        </div>
      </div>
    </div>
  );
}
