/**
 * Streaming a chat completion: the request the playground sends, the text as it arrives, the
 * reasoning a thinking model emits (as `reasoning_content` deltas or inside <think> tags), and
 * per-message timings: time to first token, tokens, tokens per second.
 */

import { ApiError, apiFetch, errorOf } from "./api";
import { readSse } from "./sse";

export interface ChatTurn {
  role: "system" | "user" | "assistant";
  content: string;
}

export interface SamplingOptions {
  temperature?: number | null;
  top_p?: number | null;
  max_tokens?: number | null;
  seed?: number | null;
}

export interface ChatStats {
  /** Seconds from sending to the first token (includes a model load, if one was needed). */
  ttft: number | null;
  /** Completion tokens (from the server's usage; counted from chunks when a stop cut it off). */
  tokens: number;
  promptTokens: number | null;
  /** Generation speed after the first token, so it does not include prompt processing. */
  tokensPerSecond: number | null;
  /** Seconds from sending to the last token. */
  seconds: number;
}

export interface ChatResult {
  content: string;
  reasoning: string;
  finishReason: string | null;
  stopped: boolean;
  stats: ChatStats;
}

/** The body `POST /v1/chat/completions` gets: unset options are left to the model's defaults. */
export function chatBody(model: string, messages: ChatTurn[], options: SamplingOptions): Record<string, unknown> {
  const body: Record<string, unknown> = {
    model,
    messages,
    stream: true,
    stream_options: { include_usage: true },
  };
  for (const [name, value] of Object.entries(options)) {
    if (value !== null && value !== undefined && !Number.isNaN(value)) body[name] = value;
  }
  return body;
}

/** Speed over the tokens after the first: the first one's time is prompt processing. */
export function tokensPerSecond(tokens: number, firstAt: number | null, endAt: number): number | null {
  if (firstAt === null || tokens < 2 || endAt <= firstAt) return null;
  return (tokens - 1) / ((endAt - firstAt) / 1000);
}

const OPEN = "<think>";
const CLOSE = "</think>";

/**
 * Splits a reply into reasoning and answer when it opens with <think> (DeepSeek-R1, Qwen3 and
 * others write their reasoning so). `thinking` is true while the closing tag has not arrived.
 */
export function splitThinking(text: string): { reasoning: string; answer: string; thinking: boolean } {
  const start = text.trimStart();
  if (!start.startsWith(OPEN)) {
    // A template may open the block itself, so only the closing tag reaches the reply.
    const close = text.indexOf(CLOSE);
    if (close >= 0 && !text.slice(0, close).includes(OPEN)) {
      return { reasoning: text.slice(0, close).trim(), answer: text.slice(close + CLOSE.length).trimStart(), thinking: false };
    }
    return { reasoning: "", answer: text, thinking: false };
  }
  const body = start.slice(OPEN.length);
  const close = body.indexOf(CLOSE);
  if (close < 0) return { reasoning: body.trim(), answer: "", thinking: true };
  return { reasoning: body.slice(0, close).trim(), answer: body.slice(close + CLOSE.length).trimStart(), thinking: false };
}

interface Chunk {
  choices?: { delta?: { content?: string | null; reasoning_content?: string | null }; finish_reason?: string | null }[];
  usage?: { prompt_tokens: number; completion_tokens: number } | null;
  error?: { message?: string; code?: string; param?: string | null };
}

/**
 * Streams one reply. `onText` gets the whole text so far after each chunk. Aborting `signal`
 * (the Stop button, Esc) ends it early with what arrived: `stopped` is then true.
 */
export async function streamChat(
  model: string,
  messages: ChatTurn[],
  options: SamplingOptions,
  signal: AbortSignal,
  onText: (content: string, reasoning: string) => void,
  now: () => number = () => performance.now(),
): Promise<ChatResult> {
  const started = now();
  let firstAt: number | null = null;
  let content = "";
  let reasoning = "";
  let chunks = 0;
  let usage: Chunk["usage"] = null;
  let finishReason: string | null = null;
  let stopped = false;
  try {
    const response = await apiFetch("/v1/chat/completions", {
      method: "POST",
      json: chatBody(model, messages, options),
      signal,
    });
    if (!response.ok) throw await errorOf(response);
    if (!response.body) throw new ApiError(response.status, "the server sent no stream");
    for await (const event of readSse(response.body)) {
      if (event.data === "[DONE]") break;
      const chunk = JSON.parse(event.data) as Chunk;
      if (chunk.error) {
        throw new ApiError(500, chunk.error.message ?? "the stream failed", chunk.error.code ?? "", chunk.error.param ?? null);
      }
      if (chunk.usage) usage = chunk.usage;
      const choice = chunk.choices?.[0];
      if (!choice) continue;
      const text = choice.delta?.content ?? "";
      const thought = choice.delta?.reasoning_content ?? "";
      if (text || thought) {
        firstAt ??= now();
        chunks++;
        content += text;
        reasoning += thought;
        onText(content, reasoning);
      }
      if (choice.finish_reason) finishReason = choice.finish_reason;
    }
  } catch (error) {
    if (!signal.aborted) throw error;
    stopped = true;
  }
  const endAt = now();
  const tokens = usage?.completion_tokens ?? chunks;
  return {
    content,
    reasoning,
    finishReason,
    stopped,
    stats: {
      ttft: firstAt === null ? null : (firstAt - started) / 1000,
      tokens,
      promptTokens: usage?.prompt_tokens ?? null,
      tokensPerSecond: tokensPerSecond(tokens, firstAt, endAt),
      seconds: (endAt - started) / 1000,
    },
  };
}
