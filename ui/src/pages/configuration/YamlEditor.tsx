/**
 * The raw YAML tab: a plain <textarea> under a highlighted copy of its text
 * (react-simple-code-editor, 3 kB, with highlight.js's YAML grammar the chat already ships), line
 * numbers, and the lines the server or the parser complained about marked. A real textarea keeps
 * the browser's own undo, selection, spellcheck-off and accessibility, and config files are a few
 * kilobytes, so a full editor (CodeMirror, ~120 kB gzipped) would buy little.
 */

import hljs from "highlight.js/lib/core";
import yamlLanguage from "highlight.js/lib/languages/yaml";
import { useEffect, useMemo, useRef } from "react";
import Editor from "react-simple-code-editor";
import { cx } from "../../components/ui";

hljs.registerLanguage("yaml", yamlLanguage);

const LINE = 20; // px: the gutter, the marks and the text share one line height
const PAD = 12;

export interface LineIssue {
  line: number;
  message: string;
}

export function YamlEditor({
  value,
  onChange,
  issues,
  focusLine,
}: {
  value: string;
  onChange: (text: string) => void;
  issues: LineIssue[];
  /** A line to select and scroll to (changes each time a problem is clicked). */
  focusLine?: { line: number; at: number } | null;
}) {
  const lines = value.split("\n").length;
  const marked = useMemo(() => new Set(issues.map((i) => i.line)), [issues]);
  const box = useRef<HTMLDivElement>(null);

  useEffect(() => {
    const area = box.current?.querySelector("textarea");
    if (!focusLine || !area) return;
    const lines = area.value.split("\n");
    const start = lines.slice(0, focusLine.line - 1).reduce((n, l) => n + l.length + 1, 0);
    area.focus();
    area.setSelectionRange(start, start + (lines[focusLine.line - 1]?.length ?? 0));
    box.current?.scrollTo({ top: Math.max(0, (focusLine.line - 4) * LINE), behavior: "smooth" });
  }, [focusLine]);

  return (
    <div ref={box} className="relative max-h-[65vh] overflow-auto bg-[var(--code-bg)] font-mono text-[13px]" style={{ lineHeight: `${LINE}px` }}>
      <div className="flex min-w-fit">
        <div aria-hidden className="sticky left-0 z-10 shrink-0 select-none border-r border-line bg-[var(--code-bg)] text-right text-ink-3" style={{ padding: `${PAD}px 10px` }}>
          {Array.from({ length: lines }, (_, i) => (
            <div key={i} className={cx("tabular-nums", marked.has(i + 1) && "font-semibold text-bad")}>
              {i + 1}
            </div>
          ))}
        </div>
        <div className="relative min-w-0 flex-1">
          <label htmlFor="config-yaml" className="sr-only">
            config.yaml
          </label>
          {[...marked].map((line) => (
            <div
              key={line}
              aria-hidden
              className="pointer-events-none absolute inset-x-0 bg-bad-soft"
              style={{ top: PAD + (line - 1) * LINE, height: LINE }}
            />
          ))}
          <Editor
            value={value}
            onValueChange={onChange}
            highlight={(code) => hljs.highlight(code, { language: "yaml", ignoreIllegals: true }).value}
            padding={PAD}
            tabSize={2}
            insertSpaces
            textareaId="config-yaml"
            textareaClassName="focus:outline-none"
            style={{ fontFamily: "var(--font-mono)", fontSize: 13, lineHeight: `${LINE}px`, minHeight: "100%", whiteSpace: "pre" }}
            className="yaml-editor"
          />
        </div>
      </div>
    </div>
  );
}
