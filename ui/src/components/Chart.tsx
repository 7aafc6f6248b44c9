/**
 * A time chart on uPlot: 50 kB (20 kB gzipped), canvas-drawn, fast with thousands of points and
 * updated in place as rows arrive. It takes the theme's colours when it is drawn and redraws on
 * a theme change; it follows its box's width.
 */

import { useEffect, useRef } from "react";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { useTheme } from "../lib/theme";
import { cx } from "./ui";

export interface ChartSeries {
  label: string;
  /** A CSS colour; by default the next of the palette. */
  color?: string;
  dash?: number[];
  /** Draw each value as a point too (sparse data: one point per request). */
  points?: boolean;
}

/** The series colours, in order; the first is the brand's. */
export const PALETTE = ["#5b4cf0", "#0f9f6e", "#2563eb", "#d97706", "#d0304a", "#0891b2", "#9333ea", "#65a30d"];
export const PALETTE_DARK = ["#8b7fff", "#34d399", "#7aa2ff", "#fbbf24", "#fb7185", "#22d3ee", "#c084fc", "#a3e635"];

function css(name: string): string {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
}

export function Chart({
  title,
  data,
  series,
  format,
  height = 220,
  className,
}: {
  title: string;
  data: uPlot.AlignedData;
  series: ChartSeries[];
  format: (value: number) => string;
  height?: number;
  className?: string;
}) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const formatRef = useRef(format);
  formatRef.current = format;
  useTheme(); // a theme change re-renders, and the key below redraws with its colours
  const dark = document.documentElement.classList.contains("dark");
  const shape = `${dark}|${series.map((s) => `${s.label}:${s.color}:${s.dash}`).join(",")}`;

  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const palette = dark ? PALETTE_DARK : PALETTE;
    const ink = css("--ink-3");
    const grid = css("--line");
    const opts: uPlot.Options = {
      width: Math.max(el.clientWidth, 200),
      height,
      // One point (or several at one moment) would stretch the axis over years: show a minute round it.
      scales: { x: { time: true, range: (_u, min, max) => (max - min < 1 ? [min - 60, max + 60] : [min, max]) } },
      legend: { live: true },
      cursor: { drag: { x: true, y: false, setScale: true } },
      axes: [
        { stroke: ink, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 } },
        {
          stroke: ink,
          grid: { stroke: grid, width: 1 },
          ticks: { stroke: grid, width: 1 },
          size: 84,
          values: (_u, values) => values.map((v) => formatRef.current(v)),
        },
      ],
      series: [
        { value: (_u, v) => (v == null ? "—" : new Date(v * 1000).toLocaleTimeString()) },
        ...series.map((s, i) => {
          const color = s.color ?? palette[i % palette.length];
          return {
            label: s.label,
            stroke: color,
            width: 1.5,
            dash: s.dash,
            spanGaps: true,
            points: { show: s.points ?? false, size: 5, fill: color, stroke: color },
            value: (_u: uPlot, v: number | null) => (v == null ? "—" : formatRef.current(v)),
          };
        }),
      ],
    };
    const chart = new uPlot(opts, data, el);
    plot.current = chart;
    const resize = new ResizeObserver(() => chart.setSize({ width: Math.max(el.clientWidth, 200), height }));
    resize.observe(el);
    return () => {
      resize.disconnect();
      chart.destroy();
      plot.current = null;
    };
    // Rebuilt only when the series or the theme change; new data goes in through setData below.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [shape, height]);

  useEffect(() => {
    plot.current?.setData(data);
  }, [data]);

  const points = data.slice(1).reduce((n, ys) => n + Array.from(ys as ArrayLike<number | null>).filter((y) => y != null).length, 0);
  return (
    <figure className={cx("min-w-0", className)} aria-label={title} data-points={points}>
      <figcaption className="mb-1 text-sm font-medium">{title}</figcaption>
      <div ref={box} className="uplot-box w-full" />
    </figure>
  );
}
