/**
 * The setup wizard, its step in the URL (`/ui/setup/folders`): welcome, where models come from,
 * folders (scan and list), hardware (detected, editable), options (context, throughput, Jinja),
 * generate (live progress, what was chosen and why), done. It opens by itself when no model is
 * configured, and can be run again: values set by hand in config.yaml are kept, and said so.
 */

import { useMutation, useQuery } from "@tanstack/react-query";
import { ArrowLeft, ArrowRight, Check, Cpu, Download, FileCog, FolderSearch, MessageSquare, Boxes, Wand2 } from "lucide-react";
import { useCallback, useState, type ReactNode } from "react";
import { Link, useLocation, useParams } from "wouter";
import { Badge, Button, Card, ChoiceField, cx, ErrorNote, Field, Input, PageHeader, Spinner, Switch } from "../components/ui";
import { apiJson, post } from "../lib/api";
import { formatTokens } from "../lib/format";
import { useModelStates } from "../lib/live";
import type { Detection, SystemSettings } from "../lib/types";
import { FoldersStep } from "./setup/Folders";
import { GenerateStep, useSetupProgress } from "./setup/Generate";
import { STEPS, useWizard, type StepId, type WizardState } from "./setup/wizard";

const BACKENDS = ["auto", "cuda", "rocm", "vulkan", "metal", "cpu"] as const;
const GPU_TYPES = ["nvidia", "amd", "intel", "apple", "none"] as const;
const CONTEXTS = [2048, 4096, 8192, 16384, 32768, 65536, 131072];

function Stepper({ current }: { current: StepId }) {
  const at = STEPS.findIndex((s) => s.id === current);
  return (
    <ol aria-label="Setup steps" className="mb-5 flex flex-wrap gap-x-1 gap-y-2">
      {STEPS.map((s, i) => (
        <li key={s.id} className="flex items-center gap-1">
          <Link
            href={`/setup/${s.id}`}
            aria-current={i === at ? "step" : undefined}
            className={cx(
              "inline-flex items-center gap-1.5 rounded-full px-2.5 py-1 text-[13px] font-medium transition",
              i === at ? "bg-brand text-brand-ink" : i < at ? "bg-brand-soft text-brand" : "text-ink-3 hover:bg-surface-2",
            )}
          >
            <span className="flex size-4 items-center justify-center rounded-full text-[11px] tabular-nums">{i < at ? <Check className="size-3" /> : i + 1}</span>
            {s.label}
          </Link>
          {i < STEPS.length - 1 && <span className="h-px w-3 bg-line" aria-hidden />}
        </li>
      ))}
    </ol>
  );
}

function Footer({ back, next, nextLabel = "Next", nextDisabled, busy, hint }: { back?: string; next?: () => void; nextLabel?: string; nextDisabled?: boolean; busy?: boolean; hint?: ReactNode }) {
  return (
    <div className="mt-5 flex flex-wrap items-center justify-between gap-3">
      {back ? (
        <Link href={back} className="inline-flex h-9 items-center gap-1.5 rounded-lg px-3 text-sm font-medium text-ink-2 hover:bg-surface-2">
          <ArrowLeft className="size-4" aria-hidden /> Back
        </Link>
      ) : (
        <span />
      )}
      <div className="flex items-center gap-3">
        {hint && <span className="text-sm text-ink-3">{hint}</span>}
        {next && (
          <Button variant="primary" onClick={next} disabled={nextDisabled} busy={busy}>
            {nextLabel} <ArrowRight className="size-4" aria-hidden />
          </Button>
        )}
      </div>
    </div>
  );
}

function Welcome({ configured }: { configured: number }) {
  const progress = useSetupProgress();
  return (
    <Card className="space-y-4 p-6" aria-label="Welcome">
      <div className="flex size-11 items-center justify-center rounded-xl bg-brand-soft text-brand">
        <Wand2 className="size-6" />
      </div>
      <h2 className="text-lg font-semibold">Set up ClaraCore for this machine</h2>
      <p className="text-sm text-ink-2">
        Point ClaraCore at your models, check what it found about your hardware, and it writes a config.yaml where every model fits: how many
        layers go on the GPU, how long a context each gets, the KV cache type and how many requests run at once.
      </p>
      {configured > 0 && (
        <p className="rounded-lg bg-info-soft px-3 py-2 text-sm text-info">
          {configured} model{configured === 1 ? " is" : "s are"} configured already. Running setup again plans them afresh; any value you changed by hand
          in config.yaml is kept, and the result says which.
        </p>
      )}
      {progress.data?.running && (
        <p className="text-sm text-warn">
          A setup is running now: <Link href="/setup/generate" className="underline">follow it</Link>.
        </p>
      )}
    </Card>
  );
}

function Source() {
  const option = "flex flex-col gap-2 rounded-xl border border-line bg-surface p-5 text-left transition hover:border-brand hover:shadow-sm";
  return (
    <div className="grid gap-4 sm:grid-cols-2" aria-label="Where models come from">
      <Link href="/setup/folders" className={option}>
        <FolderSearch className="size-6 text-brand" aria-hidden />
        <span className="font-semibold">Models on this machine</span>
        <span className="text-sm text-ink-3">Folders of GGUF files, Whisper models or Piper voices that are already on the server's disk.</span>
      </Link>
      <Link href="/downloads" className={option}>
        <Download className="size-6 text-brand" aria-hidden />
        <span className="font-semibold">Download a model</span>
        <span className="text-sm text-ink-3">Search the Hugging Face hub; ClaraCore says which files fit this machine. Come back here when it is done.</span>
      </Link>
    </div>
  );
}

function Hardware({ wizard, set }: { wizard: WizardState; set: (c: Partial<WizardState>) => void }) {
  const detection = useQuery({ queryKey: ["system", "detection"], queryFn: () => apiJson<Detection>("/api/system/detection"), staleTime: Infinity });
  const settings = useQuery({ queryKey: ["settings", "system"], queryFn: () => apiJson<SystemSettings>("/api/settings/system") });
  const d = detection.data;
  const s = settings.data;
  if (!d || !s) return detection.error || settings.error ? <ErrorNote error={detection.error ?? settings.error} /> : <Spinner />;
  const hw = wizard.hardware ?? { backend: s.backend, gpuType: s.gpuType, vramGB: s.vramGB, ramGB: s.ramGB };
  const change = (c: Partial<typeof hw>) => set({ hardware: { ...hw, ...c } });
  return (
    <Card className="space-y-5 p-5" aria-label="Hardware">
      <div className="flex flex-wrap gap-2 text-sm">
        <Badge tone="brand">
          <Cpu className="size-3" /> {d.cpuCores} cores · {d.cpuThreads} threads
        </Badge>
        <Badge>{d.totalRAMGB} GB RAM</Badge>
        <Badge>{d.totalVRAMGB ? `${d.totalVRAMGB} GB VRAM` : "no GPU memory found"}</Badge>
        {(["hasCUDA", "hasROCm", "hasVulkan", "hasMetal"] as const).map((k) => (
          <Badge key={k} tone={d[k] ? "ok" : "neutral"}>
            {k.slice(3)} {d[k] ? "found" : "not found"}
          </Badge>
        ))}
      </div>
      <p className="text-sm text-ink-3">
        Detected: {d.gpuType === "none" ? "no GPU" : `${d.gpuType} GPU`}, backend {d.recommendedBackend}. Change a value when the detection is wrong, or
        to plan for less than the whole machine.
      </p>
      <div className="grid gap-4 sm:grid-cols-2">
        <ChoiceField label="Backend" options={BACKENDS} value={hw.backend} onChange={(backend) => change({ backend })} />
        <ChoiceField label="GPU" options={GPU_TYPES} value={GPU_TYPES.includes(hw.gpuType as never) ? hw.gpuType : "none"} onChange={(gpuType) => change({ gpuType })} />
        <Field label="GPU memory to use (GB)">
          {(props) => <Input {...props} type="number" min={0} step="any" value={hw.vramGB} onChange={(e) => change({ vramGB: Number(e.target.value) })} />}
        </Field>
        <Field label="RAM to use (GB)">
          {(props) => <Input {...props} type="number" min={0} step="any" value={hw.ramGB} onChange={(e) => change({ ramGB: Number(e.target.value) })} />}
        </Field>
      </div>
      <Button variant="ghost" size="sm" onClick={() => set({ hardware: { backend: d.recommendedBackend, gpuType: d.gpuType, vramGB: d.totalVRAMGB, ramGB: d.totalRAMGB } })}>
        Use the detected values
      </Button>
    </Card>
  );
}

function Options({ wizard, set }: { wizard: WizardState; set: (c: Partial<WizardState>) => void }) {
  const low = wizard.minContext > wizard.preferredContext;
  return (
    <Card className="space-y-5 p-5" aria-label="Options">
      <div>
        <p className="mb-2 text-[13px] font-medium text-ink-2">Preferred context</p>
        <div className="mb-2 flex flex-wrap gap-1.5" role="radiogroup" aria-label="Preferred context">
          {CONTEXTS.map((c) => (
            <button
              key={c}
              type="button"
              role="radio"
              aria-checked={wizard.preferredContext === c}
              onClick={() => set({ preferredContext: c })}
              className={cx("h-8 rounded-lg px-3 text-[13px] font-medium tabular-nums", wizard.preferredContext === c ? "bg-ink text-bg" : "bg-surface-2 text-ink-2 hover:bg-surface-3")}
            >
              {formatTokens(c)}
            </button>
          ))}
        </div>
        <div className="grid gap-4 sm:grid-cols-2">
          <Field label="Preferred context (tokens)" hint="What each model gets when it fits; less when it does not.">
            {(props) => <Input {...props} type="number" min={16} value={wizard.preferredContext} onChange={(e) => set({ preferredContext: Number(e.target.value) })} />}
          </Field>
          <Field label="Smallest context (tokens)" hint="A model that cannot get this much is left out." error={low ? "must not be above the preferred context" : null}>
            {(props) => <Input {...props} type="number" min={16} value={wizard.minContext} onChange={(e) => set({ minContext: Number(e.target.value) })} />}
          </Field>
        </div>
      </div>
      <Switch
        label="Throughput first"
        description="Serve several requests at once (4 to 8 parallel sequences, each with its own context) rather than one long context."
        checked={wizard.throughputFirst}
        onChange={(throughputFirst) => set({ throughputFirst })}
      />
      <Switch
        label="Jinja chat templates"
        description="Always on: chat prompts are rendered from each model's own Jinja template."
        checked
        disabled
        onChange={() => undefined}
      />
    </Card>
  );
}

function Done() {
  const { models } = useModelStates();
  const link = "inline-flex h-9 items-center gap-1.5 rounded-lg px-3.5 text-sm font-medium";
  return (
    <Card className="space-y-4 p-6" aria-label="Done">
      <div className="flex size-11 items-center justify-center rounded-xl bg-ok-soft text-ok">
        <Check className="size-6" />
      </div>
      <h2 className="text-lg font-semibold">ClaraCore is set up</h2>
      <p className="text-sm text-ink-2">
        {models.length} model{models.length === 1 ? " is" : "s are"} configured. Each loads on its first request; the models page loads and unloads
        them by hand, and the configuration page changes any setting.
      </p>
      <div className="flex flex-wrap gap-2">
        <Link href="/chat" className={cx(link, "bg-brand text-brand-ink shadow-sm hover:brightness-110")}>
          <MessageSquare className="size-4" aria-hidden /> Open chat
        </Link>
        <Link href="/models" className={cx(link, "border border-line bg-surface hover:bg-surface-2")}>
          <Boxes className="size-4" aria-hidden /> See the models
        </Link>
        <Link href="/configuration" className={cx(link, "border border-line bg-surface hover:bg-surface-2")}>
          <FileCog className="size-4" aria-hidden /> Fine-tune the configuration
        </Link>
      </div>
    </Card>
  );
}

export default function SetupPage() {
  const { step = "welcome" } = useParams<{ step?: string }>();
  const current = (STEPS.some((s) => s.id === step) ? step : "welcome") as StepId;
  const [, navigate] = useLocation();
  const [wizard, set] = useWizard();
  const { models } = useModelStates();
  const [found, setFound] = useState(0);
  const onCount = useCallback((n: number) => setFound(n), []);
  const progress = useSetupProgress();
  const go = (id: StepId) => navigate(`/setup/${id}`);
  const remember = useMutation({ mutationFn: (body: Partial<SystemSettings>) => post("/api/settings/system", body) });
  const save = (body: Partial<SystemSettings>, then: StepId) => remember.mutate(body, { onSuccess: () => go(then) });

  return (
    <div className="mx-auto max-w-4xl p-4 md:p-6">
      <PageHeader title="Setup" description="From a folder of models to a config tuned for this machine." />
      <Stepper current={current} />
      {current === "welcome" && (
        <>
          <Welcome configured={models.length} />
          <Footer next={() => go("source")} nextLabel="Start" />
        </>
      )}
      {current === "source" && (
        <>
          <Source />
          <Footer back="/setup/welcome" />
        </>
      )}
      {current === "folders" && (
        <>
          <FoldersStep onCount={onCount} />
          <Footer back="/setup/source" next={() => go("hardware")} nextDisabled={found === 0} hint={found === 0 ? "Add a folder with models to go on" : undefined} />
        </>
      )}
      {current === "hardware" && (
        <>
          <Hardware wizard={wizard} set={set} />
          <ErrorNote error={remember.error} />
          <Footer
            back="/setup/folders"
            busy={remember.isPending}
            next={() => (wizard.hardware ? save({ ...wizard.hardware, gpuType: wizard.hardware.gpuType as SystemSettings["gpuType"] }, "options") : go("options"))}
          />
        </>
      )}
      {current === "options" && (
        <>
          <Options wizard={wizard} set={set} />
          <ErrorNote error={remember.error} />
          <Footer
            back="/setup/hardware"
            busy={remember.isPending}
            nextDisabled={wizard.minContext > wizard.preferredContext || wizard.minContext < 16}
            next={() => save({ preferredContext: wizard.preferredContext, throughputFirst: wizard.throughputFirst }, "generate")}
          />
        </>
      )}
      {current === "generate" && (
        <>
          <GenerateStep wizard={wizard} />
          <Footer back="/setup/options" next={() => go("done")} nextLabel="Finish" nextDisabled={progress.data?.status !== "completed"} />
        </>
      )}
      {current === "done" && <Done />}
    </div>
  );
}
