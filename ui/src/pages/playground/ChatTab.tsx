/** The chat playground: streamed replies, stop (also Esc), edit and regenerate, saved chats. */

import { History, SendHorizontal, SlidersHorizontal, Square, X } from "lucide-react";
import { useCallback, useEffect, useRef, useState } from "react";
import { useSearch } from "wouter";
import { Button, cx, IconButton, Textarea } from "../../components/ui";
import { messageOf } from "../../lib/api";
import { streamChat, type ChatTurn } from "../../lib/chat";
import {
  DEFAULT_SETTINGS,
  load,
  newConversation,
  newId,
  renamed,
  save,
  sorted,
  withMessages,
  type ChatSettings,
  type Conversation,
  type Message,
} from "../../lib/conversations";
import { useModelStates, useRefreshModels } from "../../lib/live";
import { ChatSettingsPanel, ConversationList } from "./ChatSide";
import { MessageView, partsOf } from "./Message";

const DEFAULTS_KEY = "claracore.chatDefaults";
const SUGGESTIONS = [
  "What is the capital city of France? Answer in one sentence.",
  "Write a haiku about tea.",
  "Write a Python function that reverses a string.",
  "Give me three tips for better sleep.",
];

function storage(): Storage | null {
  try {
    return window.localStorage;
  } catch {
    return null;
  }
}

function loadDefaults(): ChatSettings {
  try {
    return { ...DEFAULT_SETTINGS, ...JSON.parse(storage()?.getItem(DEFAULTS_KEY) ?? "{}") };
  } catch {
    return DEFAULT_SETTINGS;
  }
}

/** The messages the API gets: the system prompt, then each turn's answer without its reasoning. */
function turnsOf(settings: ChatSettings, history: Message[]): ChatTurn[] {
  const turns: ChatTurn[] = settings.system.trim() ? [{ role: "system", content: settings.system }] : [];
  for (const m of history) turns.push({ role: m.role, content: m.role === "assistant" ? partsOf(m).answer : m.content });
  return turns;
}

export function ChatTab() {
  const refreshModels = useRefreshModels();
  const wanted = new URLSearchParams(useSearch()).get("model");
  const { models } = useModelStates();
  const [conversations, setConversations] = useState<Conversation[]>(() => {
    const store = storage();
    return store ? sorted(load(store)) : [];
  });
  const [activeId, setActiveId] = useState<string | null>(() => (wanted ? null : conversations[0]?.id ?? null));
  const [draftSettings, setDraftSettings] = useState<ChatSettings>(() => ({ ...loadDefaults(), ...(wanted ? { model: wanted } : {}) }));
  const [streaming, setStreaming] = useState<{ convId: string; messageId: string; controller: AbortController } | null>(null);
  const [input, setInput] = useState("");
  const [panel, setPanel] = useState<"none" | "history" | "settings">("none");
  const scroller = useRef<HTMLDivElement>(null);
  const atBottom = useRef(true);
  const composer = useRef<HTMLTextAreaElement>(null);

  const active = conversations.find((c) => c.id === activeId) ?? null;
  const settings = active?.settings ?? draftSettings;

  // Saved whenever nothing streams (a stream saves once, when it ends), and when the page goes.
  useEffect(() => {
    const store = storage();
    if (!streaming && store) save(store, conversations);
  }, [conversations, streaming]);
  useEffect(() => {
    const onHide = () => {
      const store = storage();
      if (store) save(store, conversations);
    };
    window.addEventListener("pagehide", onHide);
    return () => window.removeEventListener("pagehide", onHide);
  }, [conversations]);

  // Esc stops the reply being streamed, wherever the focus is.
  useEffect(() => {
    if (!streaming) return;
    const onKey = (e: KeyboardEvent) => {
      if (e.key === "Escape" && !e.defaultPrevented) streaming.controller.abort();
    };
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, [streaming]);

  // Follow the reply as it grows, unless the reader scrolled up.
  useEffect(() => {
    const el = scroller.current;
    if (el && atBottom.current) el.scrollTop = el.scrollHeight;
  });

  const changeSettings = useCallback(
    (next: ChatSettings) => {
      storage()?.setItem(DEFAULTS_KEY, JSON.stringify({ ...next, system: next.system }));
      if (active) setConversations((list) => list.map((c) => (c.id === active.id ? { ...c, settings: next } : c)));
      else setDraftSettings(next);
    },
    [active],
  );

  const update = (id: string, change: (c: Conversation) => Conversation) =>
    setConversations((list) => list.map((c) => (c.id === id ? change(c) : c)));

  /** Streams a reply to `history` (which ends with the user's message) into `conv`. */
  const run = async (conv: Conversation, history: Message[]) => {
    const model = conv.settings.model;
    const reply: Message = { id: newId(), role: "assistant", content: "", model };
    const controller = new AbortController();
    setConversations((list) => {
      const next = withMessages(conv, [...history, reply]);
      return [next, ...list.filter((c) => c.id !== conv.id)];
    });
    setActiveId(conv.id);
    setStreaming({ convId: conv.id, messageId: reply.id, controller });
    atBottom.current = true;
    const setReply = (change: Partial<Message>) =>
      update(conv.id, (c) => ({ ...c, messages: c.messages.map((m) => (m.id === reply.id ? { ...m, ...change } : m)) }));

    let frame = 0;
    let latest: Partial<Message> = {};
    const { temperature, top_p, max_tokens, seed } = conv.settings;
    try {
      const result = await streamChat(model, turnsOf(conv.settings, history), { temperature, top_p, max_tokens, seed }, controller.signal, (content, reasoning) => {
        latest = { content, reasoning: reasoning || undefined };
        frame ||= requestAnimationFrame(() => {
          frame = 0;
          setReply(latest);
        });
      });
      cancelAnimationFrame(frame);
      setReply({ content: result.content, reasoning: result.reasoning || undefined, stats: result.stats, stopped: result.stopped });
    } catch (error) {
      cancelAnimationFrame(frame);
      setReply({ ...latest, error: messageOf(error) });
    } finally {
      setStreaming(null);
      update(conv.id, (c) => ({ ...c, updatedAt: Date.now() }));
      refreshModels(); // the model may have loaded for this reply
      composer.current?.focus();
    }
  };

  const send = (text: string) => {
    const content = text.trim();
    if (!content || streaming || !settings.model) return;
    const conv = active ?? newConversation(settings);
    setInput("");
    void run(conv, [...conv.messages, { id: newId(), role: "user", content }]);
  };

  const regenerate = () => {
    if (!active || streaming) return;
    const lastUser = active.messages.map((m) => m.role).lastIndexOf("user");
    if (lastUser >= 0) void run(active, active.messages.slice(0, lastUser + 1));
  };

  const edit = (messageId: string, text: string) => {
    if (!active || streaming) return;
    const at = active.messages.findIndex((m) => m.id === messageId);
    if (at < 0) return;
    void run(active, [...active.messages.slice(0, at), { ...active.messages[at], content: text }]);
  };

  const newChat = () => {
    if (streaming) streaming.controller.abort();
    setActiveId(null);
    setDraftSettings({ ...settings });
    setPanel("none");
    composer.current?.focus();
  };

  const messages = active?.messages ?? [];
  const lastAssistant = messages.map((m) => m.role).lastIndexOf("assistant");
  const modelInfo = models.find((m) => m.id === settings.model);
  const noModel = !models.some((m) => m.type === "llm");

  const history = (
    <ConversationList
      conversations={conversations}
      activeId={activeId}
      onNew={newChat}
      onSelect={(id) => {
        if (streaming) streaming.controller.abort();
        setActiveId(id);
        setPanel("none");
      }}
      onRename={(id, title) => update(id, (c) => renamed(c, title))}
      onDelete={(id) => {
        if (streaming?.convId === id) streaming.controller.abort();
        setConversations((list) => list.filter((c) => c.id !== id));
        if (activeId === id) setActiveId(null);
      }}
    />
  );
  const settingsPanel = <ChatSettingsPanel settings={settings} onChange={changeSettings} />;

  return (
    <div className="flex h-full">
      <aside className="hidden w-60 shrink-0 border-r border-line bg-surface lg:block">{history}</aside>

      <section className="relative flex min-w-0 flex-1 flex-col" aria-label="Chat">
        <div className="flex h-11 shrink-0 items-center gap-2 border-b border-line px-3">
          <Button size="sm" variant="ghost" className="lg:hidden" icon={<History className="size-4" />} onClick={() => setPanel("history")}>
            Chats
          </Button>
          <h2 className="min-w-0 flex-1 truncate text-sm font-medium">{active?.title ?? "New chat"}</h2>
          {modelInfo && (
            <span className="hidden items-center gap-1.5 text-xs text-ink-3 sm:inline-flex" data-testid="chat-model-state">
              <span
                className={cx(
                  "size-1.5 rounded-full",
                  modelInfo.state === "loaded" ? "bg-ok" : modelInfo.state === "loading" ? "bg-warn pulse-dot" : modelInfo.state === "failed" ? "bg-bad" : "bg-ink-3",
                )}
                aria-hidden
              />
              {modelInfo.id} · {modelInfo.state === "unloaded" ? "not loaded" : modelInfo.state}
            </span>
          )}
          <Button size="sm" variant="ghost" className="2xl:hidden" icon={<SlidersHorizontal className="size-4" />} onClick={() => setPanel("settings")}>
            Settings
          </Button>
        </div>

        <div
          ref={scroller}
          className="min-h-0 flex-1 overflow-y-auto"
          onScroll={(e) => {
            const el = e.currentTarget;
            atBottom.current = el.scrollHeight - el.scrollTop - el.clientHeight < 40;
          }}
        >
          <div className="mx-auto max-w-3xl space-y-6 px-4 py-6" aria-live="polite" aria-busy={!!streaming}>
            {messages.length === 0 ? (
              <div className="flex flex-col items-center pt-[12vh] text-center">
                <h2 className="text-2xl font-semibold tracking-tight">
                  {noModel ? "No chat model is configured" : `Chat with ${settings.model || "a model"}`}
                </h2>
                <p className="mt-2 max-w-md text-sm text-ink-3">
                  {noModel
                    ? "Add a GGUF chat model to the configuration to start."
                    : modelInfo?.state === "loaded"
                      ? "The model is loaded: replies start at once."
                      : "The model loads with your first message; that first reply takes a moment longer."}
                </p>
                {!noModel && (
                  <div className="mt-6 grid w-full max-w-xl gap-2 sm:grid-cols-2">
                    {SUGGESTIONS.map((s) => (
                      <button
                        key={s}
                        type="button"
                        onClick={() => send(s)}
                        className="rounded-xl border border-line bg-surface px-4 py-3 text-left text-sm text-ink-2 transition hover:border-brand/50 hover:text-ink"
                      >
                        {s}
                      </button>
                    ))}
                  </div>
                )}
              </div>
            ) : (
              messages.map((m, i) => (
                <MessageView
                  key={m.id}
                  message={m}
                  streaming={streaming?.messageId === m.id}
                  canRegenerate={!streaming && i === lastAssistant && i === messages.length - 1}
                  canEdit={!streaming}
                  onRegenerate={regenerate}
                  onEdit={(text) => edit(m.id, text)}
                />
              ))
            )}
          </div>
        </div>

        <form
          className="border-t border-line bg-surface px-4 py-3"
          onSubmit={(e) => {
            e.preventDefault();
            send(input);
          }}
        >
          <div className="mx-auto flex max-w-3xl items-end gap-2">
            <Textarea
              ref={composer}
              aria-label="Message"
              placeholder={settings.model ? `Message ${settings.model}…` : "Choose a model first"}
              rows={1}
              value={input}
              onChange={(e) => setInput(e.target.value)}
              onKeyDown={(e) => {
                if (e.key === "Enter" && !e.shiftKey && !e.nativeEvent.isComposing) {
                  e.preventDefault();
                  send(input);
                }
              }}
              className="max-h-48 min-h-10 resize-none"
              style={{ height: `${Math.min(12, input.split("\n").length) * 1.6 + 1}rem` }}
            />
            {streaming ? (
              <Button variant="secondary" icon={<Square className="size-4 fill-current" />} onClick={() => streaming.controller.abort()} title="Stop (Esc)">
                Stop
              </Button>
            ) : (
              <Button type="submit" variant="primary" icon={<SendHorizontal className="size-4" />} disabled={!input.trim() || !settings.model}>
                Send
              </Button>
            )}
          </div>
          <p className="mx-auto mt-1.5 hidden max-w-3xl text-[11px] text-ink-3 sm:block">
            Enter sends · Shift+Enter adds a line · Esc stops a reply · chats stay in this browser
          </p>
        </form>
      </section>

      <aside className="hidden w-72 shrink-0 overflow-y-auto border-l border-line bg-surface 2xl:block" aria-label="Chat settings">
        {settingsPanel}
      </aside>

      {panel !== "none" && (
        <div className="fixed inset-0 z-40 2xl:hidden" role="dialog" aria-modal="true" aria-label={panel === "history" ? "Chats" : "Chat settings"}>
          <div className="absolute inset-0 bg-black/40" onClick={() => setPanel("none")} aria-hidden />
          <div
            className={cx(
              "absolute inset-y-0 flex w-[min(20rem,90vw)] flex-col bg-surface shadow-xl",
              panel === "history" ? "left-0" : "right-0",
            )}
            onKeyDown={(e) => e.key === "Escape" && setPanel("none")}
          >
            <div className="flex items-center justify-between border-b border-line px-3 py-2">
              <span className="text-sm font-medium">{panel === "history" ? "Chats" : "Settings"}</span>
              <IconButton label="Close" autoFocus onClick={() => setPanel("none")}>
                <X className="size-4" />
              </IconButton>
            </div>
            <div className="min-h-0 flex-1 overflow-y-auto">{panel === "history" ? history : settingsPanel}</div>
          </div>
        </div>
      )}
    </div>
  );
}
