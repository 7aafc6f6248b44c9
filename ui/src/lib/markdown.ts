/**
 * Model output to HTML: Markdown (GitHub flavour) with highlighted code blocks that carry a
 * copy button. Model output is untrusted text, so raw HTML is shown as text, links keep only
 * safe schemes and open in a new tab, and images become links (no request leaves the page
 * because a model wrote an image tag).
 */

import hljs from "highlight.js/lib/core";
import bash from "highlight.js/lib/languages/bash";
import c from "highlight.js/lib/languages/c";
import cpp from "highlight.js/lib/languages/cpp";
import css from "highlight.js/lib/languages/css";
import diff from "highlight.js/lib/languages/diff";
import go from "highlight.js/lib/languages/go";
import java from "highlight.js/lib/languages/java";
import javascript from "highlight.js/lib/languages/javascript";
import json from "highlight.js/lib/languages/json";
import python from "highlight.js/lib/languages/python";
import rust from "highlight.js/lib/languages/rust";
import sql from "highlight.js/lib/languages/sql";
import typescript from "highlight.js/lib/languages/typescript";
import xml from "highlight.js/lib/languages/xml";
import yaml from "highlight.js/lib/languages/yaml";
import { Marked, type Tokens } from "marked";

const LANGUAGES = { bash, c, cpp, css, diff, go, java, javascript, json, python, rust, sql, typescript, xml, yaml };
for (const [name, language] of Object.entries(LANGUAGES)) hljs.registerLanguage(name, language);
hljs.registerAliases(["sh", "shell", "zsh", "console"], { languageName: "bash" });
hljs.registerAliases(["py"], { languageName: "python" });
hljs.registerAliases(["js", "jsx", "mjs"], { languageName: "javascript" });
hljs.registerAliases(["ts", "tsx"], { languageName: "typescript" });
hljs.registerAliases(["html", "svg"], { languageName: "xml" });
hljs.registerAliases(["yml"], { languageName: "yaml" });

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (ch) => `&#${ch.charCodeAt(0)};`);
}

/** http(s), mailto, in-page anchors and same-site paths; never javascript:, data: or vbscript:. */
export function isSafeUrl(href: string): boolean {
  const url = href.trim();
  return /^(https?:\/\/|mailto:|#)/i.test(url) || /^\/(?!\/)/.test(url);
}

function highlight(code: string, lang: string): { html: string; language: string } {
  const name = lang.trim().split(/\s+/)[0]?.toLowerCase() ?? "";
  if (name && hljs.getLanguage(name)) {
    return { html: hljs.highlight(code, { language: name, ignoreIllegals: true }).value, language: name };
  }
  if (!name && code.length < 20_000) {
    const auto = hljs.highlightAuto(code);
    if (auto.language && auto.relevance >= 5) return { html: auto.value, language: auto.language };
  }
  return { html: escapeHtml(code), language: name };
}

const marked = new Marked({
  gfm: true,
  async: false,
  renderer: {
    html({ text }: Tokens.HTML | Tokens.Tag): string {
      return escapeHtml(text);
    },
    code({ text, lang }: Tokens.Code): string {
      const { html, language } = highlight(text.replace(/\n$/, ""), lang ?? "");
      const label = escapeHtml(language || "text");
      return (
        `<div class="code-block"><div class="code-head"><span>${label}</span>` +
        `<button type="button" class="code-copy" data-copy-code>Copy</button></div>` +
        `<pre><code class="hljs">${html}</code></pre></div>`
      );
    },
    link({ href, title, tokens }: Tokens.Link): string {
      const text = this.parser.parseInline(tokens);
      if (!isSafeUrl(href)) return text;
      const t = title ? ` title="${escapeHtml(title)}"` : "";
      return `<a href="${escapeHtml(href)}"${t} target="_blank" rel="noopener noreferrer">${text}</a>`;
    },
    image({ href, text }: Tokens.Image): string {
      const label = escapeHtml(text || "image");
      if (!isSafeUrl(href)) return label;
      return `<a href="${escapeHtml(href)}" target="_blank" rel="noopener noreferrer">[${label}]</a>`;
    },
  },
});

/** Markdown to safe HTML. A code block still being streamed renders as a code block already. */
export function renderMarkdown(text: string): string {
  return marked.parse(text) as string;
}
