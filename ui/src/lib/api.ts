/**
 * Every call the UI makes to the server goes through `apiFetch`: it adds the API key as a
 * header, asks the user for a key on the first 401 (one dialog however many calls failed) and
 * retries, sends JSON bodies with their content type, and turns both error shapes (OpenAI's on
 * /v1, the management API's on /api) into one `ApiError`.
 */

const KEY_STORAGE = "claracore.apiKey";
const RESTART_STORAGE = "claracore.needsRestart";

export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly param: string | null;
  readonly details: unknown;

  constructor(status: number, message: string, code = "", param: string | null = null, details?: unknown) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.param = param;
    this.details = details;
  }
}

/** A value with listeners, for the few app-wide facts outside the query cache. */
export class Store<T> {
  private listeners = new Set<() => void>();
  private value: T;

  constructor(initial: T) {
    this.value = initial;
  }

  get = (): T => this.value;

  set(value: T): void {
    if (Object.is(value, this.value)) return;
    this.value = value;
    for (const listener of this.listeners) listener();
  }

  subscribe = (listener: () => void): (() => void) => {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  };
}

function readStorage(name: string): string | null {
  try {
    return localStorage.getItem(name);
  } catch {
    return null; // storage disabled: the UI still works, it just forgets
  }
}

function writeStorage(name: string, value: string | null): void {
  try {
    if (value === null) localStorage.removeItem(name);
    else localStorage.setItem(name, value);
  } catch {
    /* storage disabled or full */
  }
}

/** The key this browser holds (kept in localStorage so a reload does not ask again). */
export const apiKey = new Store<string | null>(readStorage(KEY_STORAGE));
apiKey.subscribe(() => writeStorage(KEY_STORAGE, apiKey.get()));

/** The last `restartMessage` an answer came with, until a restart clears it (survives reloads). */
export const restartNotice = new Store<string | null>(readStorage(RESTART_STORAGE));
restartNotice.subscribe(() => writeStorage(RESTART_STORAGE, restartNotice.get()));

/** Shows the key dialog; resolves to the key entered, or null when the user cancelled. */
export type KeyPrompt = (refused: boolean) => Promise<string | null>;
let keyPrompt: KeyPrompt | null = null;
let pendingPrompt: Promise<string | null> | null = null;

export function setKeyPrompt(prompt: KeyPrompt | null): void {
  keyPrompt = prompt;
}

async function askForKey(refused: boolean): Promise<string | null> {
  if (!keyPrompt) return null;
  pendingPrompt ??= keyPrompt(refused).finally(() => {
    pendingPrompt = null;
  });
  return pendingPrompt;
}

export interface ApiInit extends Omit<RequestInit, "body"> {
  /** Sent as JSON with its content type. */
  json?: unknown;
  body?: BodyInit | null;
}

/** fetch() with the key, the JSON body, and the 401 dialog-and-retry. Never throws for a status. */
export async function apiFetch(path: string, init: ApiInit = {}): Promise<Response> {
  const { json, ...rest } = init;
  const method = (rest.method ?? "GET").toUpperCase();
  for (;;) {
    const headers = new Headers(rest.headers);
    const key = apiKey.get();
    if (key) headers.set("Authorization", `Bearer ${key}`);
    let body = rest.body;
    if (json !== undefined) {
      body = JSON.stringify(json);
      headers.set("Content-Type", "application/json");
    } else if (body == null && method !== "GET" && method !== "HEAD") {
      body = "{}"; // state-changing calls always carry a JSON body, as the server expects
      headers.set("Content-Type", "application/json");
    }
    const response = await fetch(path, { ...rest, method, headers, body });
    if (response.status !== 401) return response;
    if (apiKey.get() !== key) continue; // another call got a new key meanwhile: use it
    const given = await askForKey(key !== null);
    if (given === null) return response;
    apiKey.set(given);
  }
}

/** The error an unsuccessful response describes, in either of the server's two shapes. */
export async function errorOf(response: Response): Promise<ApiError> {
  const text = await response.text().catch(() => "");
  try {
    const body = JSON.parse(text);
    const error = body?.error;
    if (error && typeof error === "object") {
      return new ApiError(response.status, String(error.message ?? text), error.code ?? "", error.param ?? null, error.details);
    }
    if (typeof error === "string") {
      return new ApiError(response.status, error, body.code ?? "", body.details?.field ?? null, body.details);
    }
  } catch {
    /* not JSON */
  }
  return new ApiError(response.status, text.trim() || `${response.status} ${response.statusText}`);
}

/** A JSON answer, or an ApiError. An answer saying `needsRestart` raises the restart banner. */
export async function apiJson<T>(path: string, init: ApiInit = {}): Promise<T> {
  const response = await apiFetch(path, init);
  if (!response.ok) throw await errorOf(response);
  const body = (await response.json()) as T;
  const said = body as { needsRestart?: unknown; restartMessage?: unknown };
  if (said && said.needsRestart === true) {
    restartNotice.set(typeof said.restartMessage === "string" ? said.restartMessage : "A restart is needed to apply changes.");
  }
  return body;
}

/** A binary answer (speech), or an ApiError. */
export async function apiBlob(path: string, init: ApiInit = {}): Promise<Blob> {
  const response = await apiFetch(path, init);
  if (!response.ok) throw await errorOf(response);
  return response.blob();
}

export function post<T>(path: string, json?: unknown): Promise<T> {
  return apiJson<T>(path, { method: "POST", json });
}

/** A message for any thrown value, for toasts and inline errors. */
export function messageOf(error: unknown): string {
  if (error instanceof Error) return error.message;
  return String(error);
}
