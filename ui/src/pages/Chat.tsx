/** The playground: chat, and small tabs for the other model kinds. */

import { AudioLines, FileAudio, ListOrdered, MessageSquare, Sigma } from "lucide-react";
import { Link, useParams } from "wouter";
import { cx } from "../components/ui";
import { ChatTab } from "./playground/ChatTab";
import { EmbeddingsTab } from "./playground/EmbeddingsTab";
import { RerankTab } from "./playground/RerankTab";
import { SpeechTab } from "./playground/SpeechTab";
import { TranscribeTab } from "./playground/TranscribeTab";

const TABS = [
  { id: "", label: "Chat", icon: MessageSquare, component: ChatTab },
  { id: "embeddings", label: "Embeddings", icon: Sigma, component: EmbeddingsTab },
  { id: "rerank", label: "Rerank", icon: ListOrdered, component: RerankTab },
  { id: "speech", label: "Speech", icon: AudioLines, component: SpeechTab },
  { id: "transcribe", label: "Transcribe", icon: FileAudio, component: TranscribeTab },
];

export default function ChatPage() {
  const { tab = "" } = useParams<{ tab?: string }>();
  const current = TABS.find((t) => t.id === tab) ?? TABS[0];
  const Tab = current.component;
  return (
    <div className="flex h-full flex-col">
      <nav aria-label="Playground" className="flex shrink-0 gap-1 overflow-x-auto border-b border-line bg-surface px-3 md:px-5">
        {TABS.map(({ id, label, icon: Icon }) => {
          const active = id === current.id;
          return (
            <Link
              key={id || "chat"}
              href={id ? `/chat/${id}` : "/chat"}
              aria-current={active ? "page" : undefined}
              className={cx(
                "-mb-px inline-flex items-center gap-1.5 border-b-2 px-3 py-2.5 text-sm font-medium whitespace-nowrap transition",
                active ? "border-brand text-ink" : "border-transparent text-ink-3 hover:text-ink",
              )}
            >
              <Icon className="size-4" aria-hidden />
              {label}
            </Link>
          );
        })}
      </nav>
      <div className="min-h-0 flex-1">
        <Tab />
      </div>
    </div>
  );
}
