// The dashboard's shell: navigation between pages (URLs with their filters), the key prompt, live/paused.

import { apiKey, onUnauthorized, setApiKey } from "./api.js";
import { fill, h } from "./dom.js";
import { Live } from "./live.js";
import { link, navigate } from "./nav.js";
import alerts from "./pages/alerts.js";
import logs from "./pages/logs.js";
import metrics from "./pages/metrics.js";
import notifications from "./pages/notifications.js";
import overview from "./pages/overview.js";
import traces from "./pages/traces.js";
import workflows from "./pages/workflows.js";

const PAGES = { overview, metrics, traces, logs, alerts, workflows, notifications };
const live = new Live();
const main = document.getElementById("main");
let current = null;

function pageName() {
  const match = /^\/ui\/([a-z]+)/.exec(location.pathname);
  return match && PAGES[match[1]] ? match[1] : "overview";
}

/** What a page is handed: where to draw, its filters, how to change them, and the live topics it holds. */
class View {
  constructor(name) {
    this.name = name;
    this.main = main;
    this.params = new URLSearchParams(location.search);
    this.topics = {};
    this.alive = true;
  }

  get(name, fallback = "") {
    return this.params.get(name) ?? fallback;
  }

  /** Show this page with other filters (a new history entry, no reload). */
  go(params, page = this.name) {
    navigate(link(page, params));
  }

  /** Hold a live topic while the page is shown: `fn(message)` for each message. */
  on(topic, fn, opts) {
    this.topics[topic] = { fn: (message) => this.alive && fn(message), opts };
    live.hold(this.topics);
  }
}

async function route() {
  if (current) current.alive = false;
  const name = pageName();
  const view = new View(name);
  current = view;
  live.hold({});
  document.title = `tocsin · ${name}`;
  for (const a of document.querySelectorAll("#nav a")) a.classList.toggle("active", a.dataset.page === name);
  fill(main, h("p", { class: "muted" }, "Loading…"));
  try {
    await PAGES[name].render(view);
  } catch (error) {
    fill(main, h("div", { class: "problem" }, String(error)));
  }
  main.dataset.page = name;
  main.dataset.ready = String(Math.round(performance.now())); // ms since navigation began (for benchmarks)
}

function drawNav() {
  fill(document.getElementById("nav"), Object.keys(PAGES).map((name) => h("a", { href: link(name), "data-page": name, "data-nav": true }, name)));
}

function drawLive() {
  const button = document.getElementById("live");
  const labels = { live: "● live", paused: "❚❚ paused", connecting: "connecting…", reconnecting: "reconnecting…" };
  button.textContent = labels[live.state] || live.state;
  button.className = `live s-${live.state}`;
  document.body.dataset.live = live.state;
  document.body.dataset.topics = live.topics.join(" ");
}

function askForKey(message) {
  const banner = document.getElementById("banner");
  if (!banner.hidden && banner.querySelector("form")) return;
  const input = h("input", { type: "password", name: "key", autocomplete: "off", placeholder: "API key", required: true });
  const form = h("form", {
    class: "keyform",
    onsubmit: (event) => {
      event.preventDefault();
      setApiKey(input.value.trim());
      banner.hidden = true;
      drawKey();
      live.restart();
      route();
    },
  }, h("strong", null, message), " ", input, h("button", { type: "submit" }, "Use key"));
  fill(banner, form);
  banner.hidden = false;
  input.focus();
}

function drawKey() {
  document.getElementById("key").hidden = !apiKey();
}

document.addEventListener("click", (event) => {
  const a = event.target.closest("a[href]");
  if (!a || event.ctrlKey || event.metaKey || event.shiftKey || event.button !== 0) return;
  const href = a.getAttribute("href");
  if (href === "/" || href.startsWith("/ui/")) {
    event.preventDefault();
    navigate(href);
  } else if (href === "#") {
    event.preventDefault();
  }
});
window.addEventListener("popstate", route);
window.addEventListener("tocsin:navigate", route);
document.getElementById("live").addEventListener("click", () => (live.paused ? live.resume() : live.pause()));
document.getElementById("key").addEventListener("click", () => {
  setApiKey("");
  drawKey();
  askForKey("Key forgotten. Enter an API key:");
});
live.addEventListener("state", drawLive);
onUnauthorized(() => askForKey("This server needs an API key:"));
drawNav();
drawKey();
drawLive();
live.start();
route();
