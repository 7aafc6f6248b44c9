/** Pieces the non-chat playground tabs share. */

import type { ReactNode } from "react";
import { useSearch } from "wouter";
import { Store } from "../../lib/api";

/** A clip handed from the speech tab to the transcription tab ("Transcribe this"). */
export const handedClip = new Store<File | null>(null);

/** The `?model=` the models page's "Try it" button sends. */
export function useWantedModel(): string {
  return new URLSearchParams(useSearch()).get("model") ?? "";
}

export function TabLayout({ title, description, children }: { title: string; description: ReactNode; children: ReactNode }) {
  return (
    <div className="h-full overflow-y-auto">
      <div className="mx-auto max-w-4xl space-y-5 p-4 md:p-6">
        <div>
          <h1 className="text-xl font-semibold tracking-tight">{title}</h1>
          <p className="mt-0.5 text-sm text-ink-3">{description}</p>
        </div>
        {children}
      </div>
    </div>
  );
}
