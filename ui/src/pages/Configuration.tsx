/** Configuration (part 2 brings the editor): the config file as it is, and its checks. */

import { useMutation, useQuery } from "@tanstack/react-query";
import { CheckCircle2, FileCog, ShieldCheck } from "lucide-react";
import { Badge, Button, Card, ErrorNote, PageHeader, Spinner } from "../components/ui";
import { apiFetch, errorOf, apiJson, post } from "../lib/api";

interface Validation {
  valid: boolean;
  errors: string[];
  warnings: string[];
}

interface ModelCheck {
  valid: boolean;
  total: number;
  validCount: number;
  missing: string[];
  unreadable: string[];
}

export default function ConfigurationPage() {
  const yaml = useQuery({
    queryKey: ["config", "yaml"],
    queryFn: async () => {
      const r = await apiFetch("/api/config");
      if (!r.ok) throw await errorOf(r);
      return r.text();
    },
  });
  const validate = useMutation({ mutationFn: () => apiJson<Validation>("/api/config/validate") });
  const files = useMutation({ mutationFn: () => post<ModelCheck>("/api/config/validate-models") });
  return (
    <div className="mx-auto max-w-5xl space-y-5 p-4 md:p-6">
      <PageHeader
        title="Configuration"
        description="The config file the server runs (the API key masked). A form editor with validation and a diff arrives with the next part of the UI."
        actions={
          <>
            <Button icon={<CheckCircle2 className="size-4" />} busy={validate.isPending} onClick={() => validate.mutate()}>
              Validate
            </Button>
            <Button icon={<ShieldCheck className="size-4" />} busy={files.isPending} onClick={() => files.mutate()}>
              Check model files
            </Button>
          </>
        }
      />
      {validate.data && (
        <Card className="space-y-1 p-4 text-sm">
          <Badge tone={validate.data.valid ? "ok" : "bad"}>{validate.data.valid ? "Valid" : "Invalid"}</Badge>
          {validate.data.errors.map((e) => (
            <p key={e} className="text-bad">{e}</p>
          ))}
          {validate.data.warnings.map((w) => (
            <p key={w} className="text-warn">{w}</p>
          ))}
        </Card>
      )}
      {files.data && (
        <Card className="p-4 text-sm">
          <Badge tone={files.data.valid ? "ok" : "bad"}>
            {files.data.validCount} of {files.data.total} model files usable
          </Badge>
          {files.data.missing.length > 0 && <p className="mt-2 text-bad">Missing: {files.data.missing.join(", ")}</p>}
          {files.data.unreadable.length > 0 && <p className="mt-2 text-bad">Not loadable: {files.data.unreadable.join(", ")}</p>}
        </Card>
      )}
      <ErrorNote error={validate.error ?? files.error} />
      <Card className="overflow-hidden" aria-label="config.yaml">
        <div className="flex items-center gap-2 border-b border-line px-4 py-2 text-sm text-ink-2">
          <FileCog className="size-4" /> config.yaml
        </div>
        {yaml.isPending && (
          <div className="p-4">
            <Spinner />
          </div>
        )}
        <ErrorNote error={yaml.error} />
        {yaml.data && <pre className="max-h-[60vh] overflow-auto p-4 font-mono text-[13px] leading-relaxed">{yaml.data}</pre>}
      </Card>
    </div>
  );
}
