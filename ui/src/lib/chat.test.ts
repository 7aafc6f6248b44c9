import { afterEach, describe, expect, it, vi } from "vitest";
import { ApiError, apiKey } from "./api";
import { chatBody, splitThinking, streamChat, tokensPerSecond } from "./chat";

function sse(events: string[]): ReadableStream<Uint8Array> {
  const encoder = new TextEncoder();
  return new ReadableStream({
    start(controller) {
      for (const e of events) controller.enqueue(encoder.encode(`data: ${e}\n\n`));
      controller.close();
    },
  });
}

const chunk = (content: string, finish: string | null = null) =>
  JSON.stringify({ choices: [{ index: 0, delta: { content }, finish_reason: finish }] });

afterEach(() => {
  vi.unstubAllGlobals();
  apiKey.set(null);
});

describe("chatBody", () => {
  it("asks for a stream with usage and leaves unset options out", () => {
    const body = chatBody("smollm2", [{ role: "user", content: "hi" }], {
      temperature: 0,
      top_p: null,
      max_tokens: 64,
      seed: Number.NaN,
    });
    expect(body).toEqual({
      model: "smollm2",
      messages: [{ role: "user", content: "hi" }],
      stream: true,
      stream_options: { include_usage: true },
      temperature: 0,
      max_tokens: 64,
    });
  });
});

describe("streamChat", () => {
  it("accumulates deltas, reads usage and measures time to first token and speed", async () => {
    const fetchMock = vi.fn(async () =>
      new Response(
        sse([
          chunk("The"),
          chunk(" capital"),
          chunk(" is Paris.", "stop"),
          JSON.stringify({ choices: [], usage: { prompt_tokens: 12, completion_tokens: 5 } }),
          "[DONE]",
        ]),
        { headers: { "Content-Type": "text/event-stream" } },
      ),
    );
    vi.stubGlobal("fetch", fetchMock);
    apiKey.set("secret-key-123");
    const clock = [0, 250, 1250]; // sent, first token, end
    const seen: string[] = [];
    const result = await streamChat(
      "smollm2",
      [{ role: "user", content: "Capital of France?" }],
      {},
      new AbortController().signal,
      (text) => seen.push(text),
      () => clock.shift() ?? 1250,
    );
    expect(seen).toEqual(["The", "The capital", "The capital is Paris."]);
    expect(result.content).toBe("The capital is Paris.");
    expect(result.finishReason).toBe("stop");
    expect(result.stopped).toBe(false);
    expect(result.stats).toEqual({ ttft: 0.25, tokens: 5, promptTokens: 12, tokensPerSecond: 4, seconds: 1.25 });
    const [url, init] = fetchMock.mock.calls[0] as unknown as [string, RequestInit];
    expect(url).toBe("/v1/chat/completions");
    expect(new Headers(init.headers).get("Authorization")).toBe("Bearer secret-key-123");
    expect(JSON.parse(String(init.body)).stream_options).toEqual({ include_usage: true });
  });

  it("keeps what arrived when stopped, and counts the chunks as tokens", async () => {
    const controller = new AbortController();
    vi.stubGlobal("fetch", async (_url: string, init: RequestInit) => {
      // As a real fetch does: aborting errors the body stream the reader is waiting on.
      const encoder = new TextEncoder();
      const body = new ReadableStream<Uint8Array>({
        start(stream) {
          stream.enqueue(encoder.encode(`data: ${chunk("one")}\n\ndata: ${chunk(" two")}\n\n`));
          init.signal?.addEventListener("abort", () => stream.error(new DOMException("aborted", "AbortError")));
        },
      });
      return new Response(body);
    });
    const result = await streamChat("m", [], {}, controller.signal, (text) => {
      if (text === "one two") controller.abort();
    });
    expect(result.stopped).toBe(true);
    expect(result.content).toBe("one two");
    expect(result.stats.tokens).toBe(2);
  });

  it("raises the server's error, before or during the stream", async () => {
    vi.stubGlobal(
      "fetch",
      async () =>
        new Response(JSON.stringify({ error: { message: "model 'x' not found", code: "MODEL_NOT_FOUND", param: "model" } }), {
          status: 404,
        }),
    );
    const before = streamChat("x", [], {}, new AbortController().signal, () => undefined);
    await expect(before).rejects.toMatchObject({ status: 404, code: "MODEL_NOT_FOUND", param: "model" });

    vi.stubGlobal("fetch", async () => new Response(sse([chunk("a"), JSON.stringify({ error: { message: "boom", code: "X" } })])));
    const during = streamChat("m", [], {}, new AbortController().signal, () => undefined);
    await expect(during).rejects.toBeInstanceOf(ApiError);
  });

  it("reads reasoning_content deltas apart from the answer", async () => {
    const thought = JSON.stringify({ choices: [{ delta: { reasoning_content: "Let me think." } }] });
    vi.stubGlobal("fetch", async () => new Response(sse([thought, chunk("42", "stop"), "[DONE]"])));
    const result = await streamChat("m", [], {}, new AbortController().signal, () => undefined);
    expect(result.reasoning).toBe("Let me think.");
    expect(result.content).toBe("42");
  });
});

describe("tokensPerSecond", () => {
  it("measures after the first token", () => {
    expect(tokensPerSecond(11, 1000, 3000)).toBe(5);
    expect(tokensPerSecond(1, 1000, 3000)).toBeNull();
    expect(tokensPerSecond(5, null, 3000)).toBeNull();
  });
});

describe("splitThinking", () => {
  it("separates a <think> block from the answer", () => {
    expect(splitThinking("<think>\nThe user asks.\n</think>\n\nParis.")).toEqual({
      reasoning: "The user asks.",
      answer: "Paris.",
      thinking: false,
    });
  });
  it("is still thinking until the closing tag arrives", () => {
    expect(splitThinking("  <think>Hmm, let me")).toEqual({ reasoning: "Hmm, let me", answer: "", thinking: true });
  });
  it("handles a template that opened the block itself", () => {
    expect(splitThinking("step one</think>Answer")).toEqual({ reasoning: "step one", answer: "Answer", thinking: false });
  });
  it("leaves ordinary replies alone", () => {
    expect(splitThinking("Use <think> tags like this.")).toEqual({
      reasoning: "",
      answer: "Use <think> tags like this.",
      thinking: false,
    });
  });
});
