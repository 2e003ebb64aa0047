// Traces: search spans by service, operation, status and duration; one trace as a waterfall with each
// span's attributes, events and logs; spans without an end are drawn as running.

import { api } from "../api.js";
import { fill, h } from "../dom.js";
import { clock, seconds, time } from "../format.js";
import { link } from "../nav.js";
import { badge, debounce, field, filters, kv, load, PRESETS, section, select, table } from "../ui.js";

const nowNs = () => Date.now() * 1e6;

/** Spans in tree order (parents before children, siblings by start) with their depth. */
function treeOrder(trace) {
  const byId = new Map(trace.spans.map((s) => [s.span_id, s]));
  const ordered = [];
  const visit = (id, depth) => {
    const span = byId.get(id);
    if (!span || span.seen) return;
    span.seen = true;
    ordered.push({ span, depth });
    for (const child of trace.children[id] || []) visit(child, depth + 1);
  };
  trace.roots.forEach((id) => visit(id, 0));
  trace.spans.filter((s) => !s.seen).forEach((s) => visit(s.span_id, 0));
  return ordered;
}

function spanDetail(span, logs, start) {
  const mine = logs.filter((item) => item.record.span_id === span.span_id);
  return h("div", { class: "spandetail" },
    h("p", null, `${span.kind} · ${span.service} · started ${time(span.start_ns)} · `,
      span.end_ns ? seconds((span.end_ns - span.start_ns) / 1e9) : "running", " · ", badge(span.status),
      span.status_message ? ` ${span.status_message}` : "", h("code", { class: "muted" }, ` ${span.span_id}`)),
    h("h4", null, "Attributes"), kv(span.attributes),
    h("h4", null, "Events"), span.events.length ? h("ul", null, span.events.map((e) => h("li", null,
      `+${seconds(((e.time_ns ?? start) - start) / 1e9)} `, h("strong", null, e.name ?? ""), " ", JSON.stringify(e.attributes ?? {})))) : h("p", { class: "muted" }, "none"),
    h("h4", null, `Logs (${mine.length})`), mine.length ? h("div", { class: "loglist" }, mine.map(({ record }) => h("div", { class: `logrow l-${record.level}` },
      h("span", { class: "ts" }, clock(record.time_ns)), " ", badge(record.level), " ", h("span", { class: "msg" }, record.message)))) : h("p", { class: "muted" }, "none"));
}

async function waterfall(traceId, selected) {
  const [trace, logs] = await Promise.all([api(`/traces/${encodeURIComponent(traceId)}`), api(`/traces/${encodeURIComponent(traceId)}/logs`, { params: { limit: 1000 } })]);
  const start = trace.start_ns;
  const end = Math.max(...trace.spans.map((s) => s.end_ns ?? nowNs()), start + 1);
  const total = end - start;
  const rows = treeOrder(trace).map(({ span, depth }) => {
    const spanEnd = span.end_ns ?? nowNs();
    const bar = h("div", { class: `bar st-${span.status}${span.end_ns ? "" : " running"}`, title: span.name });
    bar.style.left = `${((span.start_ns - start) / total) * 100}%`;
    bar.style.width = `${Math.max(0.3, ((spanEnd - span.start_ns) / total) * 100)}%`;
    const label = h("div", { class: "spanlabel" }, h("span", { class: "svc" }, span.service), " ", h("span", { class: "spanname" }, span.name));
    label.style.paddingLeft = `${depth * 14}px`;
    const detail = h("div", { class: "detailslot" });
    const row = h("div", { class: `span-row${span.end_ns ? "" : " is-running"}`, "data-span": span.span_id },
      h("div", { class: "spanline" }, label, h("div", { class: "track" }, bar),
        h("div", { class: "spandur" }, span.end_ns ? seconds((span.end_ns - span.start_ns) / 1e9) : "running")), detail);
    row.querySelector(".spanline").addEventListener("click", () => {
      if (detail.childElementCount) detail.replaceChildren();
      else fill(detail, spanDetail(span, logs.items, start));
    });
    if (span.span_id === selected) fill(detail, spanDetail(span, logs.items, start));
    return row;
  });
  return section(`Trace ${trace.trace_id}`,
    h("p", null, `${trace.spans.length} spans · ${trace.services.join(", ")} · ${seconds(total / 1e9)}`,
      trace.running ? [" · ", badge(`${trace.running} running`, "running")] : null,
      trace.errors ? [" · ", badge(`${trace.errors} errors`, "error")] : null, " · ",
      h("a", { href: link("logs", { trace_id: trace.trace_id }) }, "logs of this trace")),
    h("div", { class: "waterfall", id: "waterfall" }, rows));
}

export default {
  async render(view) {
    const current = Object.fromEntries(["service", "name", "status", "min_duration", "max_duration", "range", "trace", "span", "root_only"].map((k) => [k, view.get(k)]));
    current.range ||= "1h";
    current.root_only ||= "true";
    // The service and operation lists scan up to 10,000 spans: the selects fill in when they come.
    const serviceSelect = select("service", [...new Set(["", current.service])], current.service);
    const nameSelect = select("name", [...new Set(["", current.name])], current.name);
    const offer = async (el, path, want) => {
      const answer = await api(path, { params: { start: current.range } }).catch(() => ({ items: [] }));
      el.replaceChildren(...[...new Set(["", want, ...answer.items])].map((v) => h("option", { value: v, selected: v === want }, v || "any")));
    };
    offer(serviceSelect, "/traces/services", current.service);
    if (current.service) offer(nameSelect, `/traces/services/${encodeURIComponent(current.service)}/operations`, current.name);
    const results = h("div", { id: "trace-results" });
    const trace = h("div");
    fill(view.main,
      h("div", { class: "pagehead" }, h("h1", null, "Traces")),
      filters(view, [
        field("service", serviceSelect),
        field("operation", nameSelect),
        field("status", select("status", ["", "unset", "ok", "error"], current.status)),
        field("min duration", h("input", { name: "min_duration", value: current.min_duration, size: 6, placeholder: "250ms" })),
        field("max duration", h("input", { name: "max_duration", value: current.max_duration, size: 6, placeholder: "5s" })),
        field("range", select("range", PRESETS, current.range)),
        field("spans", select("root_only", [["true", "roots only"], ["false", "every span"]], current.root_only)),
      ]),
      trace, section("Spans", results));
    const search = () => load(results, async () => {
      const page = await api("/traces", { params: { service: current.service, name: current.name, status: current.status,
        min_duration: current.min_duration, max_duration: current.max_duration, start: current.range, root_only: current.root_only === "true" ? "true" : null, limit: 100 } });
      return table([
        ["started", (s) => time(s.start_ns)], ["service", (s) => s.service],
        ["operation", (s) => h("a", { href: link("traces", { ...current, trace: s.trace_id, span: s.span_id }) }, s.name)],
        ["duration", (s) => (s.end_ns ? seconds((s.end_ns - s.start_ns) / 1e9) : badge("running"))],
        ["status", (s) => badge(s.status)],
        ["trace", (s) => h("code", null, s.trace_id.slice(0, 12))],
      ], page.items, { empty: "No spans match." });
    });
    const drawTrace = () => (current.trace ? load(trace, () => waterfall(current.trace, current.span)) : null);
    const refresh = debounce(search, 1000);
    const refreshTrace = debounce(drawTrace, 500);
    view.on("traces", (message) => {
      if (message.type !== "spans") return;
      refresh();
      if (current.trace && message.data.spans.some((s) => s.trace_id === current.trace)) refreshTrace();
    });
    await Promise.all([search(), drawTrace()]);
  },
};
