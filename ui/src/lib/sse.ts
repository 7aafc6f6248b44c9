/**
 * Server-Sent Events read from a fetch() body, per the WHATWG "event stream" rules.
 *
 * EventSource cannot send an Authorization header, so every stream the UI reads (chat
 * completions today, /api/events later) goes through fetch and this parser: the API key travels
 * in a header and never in a URL.
 */

export interface SseEvent {
  /** The `event:` name; "message" when the server gave none. */
  event: string;
  /** The `data:` lines joined with "\n". */
  data: string;
  /** The last `id:` seen on the stream (it carries over to later events, as the spec says). */
  id: string;
  /** A `retry:` the server asked for, in milliseconds, when this event carried one. */
  retry?: number;
}

/**
 * An incremental parser: feed it text in chunks of any size (split anywhere, even between a
 * CR and its LF) and it returns the events completed so far.
 */
export class SseParser {
  private buffer = "";
  private started = false;
  private pendingCR = false;
  private eventName = "";
  private dataLines: string[] = [];
  private hasData = false;
  private retry: number | undefined;
  lastEventId = "";

  feed(chunk: string): SseEvent[] {
    let text = chunk;
    if (!this.started && text.length > 0) {
      this.started = true;
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1); // a leading BOM is ignored
    }
    if (this.pendingCR && text.startsWith("\n")) text = text.slice(1); // the LF of a split CRLF
    this.pendingCR = false;
    this.buffer += text;
    const events: SseEvent[] = [];
    let start = 0;
    for (let i = 0; i < this.buffer.length; i++) {
      const c = this.buffer.charCodeAt(i);
      if (c !== 10 && c !== 13) continue;
      const line = this.buffer.slice(start, i);
      if (c === 13) {
        if (i + 1 === this.buffer.length) this.pendingCR = true;
        else if (this.buffer.charCodeAt(i + 1) === 10) i++;
      }
      start = i + 1;
      const event = this.line(line);
      if (event) events.push(event);
    }
    this.buffer = this.buffer.slice(start);
    return events;
  }

  /** The end of the stream: an event without its closing blank line is dropped, as the spec says. */
  end(): void {
    this.buffer = "";
    this.reset();
  }

  private reset(): void {
    this.eventName = "";
    this.dataLines = [];
    this.hasData = false;
    this.retry = undefined;
  }

  private line(line: string): SseEvent | null {
    if (line === "") return this.dispatch();
    // A line starting with ":" is a comment (heartbeats): its field name is "", which no case takes.
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    switch (field) {
      case "event":
        this.eventName = value;
        break;
      case "data":
        this.dataLines.push(value);
        this.hasData = true;
        break;
      case "id":
        if (!value.includes("\0")) this.lastEventId = value;
        break;
      case "retry":
        if (/^\d+$/.test(value)) this.retry = Number(value);
        break;
      default:
        break; // unknown fields are ignored
    }
    return null;
  }

  private dispatch(): SseEvent | null {
    const event: SseEvent | null = this.hasData
      ? { event: this.eventName || "message", data: this.dataLines.join("\n"), id: this.lastEventId }
      : null;
    if (event && this.retry !== undefined) event.retry = this.retry;
    this.reset();
    return event;
  }
}

/** Every event of a response body, decoded as UTF-8 (also across chunk boundaries). */
export async function* readSse(body: ReadableStream<Uint8Array>): AsyncGenerator<SseEvent> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  const parser = new SseParser();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      yield* parser.feed(decoder.decode(value, { stream: true }));
    }
    yield* parser.feed(decoder.decode());
    parser.end();
  } finally {
    // Leaving early (a caller's break or return) closes the connection instead of leaking it.
    await reader.cancel().catch(() => undefined);
  }
}
