import { afterEach, describe, expect, it, vi } from "vitest";
import { apiFetch, apiJson, apiKey, errorOf, restartNotice, setKeyPrompt } from "./api";
import { pollDelay } from "./live";

afterEach(() => {
  vi.unstubAllGlobals();
  setKeyPrompt(null);
  apiKey.set(null);
  restartNotice.set(null);
});

function json(body: unknown, status = 200): Response {
  return new Response(JSON.stringify(body), { status, headers: { "Content-Type": "application/json" } });
}

describe("errorOf", () => {
  it("reads OpenAI's envelope (/v1)", async () => {
    const e = await errorOf(json({ error: { message: "bad", type: "invalid_request_error", param: "model", code: "X" } }, 400));
    expect([e.status, e.message, e.code, e.param]).toEqual([400, "bad", "X", "model"]);
  });
  it("reads the management API's shape (/api), with the field it names", async () => {
    const e = await errorOf(json({ error: "apiKey: too short", code: "INVALID_REQUEST", details: { field: "apiKey" } }, 400));
    expect([e.message, e.code, e.param]).toEqual(["apiKey: too short", "INVALID_REQUEST", "apiKey"]);
  });
  it("falls back to the text", async () => {
    const e = await errorOf(new Response("Bad Gateway", { status: 502 }));
    expect(e.message).toBe("Bad Gateway");
  });
});

describe("apiFetch", () => {
  it("sends the key as a bearer header and a JSON body on every state change", async () => {
    const fetchMock = vi.fn(async () => json({ ok: true }));
    vi.stubGlobal("fetch", fetchMock);
    apiKey.set("k-12345678");
    await apiFetch("/api/models/unload", { method: "POST" });
    const [url, init] = fetchMock.mock.calls[0] as unknown as [string, RequestInit];
    const headers = new Headers(init.headers);
    expect(url).toBe("/api/models/unload");
    expect(headers.get("Authorization")).toBe("Bearer k-12345678");
    expect(headers.get("Content-Type")).toBe("application/json");
    expect(init.body).toBe("{}");
  });

  it("asks once for a key on 401 however many calls fail, then retries them with it", async () => {
    let prompts = 0;
    let release: (key: string) => void = () => undefined;
    setKeyPrompt(() => {
      prompts++;
      return new Promise((resolve) => (release = resolve));
    });
    vi.stubGlobal("fetch", async (_url: string, init: RequestInit) =>
      new Headers(init.headers).get("Authorization") === "Bearer right-key" ? json({ ok: 1 }) : json({ error: "no" }, 401),
    );
    const calls = [apiFetch("/v1/models"), apiFetch("/api/settings/system")];
    await vi.waitFor(() => expect(prompts).toBe(1));
    release("right-key");
    const answers = await Promise.all(calls);
    expect(answers.map((r) => r.status)).toEqual([200, 200]);
    expect(prompts).toBe(1);
    expect(apiKey.get()).toBe("right-key");
  });

  it("returns the 401 when the user cancels the dialog", async () => {
    setKeyPrompt(async () => null);
    vi.stubGlobal("fetch", async () => json({ error: "no" }, 401));
    expect((await apiFetch("/v1/models")).status).toBe(401);
  });
});

describe("apiJson", () => {
  it("raises the restart banner when an answer says needsRestart", async () => {
    vi.stubGlobal("fetch", async () => json({ message: "ok", needsRestart: true, restartMessage: "Restart to apply." }));
    await apiJson("/api/config/model/x", { method: "POST", json: { temperature: 0.5 } });
    expect(restartNotice.get()).toBe("Restart to apply.");
  });
});

describe("pollDelay", () => {
  it("polls fast while a model loads and backs off while the server is away", () => {
    const list = (state: string) => ({ object: "list" as const, data: [{ state }] }) as never;
    expect(pollDelay(list("loaded"), 0)).toBe(2000);
    expect(pollDelay(list("loading"), 0)).toBe(500);
    expect([1, 2, 3, 4, 5, 6, 10].map((n) => pollDelay(undefined, n))).toEqual([1000, 2000, 4000, 8000, 15000, 15000, 15000]);
  });
});
