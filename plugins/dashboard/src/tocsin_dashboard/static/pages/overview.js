// Overview: system health, active alerts, the busiest metrics' rates and latencies, recent runs, ingest.

import { api, EMPTY } from "../api.js";
import { chart, lastWindow } from "../chart.js";
import { fill, h } from "../dom.js";
import { age, labels, num, presetSeconds, seconds } from "../format.js";
import { link } from "../nav.js";
import { badge, debounce, field, kv, load, PRESETS, section, select, table } from "../ui.js";

const ACTIVE_STATES = ["pending", "firing", "recovering", "nodata", "error"];

function healthCards(health) {
  const neededBy = {};
  for (const c of health.components) for (const d of c.depends_on) (neededBy[d] ||= []).push(c.name);
  const cards = health.components.map((c) => h("div", { class: `hcard h-${c.status}`, "data-component": c.name },
    h("div", { class: "hname" }, c.name, c.critical ? h("span", { class: "muted" }, " · critical") : null),
    badge(c.status),
    c.check_status !== c.status ? h("div", { class: "muted" }, "own check: ", c.check_status) : null,
    c.message ? h("div", { class: "hmsg" }, c.message) : null,
    c.cause ? h("div", null, "degraded by ", h("strong", null, c.cause)) : null,
    c.depends_on.length ? h("div", { class: "muted" }, "depends on ", c.depends_on.join(", ")) : null,
    neededBy[c.name] ? h("div", { class: "muted" }, "needed by ", neededBy[c.name].join(", ")) : null,
    h("div", { class: "muted" }, "since ", age(c.since_ns), " · checked ", age(c.last_check_ns), " ago")));
  return [h("p", null, "System: ", badge(health.status)),
    cards.length ? h("div", { class: "hcards" }, cards) : h("p", { class: "muted" }, "No health checks configured.")];
}

function alertRows(items) {
  return table([
    ["severity", (a) => badge(a.severity)],
    ["rule", (a) => h("a", { href: link("alerts", { alert: a.fingerprint }) }, a.rule)],
    ["labels", (a) => h("code", null, labels(a.labels))],
    ["state", (a) => [badge(a.state), a.handling !== "active" ? [" ", badge(a.handling)] : null]],
    ["value", (a) => num(a.value)],
    ["age", (a) => age(a.active_at_ns ?? a.fired_at_ns)],
  ], items, { empty: "No active alerts.", rowClass: (a) => `alert-row sev-${a.severity}` });
}

/** The metrics worth a chart: the request counter, an error counter (or the request counter's 5xx), histograms. */
function busiest(list) {
  const own = list.filter((m) => !m.name.startsWith("tocsin_"));
  const bySeries = (a, b) => b.series - a.series;
  const counters = own.filter((m) => m.kind === "counter").sort(bySeries);
  const requests = counters.find((m) => /request/i.test(m.name)) || counters[0];
  const errorCounter = counters.find((m) => m !== requests && /error|fail/i.test(m.name));
  const codeLabel = requests && requests.label_names.find((l) => /^(code|status|status_code|http_status)$/.test(l));
  const errors = errorCounter ? { name: errorCounter.name, match: [] }
    : codeLabel ? { name: requests.name, match: [`${codeLabel}=~"5.."`] } : null;
  const histograms = own.filter((m) => m.kind === "histogram").sort(bySeries).slice(0, 2);
  return { requests, errors, histograms };
}

async function series(name, agg, w, match = []) {
  const answer = await api(`/metrics/${encodeURIComponent(name)}/query`, { params: { ...w, agg, by: EMPTY, "match[]": match } });
  return answer.series.map((s) => ({ label: agg, points: s.points }));
}

async function charts(preset) {
  const range = lastWindow(presetSeconds(preset));
  const xRange = [range.start, range.end];
  const list = await api("/metrics");
  const pick = busiest(list);
  const plots = [];
  if (pick.requests) {
    plots.push(series(pick.requests.name, "rate", range).then((s) => chart(`request rate: ${pick.requests.name} (/s)`, s, { xRange })));
  }
  if (pick.errors) {
    const title = `error rate: ${pick.errors.name}${pick.errors.match.length ? ` ${pick.errors.match[0]}` : ""} (/s)`;
    plots.push(series(pick.errors.name, "rate", range, pick.errors.match).then((s) => chart(title, s, { xRange })));
  }
  for (const m of pick.histograms) {
    plots.push(Promise.all(["p50", "p95", "p99"].map((agg) => series(m.name, agg, range)))
      .then((parts) => chart(`latency: ${m.name} P50 / P95 / P99`, parts.flat(), { xRange })));
  }
  if (list.some((m) => m.name === "tocsin_records_written_total")) {
    plots.push(api("/metrics/tocsin_records_written_total/query", { params: { ...range, agg: "rate", by: "signal" } })
      .then((answer) => chart("ingest: records written per second", answer.series.map((s) => ({ label: s.labels.signal || "all", points: s.points })), { xRange })));
  }
  const drawn = await Promise.all(plots);
  return { drawn: drawn.length ? drawn : h("p", { class: "muted" }, "No metrics stored yet."), live: pick.requests };
}

function ingest(stats) {
  const rows = Object.keys({ ...stats.written, ...stats.dropped }).sort().map((signal) => ({ signal, written: stats.written[signal], dropped: stats.dropped[signal] }));
  return [
    table([["signal / reason", (r) => r.signal], ["written", (r) => num(r.written ?? 0)], ["dropped", (r) => num(r.dropped ?? 0)]], rows, { empty: "Nothing written yet." }),
    h("h3", null, "Buffers"),
    table([["buffer", (r) => r[0]], ["size", (r) => `${num(r[1].size)} / ${num(r[1].capacity)}`], ["dropped", (r) => num(r[1].dropped)]], Object.entries(stats.buffers || {})),
    h("h3", null, "Storage"), kv({ backend: stats.storage_backend, leader: String(stats.leader), ...(stats.storage && stats.storage.rows ? stats.storage.rows : {}) }),
  ];
}

function runs(page) {
  return table([
    ["workflow", (e) => e.name],
    ["status", (e) => badge(e.status)],
    ["started", (e) => `${age(e.started_ns)} ago`],
    ["duration", (e) => (e.ended_ns ? seconds((e.ended_ns - e.started_ns) / 1e9) : "running")],
    ["", (e) => h("a", { href: link("workflows", { execution: e.id }) }, "steps")],
  ], page.items, { empty: "No workflow runs yet." });
}

export default {
  async render(view) {
    const range = view.get("range", "1h");
    const boxes = { health: h("div"), alerts: h("div", { id: "active-alerts" }), charts: h("div", { class: "charts" }), runs: h("div"), ingest: h("div") };
    fill(view.main,
      h("div", { class: "pagehead" }, h("h1", null, "Overview"), field("range", select("range", PRESETS, range, (v) => view.go({ range: v })))),
      h("div", { class: "grid" }, section("System health", boxes.health), section("Active alerts", boxes.alerts)),
      section("Busiest metrics", boxes.charts),
      h("div", { class: "grid" }, section("Recent workflow runs", boxes.runs), section("Ingest and drops", boxes.ingest)));
    const draw = {
      health: () => load(boxes.health, async () => healthCards(await api("/health"))),
      alerts: () => load(boxes.alerts, async () => alertRows((await api("/alerts", { params: { state: ACTIVE_STATES, limit: 50 } })).items)),
      runs: () => load(boxes.runs, async () => runs(await api("/workflows/executions", { params: { limit: 10 } }))),
      ingest: () => load(boxes.ingest, async () => ingest(await api("/stats"))),
      charts: () => load(boxes.charts, async () => {
        const { drawn, live } = await charts(range);
        if (live) view.on(`metrics:${live.name}`, debounce(() => { draw.charts(); draw.ingest(); }, 2000), { aggregate: "rate" });
        return drawn;
      }),
    };
    view.on("alerts", debounce(draw.alerts, 100));
    view.on("health", debounce(draw.health, 200));
    view.on("workflows", debounce(draw.runs, 300));
    await Promise.all(Object.values(draw).map((fn) => fn()));
  },
};
