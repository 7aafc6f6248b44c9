import { afterEach, describe, expect, it, vi } from "vitest";
import { apiKey, setKeyPrompt } from "./api";
import { EventStream, parseFrame, retryDelay } from "./events";

afterEach(() => {
  vi.unstubAllGlobals();
  setKeyPrompt(null);
  apiKey.set(null);
});

/** An event-stream response whose body is `text`, then closes. */
function sse(text: string, status = 200): Response {
  return new Response(text, { status, headers: { "Content-Type": "text/event-stream" } });
}

function frame(id: number, type: string, data: unknown): string {
  return `id: ${id}\nevent: ${type}\ndata: ${JSON.stringify({ type, data })}\n\n`;
}

async function until(condition: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !condition(); i++) await new Promise((r) => setTimeout(r, 5));
  expect(condition()).toBe(true);
}

describe("parseFrame and retryDelay", () => {
  it("reads the server's frames and ignores anything else", () => {
    expect(parseFrame('{"type":"model","data":{"model":"a"}}')).toEqual({ type: "model", data: { model: "a" } });
    expect(parseFrame("not json")).toBeNull();
    expect(parseFrame('{"data":1}')).toBeNull();
  });
  it("backs off from 1 s to 15 s", () => {
    expect([1, 2, 3, 4, 5, 9].map(retryDelay)).toEqual([1000, 2000, 4000, 8000, 15000, 15000]);
  });
});

describe("EventStream", () => {
  it("dispatches by type, and reconnects with Last-Event-ID and the key in headers", async () => {
    const bodies = [
      sse(`retry: 3000\n\n${frame(7, "snapshot", { models: [] })}: heartbeat\n\n${frame(8, "model", { model: "a", state: "loading" })}`),
      sse(frame(9, "model", { model: "a", state: "loaded" })),
    ];
    const fetchMock = vi.fn(async () => bodies.shift() ?? new Promise<Response>(() => undefined));
    vi.stubGlobal("fetch", fetchMock);
    apiKey.set("key-12345678");
    const stream = new EventStream("/api/events?types=model", 60_000, () => 0);
    const seen: [string, unknown, string][] = [];
    stream.on("snapshot", (data, id) => seen.push(["snapshot", data, id]));
    stream.on<{ state: string }>("model", (data, id) => seen.push(["model", data.state, id]));
    const stop = stream.start();
    await until(() => seen.length === 3);
    stop();
    expect(seen).toEqual([
      ["snapshot", { models: [] }, "7"],
      ["model", "loading", "8"],
      ["model", "loaded", "9"],
    ]);
    const calls = fetchMock.mock.calls as unknown as [string, RequestInit][];
    const first = new Headers(calls[0][1].headers);
    const second = new Headers(calls[1][1].headers);
    expect(calls[0][0]).toBe("/api/events?types=model");
    expect(first.get("Authorization")).toBe("Bearer key-12345678");
    expect(first.has("Last-Event-ID")).toBe(false);
    expect(second.get("Last-Event-ID")).toBe("8");
  });

  it("says reconnecting while the server is away, live once it answers", async () => {
    let answer: () => Response = () => {
      throw new TypeError("connection refused");
    };
    vi.stubGlobal("fetch", vi.fn(async () => answer()));
    const stream = new EventStream("/api/events", 60_000, () => 5);
    const stop = stream.start();
    await until(() => stream.state.get() === "reconnecting");
    answer = () => new Response(new ReadableStream({ start: (c) => c.enqueue(new TextEncoder().encode(": heartbeat\n\n")) }));
    await until(() => stream.state.get() === "live");
    stop();
  });

  it("waits, locked, for a key after a 401, then connects with it", async () => {
    const fetchMock = vi.fn(async (_url: string, init: RequestInit) =>
      new Headers(init.headers).get("Authorization") === "Bearer right-key-1" ? sse(frame(1, "config", { action: "saved" })) : sse("", 401),
    );
    vi.stubGlobal("fetch", fetchMock);
    setKeyPrompt(async () => null); // the user closes the dialog
    const stream = new EventStream("/api/events", 60_000, () => 0);
    const saved: unknown[] = [];
    stream.on("config", (data) => saved.push(data));
    const stop = stream.start();
    await until(() => stream.state.get() === "locked");
    const tries = fetchMock.mock.calls.length;
    await new Promise((r) => setTimeout(r, 30));
    expect(fetchMock.mock.calls.length).toBe(tries); // no hammering while locked
    apiKey.set("right-key-1");
    await until(() => saved.length > 0);
    stop();
    expect(saved[0]).toEqual({ action: "saved" });
  });

  it("reopens a stream that went silent", async () => {
    let opened = 0;
    vi.stubGlobal(
      "fetch",
      vi.fn(async (_url: string, init: RequestInit) => {
        opened++;
        // A body that never ends and never speaks, until the client aborts it.
        const body = new ReadableStream<Uint8Array>({
          start(controller) {
            init.signal?.addEventListener("abort", () => controller.error(new DOMException("aborted", "AbortError")));
          },
        });
        return new Response(body, { status: 200 });
      }),
    );
    const stream = new EventStream("/api/events", 20, () => 0);
    const stop = stream.start();
    await until(() => opened >= 3);
    stop();
  });
});
