import { describe, expect, it } from "vitest";
import { isSafeUrl, renderMarkdown } from "./markdown";

describe("renderMarkdown", () => {
  it("renders GitHub-flavoured Markdown", () => {
    const html = renderMarkdown("# Title\n\n**bold** and `code`\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n- one\n- two");
    expect(html).toContain("<h1>Title</h1>");
    expect(html).toContain("<strong>bold</strong>");
    expect(html).toContain("<code>code</code>");
    expect(html).toContain("<table>");
    expect(html).toContain("<li>one</li>");
  });

  it("shows raw HTML from a model as text", () => {
    const html = renderMarkdown('Hi <script>alert(1)</script> <img src=x onerror="alert(2)">');
    expect(html).not.toContain("<script");
    expect(html).not.toContain("<img");
    expect(html).toContain("&#60;script&#62;");
  });

  it("drops unsafe links and opens safe ones in a new tab", () => {
    const bad = renderMarkdown("[click](javascript:alert(1)) [x](data:text/html,hi)");
    expect(bad).not.toContain("href");
    expect(bad).toContain("click");
    const good = renderMarkdown("[docs](https://example.org/a?b=1&c=2)");
    expect(good).toContain('href="https://example.org/a?b=1&#38;c=2"');
    expect(good).toContain('target="_blank" rel="noopener noreferrer"');
  });

  it("turns images into links instead of loading them", () => {
    const html = renderMarkdown("![a cat](https://example.org/cat.png)");
    expect(html).not.toContain("<img");
    expect(html).toContain("[a cat]");
  });

  it("highlights fenced code and gives it a copy button and a language label", () => {
    const html = renderMarkdown("```python\ndef f(x):\n    return x + 1\n```");
    expect(html).toContain('class="hljs"');
    expect(html).toContain('<span class="hljs-keyword">def</span>');
    expect(html).toContain("data-copy-code");
    expect(html).toContain("<span>python</span>");
  });

  it("escapes code in a language it does not know", () => {
    const html = renderMarkdown("```brainfun\n<b>&\n```");
    expect(html).toContain("&#60;b&#62;&#38;");
  });

  it("renders an unfinished code block while it streams", () => {
    expect(renderMarkdown("Here:\n```js\nconst a = 1;")).toContain("code-block");
  });
});

describe("isSafeUrl", () => {
  it("allows web, mail, anchors and same-site paths only", () => {
    for (const ok of ["https://a.b", "http://a.b", "mailto:x@y.z", "#top", "/ui/chat"]) expect(isSafeUrl(ok), ok).toBe(true);
    for (const bad of ["javascript:alert(1)", " JavaScript:x", "data:text/html,x", "vbscript:x", "//evil.example", "file:///etc/passwd"]) {
      expect(isSafeUrl(bad), bad).toBe(false);
    }
  });
});
