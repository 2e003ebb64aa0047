// Logs: the log search language with matches highlighted, level and service facets, live tail, and links
// from each record to its trace and its workflow execution.

import { api } from "../api.js";
import { append, fill, h, highlight, queryTerms, snippetTerms } from "../dom.js";
import { clock, num, time } from "../format.js";
import { link } from "../nav.js";
import { badge, field, filters, load, PRESETS, section, select } from "../ui.js";

const LEVELS = ["", "debug", "info", "warning", "error", "critical"];
const MAX_ROWS = 2000;

function attrs(obj) {
  const entries = Object.entries(obj || {});
  return entries.length ? h("span", { class: "attrs" }, entries.map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`).join(" ")) : null;
}

/** The words the engine matched in a message (brackets the message itself holds are not matches). */
function matched(message, snippet) {
  return snippetTerms(snippet).filter((term) => !message.includes(`[${term}]`));
}

/** One record as a row: its message as text, the matched words in <mark>. */
function row(record, terms) {
  return h("div", { class: `logrow l-${record.level}`, "data-id": record.id },
    h("span", { class: "ts", title: time(record.time_ns) }, clock(record.time_ns)), " ",
    badge(record.level), " ",
    h("span", { class: "svc" }, record.service), " ",
    h("span", { class: "msg" }, highlight(record.message, terms)), " ",
    attrs(record.attributes),
    record.trace_id ? h("a", { class: "tolink", href: link("traces", { trace: record.trace_id, span: record.span_id }) }, "trace") : null,
    record.execution_id ? h("a", { class: "tolink", href: link("workflows", { execution: record.execution_id }) }, `run${record.step ? ` · ${record.step}` : ""}`) : null);
}

function facets(view, records, current) {
  const count = (key) => {
    const counts = {};
    for (const r of records) counts[r[key]] = (counts[r[key]] || 0) + 1;
    return Object.entries(counts).sort((a, b) => b[1] - a[1]);
  };
  const facet = (title, key, param) => h("div", { class: "facet" }, h("h3", null, title),
    h("ul", null, count(key).map(([value, n]) => h("li", null,
      h("a", { href: link("logs", { ...current, [param]: current[param] === value ? "" : value }), class: current[param] === value ? "active" : null }, value || "(none)"),
      h("span", { class: "muted" }, ` ${num(n)}`)))));
  return [facet("level", "level", "level"), facet("service", "service", "service"),
    h("p", { class: "muted small" }, "Counts of the records shown.")];
}

/** The live tail's query: the search plus the level and service filters, in the search language. */
function tailQuery(current) {
  return [current.q, current.level ? `level:${current.level}+` : "", current.service ? `service:"${current.service}"` : ""].filter(Boolean).join(" ");
}

export default {
  async render(view) {
    const current = Object.fromEntries(["q", "level", "service", "range", "trace_id", "execution_id"].map((k) => [k, view.get(k)]));
    current.range ||= "1h";
    const terms = queryTerms(current.q);
    const list = h("div", { class: "loglist", id: "log-list" });
    const side = h("aside", { class: "facets" });
    const more = h("div");
    const summary = h("p", { class: "muted", id: "log-summary" });
    const records = [];
    const seen = new Set();
    fill(view.main,
      h("div", { class: "pagehead" }, h("h1", null, "Logs")),
      filters(view, [
        field("search", h("input", { name: "q", value: current.q, size: 40, placeholder: 'words, "phrases", prefix*, OR, -word, level:error+' })),
        field("level ≥", select("level", LEVELS, current.level)),
        field("service", h("input", { name: "service", value: current.service, size: 12 })),
        field("range", select("range", PRESETS, current.range)),
        current.trace_id ? h("input", { type: "hidden", name: "trace_id", value: current.trace_id }) : null,
        current.execution_id ? h("input", { type: "hidden", name: "execution_id", value: current.execution_id }) : null,
      ]),
      h("div", { class: "split" }, side, section("Records", summary, list, more)));
    const add = (items, atTop) => {
      const fresh = items.filter(({ record }) => !seen.has(record.id));
      fresh.forEach(({ record }) => seen.add(record.id));
      const rows = fresh.map(({ record, snippet }) => row(record, current.q && snippet ? [...matched(record.message, snippet), ...terms] : terms));
      if (atTop) {
        list.prepend(...rows.reverse());
        records.unshift(...fresh.map((i) => i.record).reverse());
        while (list.childElementCount > MAX_ROWS) list.lastElementChild.remove();
      } else {
        append(list, rows);
        records.push(...fresh.map((i) => i.record));
      }
      fill(side, facets(view, records, current));
    };
    const page = async (cursor) => {
      const answer = await api("/logs", { params: { q: current.q, level: current.level, service: current.service, start: current.range,
        trace_id: current.trace_id, execution_id: current.execution_id, cursor, limit: 100 } });
      add(answer.items, false);
      fill(summary, answer.total === null ? "many matches" : `${num(answer.total)} matching records`, current.q ? ` for ${current.q}` : "");
      fill(more, answer.next_cursor ? h("button", { type: "button", onclick: () => page(answer.next_cursor) }, "older records") : null);
      return list.childElementCount ? null : h("p", { class: "muted empty" }, "No records match.");
    };
    const empty = h("div");
    list.before(empty);
    await load(empty, () => page(null));
    if (!current.trace_id && !current.execution_id) {
      const q = tailQuery(current);
      view.on("logs", (message) => {
        if (message.type !== "records") return;
        empty.replaceChildren();
        add(message.data.records.map((record) => ({ record, snippet: null })), true);
      }, q ? { q } : {});
    }
  },
};
