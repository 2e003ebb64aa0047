// Notifications: the delivery log with each delivery's attempts and reasons; test-send and preview per channel.

import { api } from "../api.js";
import { fill, h } from "../dom.js";
import { num, seconds, time } from "../format.js";
import { link } from "../nav.js";
import { badge, debounce, field, filters, load, problem, section, select, table } from "../ui.js";

async function attempts(id) {
  const answer = await api(`/notifications/${encodeURIComponent(id)}`);
  const d = answer.delivery;
  return section(`Delivery ${d.id}`,
    h("p", null, `${d.channel} · ${d.kind} · `, badge(d.state), ` · ${num(d.attempts)} attempts · created ${time(d.created_ns)}`,
      d.sent_ns ? ` · sent ${time(d.sent_ns)}` : "", d.last_error ? ` · last error: ${d.last_error}` : ""),
    table([["#", (a) => a.attempt], ["time", (a) => time(a.time_ns)], ["outcome", (a) => badge(a.outcome)],
      ["latency", (a) => seconds(a.latency_s)], ["status", (a) => a.status_code ?? ""], ["reason", (a) => a.error]], answer.attempts,
    { empty: "Not attempted yet." }));
}

function channelRow(channel, alerts) {
  const out = h("div", { class: "outcome" });
  const fingerprint = select("fingerprint", alerts.map((a) => [a.fingerprint, `${a.rule} ${a.fingerprint}`]), alerts[0] ? alerts[0].fingerprint : "");
  const kind = select("kind", ["firing", "resolved", "acknowledged"], "firing");
  const run = (fn) => async () => {
    try {
      fill(out, await fn());
    } catch (error) {
      fill(out, problem(error));
    }
  };
  const test = run(async () => {
    const r = await api(`/channels/${encodeURIComponent(channel.name)}/test`, { method: "POST" });
    return h("p", { class: r.ok ? "ok" : "problem" }, `test ${r.outcome} in ${seconds(r.latency_s)}`, r.error ? `: ${r.error}` : "");
  });
  const preview = run(async () => {
    const r = await api(`/channels/${encodeURIComponent(channel.name)}/preview`, { method: "POST", body: { fingerprint: fingerprint.value, kind: kind.value } });
    return h("div", { class: "preview" },
      h("p", null, r.would_send ? "would send" : `would not send: ${r.reason}`),
      h("pre", null, `${r.notification.title}\n\n${r.notification.body}`),
      h("details", null, h("summary", null, "payload"), h("pre", null, JSON.stringify(r.payload, null, 2))));
  });
  return h("div", { class: "channel", "data-channel": channel.name },
    h("p", null, h("strong", null, channel.name), ` (${channel.type}) · min severity ${channel.min_severity}`,
      channel.fallback ? ` · fallback ${channel.fallback}` : "", " ",
      h("a", { href: link("notifications", { channel: channel.name }) }, "deliveries")),
    h("div", { class: "filters" }, h("button", { type: "button", "data-do": "test", onclick: test }, "Test send"),
      alerts.length ? [field("alert", fingerprint), field("kind", kind), h("button", { type: "button", "data-do": "preview", onclick: preview }, "Preview")]
        : h("span", { class: "muted" }, "no stored alert to preview")),
    out);
}

export default {
  async render(view) {
    const current = Object.fromEntries(["channel", "state", "fingerprint", "delivery"].map((k) => [k, view.get(k)]));
    const boxes = { log: h("div", { id: "deliveries" }), detail: h("div"), channels: h("div") };
    fill(view.main, h("div", { class: "pagehead" }, h("h1", null, "Notifications")), boxes.detail,
      section("Delivery log",
        filters(view, [field("channel", h("input", { name: "channel", value: current.channel, size: 12 })),
          field("state", select("state", ["", "pending", "sending", "sent", "failed", "dropped"], current.state)),
          field("alert", h("input", { name: "fingerprint", value: current.fingerprint, size: 16 }))]),
        boxes.log),
      section("Channels", boxes.channels));
    const draw = {
      log: () => load(boxes.log, async () => table([
        ["created", (d) => time(d.created_ns)], ["channel", (d) => d.channel], ["kind", (d) => d.kind],
        ["alert", (d) => h("a", { href: link("alerts", { alert: d.fingerprint, view: "all" }) }, (d.payload && d.payload.alert && d.payload.alert.rule) || d.fingerprint)],
        ["state", (d) => badge(d.state)], ["attempts", (d) => num(d.attempts)], ["reason", (d) => d.last_error],
        ["", (d) => h("a", { href: link("notifications", { ...current, delivery: d.id }) }, "attempts")],
      ], (await api("/notifications", { params: { channel: current.channel, state: current.state, fingerprint: current.fingerprint, limit: 100 } })).items,
      { empty: "No deliveries." })),
      detail: () => (current.delivery ? load(boxes.detail, () => attempts(current.delivery)) : null),
      channels: () => load(boxes.channels, async () => {
        const [channels, alerts] = await Promise.all([api("/channels"), api("/alerts", { params: { limit: 50 } })]);
        return channels.length ? channels.map((c) => channelRow(c, alerts.items)) : h("p", { class: "muted" }, "No channels configured.");
      }),
    };
    view.on("notifications", debounce(() => { draw.log(); draw.detail(); }, 300));
    await Promise.all(Object.values(draw).map((fn) => fn()));
  },
};
