/** What every page has around it: navigation, connection, restart, theme, key dialog, toasts. */

import { useQueryClient } from "@tanstack/react-query";
import {
  Activity,
  Boxes,
  Check,
  Download,
  FileCog,
  KeyRound,
  Menu,
  MessageSquare,
  Monitor,
  Moon,
  RotateCw,
  ScrollText,
  Settings,
  Sun,
  Wand2,
  X,
} from "lucide-react";
import { useEffect, useRef, useState, useSyncExternalStore, type ReactNode } from "react";
import { Link, useLocation } from "wouter";
import { apiKey, messageOf, post, restartNotice, setKeyPrompt } from "../lib/api";
import { useConnection, useLiveFeed, useModelStates, type Connection } from "../lib/live";
import { theme, useTheme, type Theme } from "../lib/theme";
import { dismiss, toast, useToasts } from "../lib/toast";
import { Button, cx, Dialog, IconButton, Input } from "./ui";

const NAV = [
  { href: "/models", label: "Models", icon: Boxes },
  { href: "/chat", label: "Chat", icon: MessageSquare },
  { href: "/setup", label: "Setup", icon: Wand2 },
  { href: "/configuration", label: "Configuration", icon: FileCog },
  { href: "/downloads", label: "Downloads", icon: Download },
  { href: "/activity", label: "Activity", icon: Activity },
  { href: "/logs", label: "Logs", icon: ScrollText },
  { href: "/settings", label: "Settings", icon: Settings },
];

function Logo() {
  return (
    <Link href="/models" className="flex items-center gap-2.5 rounded-lg font-semibold tracking-tight">
      <img src="/ui/favicon.svg" alt="" className="size-7" />
      <span>ClaraCore</span>
    </Link>
  );
}

function NavLinks({ onNavigate }: { onNavigate?: () => void }) {
  const [location] = useLocation();
  return (
    <nav aria-label="Main" className="flex flex-col gap-0.5">
      {NAV.map(({ href, label, icon: Icon }) => {
        const active = location === href || location.startsWith(`${href}/`);
        return (
          <Link
            key={href}
            href={href}
            onClick={onNavigate}
            aria-current={active ? "page" : undefined}
            className={cx(
              "flex items-center gap-3 rounded-lg px-3 py-2 text-sm font-medium transition",
              active ? "bg-brand-soft text-brand" : "text-ink-2 hover:bg-surface-2 hover:text-ink",
            )}
          >
            <Icon className="size-4" aria-hidden />
            {label}
          </Link>
        );
      })}
    </nav>
  );
}

const CONNECTION: Record<Connection, { label: string; dot: string; pulse: boolean }> = {
  connecting: { label: "Connecting", dot: "bg-ink-3", pulse: true },
  live: { label: "Connected", dot: "bg-ok", pulse: false },
  reconnecting: { label: "Reconnecting", dot: "bg-warn", pulse: true },
  locked: { label: "API key needed", dot: "bg-bad", pulse: false },
};

function ConnectionIndicator({ onUnlock }: { onUnlock: () => void }) {
  useLiveFeed(); // one event stream for every page: it feeds the query cache and this indicator
  useModelStates(); // the list every page shares (polled only while the stream is down)
  const state = useConnection();
  const { label, dot, pulse } = CONNECTION[state];
  const body = (
    <>
      <span className={cx("size-2 rounded-full", dot, pulse && "pulse-dot")} aria-hidden />
      <span className="hidden sm:inline">{label}</span>
    </>
  );
  if (state === "locked") {
    return (
      <Button variant="ghost" size="sm" onClick={onUnlock} data-connection={state} aria-label={label}>
        {body}
      </Button>
    );
  }
  return (
    <span
      role="status"
      aria-label={`Server: ${label}`}
      data-connection={state}
      className="inline-flex items-center gap-2 px-2 text-[13px] text-ink-3"
    >
      {body}
    </span>
  );
}

/** A menu on the native popover: light dismiss and Esc for free; arrow keys move between items. */
function PopoverMenu({ id, label, icon, children }: { id: string; label: string; icon: ReactNode; children: ReactNode }) {
  const ref = useRef<HTMLDivElement>(null);
  const button = useRef<HTMLButtonElement>(null);
  const onKeyDown = (e: React.KeyboardEvent) => {
    if (e.key !== "ArrowDown" && e.key !== "ArrowUp") return;
    const items = [...(ref.current?.querySelectorAll<HTMLElement>("[role=menuitem],[role=menuitemradio]") ?? [])];
    const at = items.indexOf(document.activeElement as HTMLElement);
    items[(at + (e.key === "ArrowDown" ? 1 : -1) + items.length) % items.length]?.focus();
    e.preventDefault();
  };
  return (
    <>
      <button
        type="button"
        popoverTarget={id}
        aria-haspopup="menu"
        aria-label={label}
        title={label}
        ref={button}
        className="inline-flex size-9 items-center justify-center rounded-lg text-ink-2 transition hover:bg-surface-2 hover:text-ink"
      >
        {icon}
      </button>
      <div
        ref={ref}
        id={id}
        popover="auto"
        role="menu"
        aria-label={label}
        onKeyDown={onKeyDown}
        onToggle={(e) => {
          const menu = ref.current;
          const at = button.current?.getBoundingClientRect();
          if ((e as unknown as { newState: string }).newState !== "open" || !menu || !at) return;
          // Under its button, right-aligned (the top layer ignores the page's layout).
          menu.style.top = `${at.bottom + 6}px`;
          menu.style.right = `${Math.max(8, window.innerWidth - at.right)}px`;
          menu.querySelector<HTMLElement>("[role^=menuitem]")?.focus();
        }}
        className="fixed min-w-56 rounded-xl border border-line bg-surface p-1.5 text-ink shadow-xl"
      >
        {children}
      </div>
    </>
  );
}

function closeMenu(id: string) {
  document.getElementById(id)?.hidePopover();
}

const THEMES: { value: Theme; label: string; icon: typeof Sun }[] = [
  { value: "light", label: "Light", icon: Sun },
  { value: "dark", label: "Dark", icon: Moon },
  { value: "system", label: "System", icon: Monitor },
];

function ThemeMenu() {
  const current = useTheme();
  const CurrentIcon = THEMES.find((t) => t.value === current)?.icon ?? Monitor;
  return (
    <PopoverMenu id="theme-menu" label="Theme" icon={<CurrentIcon className="size-[18px]" />}>
      {THEMES.map(({ value, label, icon: Icon }) => (
        <button
          key={value}
          type="button"
          role="menuitemradio"
          aria-checked={current === value}
          onClick={() => {
            theme.set(value);
            closeMenu("theme-menu");
          }}
          className="flex w-full items-center gap-2.5 rounded-lg px-2.5 py-2 text-left text-sm hover:bg-surface-2 focus:bg-surface-2 focus:outline-none"
        >
          <Icon className="size-4 text-ink-3" aria-hidden />
          <span className="flex-1">{label}</span>
          {current === value && <Check className="size-4 text-brand" aria-hidden />}
        </button>
      ))}
    </PopoverMenu>
  );
}

async function waitForServer(deadlineMs: number): Promise<boolean> {
  const until = Date.now() + deadlineMs;
  await new Promise((r) => setTimeout(r, 800)); // the old process answers first, then goes
  while (Date.now() < until) {
    try {
      if ((await fetch("/health", { cache: "no-store" })).ok) return true;
    } catch {
      /* still down */
    }
    await new Promise((r) => setTimeout(r, 500));
  }
  return false;
}

export function useRestart() {
  const client = useQueryClient();
  const [busy, setBusy] = useState<"soft" | "hard" | null>(null);
  const restart = async (kind: "soft" | "hard") => {
    setBusy(kind);
    try {
      if (kind === "soft") {
        const r = await post<{ models?: Record<string, string[]>; needsHardRestart?: boolean }>("/api/server/restart");
        const changed = Object.entries(r.models ?? {})
          .filter(([k, v]) => k !== "kept" && v.length)
          .map(([k, v]) => `${k}: ${v.join(", ")}`);
        toast(`Configuration reloaded${changed.length ? ` (${changed.join("; ")})` : ""}`);
        if (r.needsHardRestart) toast("Host, port or CORS changed: they apply after a hard restart.", "info", 8000);
      } else {
        await post("/api/server/restart/hard");
        toast("Restarting the server…", "info");
        if (!(await waitForServer(90_000))) throw new Error("the server did not come back within 90 s");
        toast("Server restarted");
      }
      restartNotice.set(null);
      await client.invalidateQueries();
    } catch (error) {
      toast(`Restart failed: ${messageOf(error)}`, "bad");
    } finally {
      setBusy(null);
    }
  };
  return { restart, busy };
}

function RestartMenu() {
  const { restart, busy } = useRestart();
  const item = "flex w-full flex-col items-start rounded-lg px-2.5 py-2 text-left hover:bg-surface-2 focus:bg-surface-2 focus:outline-none";
  return (
    <PopoverMenu
      id="restart-menu"
      label="Restart"
      icon={<RotateCw className={cx("size-[18px]", busy && "animate-spin")} />}
    >
      <button type="button" role="menuitem" className={item} disabled={!!busy} onClick={() => { closeMenu("restart-menu"); void restart("soft"); }}>
        <span className="text-sm font-medium">Soft restart</span>
        <span className="text-xs text-ink-3">Reload the config; only changed models unload</span>
      </button>
      <button type="button" role="menuitem" className={item} disabled={!!busy} onClick={() => { closeMenu("restart-menu"); void restart("hard"); }}>
        <span className="text-sm font-medium">Hard restart</span>
        <span className="text-xs text-ink-3">A fresh process on the same port</span>
      </button>
    </PopoverMenu>
  );
}

function RestartBanner() {
  const notice = useSyncExternalStore(restartNotice.subscribe, restartNotice.get);
  const { restart, busy } = useRestart();
  if (!notice) return null;
  return (
    <div role="status" className="flex flex-wrap items-center gap-3 border-b border-warn/30 bg-warn-soft px-4 py-2 text-sm text-warn md:px-6">
      <RotateCw className="size-4 shrink-0" aria-hidden />
      <span className="min-w-0 flex-1">{notice}</span>
      <Button size="sm" variant="secondary" busy={busy === "soft"} onClick={() => void restart("soft")}>
        Restart now
      </Button>
      <IconButton label="Dismiss" onClick={() => restartNotice.set(null)} className="text-warn hover:text-warn">
        <X className="size-4" />
      </IconButton>
    </div>
  );
}

/** The key dialog: opened by any call that got a 401, or by the indicator when locked. */
function KeyDialog({ manual, onManualClose }: { manual: boolean; onManualClose: () => void }) {
  const [pending, setPending] = useState<{ refused: boolean; resolve: (key: string | null) => void } | null>(null);
  const [value, setValue] = useState("");
  const client = useQueryClient();

  useEffect(() => {
    setKeyPrompt(
      (refused) =>
        new Promise((resolve) => {
          setValue("");
          setPending({ refused, resolve });
        }),
    );
    return () => setKeyPrompt(null);
  }, []);

  const open = pending !== null || manual;
  const finish = (key: string | null) => {
    if (pending) pending.resolve(key);
    else if (key) {
      apiKey.set(key);
      void client.invalidateQueries();
    }
    setPending(null);
    onManualClose();
  };

  return (
    <Dialog open={open} onClose={() => finish(null)} title="API key required">
      <form
        onSubmit={(e) => {
          e.preventDefault();
          if (value.trim()) finish(value.trim());
        }}
        className="space-y-4"
      >
        <p className="text-sm text-ink-2">
          This server asks for an API key. It is kept in this browser and sent as a header with every request.
        </p>
        {pending?.refused && (
          <p role="alert" className="rounded-lg bg-bad-soft px-3 py-2 text-sm text-bad">
            The server refused that key. Check it and try again.
          </p>
        )}
        <div>
          <label htmlFor="api-key-input" className="mb-1 block text-[13px] font-medium text-ink-2">
            API key
          </label>
          <Input
            id="api-key-input"
            type="password"
            autoComplete="current-password"
            autoFocus
            value={value}
            onChange={(e) => setValue(e.target.value)}
            placeholder="Paste the key"
          />
        </div>
        <div className="flex justify-end gap-2">
          <Button variant="ghost" onClick={() => finish(null)}>
            Cancel
          </Button>
          <Button type="submit" variant="primary" icon={<KeyRound className="size-4" />} disabled={!value.trim()}>
            Use key
          </Button>
        </div>
      </form>
    </Dialog>
  );
}

function Toasts() {
  const items = useToasts();
  const tone = { ok: "border-ok/30", bad: "border-bad/40 text-bad", info: "border-info/30" };
  return (
    // Top centre, under the header, one width for all: clear of the chat's input at the bottom and
    // of the page actions at the top right, and a stack of notices lines up however long each is.
    <div
      aria-live="polite"
      className="pointer-events-none fixed left-1/2 top-16 z-50 flex w-[min(24rem,calc(100vw-2rem))] -translate-x-1/2 flex-col gap-2"
    >
      {items.map((t) => (
        <div
          key={t.id}
          role={t.tone === "bad" ? "alert" : "status"}
          className={cx(
            "pointer-events-auto flex w-full items-start gap-3 rounded-xl border bg-surface px-4 py-2.5 text-sm shadow-lg",
            tone[t.tone],
          )}
        >
          <span className="flex-1">{t.message}</span>
          <button type="button" aria-label="Dismiss" className="text-ink-3 hover:text-ink" onClick={() => dismiss(t.id)}>
            <X className="size-4" />
          </button>
        </div>
      ))}
    </div>
  );
}

export function Shell({ children }: { children: ReactNode }) {
  const [navOpen, setNavOpen] = useState(false);
  const [keyOpen, setKeyOpen] = useState(false);
  const [location] = useLocation();
  useEffect(() => setNavOpen(false), [location]);
  useEffect(() => {
    if (!navOpen) return;
    const onKey = (e: KeyboardEvent) => e.key === "Escape" && setNavOpen(false);
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, [navOpen]);

  return (
    <div className="flex h-full">
      <a
        href="#main"
        className="sr-only z-50 rounded-lg bg-brand px-3 py-2 text-brand-ink focus:not-sr-only focus:fixed focus:top-2 focus:left-2"
      >
        Skip to content
      </a>
      <aside className="hidden w-60 shrink-0 flex-col gap-6 border-r border-line bg-surface px-3 py-4 md:flex">
        <div className="px-2">
          <Logo />
        </div>
        <NavLinks />
      </aside>
      {navOpen && (
        <div className="fixed inset-0 z-40 md:hidden">
          <div className="absolute inset-0 bg-black/40" onClick={() => setNavOpen(false)} aria-hidden />
          <aside className="absolute inset-y-0 left-0 flex w-64 flex-col gap-6 border-r border-line bg-surface px-3 py-4 shadow-xl">
            <div className="flex items-center justify-between px-2">
              <Logo />
              <IconButton label="Close menu" onClick={() => setNavOpen(false)}>
                <X className="size-5" />
              </IconButton>
            </div>
            <NavLinks onNavigate={() => setNavOpen(false)} />
          </aside>
        </div>
      )}
      <div className="flex min-w-0 flex-1 flex-col">
        <header className="flex h-14 shrink-0 items-center gap-1 border-b border-line bg-surface px-3 md:px-5">
          <IconButton label="Open menu" className="md:hidden" onClick={() => setNavOpen(true)} aria-expanded={navOpen}>
            <Menu className="size-5" />
          </IconButton>
          <div className="md:hidden">
            <Logo />
          </div>
          <div className="flex-1" />
          <ConnectionIndicator onUnlock={() => setKeyOpen(true)} />
          <RestartMenu />
          <ThemeMenu />
        </header>
        <RestartBanner />
        <main id="main" tabIndex={-1} className="min-h-0 flex-1 overflow-auto focus:outline-none">
          {children}
        </main>
      </div>
      <KeyDialog manual={keyOpen} onManualClose={() => setKeyOpen(false)} />
      <Toasts />
    </div>
  );
}
