/**
 * Live model state: the ONE place the UI learns which models are loaded, loading (and how far),
 * evicted (and why) or failed, and the connection indicator's state.
 *
 * It comes from the event stream (`events.ts`): the `snapshot` fills the query cache, each
 * `model` event changes one model in it (`setQueryData`), `metrics` events bring requests in
 * flight and the pool's budget, a `config` event that applied a new config (a soft restart
 * elsewhere) refetches the list, and so does a `missed` notice. `GET /v1/models` is asked once
 * when a page first needs the list, and polled (with backoff) only while the stream is down, so
 * the page keeps working behind a proxy that breaks event streams. Every page reads models
 * through `useModelStates()`.
 */

import { useMutation, useQuery, useQueryClient, type QueryClient } from "@tanstack/react-query";
import { useEffect } from "react";
import { apiJson, post } from "./api";
import { events, retryDelay, useStreamState, type StreamState } from "./events";
import { pushMemorySample } from "./memory";
import type { Memory, Metrics, ModelEvent, ModelInfo, ModelList, RequestRecord } from "./types";

export const MODELS_KEY = ["models"] as const;
export const METRICS_KEY = ["metrics"] as const;

export type Connection = StreamState;

/** What the connection indicator shows: the event stream's state. */
export const useConnection: () => Connection = useStreamState;

/** How long until the next poll while the stream is down: fast while a model loads, backing off on failures. */
export function pollDelay(list: ModelList | undefined, failures: number): number {
  if (failures > 0) return retryDelay(failures);
  return list?.data.some((m) => m.state === "loading" || m.state === "unloading") ? 500 : 2_000;
}

/** Every configured model with its live state, and the pool's budget. */
export function useModelStates() {
  const live = useStreamState() === "live";
  const query = useQuery({
    queryKey: MODELS_KEY,
    queryFn: () => apiJson<ModelList>("/v1/models"),
    // While the stream is live its events keep the list current; polling is the fallback.
    refetchInterval: live ? false : (q) => pollDelay(q.state.data, q.state.fetchFailureCount),
    staleTime: live ? Infinity : 0,
    refetchOnWindowFocus: !live,
    retry: false, // the interval above is the retry, with backoff
  });
  return {
    models: query.data?.data ?? [],
    budget: query.data?.budget ?? null,
    isLoading: query.isPending,
    error: query.error,
  };
}

function patch(list: ModelList, id: string, change: (m: ModelInfo) => ModelInfo): ModelList {
  return { ...list, data: list.data.map((m) => (m.id === id ? change(m) : m)) };
}

function memoryOf(event: ModelEvent, before: Memory | null): Memory | null {
  const estimate = event.memory?.estimate;
  return estimate ? { vram_bytes: estimate.vramBytes, ram_bytes: estimate.ramBytes } : before;
}

/**
 * The list after one `model` event; null when the event names a model the list does not have
 * (a config applied elsewhere added it): the caller refetches.
 */
export function applyModelEvent(list: ModelList, event: ModelEvent): ModelList | null {
  if (!list.data.some((m) => m.id === event.model)) return null;
  return patch(list, event.model, (m) => {
    const cleared = { ...m, progress: null, error: null };
    switch (event.state) {
      case "loading":
        return { ...cleared, state: "loading", progress: event.progress ?? 0, reason: null, evictedBy: null };
      case "loaded":
        return { ...cleared, state: "loaded", memory: memoryOf(event, m.memory), reason: null, evictedBy: null };
      case "unloading":
        return { ...cleared, state: "unloading", reason: event.reason ?? m.reason ?? null };
      case "evicted":
        return { ...cleared, state: "unloading", reason: event.reason ?? null, evictedBy: event.by ?? null };
      case "unloaded":
        return { ...cleared, state: "unloaded", in_flight: 0, reason: event.reason ?? m.reason ?? null, error: event.error ?? null };
      case "failed":
        return { ...cleared, state: "failed", error: event.error ?? "the load failed" };
      default:
        return m;
    }
  });
}

/** The budget and each model's requests in flight, from a `metrics` event (or the snapshot's). */
export function applyMetrics(list: ModelList, metrics: Metrics): ModelList {
  const flight = new Map(metrics.models.items.map((m) => [m.id, m.inFlight]));
  return {
    ...list,
    budget: { vram_bytes: metrics.pool.vram.budget, ram_bytes: metrics.pool.ram.budget },
    data: list.data.map((m) => (flight.has(m.id) && flight.get(m.id) !== m.in_flight ? { ...m, in_flight: flight.get(m.id) ?? 0 } : m)),
  };
}

/** A finished request leaves its model: one fewer in flight until the next metrics say exactly. */
export function applyRequest(list: ModelList, record: RequestRecord): ModelList {
  return patch(list, record.model, (m) => (m.in_flight > 0 ? { ...m, in_flight: m.in_flight - 1 } : m));
}

interface Snapshot {
  models?: ModelInfo[];
  metrics?: Metrics;
}

/** Feeds the query cache from the stream; returns the function that stops it. */
export function feedModels(client: QueryClient): () => void {
  const refetch = () => void client.invalidateQueries({ queryKey: MODELS_KEY });
  const update = (change: (list: ModelList) => ModelList | null) => {
    const list = client.getQueryData<ModelList>(MODELS_KEY);
    if (!list) return;
    const next = change(list);
    if (next === null) refetch();
    else client.setQueryData(MODELS_KEY, next);
  };
  const stops = [
    events.on<Snapshot>("snapshot", (snapshot) => {
      if (snapshot.models) {
        const list: ModelList = { object: "list", data: snapshot.models, budget: client.getQueryData<ModelList>(MODELS_KEY)?.budget ?? null };
        client.setQueryData(MODELS_KEY, snapshot.metrics ? applyMetrics(list, snapshot.metrics) : list);
      }
      if (snapshot.metrics) {
        client.setQueryData(METRICS_KEY, snapshot.metrics);
        pushMemorySample(snapshot.metrics);
      }
    }),
    events.on<ModelEvent>("model", (event) => update((list) => applyModelEvent(list, event))),
    events.on<Metrics>("metrics", (metrics) => {
      update((list) => applyMetrics(list, metrics));
      client.setQueryData(METRICS_KEY, metrics);
      pushMemorySample(metrics);
    }),
    events.on<RequestRecord>("request", (record) => update((list) => applyRequest(list, record))),
    events.on<{ action?: string }>("config", (change) => {
      if (change.action === "applied") refetch();
    }),
    events.on("missed", refetch),
  ];
  return () => stops.forEach((stop) => stop());
}

/** Opens the event stream and feeds the live model state for as long as the shell is mounted. */
export function useLiveFeed(): void {
  const client = useQueryClient();
  useEffect(() => {
    const stopFeed = feedModels(client);
    const stopStream = events.start();
    return () => {
      stopStream();
      stopFeed();
    };
  }, [client]);
}

/** Sets one model's state in the cache at once, before the server's events confirm it. */
function markState(list: ModelList | undefined, id: string, state: ModelInfo["state"]): ModelList | undefined {
  if (!list) return list;
  return patch(list, id, (m) => ({ ...m, state, error: null, progress: state === "loading" ? 0 : null }));
}

/** Asks for the live state now: after a request that may have loaded a model, when no stream says so. */
export function useRefreshModels(): () => void {
  const client = useQueryClient();
  return () => {
    if (events.state.get() !== "live") void client.invalidateQueries({ queryKey: MODELS_KEY });
  };
}

/** Load, unload and unload all. The stream reports what they did; without it, they refetch. */
export function useModelActions() {
  const client = useQueryClient();
  const refresh = useRefreshModels();
  const load = useMutation({
    mutationFn: (id: string) => post(`/api/models/${encodeURIComponent(id)}/load`),
    onMutate: (id) => client.setQueryData<ModelList>(MODELS_KEY, (list) => markState(list, id, "loading")),
    // A refused load (no room) says why in its answer; the list must not keep showing "loading".
    onError: () => void client.invalidateQueries({ queryKey: MODELS_KEY }),
    onSettled: refresh,
  });
  const unload = useMutation({
    mutationFn: (id: string) => post(`/api/models/${encodeURIComponent(id)}/unload`),
    onSettled: refresh,
  });
  const unloadAll = useMutation({
    mutationFn: () => post<{ unloadedCount: number }>("/api/models/unload"),
    onSettled: refresh,
  });
  return { load, unload, unloadAll, refresh };
}
