/**
 * Logs: ClaraCore's and llama.cpp's log lines as they are written (`GET /api/logs?follow=1`: the
 * stored lines first, then each new one), up to 100,000 in a virtualised list (only the rows on
 * screen are in the page, so scrolling stays smooth at any length). Level, source and text
 * filters live in the URL; pause freezes the view while lines keep arriving; the view follows
 * the newest line until the user scrolls up, and "Jump to latest" follows again.
 */

import { useVirtualizer } from "@tanstack/react-virtual";
import { ArrowDownToLine, Check, Copy, Download, Pause, Play, Search } from "lucide-react";
import { useEffect, useMemo, useRef, useState } from "react";
import { useSearchParams } from "wouter";
import { Button, Card, cx, Input, PageHeader, Select } from "../components/ui";
import { EventStream, type StreamState } from "../lib/events";
import { copyText, saveFile } from "../lib/files";
import { filterLogs, formatLine, LEVELS, LogBuffer, MAX_LINES, type Level } from "../lib/logs";
import { toast } from "../lib/toast";
import type { LogLine } from "../lib/types";

const ROW = 22; // px, every row the same height: what keeps 100,000 rows cheap to lay out
/** What the follow stream's state reads as (a first connect is not a reconnect). */
const FOLLOW: Record<StreamState, string> = {
  connecting: "Connecting",
  live: "Live",
  reconnecting: "Reconnecting",
  locked: "API key needed",
};

/** The stored lines asked for on connecting (the server's most). */
const INITIAL = 10_000;
const LEVEL_OPTIONS: { value: Level; label: string }[] = [
  { value: "debug", label: "Every level" },
  { value: "info", label: "Info and above" },
  { value: "warning", label: "Warnings and errors" },
  { value: "error", label: "Errors only" },
];
const LEVEL_TONE: Record<string, string> = {
  debug: "text-ink-3",
  info: "text-info",
  warning: "text-warn",
  error: "text-bad",
  critical: "text-bad font-semibold",
};

/** The log stream into a buffer, applied in batches (a burst of thousands of lines is one render). */
function useLogStream() {
  const buffer = useRef(new LogBuffer());
  const sources = useRef(new Set<string>());
  const [version, setVersion] = useState(0);
  const [state, setState] = useState<StreamState>("connecting");
  useEffect(() => {
    const stream = new EventStream(`/api/logs?follow=1&limit=${INITIAL}`);
    let pending: LogLine[] = [];
    let timer: ReturnType<typeof setTimeout> | undefined;
    const flush = () => {
      timer = undefined;
      buffer.current.push(pending);
      pending = [];
      setVersion((v) => v + 1);
    };
    const stops = [
      stream.on<LogLine>("log", (line) => {
        pending.push(line);
        sources.current.add(line.source);
        timer ??= setTimeout(flush, 100);
      }),
      // The stored lines come again with every connection: start over rather than repeat them.
      stream.on("open", () => {
        buffer.current.clear();
        pending = [];
        setVersion((v) => v + 1);
      }),
      stream.state.subscribe(() => setState(stream.state.get())),
      stream.start(),
    ];
    return () => {
      clearTimeout(timer);
      stops.forEach((stop) => stop());
    };
  }, []);
  return { buffer: buffer.current, sources: [...sources.current].sort(), version, state };
}

export default function LogsPage() {
  const { buffer, sources, version, state } = useLogStream();
  const [params, setParams] = useSearchParams();
  const level = (LEVELS.find((l) => l === params.get("level")) ?? "debug") as Level;
  const hidden = useMemo(() => (params.get("hide") ?? "").split(",").filter(Boolean), [params]);
  const text = params.get("q") ?? "";
  const set = (key: string, value: string) => {
    const next = new URLSearchParams(params);
    if (value) next.set(key, value);
    else next.delete(key);
    setParams(next, { replace: true });
  };

  const [paused, setPaused] = useState<LogLine[] | null>(null);
  const [follow, setFollow] = useState(true);
  const [copied, setCopied] = useState(false);
  const all = paused ?? buffer.lines();
  // eslint-disable-next-line react-hooks/exhaustive-deps
  const shown = useMemo(() => filterLogs(all, { level, hidden, text }), [all, level, hidden, text, version]);
  const waiting = paused ? buffer.lines().length - paused.length : 0;

  const box = useRef<HTMLDivElement>(null);
  const rows = useVirtualizer({ count: shown.length, getScrollElement: () => box.current, estimateSize: () => ROW, overscan: 30 });
  useEffect(() => {
    if (follow && shown.length) rows.scrollToIndex(shown.length - 1, { align: "end" });
  }, [follow, shown.length, rows]);
  const onScroll = () => {
    const el = box.current;
    if (!el) return;
    const atBottom = el.scrollHeight - el.scrollTop - el.clientHeight < ROW * 2;
    if (atBottom !== follow) setFollow(atBottom);
  };

  const asText = () => shown.map(formatLine).join("\n") + "\n";
  return (
    <div className="mx-auto flex h-full max-w-6xl flex-col gap-4 p-4 md:p-6">
      <PageHeader
        title="Logs"
        description="ClaraCore's log and llama.cpp's, live. Which lines are kept follows the server's --log-level."
        actions={
          <>
            <Button icon={paused ? <Play className="size-4" /> : <Pause className="size-4" />} onClick={() => setPaused(paused ? null : [...buffer.lines()])}>
              {paused ? `Resume${waiting ? ` (${waiting.toLocaleString("en-US")} new)` : ""}` : "Pause"}
            </Button>
            <Button
              icon={copied ? <Check className="size-4" /> : <Copy className="size-4" />}
              disabled={!shown.length}
              onClick={async () => {
                if (await copyText(asText())) {
                  setCopied(true);
                  setTimeout(() => setCopied(false), 1500);
                } else toast("The browser did not allow copying", "bad");
              }}
            >
              Copy
            </Button>
            <Button icon={<Download className="size-4" />} disabled={!shown.length} onClick={() => saveFile("claracore.log", asText(), "text/plain")}>
              Download
            </Button>
          </>
        }
      />
      <div className="flex flex-wrap items-center gap-2" role="group" aria-label="Log filters">
        <Select aria-label="Level" className="w-auto" value={level} onChange={(e) => set("level", e.target.value === "debug" ? "" : e.target.value)}>
          {LEVEL_OPTIONS.map((o) => (
            <option key={o.value} value={o.value}>
              {o.label}
            </option>
          ))}
        </Select>
        <div className="flex flex-wrap gap-1" role="group" aria-label="Sources">
          {[...new Set([...sources, ...hidden])].map((s) => {
            const on = !hidden.includes(s);
            return (
              <button
                key={s}
                type="button"
                aria-pressed={on}
                onClick={() => set("hide", (on ? [...hidden, s] : hidden.filter((h) => h !== s)).join(","))}
                className={cx("h-8 rounded-lg px-2.5 font-mono text-[12px] transition", on ? "bg-ink text-bg" : "bg-surface-2 text-ink-3 line-through hover:text-ink")}
              >
                {s}
              </button>
            );
          })}
        </div>
        <div className="relative min-w-0 flex-1 basis-48">
          <Search className="pointer-events-none absolute top-1/2 left-3 size-4 -translate-y-1/2 text-ink-3" aria-hidden />
          <Input type="search" aria-label="Search the log" placeholder="Text in the message or logger" value={text} onChange={(e) => set("q", e.target.value)} className="pl-9" />
        </div>
      </div>

      <Card className="relative flex min-h-[420px] flex-1 flex-col overflow-hidden">
        <div className="flex items-center justify-between gap-2 border-b border-line px-4 py-2 text-xs text-ink-3 tabular-nums" role="status" aria-label="Log status">
          <span>
            <span data-count={shown.length}>{shown.length.toLocaleString("en-US")}</span> shown of {buffer.lines().length.toLocaleString("en-US")} lines
            {buffer.lines().length >= MAX_LINES ? ` (the newest ${MAX_LINES.toLocaleString("en-US")})` : ""}
          </span>
          <span data-follow={paused ? "paused" : state} className={cx(paused || state !== "live" ? "text-warn" : "text-ok")}>
            {paused ? "Paused" : FOLLOW[state]}
          </span>
        </div>
        <div ref={box} onScroll={onScroll} className="min-h-0 flex-1 overflow-auto bg-[var(--code-bg)] font-mono text-[12px]" role="log" aria-label="Log lines">
          {shown.length === 0 ? (
            <p className="p-4 font-sans text-sm text-ink-3">{buffer.lines().length ? "No line matches the filters." : "Waiting for log lines…"}</p>
          ) : (
            <div style={{ height: rows.getTotalSize(), position: "relative" }}>
              {rows.getVirtualItems().map((item) => {
                const l = shown[item.index];
                return (
                  <div
                    key={item.key}
                    data-log-row={item.index}
                    title={formatLine(l)}
                    className="absolute inset-x-0 flex gap-3 px-4 whitespace-pre hover:bg-surface-2"
                    style={{ height: ROW, lineHeight: `${ROW}px`, transform: `translateY(${item.start}px)` }}
                  >
                    <span className="shrink-0 text-ink-3">{l.time.slice(11, 23)}</span>
                    <span className={cx("w-16 shrink-0 uppercase", LEVEL_TONE[l.level])}>{l.level}</span>
                    <span className="w-20 shrink-0 truncate text-ink-3">{l.source}</span>
                    <span className="min-w-0 truncate">{l.message}</span>
                  </div>
                );
              })}
            </div>
          )}
        </div>
        {!follow && shown.length > 0 && (
          <Button size="sm" variant="primary" className="absolute right-5 bottom-4 shadow-lg" icon={<ArrowDownToLine className="size-4" />} onClick={() => setFollow(true)}>
            Jump to latest
          </Button>
        )}
      </Card>
    </div>
  );
}
