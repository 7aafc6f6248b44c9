/** A unified diff of config.yaml: what a save will change, line by line. */

import { cx } from "../../components/ui";
import type { Diff } from "../../lib/diff";

const MARK = { add: "+", remove: "-", same: " ", gap: "" };

export function DiffView({ diff }: { diff: Diff }) {
  if (diff.lines.length === 0) return <p className="text-sm text-ink-3">Nothing would change.</p>;
  return (
    <div
      role="table"
      aria-label="Changes to config.yaml"
      className="max-h-[55vh] overflow-auto rounded-lg border border-line bg-[var(--code-bg)] font-mono text-[12.5px] leading-5"
    >
      {diff.lines.map((line, i) =>
        line.kind === "gap" ? (
          <div key={i} role="row" className="border-y border-line bg-surface-2 px-3 py-0.5 text-ink-3">
            {line.text}
          </div>
        ) : (
          <div
            key={i}
            role="row"
            data-diff={line.kind}
            className={cx("flex whitespace-pre", line.kind === "add" && "diff-add", line.kind === "remove" && "diff-remove")}
          >
            <span className="w-10 shrink-0 select-none pr-2 text-right text-ink-3 tabular-nums">{line.oldLine ?? ""}</span>
            <span className="w-10 shrink-0 select-none pr-2 text-right text-ink-3 tabular-nums">{line.newLine ?? ""}</span>
            <span
              className={cx("w-4 shrink-0 select-none", line.kind === "add" ? "text-ok" : line.kind === "remove" ? "text-bad" : "text-ink-3")}
              aria-label={line.kind === "add" ? "added" : line.kind === "remove" ? "removed" : undefined}
            >
              {MARK[line.kind]}
            </span>
            <span className="pr-3">{line.text}</span>
          </div>
        ),
      )}
    </div>
  );
}
