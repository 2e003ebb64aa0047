// Metrics: pick a metric, label values and an aggregation; time-range presets and drag-to-zoom; live tail.

import { api, EMPTY } from "../api.js";
import { chart, lastWindow, stepFor } from "../chart.js";
import { fill, h } from "../dom.js";
import { labels, num, presetSeconds, time } from "../format.js";
import { link } from "../nav.js";
import { debounce, field, filters, load, PRESETS, section, select, table } from "../ui.js";

const AGGS = ["avg", "min", "max", "sum", "count", "rate", "last", "p50", "p95", "p99"];
const DEFAULT_AGG = { counter: "rate", gauge: "last", histogram: "p95" };

function labelFilters(params) {
  return [...params.entries()].filter(([k, v]) => k.startsWith("l.") && v).map(([k, v]) => `${k.slice(2)}="${v.replace(/["\\]/g, "\\$&")}"`);
}

async function labelPickers(metric, current, params) {
  const pickers = await Promise.all(metric.label_names.map(async (label) => {
    const answer = await api(`/metrics/${encodeURIComponent(metric.name)}/labels/${encodeURIComponent(label)}/values`, { params: { start: "7d" } }).catch(() => ({ values: [] }));
    return field(label, select(`l.${label}`, ["", ...answer.values], params.get(`l.${label}`)));
  }));
  const by = metric.label_names.map((label) => h("label", { class: "check" },
    h("input", { type: "checkbox", name: "by", value: label, checked: current.by.includes(label) }), label));
  return [pickers, metric.label_names.length ? field("group by", h("span", null, by, h("label", { class: "check" },
    h("input", { type: "checkbox", name: "merge", value: "1", checked: current.merge === "1" }), "merge all"))) : null];
}

export default {
  async render(view) {
    const list = await api("/metrics");
    const name = view.get("metric") || (list.find((m) => !m.name.startsWith("tocsin_")) || list[0] || {}).name;
    const metric = list.find((m) => m.name === name);
    const current = {
      metric: name, agg: view.get("agg") || (metric ? DEFAULT_AGG[metric.kind] : "avg"), range: view.get("range", "1h"),
      start: view.get("start"), end: view.get("end"), by: view.params.getAll("by"), merge: view.get("merge"), match: view.get("match"),
    };
    const zoomed = Boolean(current.start && current.end);
    const keep = Object.fromEntries([...view.params.entries()].filter(([k]) => k.startsWith("l.")));
    const base = { ...current, by: current.by, ...keep };
    const plot = h("div", { id: "metric-chart" });
    const rows = h("div");
    fill(view.main, h("div", { class: "pagehead" }, h("h1", null, "Metrics"),
      h("span", { class: "muted" }, metric ? `${metric.kind}${metric.unit ? ` · ${metric.unit}` : ""}${metric.description ? ` · ${metric.description}` : ""}` : "")));
    if (!metric) {
      view.main.append(h("p", { class: "muted empty" }, list.length ? `No metric named ${name}.` : "No metrics stored yet."));
      return;
    }
    view.main.append(
      filters(view, [
        field("metric", select("metric", list.map((m) => [m.name, `${m.name} (${m.kind}, ${m.series} series)`]), name,
          (v) => view.go({ metric: v, range: current.range }))),
        field("aggregate", select("agg", AGGS, current.agg)),
        await labelPickers(metric, current, view.params),
        field("selector", h("input", { name: "match", value: current.match, size: 24, placeholder: 'code=~"5.."' })),
        field("range", select("range", PRESETS, current.range)),
      ], {}),
      h("p", { class: "muted" }, zoomed ? [`zoomed: ${time(Number(current.start))} → ${time(Number(current.end))} · `,
        h("a", { href: link("metrics", { ...base, start: "", end: "" }) }, "reset zoom")] : "Drag across the chart to zoom."),
      section(`${name} · ${current.agg}`, plot, rows));
    const rangeSeconds = zoomed ? (Number(current.end) - Number(current.start)) / 1e9 : presetSeconds(current.range);
    const draw = () => load(plot, async () => {
      const w = zoomed ? { start: current.start, end: current.end, step: `${stepFor(rangeSeconds)}s` } : lastWindow(rangeSeconds);
      const answer = await api(`/metrics/${encodeURIComponent(name)}/query`, { params: {
        ...w, agg: current.agg,
        "match[]": [...labelFilters(view.params), current.match].filter(Boolean),
        by: current.merge === "1" ? EMPTY : current.by.length ? current.by.join(",") : null,
      } });
      const series = answer.series.map((s) => ({ label: Object.keys(s.labels).length ? labels(s.labels) : current.agg, points: s.points }));
      fill(rows, table([
        ["series", (s) => h("code", null, s.label)], ["points", (s) => num(s.points.length)],
        ["last", (s) => num(s.points.length ? s.points[s.points.length - 1][1] : null)],
        ["min", (s) => num(Math.min(...s.points.map((p) => p[1])))], ["max", (s) => num(Math.max(...s.points.map((p) => p[1])))],
      ], series, { empty: "" }));
      return chart(`${name} ${current.agg}`, series, { height: 300, xRange: [w.start, w.end], onZoom: (start, end) => view.go({ ...base, start, end }) });
    });
    if (!zoomed) view.on(`metrics:${name}`, debounce(draw, 1000), { aggregate: current.agg });
    await draw();
  },
};
