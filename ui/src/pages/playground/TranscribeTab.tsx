/** Transcription: upload a clip or record one, and read what Whisper heard. */

import { useMutation } from "@tanstack/react-query";
import { Check, Copy, FileAudio, Mic, Square, Upload } from "lucide-react";
import { useEffect, useRef, useState } from "react";
import { ModelPicker } from "../../components/ModelPicker";
import { Button, Card, ChoiceField, cx, ErrorNote, Field } from "../../components/ui";
import { apiFetch, errorOf, messageOf } from "../../lib/api";
import { copyText } from "../../lib/files";
import { formatBytes, formatDuration } from "../../lib/format";
import { useRefreshModels } from "../../lib/live";
import { handedClip, TabLayout, useWantedModel } from "./common";

const FORMATS = [
  { value: "text", label: "Text" },
  { value: "srt", label: "SRT subtitles" },
  { value: "vtt", label: "WebVTT subtitles" },
  { value: "verbose_json", label: "JSON with segments" },
];

function useRecorder(onClip: (file: File) => void) {
  const [recording, setRecording] = useState<{ recorder: MediaRecorder; started: number } | null>(null);
  const [elapsed, setElapsed] = useState(0);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    if (!recording) return;
    const timer = setInterval(() => setElapsed((Date.now() - recording.started) / 1000), 200);
    return () => clearInterval(timer);
  }, [recording]);

  const start = async () => {
    setError(null);
    try {
      const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
      const recorder = new MediaRecorder(stream);
      const parts: Blob[] = [];
      recorder.ondataavailable = (e) => e.data.size && parts.push(e.data);
      recorder.onstop = () => {
        stream.getTracks().forEach((t) => t.stop());
        const type = recorder.mimeType || "audio/webm";
        onClip(new File(parts, `recording.${type.includes("ogg") ? "ogg" : "webm"}`, { type }));
      };
      recorder.start();
      setElapsed(0);
      setRecording({ recorder, started: Date.now() });
    } catch (e) {
      setError(
        window.isSecureContext
          ? `The microphone is not available: ${messageOf(e)}`
          : "Browsers allow the microphone only on https or localhost: open the UI at http://127.0.0.1 or upload a file.",
      );
    }
  };
  const stop = () => {
    recording?.recorder.stop();
    setRecording(null);
  };
  return { recording: !!recording, elapsed, error, start, stop };
}

export function TranscribeTab() {
  const [model, setModel] = useState(useWantedModel());
  const [format, setFormat] = useState("text");
  const [language, setLanguage] = useState("");
  const [file, setFile] = useState<File | null>(() => handedClip.get());
  const [dragging, setDragging] = useState(false);
  const [copied, setCopied] = useState(false);
  const input = useRef<HTMLInputElement>(null);
  const refreshModels = useRefreshModels(); // the request may have loaded the model
  const transcribe = useMutation({
    onSettled: refreshModels,
    mutationFn: async (clip: File) => {
      const form = new FormData();
      form.append("file", clip);
      form.append("model", model);
      form.append("response_format", format);
      if (language.trim()) form.append("language", language.trim());
      const started = performance.now();
      const response = await apiFetch("/v1/audio/transcriptions", { method: "POST", body: form });
      if (!response.ok) throw await errorOf(response);
      const text = await response.text();
      const shown = format === "verbose_json" ? JSON.stringify(JSON.parse(text), null, 2) : text;
      return { text: shown.trim(), seconds: (performance.now() - started) / 1000 };
    },
  });
  const recorder = useRecorder((clip) => {
    setFile(clip);
    transcribe.mutate(clip);
  });

  // A clip handed over from the speech tab is transcribed as soon as a model is chosen (once:
  // the hand-over is emptied, so later model changes do not transcribe it again).
  const { mutate } = transcribe;
  useEffect(() => {
    const clip = handedClip.get();
    if (clip && model) {
      handedClip.set(null);
      mutate(clip);
    }
  }, [model, mutate]);

  const choose = (picked: File | undefined) => {
    if (!picked) return;
    setFile(picked);
    transcribe.reset();
  };

  return (
    <TabLayout title="Transcribe" description="Speech to text with Whisper: upload a clip or record one with the microphone.">
      <Card className="space-y-4 p-4">
        <div className="grid gap-4 sm:grid-cols-3">
          <ModelPicker types={["stt"]} value={model} onChange={setModel} />
          <ChoiceField label="Output" options={FORMATS} value={format} onChange={setFormat} />
          <Field label="Language" hint="Empty: detected">
            {(props) => (
              <input
                {...props}
                value={language}
                onChange={(e) => setLanguage(e.target.value)}
                placeholder="en, de, fr…"
                className="h-9 w-full rounded-lg border border-line bg-surface px-3 text-sm focus:border-brand focus:ring-2 focus:ring-brand/25 focus:outline-none"
              />
            )}
          </Field>
        </div>
        <div
          onDragOver={(e) => {
            e.preventDefault();
            setDragging(true);
          }}
          onDragLeave={() => setDragging(false)}
          onDrop={(e) => {
            e.preventDefault();
            setDragging(false);
            choose(e.dataTransfer.files[0]);
          }}
          className={cx(
            "flex flex-col items-center gap-3 rounded-xl border-2 border-dashed px-4 py-8 text-center transition",
            dragging ? "border-brand bg-brand-soft" : "border-line",
          )}
        >
          <FileAudio className="size-8 text-ink-3" aria-hidden />
          {file ? (
            <p className="text-sm">
              <span className="font-medium">{file.name}</span> <span className="text-ink-3">({formatBytes(file.size)})</span>
            </p>
          ) : (
            <p className="text-sm text-ink-3">Drop an audio file here (wav, mp3, ogg, webm, m4a…)</p>
          )}
          <div className="flex flex-wrap justify-center gap-2">
            <input
              ref={input}
              type="file"
              accept="audio/*,video/*"
              className="sr-only"
              aria-label="Audio file"
              onChange={(e) => choose(e.target.files?.[0])}
            />
            <Button icon={<Upload className="size-4" />} onClick={() => input.current?.click()}>
              Choose file
            </Button>
            {recorder.recording ? (
              <Button variant="danger" icon={<Square className="size-4 fill-current" />} onClick={recorder.stop}>
                Stop recording ({formatDuration(recorder.elapsed)})
              </Button>
            ) : (
              <Button icon={<Mic className="size-4" />} onClick={() => void recorder.start()}>
                Record
              </Button>
            )}
            <Button
              variant="primary"
              busy={transcribe.isPending}
              disabled={!file || !model}
              onClick={() => file && transcribe.mutate(file)}
            >
              Transcribe
            </Button>
          </div>
        </div>
        {recorder.error && <ErrorNote error={recorder.error} />}
        <ErrorNote error={transcribe.error} />
      </Card>
      {transcribe.data && (
        <Card className="p-4" aria-label="Transcript">
          <div className="mb-2 flex items-center justify-between">
            <p className="text-xs text-ink-3">Transcribed in {formatDuration(transcribe.data.seconds)}</p>
            <Button
              size="sm"
              variant="ghost"
              icon={copied ? <Check className="size-3.5" /> : <Copy className="size-3.5" />}
              onClick={async () => {
                if (await copyText(transcribe.data.text)) {
                  setCopied(true);
                  setTimeout(() => setCopied(false), 1500);
                }
              }}
            >
              Copy
            </Button>
          </div>
          <pre data-testid="transcript" className="font-sans text-[15px] leading-relaxed whitespace-pre-wrap">
            {transcribe.data.text || "(no speech heard)"}
          </pre>
        </Card>
      )}
    </TabLayout>
  );
}
