/**
 * The one live connection to the server: `GET /api/events`, read with `apiFetch` + `readSse` so
 * the API key travels in a header (EventSource cannot send one) and never in a URL.
 *
 * Every page listens here (`useServerEvent`) instead of polling: model states, finished requests,
 * metrics, downloads, setup progress and config writes. The stream reconnects with backoff and
 * sends `Last-Event-ID`, so the server replays what was missed (or, when it cannot, sends a fresh
 * `snapshot`, which listeners treat as the whole truth). A stream that says nothing, not even its
 * heartbeat comment, for `SILENCE_MS` is taken for dead and reopened: a laptop that slept or a
 * proxy that dropped the socket without closing it would otherwise leave the page frozen.
 */

import { useEffect, useRef, useSyncExternalStore } from "react";
import { apiFetch, apiKey, Store } from "./api";
import { readSse } from "./sse";

export type StreamState = "connecting" | "live" | "reconnecting" | "locked";

/** The bus types the UI follows; logs have their own stream (`/api/logs?follow=1`) on the logs page. */
export const EVENT_TYPES = ["model", "request", "metrics", "download", "setup", "config"] as const;

/** Three missed heartbeats at the server's default 15 s. */
export const SILENCE_MS = 45_000;

/** How long to wait before the next try after `failures` failed ones: 1 s doubling up to 15 s. */
export function retryDelay(failures: number): number {
  return Math.min(15_000, 1_000 * 2 ** Math.max(0, failures - 1));
}

/** What a frame's `data:` carries: `{"type": T, "data": {...}}`. Null when it is not that. */
export function parseFrame(data: string): { type: string; data: unknown } | null {
  try {
    const frame = JSON.parse(data) as { type?: unknown; data?: unknown };
    return typeof frame?.type === "string" ? { type: frame.type, data: frame.data } : null;
  } catch {
    return null;
  }
}

type Listener = (data: never, id: string) => void;

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => (clearTimeout(timer), resolve()), { once: true });
  });
}

/** Resolves when the browser's key changes (the dialog, the indicator's button) or on abort. */
function keyChange(signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const stop = apiKey.subscribe(() => (stop(), resolve()));
    signal.addEventListener("abort", () => (stop(), resolve()), { once: true });
  });
}

/** The body, passed through unchanged, with `onChunk` called for every chunk (heartbeats too). */
function watched(body: ReadableStream<Uint8Array>, onChunk: () => void): ReadableStream<Uint8Array> {
  return body.pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, controller) {
        onChunk();
        controller.enqueue(chunk);
      },
    }),
  );
}

export class EventStream {
  /** What the connection indicator shows. */
  readonly state = new Store<StreamState>("connecting");
  private listeners = new Map<string, Set<Listener>>();
  private lastId = "";
  private users = 0;
  private controller: AbortController | null = null;

  constructor(
    private readonly path: string,
    private readonly silenceMs = SILENCE_MS,
    private readonly delay: (failures: number) => number = retryDelay,
  ) {}

  /**
   * Calls `listener` with each event's `data` of this type. Besides the bus's types there are
   * `snapshot` (the state on a fresh connection), `missed` (`{count}` events dropped because
   * this page read too slowly: refetch) and `open` (each time the stream connects).
   */
  on<T>(type: string, listener: (data: T, id: string) => void): () => void {
    let set = this.listeners.get(type);
    if (!set) this.listeners.set(type, (set = new Set()));
    set.add(listener as Listener);
    return () => set.delete(listener as Listener);
  }

  private emit(type: string, data: unknown, id: string): void {
    for (const listener of this.listeners.get(type) ?? []) {
      try {
        (listener as (data: unknown, id: string) => void)(data, id);
      } catch (error) {
        console.error(`event listener for ${type} failed`, error);
      }
    }
  }

  /** Opens the stream (shared: it stays open while anyone started it); returns the stop. */
  start(): () => void {
    this.users++;
    if (!this.controller) {
      this.controller = new AbortController();
      void this.run(this.controller.signal);
    }
    let stopped = false;
    return () => {
      if (stopped) return;
      stopped = true;
      if (--this.users === 0) {
        this.controller?.abort();
        this.controller = null;
      }
    };
  }

  private async run(signal: AbortSignal): Promise<void> {
    let failures = 0;
    while (!signal.aborted) {
      const connection = new AbortController();
      const abort = () => connection.abort();
      signal.addEventListener("abort", abort, { once: true });
      let silence: ReturnType<typeof setTimeout> | undefined;
      const alive = () => {
        clearTimeout(silence);
        silence = setTimeout(abort, this.silenceMs);
      };
      try {
        const headers: Record<string, string> = { Accept: "text/event-stream" };
        if (this.lastId) headers["Last-Event-ID"] = this.lastId;
        const response = await apiFetch(this.path, { headers, signal: connection.signal, cache: "no-store" });
        if (response.status === 401) {
          this.state.set("locked");
          await keyChange(signal);
          continue;
        }
        if (!response.ok || !response.body) throw new Error(`the event stream answered ${response.status}`);
        this.state.set("live");
        failures = 0;
        alive();
        this.emit("open", null, this.lastId);
        for await (const message of readSse(watched(response.body, alive))) {
          const frame = parseFrame(message.data);
          if (!frame) continue;
          if (message.id) this.lastId = message.id;
          this.emit(frame.type, frame.data, message.id);
        }
      } catch {
        /* dropped, refused, or silent too long: try again below */
      } finally {
        clearTimeout(silence);
        signal.removeEventListener("abort", abort);
      }
      if (signal.aborted) break;
      failures++;
      this.state.set("reconnecting");
      await sleep(this.delay(failures), signal);
    }
  }
}

/** The UI's stream: every type but logs. */
export const events = new EventStream(`/api/events?types=${EVENT_TYPES.join(",")}`);

export function useStreamState(): StreamState {
  return useSyncExternalStore(events.state.subscribe, events.state.get);
}

/** Calls `handler` (the latest one rendered) for each event of `type` while mounted. */
export function useServerEvent<T>(type: string, handler: (data: T, id: string) => void): void {
  const ref = useRef(handler);
  ref.current = handler;
  useEffect(() => events.on<T>(type, (data, id) => ref.current(data, id)), [type]);
}
