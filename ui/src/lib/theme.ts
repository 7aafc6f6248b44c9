/** Light, dark or the system's choice; remembered in the browser. */

import { useSyncExternalStore } from "react";
import { Store } from "./api";

export type Theme = "light" | "dark" | "system";
const KEY = "claracore.theme";

function stored(): Theme {
  try {
    const t = localStorage.getItem(KEY);
    return t === "light" || t === "dark" ? t : "system";
  } catch {
    return "system";
  }
}

export const theme = new Store<Theme>(stored());
const media = window.matchMedia("(prefers-color-scheme: dark)");

function apply(): void {
  const t = theme.get();
  document.documentElement.classList.toggle("dark", t === "dark" || (t === "system" && media.matches));
}

theme.subscribe(() => {
  try {
    localStorage.setItem(KEY, theme.get());
  } catch {
    /* not remembered */
  }
  apply();
});
media.addEventListener("change", apply);

export function useTheme(): Theme {
  return useSyncExternalStore(theme.subscribe, theme.get);
}
