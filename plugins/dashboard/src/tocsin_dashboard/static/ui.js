// Small building blocks every page uses: sections, tables, badges, problems, key-value lists, filters.

import { ApiError } from "./api.js";
import { h } from "./dom.js";

/** A titled block of the page. */
export function section(title, ...children) {
  return h("section", { class: "card" }, h("h2", null, title), ...children);
}

/** A table: columns are [heading, row => cell content]; `rowClass(row)` names a row's class. */
export function table(columns, rows, { empty = "Nothing here.", rowClass } = {}) {
  if (!rows.length) return h("p", { class: "muted empty" }, empty);
  const body = rows.map((row) => h("tr", { class: rowClass ? rowClass(row) : null }, columns.map(([, cell]) => h("td", null, cell(row)))));
  return h("table", null, h("thead", null, h("tr", null, columns.map(([head]) => h("th", null, head)))), h("tbody", null, body));
}

/** A status word with a color from its meaning. */
export function badge(text, kind) {
  return h("span", { class: `badge b-${kind || text}` }, text);
}

/** What went wrong, plainly: a 403 says which scope the key lacks. */
export function problem(error) {
  if (error instanceof ApiError) {
    const title = error.status === 403 ? "Forbidden (403)" : `${error.problem.title || "Error"} (${error.status})`;
    const hint = error.status === 403 ? " — your API key does not hold the scope this action needs." : "";
    return h("div", { class: `problem p-${error.status}`, role: "alert" }, h("strong", null, title), " ", error.message, hint);
  }
  return h("div", { class: "problem", role: "alert" }, h("strong", null, "Error"), " ", String(error && error.message ? error.message : error));
}

/** An object's keys and values as a definition list (values as JSON text when they are not strings). */
export function kv(obj) {
  const entries = Object.entries(obj || {});
  if (!entries.length) return h("p", { class: "muted" }, "none");
  return h("dl", { class: "kv" }, entries.map(([k, v]) => [h("dt", null, k), h("dd", null, typeof v === "string" ? v : JSON.stringify(v))]));
}

/** A labelled form control. */
export function field(label, control) {
  return h("label", { class: "field" }, h("span", null, label), control);
}

/** A <select> of [value, text] options (or plain values) with `value` chosen. */
export function select(name, options, value, onchange) {
  return h("select", { name, onchange: onchange ? (e) => onchange(e.target.value) : null },
    options.map((o) => {
      const [v, t] = Array.isArray(o) ? o : [o, o || "any"];
      return h("option", { value: v, selected: String(v) === String(value ?? "") }, t);
    }));
}

/** A filter form: on submit, its named fields become the page's query string. */
export function filters(view, controls, extra = {}) {
  return h("form", {
    class: "filters",
    onsubmit: (event) => {
      event.preventDefault();
      const data = {};
      for (const [k, v] of new FormData(event.target).entries()) data[k] = k in data ? [data[k], v].flat() : v;
      view.go({ ...extra, ...data });
    },
  }, controls, h("button", { type: "submit" }, "Apply"));
}

/** Call `fn` at most once per `ms`, trailing. */
export function debounce(fn, ms = 300) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}

/** Fill `el` with what `load()` draws, or with the problem it raised. */
export async function load(el, draw) {
  try {
    const node = await draw();
    el.replaceChildren(...[node].flat().filter(Boolean));
  } catch (error) {
    el.replaceChildren(problem(error));
  }
}

export const PRESETS = ["5m", "15m", "1h", "6h", "24h", "7d"];
