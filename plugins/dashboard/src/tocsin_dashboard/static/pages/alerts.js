// Alerts: firing, pending, acknowledged and resolved alerts with their timeline; acknowledge, resolve and
// silence from the page (the API enforces the key's scopes and its 403 is shown); rules with their last run.

import { api } from "../api.js";
import { fill, h } from "../dom.js";
import { age, labels, num, seconds, time } from "../format.js";
import { link } from "../nav.js";
import { badge, debounce, field, kv, load, problem, section, select, table } from "../ui.js";

const VIEWS = {
  firing: (a) => ["firing", "recovering"].includes(a.state) && a.handling === "active",
  pending: (a) => a.state === "pending",
  acknowledged: (a) => a.handling === "acknowledged",
  resolved: (a) => a.state === "resolved" || a.handling === "resolved",
  all: () => true,
};

const ACTIONS = {
  acknowledge: { title: "Acknowledge", fields: ["comment", "for"] },
  resolve: { title: "Resolve", fields: ["comment"] },
  silence: { title: "Silence", fields: ["comment", "duration"] },
};

/** The form for one action on one alert; its outcome (or the API's problem, a 403 included) shows in `out`. */
function actionForm(alert, action, done) {
  const out = h("div", { class: "outcome" });
  const inputs = {
    comment: h("input", { name: "comment", placeholder: "why, or what is being done" }),
    for: h("input", { name: "for", placeholder: "for (e.g. 2h; empty: until resolved)" }),
    duration: h("input", { name: "duration", value: "2h", required: true }),
  };
  const spec = ACTIONS[action];
  const submit = async (event) => {
    event.preventDefault();
    const comment = inputs.comment.value.trim();
    try {
      if (action === "silence") {
        const matchers = Object.entries(alert.labels).map(([label, value]) => ({ label, op: "=", value }));
        const made = await api("/silences", { method: "POST", body: { matchers, duration: inputs.duration.value.trim(), comment } });
        fill(out, h("p", { class: "ok" }, `Silence ${made.id} is ${made.state} until ${time(made.ends_ns)}.`));
      } else {
        const body = comment ? { comment } : {};
        if (action === "acknowledge" && inputs.for.value.trim()) body.for = inputs.for.value.trim();
        const saved = await api(`/alerts/${alert.fingerprint}/${action}`, { method: "POST", body });
        fill(out, h("p", { class: "ok" }, `${spec.title}d: the alert is ${saved.state}, ${saved.handling}.`));
      }
      done();
    } catch (error) {
      fill(out, problem(error));
    }
  };
  return h("form", { class: "action", "data-action": action, onsubmit: submit },
    h("strong", null, `${spec.title} ${alert.rule} `), h("code", null, labels(alert.labels)),
    spec.fields.map((name) => field(name, inputs[name])),
    h("button", { type: "submit" }, spec.title), out);
}

function timeline(transitions) {
  return h("ol", { class: "timeline" }, transitions.map((t) => h("li", { class: `t-${t.to_state}` },
    h("span", { class: "muted" }, time(t.time_ns)), " ", h("strong", null, t.rule), " ",
    badge(t.from_state), " → ", badge(t.to_state), " ", t.reason, t.actor ? ` (by ${t.actor})` : "",
    t.value !== null && t.value !== undefined ? h("span", { class: "muted" }, ` value ${num(t.value)}`) : null)));
}

async function detail(fingerprint) {
  const { alert, transitions } = await api(`/alerts/${encodeURIComponent(fingerprint)}`);
  return section(`Alert ${alert.rule}`,
    h("p", null, badge(alert.severity), " ", badge(alert.state), " ", badge(alert.handling), " ", h("code", null, labels(alert.labels)),
      " ", alert.state_reason),
    h("p", null, `episode ${alert.episode} · value ${num(alert.value)} · active since ${time(alert.active_at_ns)}`,
      alert.acknowledged_by ? ` · acknowledged by ${alert.acknowledged_by}${alert.ack_comment ? `: ${alert.ack_comment}` : ""}` : "",
      alert.silenced_by.length ? ` · silenced by ${alert.silenced_by.join(", ")}` : ""),
    h("h3", null, "Annotations"), kv(alert.annotations),
    h("h3", null, "Timeline"), timeline(transitions),
    h("p", null, h("a", { href: link("notifications", { fingerprint }) }, "notifications about this alert")));
}

function rules(list) {
  return table([
    ["rule", (r) => r.name], ["kind", (r) => r.kind], ["severity", (r) => badge(r.severity)],
    ["health", (r) => badge(r.status.health)],
    ["last evaluation", (r) => (r.status.last_eval_ns ? `${age(r.status.last_eval_ns)} ago` : "never")],
    ["took", (r) => seconds(r.status.last_duration_s)],
    ["evaluations / failures", (r) => `${num(r.status.evaluations)} / ${num(r.status.failures)}`],
    ["last error", (r) => r.status.last_error],
  ], list, { empty: "No rules configured." });
}

function silences(list, redraw, out) {
  return table([
    ["matchers", (s) => h("code", null, s.matchers.map((m) => `${m.label}${m.op}"${m.value}"`).join(", "))],
    ["state", (s) => badge(s.state)], ["until", (s) => (s.until_resolved ? "resolved" : time(s.ends_ns))],
    ["by", (s) => s.created_by], ["comment", (s) => s.comment],
    ["", (s) => h("button", { type: "button", onclick: async () => {
      try {
        await api(`/silences/${s.id}`, { method: "DELETE" });
        redraw();
      } catch (error) {
        fill(out, problem(error));
      }
    } }, "expire")],
  ], list, { empty: "No active silences." });
}

export default {
  async render(view) {
    const which = VIEWS[view.get("view")] ? view.get("view") : "firing";
    const severity = view.get("severity");
    const rule = view.get("rule");
    const fingerprint = view.get("alert");
    const boxes = { list: h("div", { id: "alert-list" }), action: h("div", { id: "alert-action" }), detail: h("div"),
      timeline: h("div"), rules: h("div"), silences: h("div"), silenceOut: h("div") };
    const tabs = h("div", { class: "tabs" });
    fill(view.main,
      h("div", { class: "pagehead" }, h("h1", null, "Alerts"), tabs,
        field("severity", select("severity", ["", "info", "warning", "error", "critical"], severity, (v) => view.go({ view: which, severity: v, rule }))),
        field("rule", h("input", { name: "rule", value: rule, onchange: (e) => view.go({ view: which, severity, rule: e.target.value }) }))),
      section("Alerts", boxes.action, boxes.list), boxes.detail,
      h("div", { class: "grid" }, section("Transitions (last 6h)", boxes.timeline), section("Silences", boxes.silenceOut, boxes.silences)),
      section("Rules", boxes.rules));
    const draw = {
      list: () => load(boxes.list, async () => {
        const items = (await api("/alerts", { params: { severity, rule, limit: 1000 } })).items;
        fill(tabs, Object.keys(VIEWS).map((name) => h("a", { href: link("alerts", { view: name, severity, rule }), class: name === which ? "active" : null, "data-view": name },
          `${name} (${items.filter(VIEWS[name]).length})`)));
        const shown = items.filter(VIEWS[which]);
        const act = (alert, action) => fill(boxes.action, actionForm(alert, action, () => { draw.list(); draw.timeline(); }));
        return table([
          ["severity", (a) => badge(a.severity)],
          ["rule", (a) => h("a", { href: link("alerts", { view: which, severity, rule, alert: a.fingerprint }) }, a.rule)],
          ["labels", (a) => h("code", null, labels(a.labels))],
          ["state", (a) => [badge(a.state), " ", badge(a.handling), a.flapping ? [" ", badge("flapping")] : null]],
          ["value", (a) => num(a.value)],
          ["age", (a) => age(a.active_at_ns ?? a.updated_ns)],
          ["", (a) => (["inactive", "resolved"].includes(a.state) ? null : Object.keys(ACTIONS).map((action) =>
            h("button", { type: "button", "data-do": action, "data-fingerprint": a.fingerprint, onclick: () => act(a, action) }, ACTIONS[action].title)))],
        ], shown, { empty: `No ${which} alerts.`, rowClass: (a) => `alert-row sev-${a.severity}` });
      }),
      timeline: () => load(boxes.timeline, async () => timeline((await api("/alerts/transitions", { params: { start: "6h" } })).slice(-200).reverse())),
      detail: () => (fingerprint ? load(boxes.detail, () => detail(fingerprint)) : null),
      rules: () => load(boxes.rules, async () => rules(await api("/rules"))),
      silences: () => load(boxes.silences, async () => silences(await api("/silences", { params: { state: "active" } }), draw.silences, boxes.silenceOut)),
    };
    view.on("alerts", debounce(() => { draw.list(); draw.timeline(); draw.detail(); draw.silences(); }, 150));
    await Promise.all(Object.values(draw).map((fn) => fn()));
  },
};
