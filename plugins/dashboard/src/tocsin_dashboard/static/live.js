// The WebSocket at /api/v1/ws: topics the page wants, reconnect with the last cursor, pause and resume.

import { apiKey } from "./api.js";

export class Live extends EventTarget {
  constructor() {
    super();
    this.subs = new Map(); // topic -> {opts, fn}
    this.cursor = null;
    this.ws = null;
    this.paused = false;
    this.state = "connecting";
    this.retry = 0;
    this.timer = null;
    this.topics = []; // what the server confirmed this connection holds
  }

  setState(state) {
    this.state = state;
    this.dispatchEvent(new Event("state"));
  }

  /** Open the socket (resuming from the last cursor, so what happened meanwhile is replayed). */
  start() {
    clearTimeout(this.timer);
    if (this.paused || this.ws) return;
    const url = new URL("/api/v1/ws", location.href);
    url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
    if (apiKey()) url.searchParams.set("access_token", apiKey());
    if (this.cursor) url.searchParams.set("since", this.cursor);
    const ws = new WebSocket(url);
    this.ws = ws;
    this.setState(this.retry ? "reconnecting" : "connecting");
    ws.onopen = () => {
      this.retry = 0;
      this.setState("live");
      for (const [topic, sub] of this.subs) this.send(topic, sub.opts);
    };
    ws.onmessage = (event) => this.receive(JSON.parse(event.data));
    ws.onclose = () => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.topics = [];
      if (this.paused) return;
      this.setState("reconnecting");
      this.timer = setTimeout(() => this.start(), Math.min(10000, 500 * 2 ** this.retry++));
    };
  }

  /** Close and reopen (a new key, say). */
  restart() {
    const ws = this.ws;
    this.ws = null;
    if (ws) ws.close();
    this.start();
  }

  pause() {
    this.paused = true;
    const ws = this.ws;
    this.ws = null;
    if (ws) ws.close();
    this.setState("paused");
  }

  resume() {
    this.paused = false;
    this.start();
  }

  receive(message) {
    if (message.cursor) this.cursor = message.cursor;
    if (message.type === "subscribed" || message.type === "unsubscribed") {
      this.topics = message.data.topics;
      this.dispatchEvent(new Event("state"));
    }
    if (!message.topic) return;
    const sub = this.subs.get(message.topic);
    if (sub) sub.fn(message);
  }

  send(topic, opts) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return;
    this.ws.send(JSON.stringify({ subscribe: [topic], ...opts }));
  }

  /** Hold exactly these topics: {topic: {fn, opts}}; others are unsubscribed, changed options re-sent. */
  hold(wanted) {
    const open = this.ws && this.ws.readyState === WebSocket.OPEN;
    const gone = [...this.subs.keys()].filter((topic) => !(topic in wanted));
    if (gone.length && open) this.ws.send(JSON.stringify({ unsubscribe: gone }));
    gone.forEach((topic) => this.subs.delete(topic));
    for (const [topic, sub] of Object.entries(wanted)) {
      const opts = sub.opts || {};
      const old = this.subs.get(topic);
      this.subs.set(topic, { fn: sub.fn, opts });
      if (!old || JSON.stringify(old.opts) !== JSON.stringify(opts)) this.send(topic, opts);
    }
  }
}
