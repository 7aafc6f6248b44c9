/**
 * Conversations kept in the browser (localStorage): the playground's history, with rename,
 * delete and export as JSON. Pure functions over plain data, so they are tested without a page.
 */

import type { ChatStats } from "./chat";

export interface Message {
  id: string;
  role: "user" | "assistant";
  content: string;
  reasoning?: string;
  model?: string;
  stats?: ChatStats;
  stopped?: boolean;
  error?: string;
}

export interface ChatSettings {
  model: string;
  system: string;
  temperature: number | null;
  top_p: number | null;
  max_tokens: number | null;
  seed: number | null;
}

export interface Conversation {
  id: string;
  title: string;
  createdAt: number;
  updatedAt: number;
  settings: ChatSettings;
  messages: Message[];
}

export const STORAGE_KEY = "claracore.conversations.v1";
const UNTITLED = "New chat";

export const DEFAULT_SETTINGS: ChatSettings = {
  model: "",
  system: "",
  temperature: 0.7,
  top_p: null,
  max_tokens: 512,
  seed: null,
};

export function newId(): string {
  return typeof crypto !== "undefined" && "randomUUID" in crypto
    ? crypto.randomUUID()
    : `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;
}

export function newConversation(settings: ChatSettings, now = Date.now()): Conversation {
  return { id: newId(), title: UNTITLED, createdAt: now, updatedAt: now, settings, messages: [] };
}

/** A title from the first user message: its first line, at most 48 characters. */
export function titleFrom(text: string): string {
  const line = text.trim().split("\n")[0].replace(/\s+/g, " ");
  if (!line) return UNTITLED;
  return line.length > 48 ? `${line.slice(0, 47).trimEnd()}…` : line;
}

/** The conversation with its messages replaced; an untitled one takes its first question. */
export function withMessages(conv: Conversation, messages: Message[], now = Date.now()): Conversation {
  const first = messages.find((m) => m.role === "user");
  const title = conv.title === UNTITLED && first ? titleFrom(first.content) : conv.title;
  return { ...conv, messages, title, updatedAt: now };
}

export function renamed(conv: Conversation, title: string): Conversation {
  return { ...conv, title: title.trim() || conv.title };
}

/** Newest first. */
export function sorted(list: Conversation[]): Conversation[] {
  return [...list].sort((a, b) => b.updatedAt - a.updatedAt);
}

/** The export file: the conversation as the API would take it back, plus what the UI measured. */
export function exportJson(conv: Conversation): string {
  const messages = [
    ...(conv.settings.system ? [{ role: "system", content: conv.settings.system }] : []),
    ...conv.messages.map((m) => ({
      role: m.role,
      content: m.content,
      ...(m.reasoning ? { reasoning: m.reasoning } : {}),
      ...(m.model ? { model: m.model } : {}),
      ...(m.stats ? { stats: m.stats } : {}),
    })),
  ];
  return JSON.stringify(
    {
      title: conv.title,
      createdAt: new Date(conv.createdAt).toISOString(),
      updatedAt: new Date(conv.updatedAt).toISOString(),
      settings: conv.settings,
      messages,
    },
    null,
    2,
  );
}

/** A file name for the export: the title in lower case, letters and digits only. */
export function exportName(conv: Conversation): string {
  const slug = conv.title.toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-|-$/g, "").slice(0, 40);
  return `${slug || "chat"}.json`;
}

function isConversation(value: unknown): value is Conversation {
  const c = value as Conversation;
  return !!c && typeof c.id === "string" && typeof c.title === "string" && Array.isArray(c.messages) && !!c.settings;
}

/** What a storage holds; anything unreadable is skipped rather than breaking the page. */
export function load(storage: Pick<Storage, "getItem">): Conversation[] {
  try {
    const parsed = JSON.parse(storage.getItem(STORAGE_KEY) ?? "[]");
    return Array.isArray(parsed) ? parsed.filter(isConversation) : [];
  } catch {
    return [];
  }
}

/** Saves; false when the storage refused (full or disabled). */
export function save(storage: Pick<Storage, "setItem">, list: Conversation[]): boolean {
  try {
    storage.setItem(STORAGE_KEY, JSON.stringify(list));
    return true;
  } catch {
    return false;
  }
}
