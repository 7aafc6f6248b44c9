import { describe, expect, it } from "vitest";
import { readSse, SseParser, type SseEvent } from "./sse";

function parseAll(chunks: string[]): SseEvent[] {
  const parser = new SseParser();
  return chunks.flatMap((c) => parser.feed(c));
}

function streamOf(chunks: (string | Uint8Array)[]): ReadableStream<Uint8Array> {
  const encoder = new TextEncoder();
  return new ReadableStream({
    start(controller) {
      for (const c of chunks) controller.enqueue(typeof c === "string" ? encoder.encode(c) : c);
      controller.close();
    },
  });
}

describe("SseParser", () => {
  it("reads OpenAI's chat stream: one data line per event, then [DONE]", () => {
    const events = parseAll(['data: {"a":1}\n\n', 'data: {"a":2}\n\ndata: [DONE]\n\n']);
    expect(events.map((e) => e.data)).toEqual(['{"a":1}', '{"a":2}', "[DONE]"]);
    expect(events.every((e) => e.event === "message")).toBe(true);
  });

  it("reads the events API's shape: event, id and an object in data", () => {
    const [e] = parseAll(['event: model_status\nid: 42\ndata: {"type":"model_status","data":{"x":1}}\n\n']);
    expect(e.event).toBe("model_status");
    expect(e.id).toBe("42");
    expect(JSON.parse(e.data)).toEqual({ type: "model_status", data: { x: 1 } });
  });

  it("keeps an event split across chunks at any byte until its blank line", () => {
    const text = 'event: log\ndata: {"message":"hello"}\n\n';
    for (let cut = 1; cut < text.length; cut++) {
      const events = parseAll([text.slice(0, cut), text.slice(cut)]);
      expect(events, `cut at ${cut}`).toEqual([{ event: "log", data: '{"message":"hello"}', id: "" }]);
    }
  });

  it("accepts CRLF, CR and LF line ends, also a CRLF split between chunks", () => {
    expect(parseAll(["data: a\r\n\r\ndata: b\r\rdata: c\n\n"]).map((e) => e.data)).toEqual(["a", "b", "c"]);
    const split = parseAll(["data: x\r", "\n\r", "\ndata: y\n\n"]);
    expect(split.map((e) => e.data)).toEqual(["x", "y"]);
    // A CR ending one chunk and the LF starting the next are one line end, not a blank line.
    expect(parseAll(["data: a\r", "\ndata: b\r\n\r\n"]).map((e) => e.data)).toEqual(["a\nb"]);
  });

  it("joins several data lines with newlines and strips one leading space only", () => {
    const [e] = parseAll(["data:  two spaces\ndata:none\ndata\n\n"]);
    expect(e.data).toBe(" two spaces\nnone\n");
  });

  it("ignores comments (heartbeats), unknown fields, and blank lines without data", () => {
    const events = parseAll([": heartbeat\n\nfoo: bar\n\n\n\nevent: x\n\ndata: real\n\n"]);
    expect(events).toEqual([{ event: "message", data: "real", id: "" }]);
  });

  it("carries the last id over to later events, ignores ids with NUL, and reads retry", () => {
    const events = parseAll(["id: 7\ndata: a\n\ndata: b\n\nid: bad\0id\nretry: 2500\ndata: c\n\n"]);
    expect(events.map((e) => e.id)).toEqual(["7", "7", "7"]);
    expect(events[2].retry).toBe(2500);
    expect(events[0].retry).toBeUndefined();
  });

  it("drops a leading byte-order mark and an unfinished event at the end", () => {
    const parser = new SseParser();
    expect(parser.feed("\ufeffdata: first\n\ndata: cut off")).toEqual([
      { event: "message", data: "first", id: "" },
    ]);
    parser.end();
    expect(parser.feed("\n\n")).toEqual([]);
  });
});

describe("readSse", () => {
  it("decodes UTF-8 split inside a character and yields every event", async () => {
    const bytes = new TextEncoder().encode("data: héllo ☕\n\ndata: [DONE]\n\n");
    const cut = 8; // inside the two bytes of "é"
    const events: SseEvent[] = [];
    for await (const e of readSse(streamOf([bytes.slice(0, cut), bytes.slice(cut)]))) events.push(e);
    expect(events.map((e) => e.data)).toEqual(["héllo ☕", "[DONE]"]);
  });

  it("cancels the body when the reader stops early", async () => {
    let cancelled = false;
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        controller.enqueue(new TextEncoder().encode("data: tick\n\n"));
      },
      cancel() {
        cancelled = true;
      },
    });
    for await (const e of readSse(body)) {
      expect(e.data).toBe("tick");
      break;
    }
    expect(cancelled).toBe(true);
  });
});
