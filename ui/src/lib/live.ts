/**
 * Live model state: the ONE place the UI learns which models are loaded, loading or failed,
 * and the connection indicator's state.
 *
 * Today it polls `GET /v1/models` (every 2 s, every 0.5 s while a model loads, backing off up
 * to 15 s while the server is unreachable) and refetches at once after load/unload actions.
 * When the events API (`GET /api/events`) exists, `useLiveModels` opens that stream instead:
 * read it with `apiFetch` + `readSse` (so the key stays in a header), feed each `model_status`
 * event into the query cache with `queryClient.setQueryData(MODELS_KEY, ...)`, reconnect with
 * the same backoff and `Last-Event-ID`, and drop `refetchInterval`. Nothing else changes: every
 * page reads models through `useModelStates()`.
 */

import { useMutation, useQuery, useQueryClient, type Query } from "@tanstack/react-query";
import { useSyncExternalStore } from "react";
import { ApiError, apiJson, post, Store } from "./api";
import type { ModelInfo, ModelList } from "./types";

export const MODELS_KEY = ["models"] as const;

export type Connection = "connecting" | "live" | "reconnecting" | "locked";

/** What the connection indicator shows. */
export const connection = new Store<Connection>("connecting");

export function useConnection(): Connection {
  return useSyncExternalStore(connection.subscribe, connection.get);
}

async function fetchModels(): Promise<ModelList> {
  try {
    const list = await apiJson<ModelList>("/v1/models");
    connection.set("live");
    return list;
  } catch (error) {
    connection.set(error instanceof ApiError && error.status === 401 ? "locked" : "reconnecting");
    throw error;
  }
}

/** How long until the next poll: fast while a model loads, backing off while unreachable. */
export function pollDelay(list: ModelList | undefined, failures: number): number {
  if (failures > 0) return Math.min(15_000, 1_000 * 2 ** (failures - 1));
  return list?.data.some((m) => m.state === "loading") ? 500 : 2_000;
}

function interval(query: Query<ModelList, Error, ModelList, typeof MODELS_KEY>): number {
  return pollDelay(query.state.data, query.state.fetchFailureCount);
}

/** Every configured model with its live state, and the pool's budget. */
export function useModelStates() {
  const query = useQuery({
    queryKey: MODELS_KEY,
    queryFn: fetchModels,
    refetchInterval: interval,
    retry: false, // the interval above is the retry, with backoff
  });
  return {
    models: query.data?.data ?? [],
    budget: query.data?.budget ?? null,
    isLoading: query.isPending,
    error: query.error,
  };
}

/** Sets one model's state in the cache at once, before the server's answer confirms it. */
function markState(list: ModelList | undefined, id: string, state: ModelInfo["state"]): ModelList | undefined {
  if (!list) return list;
  return { ...list, data: list.data.map((m) => (m.id === id ? { ...m, state, error: null } : m)) };
}

/** Asks for the live state now: after a request that may have loaded a model. */
export function useRefreshModels(): () => void {
  const client = useQueryClient();
  return () => void client.invalidateQueries({ queryKey: MODELS_KEY });
}

/** Load, unload and unload all; each refreshes the live state when it is done. */
export function useModelActions() {
  const client = useQueryClient();
  const refresh = () => client.invalidateQueries({ queryKey: MODELS_KEY });
  const load = useMutation({
    mutationFn: (id: string) => post(`/api/models/${encodeURIComponent(id)}/load`),
    onMutate: (id) => client.setQueryData<ModelList>(MODELS_KEY, (list) => markState(list, id, "loading")),
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
