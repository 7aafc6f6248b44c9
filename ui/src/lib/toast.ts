/** Short notices at the bottom of the screen ("Model loaded", errors of background actions). */

import { useSyncExternalStore } from "react";
import { Store } from "./api";

export interface Toast {
  id: number;
  message: string;
  tone: "ok" | "bad" | "info";
}

const toasts = new Store<Toast[]>([]);
let next = 1;

export function toast(message: string, tone: Toast["tone"] = "ok", ms = 4000): void {
  const item = { id: next++, message, tone };
  toasts.set([...toasts.get(), item].slice(-4));
  setTimeout(() => dismiss(item.id), tone === "bad" ? ms * 2 : ms);
}

export function dismiss(id: number): void {
  toasts.set(toasts.get().filter((t) => t.id !== id));
}

export function useToasts(): Toast[] {
  return useSyncExternalStore(toasts.subscribe, toasts.get);
}
