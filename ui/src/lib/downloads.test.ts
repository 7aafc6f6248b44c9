import { describe, expect, it } from "vitest";
import { actionsFor, applyDownloadEvent, mergeDownloads, repoFromText, type DownloadEvent } from "./downloads";
import type { DownloadStatus } from "./types";

const d = (id: string, state: DownloadStatus["state"], bytesDone = 0) => ({ id, state, bytesDone }) as DownloadStatus;
const ev = (event: DownloadEvent["event"], status: DownloadStatus) => ({ ...status, event }) as DownloadEvent;

describe("applyDownloadEvent", () => {
  it("adds, updates in place and removes", () => {
    let list = [d("a", "completed")];
    list = applyDownloadEvent(list, ev("created", d("b", "queued")));
    list = applyDownloadEvent(list, ev("progress", d("b", "downloading", 100)));
    expect(list.map((x) => [x.id, x.state, x.bytesDone])).toEqual([
      ["a", "completed", 0],
      ["b", "downloading", 100],
    ]);
    expect("event" in list[1]).toBe(false);
    expect(applyDownloadEvent(list, ev("removed", d("a", "completed"))).map((x) => x.id)).toEqual(["b"]);
  });

  it("merges the snapshot's running downloads into the full list", () => {
    expect(mergeDownloads([d("a", "completed"), d("b", "queued")], [d("b", "paused"), d("c", "queued")]).map((x) => `${x.id}:${x.state}`)).toEqual([
      "a:completed",
      "b:paused",
      "c:queued",
    ]);
  });
});

describe("actionsFor", () => {
  it("offers what the server allows in each state", () => {
    expect(actionsFor("downloading")).toEqual(["pause", "cancel"]);
    expect(actionsFor("paused")).toEqual(["resume", "cancel", "remove"]);
    expect(actionsFor("failed")).toContain("retry");
    expect(actionsFor("completed")).toEqual(["remove"]);
  });
});

describe("repoFromText", () => {
  it("reads a repository id or link", () => {
    expect(repoFromText("Qwen/Qwen2.5-0.5B-Instruct-GGUF")).toBe("Qwen/Qwen2.5-0.5B-Instruct-GGUF");
    expect(repoFromText("https://example.org/org/tiny-GGUF/tree/main")).toBe("org/tiny-GGUF");
    expect(repoFromText("qwen 0.5b")).toBeNull();
  });
});
