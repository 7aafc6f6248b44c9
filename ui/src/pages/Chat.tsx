/** The playground: chat, and small tabs for the other model kinds. */

import { AudioLines, FileAudio, ListOrdered, MessageSquare, Sigma } from "lucide-react";
import { useParams } from "wouter";
import { TabNav } from "../components/TabNav";
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
      <TabNav
        label="Playground"
        className="bg-surface px-3 md:px-5"
        items={TABS.map(({ id, label, icon }) => ({ href: id ? `/chat/${id}` : "/chat", label, icon, active: id === current.id }))}
      />
      <div className="min-h-0 flex-1">
        <Tab />
      </div>
    </div>
  );
}
