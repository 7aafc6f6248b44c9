/** A row of tabs that are links (the tab is in the URL, so a reload or a shared link keeps it). */

import type { LucideIcon } from "lucide-react";
import type { ReactNode } from "react";
import { Link } from "wouter";
import { cx } from "./ui";

export interface TabItem {
  href: string;
  label: string;
  icon?: LucideIcon;
  active: boolean;
  /** A count or mark after the label. */
  extra?: ReactNode;
}

export function TabNav({ label, items, className }: { label: string; items: TabItem[]; className?: string }) {
  return (
    <nav aria-label={label} className={cx("flex shrink-0 gap-1 overflow-x-auto border-b border-line", className)}>
      {items.map(({ href, label: text, icon: Icon, active, extra }) => (
        <Link
          key={href}
          href={href}
          aria-current={active ? "page" : undefined}
          className={cx(
            "-mb-px inline-flex items-center gap-1.5 border-b-2 px-3 py-2.5 text-sm font-medium whitespace-nowrap transition",
            active ? "border-brand text-ink" : "border-transparent text-ink-3 hover:text-ink",
          )}
        >
          {Icon && <Icon className="size-4" aria-hidden />}
          {text}
          {extra}
        </Link>
      ))}
    </nav>
  );
}
