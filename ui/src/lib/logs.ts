/**
 * The logs view's lines: held in a bounded buffer (the newest MAX_LINES, oldest dropped in
 * chunks so a long-running tab never grows without end or copies 100,000 lines per new one),
 * filtered by level, source and text, and written out as text for copy and download.
 */

import type { LogLine } from "./types";

export const MAX_LINES = 100_000;
export const LEVELS = ["debug", "info", "warning", "error", "critical"] as const;
export type Level = (typeof LEVELS)[number];

export function levelRank(level: string): number {
  const at = LEVELS.indexOf(level as Level);
  return at === -1 ? 1 : at;
}

export class LogBuffer {
  private items: LogLine[] = [];
  /** Lines dropped from the front since the start (for stable row keys). */
  dropped = 0;

  constructor(private readonly max = MAX_LINES) {}

  push(lines: LogLine[]): void {
    this.items.push(...lines);
    // Trim a tenth past the cap at a time: one copy per many lines, not one per line.
    if (this.items.length > this.max + Math.ceil(this.max / 10)) this.trim();
  }

  private trim(): void {
    const extra = this.items.length - this.max;
    this.items = this.items.slice(extra);
    this.dropped += extra;
  }

  lines(): LogLine[] {
    if (this.items.length > this.max) this.trim();
    return this.items;
  }

  clear(): void {
    this.items = [];
    this.dropped = 0;
  }
}

export interface LogFilter {
  level: Level;
  /** Sources to hide (new sources show by default). */
  hidden: string[];
  text: string;
}

export function filterLogs(lines: LogLine[], f: LogFilter): LogLine[] {
  const min = levelRank(f.level);
  const q = f.text.trim().toLowerCase();
  const hidden = new Set(f.hidden);
  if (min === 0 && !q && hidden.size === 0) return lines;
  return lines.filter(
    (l) => levelRank(l.level) >= min && !hidden.has(l.source) && (!q || l.message.toLowerCase().includes(q) || l.logger.toLowerCase().includes(q)),
  );
}

/** One line as text: `2025-01-01T12:00:00.000Z INFO claracore.pool: message`. */
export function formatLine(l: LogLine): string {
  return `${l.time} ${l.level.toUpperCase().padEnd(8)} ${l.logger}: ${l.message}`;
}
