/** Speech: type a sentence, hear it, download it, or hand it to the transcription tab. */

import { useMutation } from "@tanstack/react-query";
import { AudioLines, Download, FileAudio } from "lucide-react";
import { useEffect, useState } from "react";
import { useLocation } from "wouter";
import { ModelPicker } from "../../components/ModelPicker";
import { Button, Card, ChoiceField, ErrorNote, Field, Textarea } from "../../components/ui";
import { apiBlob } from "../../lib/api";
import { saveFile } from "../../lib/files";
import { formatBytes, formatDuration } from "../../lib/format";
import { useRefreshModels } from "../../lib/live";
import { handedClip, TabLayout, useWantedModel } from "./common";

const FORMATS = [
  { value: "wav", label: "WAV" },
  { value: "mp3", label: "MP3" },
  { value: "opus", label: "Opus (Ogg)" },
  { value: "flac", label: "FLAC" },
];
const EXTENSIONS: Record<string, string> = { wav: "wav", mp3: "mp3", opus: "ogg", flac: "flac" };

export function SpeechTab() {
  const [, navigate] = useLocation();
  const [model, setModel] = useState(useWantedModel());
  const [text, setText] = useState("Hello from ClaraCore. This sentence was spoken on your own machine.");
  const [format, setFormat] = useState("wav");
  const [speed, setSpeed] = useState(1);
  const refreshModels = useRefreshModels(); // the request may have loaded the model
  const speak = useMutation({
    onSettled: refreshModels,
    mutationFn: async () => {
      const started = performance.now();
      const blob = await apiBlob("/v1/audio/speech", {
        method: "POST",
        json: { model, voice: model, input: text, response_format: format, speed },
      });
      return { blob, format, url: URL.createObjectURL(blob), seconds: (performance.now() - started) / 1000 };
    },
  });
  const clip = speak.data;
  useEffect(() => () => void (clip && URL.revokeObjectURL(clip.url)), [clip]);
  const fileName = clip ? `speech.${EXTENSIONS[clip.format] ?? clip.format}` : "";

  return (
    <TabLayout title="Speech" description="Turn text into speech with a Piper voice. Everything runs on this machine.">
      <Card className="space-y-4 p-4">
        <div className="grid gap-4 sm:grid-cols-3">
          <ModelPicker types={["tts"]} value={model} onChange={setModel} label="Voice" />
          <ChoiceField label="Format" options={FORMATS} value={format} onChange={setFormat} />
          <div>
            <div className="mb-1 flex items-center justify-between">
              <label htmlFor="speech-speed" className="text-[13px] font-medium text-ink-2">
                Speed
              </label>
              <span className="text-xs text-ink-3 tabular-nums">{speed.toFixed(2)}×</span>
            </div>
            <input
              id="speech-speed"
              type="range"
              min={0.5}
              max={2}
              step={0.05}
              value={speed}
              onChange={(e) => setSpeed(Number(e.target.value))}
              className="mt-2 w-full accent-[var(--brand)]"
            />
          </div>
        </div>
        <Field label="Text" hint={`${text.length} / 4096 characters`}>
          {(props) => <Textarea {...props} rows={4} maxLength={4096} value={text} onChange={(e) => setText(e.target.value)} />}
        </Field>
        <Button variant="primary" icon={<AudioLines className="size-4" />} busy={speak.isPending} disabled={!model || !text.trim()} onClick={() => speak.mutate()}>
          Speak
        </Button>
        <ErrorNote error={speak.error} />
      </Card>
      {clip && (
        <Card className="space-y-3 p-4" aria-label="Spoken audio">
          <audio controls autoPlay src={clip.url} className="w-full" data-testid="speech-audio" />
          <p className="text-xs text-ink-3">
            {formatBytes(clip.blob.size)} · made in {formatDuration(clip.seconds)}
          </p>
          <div className="flex flex-wrap gap-2">
            <Button icon={<Download className="size-4" />} onClick={() => saveFile(fileName, clip.blob)}>
              Download
            </Button>
            <Button
              icon={<FileAudio className="size-4" />}
              onClick={() => {
                handedClip.set(new File([clip.blob], fileName, { type: clip.blob.type }));
                navigate("/chat/transcribe");
              }}
            >
              Transcribe this
            </Button>
          </div>
        </Card>
      )}
    </TabLayout>
  );
}
