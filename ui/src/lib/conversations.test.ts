import { describe, expect, it } from "vitest";
import {
  DEFAULT_SETTINGS,
  exportJson,
  exportName,
  load,
  newConversation,
  renamed,
  save,
  sorted,
  STORAGE_KEY,
  titleFrom,
  withMessages,
} from "./conversations";

class MemoryStorage {
  data = new Map<string, string>();
  full = false;
  getItem(key: string): string | null {
    return this.data.get(key) ?? null;
  }
  setItem(key: string, value: string): void {
    if (this.full) throw new DOMException("quota", "QuotaExceededError");
    this.data.set(key, value);
  }
}

describe("conversations", () => {
  it("titles a new chat after its first question", () => {
    const conv = newConversation({ ...DEFAULT_SETTINGS, model: "smollm2" }, 1000);
    expect(conv.title).toBe("New chat");
    const next = withMessages(conv, [{ id: "1", role: "user", content: "  What is the capital\nof France?" }], 2000);
    expect(next.title).toBe("What is the capital");
    expect(next.updatedAt).toBe(2000);
    const renamedOnce = renamed(next, "Geography");
    expect(withMessages(renamedOnce, next.messages).title).toBe("Geography");
    expect(renamed(next, "   ").title).toBe(next.title);
  });

  it("shortens long titles", () => {
    expect(titleFrom("x".repeat(100))).toHaveLength(48);
    expect(titleFrom("")).toBe("New chat");
  });

  it("round-trips through storage, newest first, and skips what it cannot read", () => {
    const storage = new MemoryStorage();
    const a = newConversation(DEFAULT_SETTINGS, 1);
    const b = newConversation(DEFAULT_SETTINGS, 2);
    expect(save(storage, [a, b])).toBe(true);
    expect(sorted(load(storage)).map((c) => c.id)).toEqual([b.id, a.id]);
    storage.data.set(STORAGE_KEY, JSON.stringify([a, { nonsense: true }, 3]));
    expect(load(storage).map((c) => c.id)).toEqual([a.id]);
    storage.data.set(STORAGE_KEY, "{not json");
    expect(load(storage)).toEqual([]);
    storage.full = true;
    expect(save(storage, [a])).toBe(false);
  });

  it("exports the messages as the API takes them, with the system prompt and measurements", () => {
    const conv = withMessages(newConversation({ ...DEFAULT_SETTINGS, model: "m", system: "Be brief." }, 0), [
      { id: "1", role: "user", content: "Hi" },
      {
        id: "2",
        role: "assistant",
        content: "Hello!",
        model: "m",
        stats: { ttft: 0.1, tokens: 3, promptTokens: 9, tokensPerSecond: 50, seconds: 0.2 },
      },
    ]);
    const data = JSON.parse(exportJson(conv));
    expect(data.title).toBe("Hi");
    expect(data.messages).toEqual([
      { role: "system", content: "Be brief." },
      { role: "user", content: "Hi" },
      { role: "assistant", content: "Hello!", model: "m", stats: { ttft: 0.1, tokens: 3, promptTokens: 9, tokensPerSecond: 50, seconds: 0.2 } },
    ]);
    expect(exportName(conv)).toBe("hi.json");
    expect(exportName(renamed(conv, "Ünïcode: only!"))).toBe("n-code-only.json");
  });
});
