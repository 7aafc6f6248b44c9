/** A model <select> for one or more model types that shows which models are loaded. */

import { useEffect } from "react";
import { useModelStates } from "../lib/live";
import type { ModelInfo } from "../lib/types";
import { Field, Select } from "./ui";

const MARK: Record<ModelInfo["state"], string> = {
  loaded: "● loaded",
  loading: "◐ loading",
  unloading: "◑ unloading",
  unloaded: "○ not loaded",
  failed: "✕ failed",
};

/** The model to start with: the one asked for, else a loaded one, else the first. */
export function pickModel(models: ModelInfo[], wanted: string | null | undefined): string {
  if (wanted && models.some((m) => m.id === wanted || m.aliases.includes(wanted))) {
    return models.find((m) => m.id === wanted || m.aliases.includes(wanted))?.id ?? wanted;
  }
  return (models.find((m) => m.state === "loaded") ?? models[0])?.id ?? "";
}

export function ModelPicker({
  types,
  value,
  onChange,
  label = "Model",
  className,
}: {
  types: string[];
  value: string;
  onChange: (id: string) => void;
  label?: string;
  className?: string;
}) {
  const { models, isLoading } = useModelStates();
  const options = models.filter((m) => types.includes(m.type));
  const known = options.some((m) => m.id === value);
  // Once the list is known, settle on a real model (the URL's, else a loaded one).
  useEffect(() => {
    if (!isLoading && options.length && !known) onChange(pickModel(options, value));
  }, [isLoading, known, options, value, onChange]);
  return (
    <Field label={label} className={className}>
      {(props) => (
        <Select {...props} value={known ? value : ""} onChange={(e) => onChange(e.target.value)} disabled={!options.length}>
          {!options.length && <option value="">{isLoading ? "Loading…" : "No model of this kind is configured"}</option>}
          {options.map((m) => (
            <option key={m.id} value={m.id}>
              {m.id} — {MARK[m.state]}
            </option>
          ))}
        </Select>
      )}
    </Field>
  );
}
