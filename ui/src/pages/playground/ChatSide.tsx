/** The chat's two side panels: saved conversations, and the request's settings. */

import { Download, MessageSquarePlus, Pencil, Trash2 } from "lucide-react";
import { useId, useState } from "react";
import { ModelPicker } from "../../components/ModelPicker";
import { Button, cx, Field, IconButton, Input, Textarea } from "../../components/ui";
import { exportJson, exportName, type ChatSettings, type Conversation } from "../../lib/conversations";
import { saveFile } from "../../lib/files";
import { formatAgo } from "../../lib/format";

function ConversationRow({
  conv,
  active,
  onSelect,
  onRename,
  onDelete,
}: {
  conv: Conversation;
  active: boolean;
  onSelect: () => void;
  onRename: (title: string) => void;
  onDelete: () => void;
}) {
  const [mode, setMode] = useState<"view" | "rename" | "delete">("view");
  const [title, setTitle] = useState(conv.title);
  if (mode === "rename") {
    return (
      <form
        className="flex gap-1 p-1"
        onSubmit={(e) => {
          e.preventDefault();
          onRename(title);
          setMode("view");
        }}
      >
        <Input
          autoFocus
          aria-label="Conversation title"
          value={title}
          onChange={(e) => setTitle(e.target.value)}
          onKeyDown={(e) => e.key === "Escape" && (e.stopPropagation(), setMode("view"))}
          className="h-8"
        />
        <Button size="sm" type="submit" variant="primary">
          Save
        </Button>
      </form>
    );
  }
  if (mode === "delete") {
    return (
      <div className="rounded-lg bg-bad-soft p-2 text-sm">
        <p className="mb-2 text-bad">Delete “{conv.title}”?</p>
        <div className="flex gap-1">
          <Button size="sm" variant="danger" onClick={onDelete}>
            Delete
          </Button>
          <Button size="sm" variant="ghost" onClick={() => setMode("view")}>
            Cancel
          </Button>
        </div>
      </div>
    );
  }
  return (
    <div
      className={cx(
        "group flex items-center rounded-lg transition",
        active ? "bg-brand-soft" : "hover:bg-surface-2",
      )}
    >
      <button
        type="button"
        onClick={onSelect}
        aria-current={active ? "true" : undefined}
        className="min-w-0 flex-1 px-3 py-2 text-left"
      >
        <span className={cx("block truncate text-sm", active ? "font-medium text-brand" : "text-ink")}>{conv.title}</span>
        <span className="block text-xs text-ink-3">
          {formatAgo(conv.updatedAt)} · {conv.messages.length} message{conv.messages.length === 1 ? "" : "s"}
        </span>
      </button>
      <div className={cx("shrink-0 pr-1", active ? "flex" : "hidden group-focus-within:flex group-hover:flex")}>
        <IconButton
          label={`Rename ${conv.title}`}
          onClick={() => {
            setTitle(conv.title);
            setMode("rename");
          }}
        >
          <Pencil className="size-3.5" />
        </IconButton>
        <IconButton label={`Export ${conv.title}`} onClick={() => saveFile(exportName(conv), exportJson(conv))}>
          <Download className="size-3.5" />
        </IconButton>
        <IconButton label={`Delete ${conv.title}`} onClick={() => setMode("delete")}>
          <Trash2 className="size-3.5" />
        </IconButton>
      </div>
    </div>
  );
}

export function ConversationList({
  conversations,
  activeId,
  onNew,
  onSelect,
  onRename,
  onDelete,
}: {
  conversations: Conversation[];
  activeId: string | null;
  onNew: () => void;
  onSelect: (id: string) => void;
  onRename: (id: string, title: string) => void;
  onDelete: (id: string) => void;
}) {
  return (
    <div className="flex h-full flex-col">
      <div className="p-3">
        <Button variant="primary" className="w-full" icon={<MessageSquarePlus className="size-4" />} onClick={onNew}>
          New chat
        </Button>
      </div>
      <div className="min-h-0 flex-1 space-y-0.5 overflow-y-auto px-2 pb-3" aria-label="Conversations" role="list">
        {conversations.length === 0 && <p className="px-3 py-2 text-sm text-ink-3">Your chats are kept in this browser.</p>}
        {conversations.map((c) => (
          <div role="listitem" key={c.id}>
            <ConversationRow
              conv={c}
              active={c.id === activeId}
              onSelect={() => onSelect(c.id)}
              onRename={(title) => onRename(c.id, title)}
              onDelete={() => onDelete(c.id)}
            />
          </div>
        ))}
      </div>
    </div>
  );
}

function NumberField({
  label,
  hint,
  value,
  onChange,
  min,
  max,
  step,
  placeholder = "default",
}: {
  label: string;
  hint?: string;
  value: number | null;
  onChange: (value: number | null) => void;
  min?: number;
  max?: number;
  step?: number;
  placeholder?: string;
}) {
  return (
    <Field label={label} hint={hint}>
      {(props) => (
        <Input
          {...props}
          type="number"
          inputMode="decimal"
          min={min}
          max={max}
          step={step}
          placeholder={placeholder}
          value={value ?? ""}
          onChange={(e) => onChange(e.target.value === "" ? null : Number(e.target.value))}
        />
      )}
    </Field>
  );
}

export function ChatSettingsPanel({
  settings,
  onChange,
}: {
  settings: ChatSettings;
  onChange: (settings: ChatSettings) => void;
}) {
  const set = <K extends keyof ChatSettings>(key: K, value: ChatSettings[K]) => onChange({ ...settings, [key]: value });
  const temperatureId = useId(); // the panel is on the page twice (side column and drawer)
  return (
    <div className="space-y-4 p-4">
      <ModelPicker types={["llm"]} value={settings.model} onChange={(model) => set("model", model)} />
      <Field label="System prompt" hint="Sent first in every request of this chat.">
        {(props) => (
          <Textarea
            {...props}
            rows={4}
            placeholder="You are a helpful assistant."
            value={settings.system}
            onChange={(e) => set("system", e.target.value)}
          />
        )}
      </Field>
      <div>
        <div className="mb-1 flex items-center justify-between">
          <label htmlFor={temperatureId} className="text-[13px] font-medium text-ink-2">
            Temperature
          </label>
          <span className="text-xs text-ink-3 tabular-nums">{settings.temperature ?? "default"}</span>
        </div>
        <input
          id={temperatureId}
          type="range"
          min={0}
          max={2}
          step={0.05}
          value={settings.temperature ?? 0.7}
          onChange={(e) => set("temperature", Number(e.target.value))}
          className="w-full accent-[var(--brand)]"
        />
        <p className="mt-0.5 text-xs text-ink-3">0 always picks the likeliest token.</p>
      </div>
      <div className="grid grid-cols-2 gap-3">
        <NumberField label="Top P" value={settings.top_p} onChange={(v) => set("top_p", v)} min={0} max={1} step={0.05} />
        <NumberField
          label="Max tokens"
          value={settings.max_tokens}
          onChange={(v) => set("max_tokens", v)}
          min={1}
          step={1}
        />
      </div>
      <NumberField
        label="Seed"
        hint="The same seed and settings repeat the same reply."
        value={settings.seed}
        onChange={(v) => set("seed", v)}
        min={0}
        step={1}
        placeholder="random"
      />
    </div>
  );
}
