/** Settings: the API key, the Hugging Face token, the planner's system settings, build facts. */

import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { Check, Copy, Cpu, KeyRound, RefreshCw, Save, ShieldCheck, Sparkles } from "lucide-react";
import { useEffect, useState, type ReactNode } from "react";
import { Badge, Button, Card, ChoiceField, ErrorNote, Field, Input, PageHeader, Spinner, Switch } from "../components/ui";
import { apiJson, apiKey, ApiError, post } from "../lib/api";
import { copyText } from "../lib/files";
import { useHfToken } from "../lib/hfToken";
import { toast } from "../lib/toast";
import type { Detection, Doctor, Specs, SystemSettings } from "../lib/types";

const SETTINGS_KEY = ["settings", "system"] as const;
const GPU_TYPES = ["nvidia", "amd", "intel", "apple", "none", "cpu"] as const;
const BACKENDS = ["auto", "cuda", "rocm", "vulkan", "metal", "cpu"] as const;

/** 32 random bytes as URL-safe base64: a key nobody guesses, typed nowhere. */
export function generateKey(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(24));
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function Section({ icon, title, description, children }: { icon: ReactNode; title: string; description: string; children: ReactNode }) {
  return (
    <Card className="p-5" aria-label={title}>
      <div className="mb-4 flex items-start gap-3">
        <div className="flex size-9 shrink-0 items-center justify-center rounded-lg bg-brand-soft text-brand">{icon}</div>
        <div>
          <h2 className="font-semibold">{title}</h2>
          <p className="text-sm text-ink-3">{description}</p>
        </div>
      </div>
      {children}
    </Card>
  );
}

function fieldError(error: unknown, field: string): string | null {
  return error instanceof ApiError && error.param === field ? error.message : null;
}

function ApiKeySection({ settings }: { settings: SystemSettings }) {
  const client = useQueryClient();
  const [key, setKey] = useState("");
  const [copied, setCopied] = useState(false);
  const save = useMutation({
    mutationFn: (body: Partial<Pick<SystemSettings, "requireApiKey" | "apiKey">>) => post<SystemSettings>("/api/settings/system", body),
    onSuccess: (answer, body) => {
      // This browser keeps working: it holds the key it just set.
      if (body.apiKey) apiKey.set(body.apiKey);
      client.setQueryData(SETTINGS_KEY, answer);
      setKey("");
    },
  });
  const typed = key.trim();
  const error = fieldError(save.error, "apiKey");

  const toggle = (on: boolean) => {
    if (on && !typed) return;
    save.mutate(on ? { requireApiKey: true, apiKey: typed } : { requireApiKey: false }, {
      onSuccess: () => toast(on ? "API key required from now on" : "API key no longer required"),
    });
  };

  return (
    <Section icon={<ShieldCheck className="size-5" />} title="API key" description="Who may use this server. The key is stored hashed on the server and never shown again.">
      <div className="space-y-4">
        <Switch
          label="Require an API key"
          description={
            settings.requireApiKey
              ? "Every /v1 and /api request needs the key. This browser holds it."
              : settings.apiKeySet
                ? "A key is stored but not required."
                : "Anyone who can reach this port can use it. Type or generate a key below to turn this on."
          }
          checked={settings.requireApiKey}
          disabled={save.isPending || (!settings.requireApiKey && !typed)}
          onChange={toggle}
        />
        <div className="flex items-center gap-2 text-sm">
          <span className="text-ink-2">Current key:</span>
          {settings.apiKeySet ? <Badge tone="ok">set · {settings.apiKey}</Badge> : <Badge>none</Badge>}
        </div>
        <Field label={settings.apiKeySet ? "New key" : "Key"} hint="At least 8 characters, no spaces." error={error}>
          {(props) => (
            <div className="flex flex-wrap gap-2">
              <Input
                {...props}
                value={key}
                onChange={(e) => setKey(e.target.value)}
                autoComplete="new-password"
                spellCheck={false}
                className="min-w-0 flex-1"
                placeholder="Type a key or generate one"
              />
              <Button icon={<Sparkles className="size-4" />} onClick={() => setKey(generateKey())}>
                Generate
              </Button>
              <Button
                icon={copied ? <Check className="size-4" /> : <Copy className="size-4" />}
                disabled={!typed}
                onClick={async () => {
                  if (await copyText(typed)) {
                    setCopied(true);
                    setTimeout(() => setCopied(false), 1500);
                  }
                }}
              >
                Copy
              </Button>
            </div>
          )}
        </Field>
        <div className="flex flex-wrap gap-2">
          <Button
            variant="primary"
            icon={<KeyRound className="size-4" />}
            busy={save.isPending}
            disabled={!typed}
            onClick={() =>
              save.mutate(
                { apiKey: typed },
                { onSuccess: () => toast(settings.apiKeySet ? "API key changed" : "API key saved") },
              )
            }
          >
            {settings.apiKeySet ? "Change key" : "Save key"}
          </Button>
          {!settings.requireApiKey && (
            <Button busy={save.isPending} disabled={!typed} onClick={() => toggle(true)}>
              Save and require it
            </Button>
          )}
        </div>
        {settings.requireApiKey && (
          <p className="text-xs text-ink-3">Changing the key needs the current one, which this browser sends with the request.</p>
        )}
        {!error && <ErrorNote error={save.error} />}
      </div>
    </Section>
  );
}

function HfTokenSection() {
  const { query, save } = useHfToken();
  const [token, setToken] = useState("");
  return (
    <Section icon={<KeyRound className="size-5" />} title="Hugging Face token" description="Used for downloads of gated or private models. Stored on the server, shown masked.">
      <div className="space-y-3">
        <div className="flex items-center gap-2 text-sm">
          <span className="text-ink-2">Token:</span>
          {query.isPending ? <Spinner /> : query.data?.apiKeySet ? <Badge tone="ok">{query.data.apiKey}</Badge> : <Badge>not set</Badge>}
        </div>
        <Field label="New token" error={fieldError(save.error, "apiKey")}>
          {(props) => (
            <Input {...props} type="password" value={token} onChange={(e) => setToken(e.target.value)} autoComplete="off" placeholder="hf_xxxxxxxxxxxxxxxx" />
          )}
        </Field>
        <div className="flex gap-2">
          <Button variant="primary" icon={<Save className="size-4" />} busy={save.isPending} disabled={!token.trim()} onClick={() => save.mutate(token.trim(), { onSuccess: () => setToken("") })}>
            Save token
          </Button>
          {query.data?.apiKeySet && (
            <Button variant="danger" disabled={save.isPending} onClick={() => save.mutate("")}>
              Remove
            </Button>
          )}
        </div>
      </div>
    </Section>
  );
}

type Prefs = Pick<SystemSettings, "gpuType" | "backend" | "vramGB" | "ramGB" | "preferredContext" | "throughputFirst" | "enableJinja">;

const PREF_KEYS = ["gpuType", "backend", "vramGB", "ramGB", "preferredContext", "throughputFirst", "enableJinja"] as const;

/** Only the planner's fields: the route refuses any other (the key fields have their own section). */
function prefsOf(settings: SystemSettings): Prefs {
  return Object.fromEntries(PREF_KEYS.map((k) => [k, settings[k]])) as Prefs;
}

function SystemSection({ settings }: { settings: SystemSettings }) {
  const client = useQueryClient();
  const [prefs, setPrefs] = useState<Prefs>(() => prefsOf(settings));
  useEffect(() => setPrefs(prefsOf(settings)), [settings]);
  const save = useMutation({
    mutationFn: (body: Prefs) => post<SystemSettings>("/api/settings/system", body),
    onSuccess: (answer) => {
      client.setQueryData(SETTINGS_KEY, answer);
      toast("System settings saved");
    },
  });
  const set = <K extends keyof Prefs>(k: K, v: Prefs[K]) => setPrefs({ ...prefs, [k]: v });
  const err = (f: string) => fieldError(save.error, f);
  const dirty = PREF_KEYS.some((k) => prefs[k] !== settings[k]);

  return (
    <Section icon={<Cpu className="size-5" />} title="System" description="What the setup planner assumes about this machine when it writes a config.">
      <form
        className="space-y-4"
        noValidate // the server checks every field and names the one it refuses
        onSubmit={(e) => {
          e.preventDefault();
          save.mutate(prefs);
        }}
      >
        <div className="grid gap-4 sm:grid-cols-2">
          <ChoiceField label="GPU" options={GPU_TYPES} value={prefs.gpuType} onChange={(v) => set("gpuType", v)} error={err("gpuType")} />
          <ChoiceField label="Backend" options={BACKENDS} value={prefs.backend} onChange={(v) => set("backend", v)} error={err("backend")} />
          <Field label="VRAM (GB)" error={err("vramGB")}>
            {(props) => <Input {...props} type="number" min={0} step={0.5} value={prefs.vramGB} onChange={(e) => set("vramGB", Number(e.target.value))} />}
          </Field>
          <Field label="RAM (GB)" error={err("ramGB")}>
            {(props) => <Input {...props} type="number" min={0} step={0.5} value={prefs.ramGB} onChange={(e) => set("ramGB", Number(e.target.value))} />}
          </Field>
          <Field label="Preferred context (tokens)" error={err("preferredContext")} hint="What setup aims for per model, if memory allows.">
            {(props) => (
              <Input {...props} type="number" min={256} step={256} value={prefs.preferredContext} onChange={(e) => set("preferredContext", Number(e.target.value))} />
            )}
          </Field>
        </div>
        <Switch label="Throughput first" description="Prefer more parallel sequences over a longer context." checked={prefs.throughputFirst} onChange={(v) => set("throughputFirst", v)} />
        <Switch label="Jinja chat templates" description="Use the model's own chat template (needed for tool calls)." checked={prefs.enableJinja} onChange={(v) => set("enableJinja", v)} />
        {!PREF_KEYS.some(err) && <ErrorNote error={save.error} />}
        <div className="flex gap-2">
          <Button type="submit" variant="primary" icon={<Save className="size-4" />} busy={save.isPending} disabled={!dirty}>
            Save
          </Button>
          <Button variant="ghost" disabled={!dirty} onClick={() => setPrefs(prefsOf(settings))}>
            Discard changes
          </Button>
        </div>
      </form>
    </Section>
  );
}

function Row({ label, children }: { label: string; children: ReactNode }) {
  return (
    <div className="grid grid-cols-[9rem_1fr] gap-3 py-1.5 text-sm">
      <dt className="text-ink-3">{label}</dt>
      <dd className="min-w-0 break-words">{children}</dd>
    </div>
  );
}

function AboutSection() {
  const doctor = useQuery({ queryKey: ["system", "doctor"], queryFn: () => apiJson<Doctor>("/api/system/doctor"), staleTime: Infinity });
  const specs = useQuery({ queryKey: ["system", "specs"], queryFn: () => apiJson<Specs>("/api/system/specs"), staleTime: Infinity });
  const detection = useQuery({ queryKey: ["system", "detection"], queryFn: () => apiJson<Detection>("/api/system/detection"), staleTime: Infinity });
  const d = doctor.data;
  return (
    <Section icon={<RefreshCw className="size-5" />} title="Version and build" description="What `claracore doctor` reports: the versions, the llama.cpp build and the GPUs it can use.">
      {doctor.isPending ? (
        <p className="flex items-center gap-2 text-sm text-ink-3">
          <Spinner /> Checking the build (loads a tiny model once)…
        </p>
      ) : (
        <ErrorNote error={doctor.error} />
      )}
      {d && (
        <dl className="divide-y divide-line" data-testid="build-info">
          <Row label="ClaraCore">{d.version}</Row>
          <Row label="Python">{d.python}</Row>
          <Row label="llama-cpp-python">{d.llamaCppPython}</Row>
          <Row label="Backends built in">
            <span className="flex flex-wrap gap-1">
              {d.backends.length ? d.backends.map((b) => <Badge key={b}>{b}</Badge>) : "none found"}
            </span>
          </Row>
          <Row label="GPU offload">{d.gpuOffload ? (d.offloaded ? `yes (${d.offloaded[0]}/${d.offloaded[1]} layers of a test model)` : "yes") : "no (CPU-only build)"}</Row>
          <Row label="GPUs">
            {d.gpus.length ? d.gpus.map((g) => <div key={g.index}>{`${g.name}: ${g.vramGB} GB (${g.vramFreeGB} GB free)`}</div>) : "none seen"}
          </Row>
          {specs.data && (
            <Row label="Machine">
              {specs.data.cpu} · {specs.data.os}/{specs.data.arch} · {specs.data.ramGB} GB RAM
            </Row>
          )}
          {detection.data && (
            <Row label="Recommended">
              {detection.data.recommendedBackend} backend · {detection.data.cpuCores} cores / {detection.data.cpuThreads} threads
            </Row>
          )}
          <Row label="Library">
            <code className="font-mono text-xs">{d.libDir}</code>
          </Row>
          <Row label="Advice">
            <ul className="space-y-1">
              {d.advice.map((a) => (
                <li key={a}>{a}</li>
              ))}
            </ul>
          </Row>
        </dl>
      )}
    </Section>
  );
}

export default function SettingsPage() {
  const settings = useQuery({ queryKey: SETTINGS_KEY, queryFn: () => apiJson<SystemSettings>("/api/settings/system") });
  return (
    <div className="mx-auto max-w-3xl space-y-5 p-4 md:p-6">
      <PageHeader title="Settings" description="Security, tokens, and what setup assumes about this machine." />
      {settings.isPending && (
        <p className="flex items-center gap-2 text-sm text-ink-3">
          <Spinner /> Loading…
        </p>
      )}
      <ErrorNote error={settings.error} />
      {settings.data && (
        <>
          <ApiKeySection settings={settings.data} />
          <HfTokenSection />
          <SystemSection settings={settings.data} />
        </>
      )}
      <AboutSection />
    </div>
  );
}
