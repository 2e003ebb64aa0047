// Workflows: each workflow's runs and stats, the executions table, and one execution's steps as a Gantt
// bar with the failed step's traceback and its logs.

import { api } from "../api.js";
import { fill, h } from "../dom.js";
import { age, clock, num, seconds, time } from "../format.js";
import { link } from "../nav.js";
import { badge, debounce, field, filters, load, section, select, table } from "../ui.js";

const pct = (v) => (v === null || v === undefined ? "—" : `${(v * 100).toFixed(1)}%`);
const took = (e) => (e.ended_ns ? seconds((e.ended_ns - e.started_ns) / 1e9) : "running");

function gantt(execution, steps) {
  const start = execution.started_ns;
  const end = Math.max(execution.ended_ns ?? Date.now() * 1e6, ...steps.map((s) => s.ended_ns ?? Date.now() * 1e6), start + 1);
  const total = end - start;
  return h("div", { class: "gantt", id: "gantt" }, steps.map((s) => {
    const bar = h("div", { class: `bar ws-${s.status}${s.ended_ns ? "" : " running"}`, title: `${s.name}: ${s.status}` });
    bar.style.left = `${((s.started_ns - start) / total) * 100}%`;
    bar.style.width = `${Math.max(0.5, (((s.ended_ns ?? end) - s.started_ns) / total) * 100)}%`;
    return h("div", { class: "gantt-row", "data-step": s.name },
      h("div", { class: "spanlabel" }, s.name), h("div", { class: "track" }, bar),
      h("div", { class: "spandur" }, badge(s.status), " ", took(s)));
  }));
}

async function execution(id) {
  const answer = await api(`/workflows/executions/${encodeURIComponent(id)}`, { params: { log_limit: 200 } });
  const e = answer.execution;
  const failed = answer.steps.filter((s) => s.status === "failed");
  return section(`Run of ${e.name}`,
    h("p", null, badge(e.status), ` started ${time(e.started_ns)} · ${took(e)} · `, h("code", null, e.id), " · ",
      h("a", { href: link("traces", { trace: answer.trace_id }) }, "trace"), " · ",
      h("a", { href: link("logs", { execution_id: e.id }) }, "all logs")),
    Object.keys(e.params || {}).length ? h("p", { class: "muted" }, "params ", JSON.stringify(e.params)) : null,
    e.error ? h("p", { class: "problem" }, e.error) : null,
    answer.steps.length ? gantt(e, answer.steps) : h("p", { class: "muted" }, "No steps recorded."),
    failed.map((s) => h("div", { class: "failed-step" }, h("h3", null, `Step ${s.name} failed`), h("p", null, s.error ?? ""),
      s.traceback ? h("pre", { class: "traceback" }, s.traceback) : null)),
    h("h3", null, "Logs"),
    h("div", { class: "loglist" }, answer.logs.items.map(({ record }) => h("div", { class: `logrow l-${record.level}` },
      h("span", { class: "ts" }, clock(record.time_ns)), " ", badge(record.level), " ", record.step ? h("span", { class: "svc" }, record.step) : null, " ",
      h("span", { class: "msg" }, record.message)))));
}

async function stats(name) {
  const s = await api(`/workflows/${encodeURIComponent(name)}/stats`);
  return section(`Stats of ${name}`,
    h("p", null, `${num(s.count)} finished · ${num(s.succeeded)} succeeded · ${num(s.failed)} failed · ${num(s.cancelled)} cancelled · success ${pct(s.success_rate)} · `,
      `P50 ${seconds(s.p50)} · P95 ${seconds(s.p95)} · P99 ${seconds(s.p99)} · ${num(s.active)} running`),
    table([["step", (t) => t.name], ["runs", (t) => num(t.count)], ["success", (t) => pct(t.success_rate)],
      ["P50", (t) => seconds(t.p50)], ["P95", (t) => seconds(t.p95)], ["P99", (t) => seconds(t.p99)],
      ["last", (t) => [badge(t.last_status ?? "unknown"), ` ${age(t.last_run_ns)} ago`]]], s.steps));
}

export default {
  async render(view) {
    const current = Object.fromEntries(["name", "status", "execution"].map((k) => [k, view.get(k)]));
    const boxes = { summary: h("div"), stats: h("div"), runs: h("div", { id: "executions" }), execution: h("div"), watch: h("ul", { class: "watch" }) };
    fill(view.main, h("div", { class: "pagehead" }, h("h1", null, "Workflows")), boxes.execution,
      h("div", { class: "grid" }, section("Workflows", boxes.summary), section("Missed and stuck runs (live, since this page opened)", boxes.watch)),
      boxes.stats,
      section("Executions",
        filters(view, [field("workflow", h("input", { name: "name", value: current.name, size: 16 })),
          field("status", select("status", ["", "running", "succeeded", "failed", "cancelled"], current.status))]),
        boxes.runs));
    const draw = {
      summary: () => load(boxes.summary, async () => table([
        ["workflow", (w) => h("a", { href: link("workflows", { name: w.name }) }, w.name)],
        ["finished", (w) => num(w.finished)], ["succeeded", (w) => num(w.succeeded)], ["failed", (w) => num(w.failed)],
        ["running", (w) => num(w.running)], ["success", (w) => pct(w.finished ? w.succeeded / w.finished : null)],
        ["last run", (w) => (w.last_run ? [badge(w.last_run.status), ` ${age(w.last_run.started_ns)} ago`] : "—")],
      ], (await api("/workflows")).items, { empty: "No workflows yet." })),
      stats: () => (current.name ? load(boxes.stats, () => stats(current.name)) : null),
      runs: () => load(boxes.runs, async () => table([
        ["workflow", (e) => e.name], ["status", (e) => badge(e.status)], ["started", (e) => time(e.started_ns)],
        ["duration", took], ["error", (e) => e.error ?? ""],
        ["", (e) => h("a", { href: link("workflows", { ...current, execution: e.id }) }, "steps")],
      ], (await api("/workflows/executions", { params: { name: current.name, status: current.status, limit: 50 } })).items, { empty: "No executions match." })),
      execution: () => (current.execution ? load(boxes.execution, () => execution(current.execution)) : null),
    };
    const refresh = debounce(() => { draw.summary(); draw.runs(); draw.execution(); draw.stats(); }, 500);
    view.on("workflows", (message) => {
      if (["stuck", "step_stuck", "missed"].includes(message.type)) {
        boxes.watch.prepend(h("li", null, badge(message.type, "error"), ` ${clock(Date.now() * 1e6)} `, message.data.workflow ?? "", " ", message.data.step ?? "", " ", message.data.execution_id ?? ""));
      }
      refresh();
    });
    await Promise.all(Object.values(draw).map((fn) => fn()));
  },
};
