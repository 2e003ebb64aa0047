// Time-series charts with uPlot (vendored): several series on one time axis, drag to zoom.

import { h } from "./dom.js";
import { num } from "./format.js";

const COLORS = ["#2f7ed8", "#d9534f", "#5cb85c", "#f0ad4e", "#8e44ad", "#16a085", "#7f8c8d", "#c0392b"];

/** Series [{label, points: [[ns, value]...]}] as uPlot's columns: one time axis (seconds), nulls where absent. */
function columns(series) {
  const times = [...new Set(series.flatMap((s) => s.points.map((p) => p[0])))].sort((a, b) => a - b);
  const index = new Map(times.map((t, i) => [t, i]));
  const data = [times.map((t) => t / 1e9)];
  for (const s of series) {
    const col = new Array(times.length).fill(null);
    for (const [t, v] of s.points) col[index.get(t)] = v;
    data.push(col);
  }
  return data;
}

/** A chart in a new element; `xRange` is [startNs, endNs] (strings or numbers); `onZoom(startNs, endNs)` is
 * called with nanosecond strings after a drag selection. */
export function chart(title, series, { height = 180, onZoom, xRange } = {}) {
  const box = h("div", { class: "chart" }, h("div", { class: "chart-title" }, title));
  if (!series.length || !series.some((s) => s.points.length)) {
    box.append(h("p", { class: "muted empty" }, "No data in this range."));
    return box;
  }
  const plot = h("div", { class: "plot" });
  box.append(plot);
  const opts = {
    width: 400,
    height,
    legend: { live: true },
    cursor: { drag: { x: true, y: false, setScale: !onZoom } },
    scales: { x: xRange ? { time: true, range: () => xRange.map((ns) => Number(ns) / 1e9) } : { time: true } },
    axes: [{}, { values: (u, ticks) => ticks.map(num), size: 60 }],
    series: [{}, ...series.map((s, i) => ({ label: s.label, stroke: COLORS[i % COLORS.length], width: 1.5, spanGaps: true, value: (u, v) => num(v) }))],
    hooks: onZoom ? { setSelect: [(u) => {
      if (u.select.width < 4) return;
      const from = u.posToVal(u.select.left, "x");
      const to = u.posToVal(u.select.left + u.select.width, "x");
      onZoom(`${Math.floor(from)}000000000`, `${Math.ceil(to)}000000000`);
    }] } : {},
  };
  const instance = new window.uPlot(opts, columns(series), plot);
  const fit = () => instance.setSize({ width: Math.max(200, box.clientWidth - 8), height });
  new ResizeObserver(fit).observe(box);
  box.uplot = instance;
  return box;
}

/** A step for a range so a chart holds about 120 points (at least 10 s, the flush interval), in seconds. */
export function stepFor(rangeSeconds) {
  return Math.max(10, Math.ceil(rangeSeconds / 120));
}

/** The last `rangeSeconds` up to now, aligned to its step, as nanosecond strings (exact, unlike floats), so
 * several queries of one chart share their buckets. */
export function lastWindow(rangeSeconds) {
  const step = stepFor(rangeSeconds);
  const end = (Math.floor(Date.now() / 1000 / step) + 1) * step;
  return { start: `${end - rangeSeconds}000000000`, end: `${end}000000000`, step: `${step}s` };
}
