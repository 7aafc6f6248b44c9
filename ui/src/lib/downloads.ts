/** Downloads as the page keeps them: the list, changed one event at a time, and what each state allows. */

import type { DownloadState, DownloadStatus, FitVerdict } from "./types";

export type DownloadEvent = DownloadStatus & { event: "created" | "state" | "progress" | "removed" };

/** The list after one `download` event: added, replaced in place, or removed. */
export function applyDownloadEvent(list: DownloadStatus[], event: DownloadEvent): DownloadStatus[] {
  const { event: kind, ...status } = event;
  if (kind === "removed") return list.filter((d) => d.id !== status.id);
  const at = list.findIndex((d) => d.id === status.id);
  if (at === -1) return [...list, status];
  return list.map((d, i) => (i === at ? status : d));
}

/** The snapshot's downloads (those not over) merged into a list that may also hold finished ones. */
export function mergeDownloads(list: DownloadStatus[], current: DownloadStatus[]): DownloadStatus[] {
  const byId = new Map(current.map((d) => [d.id, d]));
  const merged = list.map((d) => byId.get(d.id) ?? d);
  return [...merged, ...current.filter((d) => !list.some((x) => x.id === d.id))];
}

export type Action = "pause" | "resume" | "retry" | "cancel" | "remove";

/** What the server lets each state do (the routes answer 409 otherwise). */
export function actionsFor(state: DownloadState): Action[] {
  switch (state) {
    case "queued":
    case "downloading":
      return ["pause", "cancel"];
    case "verifying":
      return ["cancel"];
    case "paused":
      return ["resume", "cancel", "remove"];
    case "failed":
      return ["retry", "cancel", "remove"];
    default:
      return ["remove"];
  }
}

export const VERDICTS: Record<FitVerdict, { label: string; tone: "ok" | "info" | "warn" | "bad" | "neutral"; help: string }> = {
  gpu: { label: "Fits on the GPU", tone: "ok", help: "Every layer in VRAM: the fastest way to run it." },
  partial: { label: "GPU + RAM", tone: "info", help: "Some layers on the GPU, the rest on the CPU: runs, more slowly." },
  ram: { label: "In RAM", tone: "warn", help: "Runs on the CPU from system memory." },
  too_big: { label: "Too big", tone: "bad", help: "Does not fit this machine even at the smallest context." },
  unknown: { label: "Unknown", tone: "neutral", help: "Its header could not be read to judge." },
};

/** "org/name" of a hub repository link or id typed into the search box, else null. */
export function repoFromText(text: string): string | null {
  const t = text.trim().replace(/\/+$/, "");
  const url = t.match(/^https?:\/\/[^/]+\/([A-Za-z0-9][\w.-]*\/[A-Za-z0-9][\w.-]*)(?:\/|$)/);
  if (url) return url[1];
  return /^[A-Za-z0-9][\w.-]*\/[A-Za-z0-9][\w.-]*$/.test(t) ? t : null;
}
