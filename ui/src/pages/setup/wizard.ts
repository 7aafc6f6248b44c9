/** The wizard's choices, kept in this tab's session storage so a reload (or a step link) keeps them. */

import { useSyncExternalStore } from "react";
import { Store } from "../../lib/api";

export interface WizardState {
  /** Set once the hardware step has been seen (else the server's saved settings apply). */
  hardware: { backend: string; gpuType: string; vramGB: number; ramGB: number } | null;
  preferredContext: number;
  minContext: number;
  throughputFirst: boolean;
}

const STORAGE = "claracore.setupWizard";
const DEFAULTS: WizardState = { hardware: null, preferredContext: 8192, minContext: 2048, throughputFirst: false };

function restore(): WizardState {
  try {
    return { ...DEFAULTS, ...JSON.parse(sessionStorage.getItem(STORAGE) ?? "{}") };
  } catch {
    return DEFAULTS;
  }
}

export const wizard = new Store<WizardState>(restore());
wizard.subscribe(() => {
  try {
    sessionStorage.setItem(STORAGE, JSON.stringify(wizard.get()));
  } catch {
    /* storage disabled: the wizard forgets on reload */
  }
});

export function useWizard(): [WizardState, (change: Partial<WizardState>) => void] {
  const state = useSyncExternalStore(wizard.subscribe, wizard.get);
  return [state, (change) => wizard.set({ ...wizard.get(), ...change })];
}

export const STEPS = [
  { id: "welcome", label: "Welcome" },
  { id: "source", label: "Models" },
  { id: "folders", label: "Folders" },
  { id: "hardware", label: "Hardware" },
  { id: "options", label: "Options" },
  { id: "generate", label: "Generate" },
  { id: "done", label: "Done" },
] as const;

export type StepId = (typeof STEPS)[number]["id"];

/** Where the wizard opens by itself: once per browser tab, when no model is configured. */
export const OFFERED = "claracore.setupOffered";
