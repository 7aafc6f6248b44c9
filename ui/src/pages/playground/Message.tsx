/** One chat message: Markdown with code copy buttons, folded reasoning, timings, actions. */

import { Brain, Check, ChevronRight, Copy, Pencil, RefreshCw, Square } from "lucide-react";
import { memo, useEffect, useRef, useState, type MouseEvent } from "react";
import { Button, cx, IconButton, Spinner, Textarea } from "../../components/ui";
import { splitThinking } from "../../lib/chat";
import type { Message } from "../../lib/conversations";
import { copyText } from "../../lib/files";
import { formatDuration, formatRate } from "../../lib/format";
import { renderMarkdown } from "../../lib/markdown";

/** The text and the reasoning of a reply, wherever the model put its reasoning. */
export function partsOf(message: Pick<Message, "content" | "reasoning">): { answer: string; reasoning: string; thinking: boolean } {
  if (message.reasoning) return { answer: message.content, reasoning: message.reasoning, thinking: false };
  const { answer, reasoning, thinking } = splitThinking(message.content);
  return { answer, reasoning, thinking };
}

const Markdown = memo(function Markdown({ text }: { text: string }) {
  const onClick = async (e: MouseEvent<HTMLDivElement>) => {
    const button = (e.target as HTMLElement).closest<HTMLButtonElement>("[data-copy-code]");
    const code = button?.closest(".code-block")?.querySelector("code")?.textContent;
    if (!button || code == null) return;
    if (await copyText(code)) {
      button.textContent = "Copied";
      setTimeout(() => (button.textContent = "Copy"), 1500);
    }
  };
  // The HTML comes from renderMarkdown, which escapes raw HTML and unsafe links.
  return <div className="prose-chat" onClick={(e) => void onClick(e)} dangerouslySetInnerHTML={{ __html: renderMarkdown(text) }} />;
});

function Stats({ message }: { message: Message }) {
  const s = message.stats;
  if (!s) return null;
  const parts = [
    s.ttft != null && `first token ${formatDuration(s.ttft)}`,
    `${s.tokens} token${s.tokens === 1 ? "" : "s"}`,
    s.tokensPerSecond != null && formatRate(s.tokensPerSecond),
    s.promptTokens != null && `${s.promptTokens} prompt`,
  ].filter(Boolean);
  return (
    <p data-testid="message-stats" className="text-xs text-ink-3 tabular-nums">
      {parts.join(" · ")}
      {message.stopped && " · stopped"}
    </p>
  );
}

function Reasoning({ text, thinking, seconds }: { text: string; thinking: boolean; seconds?: number | null }) {
  const [open, setOpen] = useState(false);
  return (
    <div className="mb-3 rounded-lg border border-line bg-surface-2/60">
      <button
        type="button"
        aria-expanded={open}
        onClick={() => setOpen(!open)}
        className="flex w-full items-center gap-2 px-3 py-2 text-left text-xs font-medium text-ink-2"
      >
        <ChevronRight className={cx("size-3.5 transition", open && "rotate-90")} aria-hidden />
        <Brain className="size-3.5" aria-hidden />
        {thinking ? "Thinking…" : seconds ? `Reasoning (${formatDuration(seconds)})` : "Reasoning"}
      </button>
      {open && <div className="border-t border-line px-3 py-2 text-sm whitespace-pre-wrap text-ink-2">{text}</div>}
    </div>
  );
}

export function MessageView({
  message,
  streaming,
  canRegenerate,
  canEdit,
  onRegenerate,
  onEdit,
}: {
  message: Message;
  streaming: boolean;
  canRegenerate: boolean;
  canEdit: boolean;
  onRegenerate: () => void;
  onEdit: (text: string) => void;
}) {
  const [editing, setEditing] = useState(false);
  const [draft, setDraft] = useState(message.content);
  const [copied, setCopied] = useState(false);
  const editor = useRef<HTMLTextAreaElement>(null);
  useEffect(() => {
    if (editing) editor.current?.focus();
  }, [editing]);

  const copy = async () => {
    if (await copyText(partsOf(message).answer)) {
      setCopied(true);
      setTimeout(() => setCopied(false), 1500);
    }
  };

  if (message.role === "user") {
    return (
      <div className="group flex flex-col items-end" data-role="user">
        {editing ? (
          <form
            className="w-full max-w-[85%] space-y-2"
            onSubmit={(e) => {
              e.preventDefault();
              if (draft.trim()) {
                setEditing(false);
                onEdit(draft.trim());
              }
            }}
          >
            <Textarea
              ref={editor}
              aria-label="Edit message"
              value={draft}
              rows={Math.min(10, draft.split("\n").length + 1)}
              onChange={(e) => setDraft(e.target.value)}
              onKeyDown={(e) => e.key === "Escape" && (e.stopPropagation(), setEditing(false))}
            />
            <div className="flex justify-end gap-2">
              <Button size="sm" variant="ghost" onClick={() => setEditing(false)}>
                Cancel
              </Button>
              <Button size="sm" variant="primary" type="submit">
                Save and send
              </Button>
            </div>
          </form>
        ) : (
          <div className="flex max-w-[85%] items-center gap-1">
            {canEdit && (
              <IconButton
                label="Edit message"
                className="shrink-0 opacity-0 transition group-focus-within:opacity-100 group-hover:opacity-100"
                onClick={() => {
                  setDraft(message.content);
                  setEditing(true);
                }}
              >
                <Pencil className="size-3.5" />
              </IconButton>
            )}
            <div className="min-w-0 rounded-2xl rounded-br-md bg-brand-soft px-4 py-2.5 break-words whitespace-pre-wrap text-ink">{message.content}</div>
          </div>
        )}
      </div>
    );
  }

  const { answer, reasoning, thinking } = partsOf(message);
  const waiting = streaming && !answer && !reasoning;
  return (
    <div className="group" data-role="assistant" data-streaming={streaming || undefined}>
      {reasoning && <Reasoning text={reasoning} thinking={streaming && thinking} />}
      {waiting ? (
        <div className="flex items-center gap-2 text-sm text-ink-3">
          <Spinner /> Waiting for the first token…
        </div>
      ) : (
        <div data-testid="assistant-text">
          <Markdown text={answer} />
          {streaming && <span className="ml-0.5 inline-block h-4 w-1.5 translate-y-0.5 animate-pulse rounded-sm bg-brand" aria-hidden />}
        </div>
      )}
      {message.error && (
        <p role="alert" className="mt-2 rounded-lg bg-bad-soft px-3 py-2 text-sm text-bad">
          {message.error}
        </p>
      )}
      {!streaming && (
        <div className="mt-1.5 flex flex-wrap items-center gap-x-2 gap-y-1">
          <Stats message={message} />
          <div className="flex opacity-60 transition group-focus-within:opacity-100 group-hover:opacity-100">
            <IconButton label={copied ? "Copied" : "Copy reply"} onClick={() => void copy()}>
              {copied ? <Check className="size-3.5" /> : <Copy className="size-3.5" />}
            </IconButton>
            {canRegenerate && (
              <IconButton label="Regenerate" onClick={onRegenerate}>
                <RefreshCw className="size-3.5" />
              </IconButton>
            )}
          </div>
        </div>
      )}
      {message.stopped && !message.content && !streaming && (
        <p className="mt-1 inline-flex items-center gap-1 text-xs text-ink-3">
          <Square className="size-3" /> Stopped before the first token
        </p>
      )}
    </div>
  );
}
