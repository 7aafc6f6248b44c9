/** What a save will change, as the lines of a unified diff (jsdiff does the diffing). */

import { structuredPatch } from "diff";

export interface DiffLine {
  kind: "add" | "remove" | "same" | "gap";
  text: string;
  /** Line numbers in the old and the new text (1-based), where the line exists. */
  oldLine?: number;
  newLine?: number;
}

export interface Diff {
  lines: DiffLine[];
  added: number;
  removed: number;
}

/** The changed lines with `context` lines around each change; "gap" rows stand for the lines skipped. */
export function lineDiff(before: string, after: string, context = 3): Diff {
  const patch = structuredPatch("before", "after", before, after, "", "", { context });
  const lines: DiffLine[] = [];
  let added = 0;
  let removed = 0;
  patch.hunks.forEach((hunk, i) => {
    if (i > 0 || hunk.oldStart > 1) lines.push({ kind: "gap", text: `@@ line ${hunk.newStart} @@` });
    let oldLine = hunk.oldStart;
    let newLine = hunk.newStart;
    for (const raw of hunk.lines) {
      const mark = raw[0];
      const text = raw.slice(1);
      if (mark === "\\") continue; // "\ No newline at end of file"
      if (mark === "+") {
        lines.push({ kind: "add", text, newLine: newLine++ });
        added++;
      } else if (mark === "-") {
        lines.push({ kind: "remove", text, oldLine: oldLine++ });
        removed++;
      } else {
        lines.push({ kind: "same", text, oldLine: oldLine++, newLine: newLine++ });
      }
    }
  });
  return { lines, added, removed };
}
